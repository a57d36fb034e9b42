"""Simulated serial scanner on a pseudo-terminal.

The simulator opens a pty pair and runs the real
:class:`~hubagent.drivers.serial_scanner.SerialScanner` on the slave side;
:meth:`SimScanner.scan` writes the code and terminator to the master side, so a simulated scan takes exactly the path of a real one
(pyserial read loop, framer, events).

The scanner reads through a symlink (``<state_dir>/sim/scanner-<name>.tty``)
to the current pty slave, so :meth:`~SimScanner.unplug` (close the pty: reads fail with EIO)
and :meth:`~SimScanner.replug` (new pty, symlink re-pointed) exercise the driver's
reconnect path like a real USB unplug.
"""

from __future__ import annotations

import logging
import os
import threading
import tty
from typing import Any, Mapping

from hubagent.drivers.serial_scanner import SerialScanner
from hubagent.errors import DeviceError, InputError
from hubagent.events import DeviceStatus, EventSink, Health
from hubagent.ports import DeviceEnv
from hubagent.scanning.settings import SerialScannerSettings, SimScannerSettings

log = logging.getLogger(__name__)

READY_TIMEOUT_S = 3.0
"""How long an injection waits for the reader to have the pty open."""

MAX_INJECT = 65536
"""Largest single injection accepted by ``scan``/``bytes`` (keeps a typo from filling the pty)."""


class SimScanner:
    """A pty-backed scanner with typed test verbs ``scan``, ``send_bytes``, ``unplug``, ``replug``."""

    role = "scanners"

    def __init__(self, name: str, settings: SimScannerSettings, env: DeviceEnv) -> None:
        """Remember the settings; opens nothing."""
        self.name = name
        self.settings = settings
        self.env = env
        self.feedback = settings.feedback
        self._lock = threading.Lock()
        self._master: int | None = None
        self._slave: int | None = None
        self._pty_path = ""
        self._link = env.state_dir / "sim" / f"scanner-{name}.tty"
        self._reader: SerialScanner | None = None

    @property
    def path(self) -> str:
        """The path the reader opens (symlink to the current pty slave)."""
        return str(self._link)

    def start(self, sink: EventSink) -> None:
        """Create the pty and start the real serial reader on it."""
        with self._lock:
            if self._reader is not None:
                return
            try:
                self._link.parent.mkdir(parents=True, exist_ok=True)
                self._plug()
            except OSError as e:
                raise DeviceError(f"cannot create the simulated scanner's pty at {self._link}: {e}") from e
            settings = SerialScannerSettings(
                url=str(self._link), terminator=self.settings.terminator,
                max_length=self.settings.max_length, reopen_initial_s=0.05, reopen_max_s=0.5,
                feedback=self.settings.feedback)
            self._reader = SerialScanner(self.name, settings, self.env)
        self._reader.start(sink)

    def status(self) -> DeviceStatus:
        """The reader's health, with the pty path in the detail."""
        reader = self._reader
        if reader is None:
            return DeviceStatus(Health.UNKNOWN, "not started")
        inner = reader.status()
        plug = f"pty {self._pty_path}" if self._master is not None else "unplugged"
        return DeviceStatus(inner.health, f"{inner.detail}; {plug} via {self._link}")

    def close(self) -> None:
        """Stop the reader and remove the pty. Idempotent; never raises."""
        reader = self._reader
        if reader is not None:
            reader.close()
        with self._lock:
            self._unplug()
            try:
                self._link.unlink(missing_ok=True)
            except OSError:
                log.debug("%s: cannot remove %s", self.name, self._link, exc_info=True)

    # --- typed test verbs --------------------------------------------------

    def scan(self, code: str) -> dict[str, Any]:
        """Scan ``code``: its UTF-8 bytes and the terminator arrive on the port."""
        if not isinstance(code, str) or not code:
            raise InputError("bad_args", "scan needs a non-empty string 'code'")
        return self._write(code.encode("utf-8") + self.settings.terminator.encode())

    def send_bytes(self, data: bytes) -> dict[str, Any]:
        """Send raw bytes as they are (noise, half codes, bad encodings)."""
        if not data:
            raise InputError("bad_args", "no bytes to send")
        return self._write(bytes(data))

    def unplug(self) -> None:
        """Pull the cable: the reader's next read fails (EIO), as on a USB unplug."""
        with self._lock:
            self._unplug()

    def replug(self) -> str:
        """Plug back in (a new pty behind the same path); returns the pty's path."""
        with self._lock:
            if self._master is None:
                self._plug()
            return self._pty_path

    # --- the ``hubagent sim scan`` and ``sim bytes`` adapter ---------------------------------

    def sim_command(self, verb: str, args: Mapping[str, Any]) -> dict[str, Any]:
        """Map ``scan`` {code}, ``bytes`` {hex}, ``unplug``, ``replug`` onto the typed verbs."""
        if verb == "scan":
            code = args.get("code")
            if not isinstance(code, str):
                raise InputError("bad_args", "scan needs a non-empty string 'code'")
            return self.scan(code)
        if verb == "bytes":
            return self.send_bytes(_hex_arg(args))
        if verb == "unplug":
            self.unplug()
            return {"plugged": False}
        if verb == "replug":
            return {"plugged": True, "pty": self.replug()}
        raise InputError("unknown_verb", f"scanner simulator has no verb {verb!r} (scan, bytes, unplug, replug)")

    # --- pty handling ----------------------------------------------------

    def _write(self, data: bytes) -> dict[str, Any]:
        """Write ``data`` to the master side as the scanner would."""
        if len(data) > MAX_INJECT:
            raise InputError("bad_args", f"at most {MAX_INJECT} bytes per injection")
        if self._master is None:
            raise InputError("unplugged", "the simulated scanner is unplugged (use replug)")
        reader = self._reader
        # Bytes written before the reader opened the port would be flushed away.
        if reader is None or not reader.wait_ready(READY_TIMEOUT_S):
            raise InputError("not_ready", "the simulated scanner is not started or not reading")
        with self._lock:
            master = self._master
            if master is None:
                raise InputError("unplugged", "the simulated scanner is unplugged (use replug)")
            view = memoryview(data)
            while view:
                written = os.write(master, view)
                view = view[written:]
        return {"written": len(data), "pty": self._pty_path}

    def _plug(self) -> None:
        """Create a pty pair in raw mode and point the symlink at its slave."""
        master, slave = os.openpty()
        # Raw at once: before pyserial configures it, the line discipline
        # would otherwise echo and translate what we write.
        tty.setraw(slave)
        self._master, self._slave = master, slave
        self._pty_path = os.ttyname(slave)
        tmp = self._link.with_suffix(".tmp")
        tmp.unlink(missing_ok=True)
        tmp.symlink_to(self._pty_path)
        os.replace(tmp, self._link)

    def _unplug(self) -> None:
        """Close both ends: the reader's next read fails as on a USB unplug."""
        for fd in (self._master, self._slave):
            if fd is not None:
                try:
                    os.close(fd)
                except OSError:
                    log.debug("%s: closing pty fd failed", self.name, exc_info=True)
        self._master = self._slave = None


def _hex_arg(args: Mapping[str, Any]) -> bytes:
    """The bytes of the ``hex`` argument."""
    text = args.get("hex")
    if not isinstance(text, str):
        raise InputError("bad_args", "bytes needs a string 'hex'")
    try:
        data = bytes.fromhex(text)
    except ValueError as e:
        raise InputError("bad_args", f"'hex' is not hexadecimal: {e}") from e
    if not data:
        raise InputError("bad_args", "'hex' is empty")
    return data
