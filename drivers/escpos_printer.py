"""ESC/POS printers through python-escpos 3.1.

Labels are rendered once (:func:`hubagent.printing.render.render`) and sent
as ``GS v 0`` raster images; :func:`write_label` is the one place that
turns an image into python-escpos calls, and the simulator calls it too on
an ``escpos.printer.Dummy``, so what the simulator previews is exactly what
this driver sends.
"""

from __future__ import annotations

import logging
import os
import threading
from typing import Any

from PIL import Image

from hubagent.devicekit import HealthReporter
from hubagent.errors import DeviceError, DeviceUnavailable, InputError, LabelTooBig
from hubagent.events import EventSink, Health
from hubagent.ports import DeviceEnv, PrinterState, check_label_fits
from hubagent.printing.model import Label
from hubagent.printing.poll import StatusPoller
from hubagent.printing.render import render
from hubagent.printing.settings import EscposPrinterSettings

log = logging.getLogger(__name__)

FRAGMENT_HEIGHT = 480  # rows per GS v 0 block: small enough for modest printer buffers
TEAR_FEED_LINES = 4  # without a cutter, feed the label past the tear bar
DLE_EOT_OFFLINE_CAUSE = b"\x10\x04\x02"  # DLE EOT 2: why the printer is offline
_COVER_OPEN_BIT = 0x04
_PAPER_END_STOP_BIT = 0x20


def set_media(printer: Any, width_dots: int, width_mm: float, dpi: int) -> None:
    """Tell python-escpos the paper width so it rejects over-wide images.

    The profile data is a class attribute shared by every printer of that
    profile, so the copy is set on this printer's profile instance only.
    """
    profile = printer.profile
    data = dict(profile.profile_data)
    data["media"] = {"width": {"pixels": width_dots, "mm": width_mm}, "dpi": dpi}
    profile.profile_data = data


def write_label(printer: Any, image: Image.Image, *, copies: int, cutter: bool) -> None:
    """Send ``copies`` of ``image`` to a python-escpos printer object."""
    from escpos.exceptions import ImageWidthError

    printer.hw("INIT")
    for _ in range(copies):
        try:
            printer.image(image, impl="bitImageRaster", fragment_height=FRAGMENT_HEIGHT)
        except ImageWidthError as e:  # the check below missed a case: same error, same code
            raise LabelTooBig(image.size, (printer.profile.profile_data["media"]["width"]["pixels"], None)) from e
        if cutter:
            printer.cut()
        else:
            printer.print_and_feed(TEAR_FEED_LINES)


def encode_escpos(
    image: Image.Image, *, width_dots: int, width_mm: float, dpi: int, copies: int, cutter: bool
) -> bytes:
    """The exact bytes :class:`EscposPrinter` sends for ``image`` (via python-escpos' ``Dummy``)."""
    from escpos.printer import Dummy

    dummy = Dummy()
    set_media(dummy, width_dots, width_mm, dpi)
    write_label(dummy, image, copies=copies, cutter=cutter)
    return bytes(dummy.output)


