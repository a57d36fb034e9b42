"""A simulated label printer that shows a person every label it prints.

It produces the exact bytes the real driver would send (ESC/POS through the
same :func:`~hubagent.drivers.escpos_printer.write_label` on python-escpos'
``Dummy``; ZPL through the same :mod:`hubagent.printing.zpl` encoder),
keeps them, decodes them back into an image with an independent decoder and
writes that as a PNG preview, one per job, under the state directory.

Typed verbs (:meth:`SimPrinter.paper_out`, ``paper_in``, ``switch_off``,
``switch_on``) set its faults; ``sim_command`` maps the ``hubagent sim``
command line onto them. Its fault state (offline, paper out) and its job
counter live in
``sim-printer-<name>.json`` in the state directory, so a printer switched
off stays off across a daemon restart, and preview names
(``<name>-<counter>-<label>.png``) never repeat.
"""

from __future__ import annotations

import collections
import json
import logging
import re
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec

from hubagent.errors import DeviceError, DeviceUnavailable, InputError
from hubagent.events import DeviceHealthChanged, DeviceStatus, EventSink, Health
from hubagent.ports import DeviceEnv, PrinterState, check_label_fits
from hubagent.printing.settings import SimPrinterSettings

if TYPE_CHECKING:
    # Pillow, the renderer and the decoders load on the first label: a hub
    # that never prints keeps their memory (issue: idle RSS).
    from PIL import Image

    from hubagent.printing.model import Label

log = logging.getLogger(__name__)

_SAFE = re.compile(r"[^A-Za-z0-9_.-]+")


class SimJob(msgspec.Struct, frozen=True):
    """One captured job: the exact printer bytes and its PNG preview."""

    seq: int
    label: str
    copies: int
    data: bytes
    preview: Path


