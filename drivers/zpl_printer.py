"""ZPL label printers over raw TCP (port 9100) or a device file.

The label is rendered once and sent as one ``^GFA`` graphic
(:mod:`hubagent.printing.zpl`). Over TCP the printer also answers ``~HS``
(host status), which tells paper out, head open and pause apart.
"""

from __future__ import annotations

import logging
import os
import socket
import threading

import msgspec

from hubagent.devicekit import HealthReporter
from hubagent.errors import DeviceUnavailable, InputError
from hubagent.events import EventSink, Health
from hubagent.ports import DeviceEnv, PrinterState, check_label_fits
from hubagent.printing import zpl
from hubagent.printing.model import Label
from hubagent.printing.poll import StatusPoller
from hubagent.printing.render import render
from hubagent.printing.settings import ZplPrinterSettings

log = logging.getLogger(__name__)

STX, ETX = b"\x02", b"\x03"
_HS_REPLY_MAX = 4096


class HostStatus(msgspec.Struct, frozen=True):
    """The flags of a ``~HS`` reply that decide whether the printer can print."""

    paper_out: bool
    paused: bool
    head_open: bool
    ribbon_out: bool


def parse_host_status(reply: bytes) -> HostStatus:
    """Parse a ``~HS`` reply: three STX...ETX strings of comma-separated fields.

    String 1: ``aaa,b,c,dddd,eee,f,g,h,iii,j,k,l`` (b = paper out, c = pause);
    string 2: ``mmm,n,o,p,q,r,s,t,uuuuuuuu,v,www`` (o = head up, p = ribbon out).
    Raises ValueError when the reply does not have that shape.
    """
    strings = [part.split(ETX, 1)[0].decode("ascii", "replace") for part in reply.split(STX)[1:]]
    if len(strings) < 2:
        raise ValueError(f"~HS reply has {len(strings)} status strings, expected 3")
    one, two = strings[0].split(","), strings[1].split(",")
    if len(one) < 3 or len(two) < 4:
        raise ValueError(f"~HS reply fields too short: {strings[:2]!r}")
    return HostStatus(
        paper_out=one[1].strip() == "1",
        paused=one[2].strip() == "1",
        head_open=two[2].strip() == "1",
        ribbon_out=two[3].strip() == "1",
    )


def state_of(status: HostStatus) -> PrinterState:
    """The port's :class:`PrinterState` for a parsed ``~HS`` reply."""
    if status.head_open:
        return PrinterState.COVER_OPEN
    if status.paper_out or status.ribbon_out:
        return PrinterState.PAPER_OUT
    if status.paused:
        return PrinterState.OFFLINE
    return PrinterState.ONLINE


class ZplPrinter(HealthReporter):
    """The :class:`~hubagent.ports.Printer` port for ZPL printers."""

    report_detail_changes = True
    language = "zpl"

    def __init__(self, name: str, settings: ZplPrinterSettings, env: DeviceEnv) -> None:
        """Remember the settings; opens nothing."""
        self.name = name
        self._init_health("printers")
        self.settings = settings
        self.env = env
        self.dpi = settings.dpi
        self.width_dots = settings.width_dots
        self.height_dots: int | None = int(settings.height_mm * settings.dpi / 25.4 + 1e-6)
        self._lock = threading.Lock()
        self._closed = False
        self._poller = StatusPoller(name, settings.status_interval if settings.host else 0.0, self.printer_state)

    def start(self, sink: EventSink) -> None:
        """Remember the sink and ask for the state once (absent is OFFLINE, not an error)."""
        self._sink = sink
        self._closed = False
        if self.settings.device:
            if os.path.exists(self.settings.device):
                self._set_status(Health.OK, "")
            else:
                self._set_status(Health.OFFLINE, f"{self.settings.device} does not exist")
        else:
            self.printer_state()
        self._poller.start()

    def close(self) -> None:
        """Stop polling and sending; connections are per job. Idempotent; never raises."""
        self._closed = True
        self._poller.stop()

    def print_label(self, label: Label, copies: int = 1) -> None:
        """Render ``label``, encode it as ZPL and send it."""
        if copies < 1:
            raise InputError("bad_copies", f"copies must be at least 1, not {copies}")
        check_label_fits(label, self.width_dots, self.height_dots)
        data = zpl.encode_image(render(label), copies=copies, compress=self.settings.compress)
        with self._lock:
            if self._closed:
                raise DeviceUnavailable(f"printer {self.name} is closed")
            try:
                self._send(data)
            except OSError as e:
                self._set_status(Health.OFFLINE, f"send failed: {e}")
                raise DeviceUnavailable(f"printer {self.name}: {e}") from e
        self._set_status(Health.OK, "")

    def printer_state(self) -> PrinterState:
        """``~HS`` over TCP; UNKNOWN for a device file."""
        if not self.settings.host:
            return PrinterState.UNKNOWN
        try:
            with self._lock:
                reply = self._ask(b"~HS\r\n")
            state = state_of(parse_host_status(reply))
        except OSError as e:
            self._set_status(Health.OFFLINE, f"unreachable: {e}")
            return PrinterState.OFFLINE
        except ValueError as e:
            log.warning("printer %s: unreadable ~HS reply: %s", self.name, e)
            self._set_status(Health.UNKNOWN, "unreadable status reply")
            return PrinterState.UNKNOWN
        if state is PrinterState.ONLINE:
            self._set_status(Health.OK, "")
        else:
            self._set_status(Health.FAULTED, state.value)
        return state

    # -- helpers -------------------------------------------------------
    def _send(self, data: bytes) -> None:
        if self.settings.device:
            # No O_CREAT: a missing device node (printer unplugged) must not
            # turn into a plain file that silently swallows labels.
            with os.fdopen(os.open(self.settings.device, os.O_WRONLY | os.O_TRUNC), "wb") as f:
                f.write(data)
            return
        with socket.create_connection((self.settings.host, self.settings.port), self.settings.timeout) as sock:
            sock.sendall(data)

    def _ask(self, query: bytes) -> bytes:
        """Send ``query`` and read up to the third ETX (or what came before the timeout)."""
        with socket.create_connection((self.settings.host, self.settings.port), self.settings.timeout) as sock:
            sock.settimeout(self.settings.timeout)
            sock.sendall(query)
            reply = b""
            while reply.count(ETX) < 3 and len(reply) < _HS_REPLY_MAX:
                try:
                    chunk = sock.recv(1024)
                except TimeoutError:
                    break
                if not chunk:
                    break
                reply += chunk
            return reply