class EscposPrinter(HealthReporter):
    """The :class:`~hubagent.ports.Printer` port on a python-escpos connection."""

    report_detail_changes = True
    language = "escpos"

    def __init__(self, name: str, settings: EscposPrinterSettings, env: DeviceEnv) -> None:
        """Remember the settings; opens nothing."""
        self.name = name
        self._init_health("printers")
        self.settings = settings
        self.env = env
        self.dpi = settings.dpi
        self.width_dots = settings.width_dots
        self.height_dots: int | None = None  # continuous paper
        self._lock = threading.Lock()
        self._conn: Any = None
        self._closed = False
        two_way = settings.connection in ("usb", "serial", "network")
        self._poller = StatusPoller(name, settings.status_interval if two_way else 0.0, self.printer_state)

    # -- lifecycle -----------------------------------------------------
    def start(self, sink: EventSink) -> None:
        """Try the connection once; an absent printer is reported OFFLINE, not raised."""
        self._sink = sink
        self._closed = False
        with self._lock:
            try:
                self._connect()
                self._set_status(Health.OK, "")
            except DeviceUnavailable as e:
                self._set_status(Health.OFFLINE, str(e))
            finally:
                if not self._persistent():
                    self._disconnect()
        self._poller.start()

    def close(self) -> None:
        """Release the connection. Idempotent; never raises."""
        self._poller.stop()
        with self._lock:
            self._closed = True
            self._disconnect()

    # -- Printer port --------------------------------------------------
    def print_label(self, label: Label, copies: int = 1) -> None:
        """Render ``label`` and send it as raster, cutting when the printer can."""
        if copies < 1:
            raise InputError("bad_copies", f"copies must be at least 1, not {copies}")
        check_label_fits(label, self.width_dots, self.height_dots)
        image = render(label)
        with self._lock:
            if self._closed:
                raise DeviceUnavailable(f"printer {self.name} is closed")
            try:
                conn = self._connect()
                write_label(conn, image, copies=copies, cutter=self.settings.cutter)
                self._finish_job(conn)
            except DeviceUnavailable as e:
                self._set_status(Health.OFFLINE, str(e))
                raise
            except (DeviceError, InputError):
                self._disconnect()
                raise
            except Exception as e:  # python-escpos and the OS raise many types
                self._disconnect()
                self._set_status(Health.OFFLINE, f"send failed: {e}")
                raise DeviceUnavailable(f"printer {self.name}: send failed: {e}") from e
            finally:
                if not self._persistent():
                    self._disconnect()
            self._set_status(Health.OK, "")

    def printer_state(self) -> PrinterState:
        """Real-time status over two-way links (USB, serial, network); else UNKNOWN."""
        if self.settings.connection not in ("usb", "serial", "network"):
            return PrinterState.UNKNOWN
        with self._lock:
            try:
                state = self._query()
            except DeviceUnavailable as e:
                self._set_status(Health.OFFLINE, str(e))
                return PrinterState.OFFLINE
            except Exception as e:  # no reply (timeout) or a one-way link
                log.info("printer %s did not answer a status query: %s", self.name, e)
                self._disconnect()
                return PrinterState.UNKNOWN
            finally:
                if not self._persistent():
                    self._disconnect()
        if state is PrinterState.ONLINE:
            self._set_status(Health.OK, "")
        else:
            self._set_status(Health.FAULTED, state.value)
        return state

    # -- helpers -------------------------------------------------------
    def _query(self) -> PrinterState:
        conn = self._connect()
        if conn.is_online():
            return PrinterState.PAPER_OUT if conn.paper_status() == 0 else PrinterState.ONLINE
        cause = conn.query_status(DLE_EOT_OFFLINE_CAUSE)
        if cause and cause[0] & _COVER_OPEN_BIT:
            return PrinterState.COVER_OPEN
        if cause and cause[0] & _PAPER_END_STOP_BIT:
            return PrinterState.PAPER_OUT
        return PrinterState.OFFLINE

    def _persistent(self) -> bool:
        # USB and serial links are slow to set up and exclusive to us; network,
        # file and CUPS connections are opened per job so other senders get a turn.
        return self.settings.connection in ("usb", "serial")

    def _connect(self) -> Any:
        if self._conn is not None:
            return self._conn
        if self.settings.connection == "file" and not os.path.exists(self.settings.device):
            # Opening a missing device node for writing would create a plain
            # file there and swallow every label; an unplugged printer is absent.
            raise DeviceUnavailable(f"printer {self.name}: {self.settings.device} does not exist")
        conn = self._make()
        try:
            conn.open()
        except Exception as e:
            raise DeviceUnavailable(f"printer {self.name} unreachable: {e}") from e
        set_media(conn, self.width_dots, self.settings.paper_width_mm, self.dpi)
        self._conn = conn
        return conn

    def _make(self) -> Any:
        from escpos import printer as ep

        s = self.settings
        common: dict[str, Any] = {"profile": s.profile}
        if s.connection == "usb":
            return ep.Usb(s.usb_vendor_id, s.usb_product_id, timeout=int(s.timeout * 1000), **common)
        if s.connection == "serial":
            return ep.Serial(s.serial_url, baudrate=s.baudrate, timeout=s.timeout, **common)
        if s.connection == "network":
            return ep.Network(s.host, port=s.port, timeout=s.timeout, **common)
        if s.connection == "file":
            return ep.File(s.device, **common)
        return ep.CupsPrinter(s.cups_printer, **common)

    def _finish_job(self, conn: Any) -> None:
        if self.settings.connection == "cups":
            conn.send()
        elif self.settings.connection == "file":
            conn.flush()

    def _disconnect(self) -> None:
        conn, self._conn = self._conn, None
        if conn is None:
            return
        try:
            conn.close()
        except Exception as e:  # close must never raise
            log.debug("closing printer %s: %s", self.name, e)