class SimPrinter:
    """The :class:`~hubagent.ports.Printer` port plus test verbs, printing to PNG files."""

    def __init__(self, name: str, settings: SimPrinterSettings, env: DeviceEnv) -> None:
        """Remember the settings; creates nothing on disk yet."""
        self.name = name
        self.settings = settings
        self.language = settings.language
        self.dpi = settings.dpi
        self.width_dots = settings.width_dots
        # ESC/POS paper is continuous: only ZPL labels have a length.
        self.height_dots: int | None = (int(settings.height_mm * settings.dpi / 25.4 + 1e-6)
                                        if settings.language == "zpl" else None)
        self.preview_dir = env.state_dir / settings.preview_dir
        self.state_file = env.state_dir / f"sim-printer-{_SAFE.sub('_', name)}.json"
        self._lock = threading.Lock()
        self._jobs: collections.deque[SimJob] = collections.deque(maxlen=settings.keep_jobs)
        self._seq = 0
        self._offline = False
        self._paper_out = False
        self._sink: EventSink | None = None
        self._closed = False

    # -- lifecycle -----------------------------------------------------
    def start(self, sink: EventSink) -> None:
        """Reload the persisted fault state, create the preview directory, report the health."""
        self._sink = sink
        self._closed = False
        self.preview_dir.mkdir(parents=True, exist_ok=True)
        self._load_state()
        self._emit()

    def status(self) -> DeviceStatus:
        """OK while online; FAULTED with the reason otherwise."""
        state = self.printer_state()
        if state is PrinterState.ONLINE:
            return DeviceStatus(Health.OK)
        if state is PrinterState.OFFLINE:
            return DeviceStatus(Health.OFFLINE, "offline")
        return DeviceStatus(Health.FAULTED, state.value.replace("_", " "))

    def close(self) -> None:
        """Stop accepting jobs. Idempotent; never raises."""
        self._closed = True

    # -- Printer port --------------------------------------------------
    def printer_state(self) -> PrinterState:
        """The state the test verbs have set."""
        if self._offline:
            return PrinterState.OFFLINE
        return PrinterState.PAPER_OUT if self._paper_out else PrinterState.ONLINE

    def print_label(self, label: Label, copies: int = 1) -> None:
        """Encode ``label`` like the real driver, capture the bytes and write a preview."""
        if copies < 1:
            raise InputError("bad_copies", f"copies must be at least 1, not {copies}")
        check_label_fits(label, self.width_dots, self.height_dots)
        state = self.printer_state()
        if self._closed or state is PrinterState.OFFLINE:
            raise DeviceUnavailable(f"printer {self.name} is offline")
        if state is not PrinterState.ONLINE:
            raise DeviceError(f"printer {self.name}: {state.value.replace('_', ' ')}")
        from hubagent.printing.render import render

        image = render(label)
        data, preview = self._encode(image, copies)
        with self._lock:
            self._seq += 1
            seq = self._seq
            self._save_state()
        path = self._write_preview(preview, seq, label.name)
        with self._lock:
            self._jobs.append(SimJob(seq, label.name, copies, data, path))
        log.info("printer %s: job %d (%s, %d bytes) -> %s", self.name, seq, label.name, len(data), path)

    def jobs(self) -> list[SimJob]:
        """The captured jobs, oldest first (the last ``keep_jobs``)."""
        with self._lock:
            return list(self._jobs)

    # -- typed test verbs ---------------------------------------------
    def paper_out(self) -> None:
        """The roll runs out: jobs fail with DeviceError until :meth:`paper_in`."""
        self._set_fault(paper_out=True)

    def paper_in(self) -> None:
        """A new roll is loaded."""
        self._set_fault(paper_out=False)

    def switch_off(self) -> None:
        """The printer is switched off or unplugged: jobs fail with DeviceUnavailable."""
        self._set_fault(offline=True)

    def switch_on(self) -> None:
        """The printer is back."""
        self._set_fault(offline=False)

    # -- the ``hubagent sim printer`` adapter -------------------------
    def sim_command(self, verb: str, args: Mapping[str, Any]) -> dict[str, Any]:
        """``paper-out``, ``paper-in``, ``offline``, ``online``; returns the new state."""
        verbs = {"paper-out": self.paper_out, "paper-in": self.paper_in,
                 "offline": self.switch_off, "online": self.switch_on}
        if verb not in verbs:
            raise InputError("unknown_verb", f"unknown printer verb {verb!r} (known: {', '.join(verbs)})")
        if args:
            raise InputError("bad_args", f"{verb} takes no arguments, got {', '.join(map(str, args))}")
        verbs[verb]()
        return {"state": self.printer_state().value, "jobs": len(self._jobs)}

    # -- helpers -------------------------------------------------------
    def _set_fault(self, *, paper_out: bool | None = None, offline: bool | None = None) -> None:
        """Change the fault state, persist it and report the health."""
        with self._lock:
            if paper_out is not None:
                self._paper_out = paper_out
            if offline is not None:
                self._offline = offline
            self._save_state()
        self._emit()

    def _load_state(self) -> None:
        """Fault state and job counter from the state file (missing or unreadable: defaults)."""
        doc: dict[str, Any] = {}
        try:
            loaded = json.loads(self.state_file.read_text())
            if isinstance(loaded, dict):
                doc = loaded
        except FileNotFoundError:
            pass
        except (OSError, ValueError) as e:
            log.warning("printer %s: ignoring unreadable %s: %s", self.name, self.state_file, e)
        with self._lock:
            self._offline = doc.get("offline") is True
            self._paper_out = doc.get("paper_out") is True
            seq = doc.get("seq")
            # Previews already on disk win over a lost state file: names never repeat.
            self._seq = max(seq if isinstance(seq, int) else 0, self._highest_preview())

    def _highest_preview(self) -> int:
        highest = 0
        for path in self.preview_dir.glob(f"{self.name}-*.png"):
            number = path.name[len(self.name) + 1:].split("-", 1)[0]
            if number.isdigit():
                highest = max(highest, int(number))
        return highest

    def _save_state(self) -> None:
        """Write the state file atomically (lock held); a failure is logged, never raised."""
        doc = {"offline": self._offline, "paper_out": self._paper_out, "seq": self._seq}
        tmp = self.state_file.with_suffix(".tmp")
        try:
            tmp.write_text(json.dumps(doc))
            tmp.replace(self.state_file)
        except OSError as e:
            log.warning("printer %s: cannot save %s: %s", self.name, self.state_file, e)

    def _encode(self, image: Image.Image, copies: int) -> tuple[bytes, Image.Image]:
        from hubagent.printing import zpl
        from hubagent.sim import escpos_decode, zpl_decode

        if self.language == "zpl":
            data = zpl.encode_image(image, copies=copies)
            return data, zpl_decode.decode(data)[0].image
        from hubagent.drivers.escpos_printer import encode_escpos

        data = encode_escpos(
            image, width_dots=self.width_dots, width_mm=self.settings.width_mm, dpi=self.dpi,
            copies=copies, cutter=self.settings.cutter,
        )
        return data, _stack(escpos_decode.decode(data, self.width_dots).pages)

    def _write_preview(self, image: Image.Image, seq: int, label: str) -> Path:
        self.preview_dir.mkdir(parents=True, exist_ok=True)
        path = self.preview_dir / f"{self.name}-{seq:05d}-{_SAFE.sub('_', label)[:40]}.png"
        tmp = path.with_suffix(".tmp")
        image.save(tmp, format="PNG")
        tmp.replace(path)  # a half-written preview is never visible under its name
        return path

    def _emit(self) -> None:
        if self._sink is None:
            return
        try:
            self._sink(DeviceHealthChanged("printers", self.name, self.status()))
        except Exception:
            log.exception("event sink failed for printer %s", self.name)


def _stack(pages: list[Image.Image]) -> Image.Image:
    """Pages one under the other with a dashed line where the cutter cut."""
    from PIL import Image, ImageDraw

    gap = 8
    width = max(p.width for p in pages)
    out = Image.new("1", (width, sum(p.height for p in pages) + gap * (len(pages) - 1)), 1)
    draw = ImageDraw.Draw(out)
    y = 0
    for i, page in enumerate(pages):
        if i:
            for x in range(0, width, 16):
                draw.line((x, y - gap // 2, x + 8, y - gap // 2), fill=0)
        out.paste(page, (0, y))
        y += page.height + gap
    return out
