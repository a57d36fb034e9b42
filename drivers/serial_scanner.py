"""Serial barcode scanner (USB CDC-ACM or RS-232) through pyserial.

One reader thread opens ``serial.serial_for_url(url)``, blocks on reads with
a short timeout (so ``close()`` is prompt without a busy loop), feeds the
:class:`~hubagent.scanning.framing.Framer` and hands each result to the sink.
When the port fails (unplugged: ``SerialException``/``OSError``) it reports
FAULTED, then retries with capped exponential backoff, reporting OFFLINE
while the port is absent and OK once it is open again.
"""

from __future__ import annotations

import enum
import logging
import threading
from typing import Protocol, cast

import serial

from hubagent.devicekit import ThreadedDevice
from hubagent.events import (
    Health,
    RawScan,
    ScanRejectedAtDevice,
)
from hubagent.ports import DeviceEnv
from hubagent.scanning.framing import Frame, Framer
from hubagent.scanning.settings import SerialScannerSettings

log = logging.getLogger(__name__)

ROLE = "scanners"
READ_TIMEOUT_S = 0.2
"""How long one blocking read waits; bounds how long close() takes."""

READ_SIZE = 4096


class _Port(Protocol):
    """What the reader uses of a pyserial port."""

    @property
    def in_waiting(self) -> int:
        """Bytes waiting in the input buffer."""
        ...

    def read(self, size: int = 1) -> bytes:
        """Up to ``size`` bytes (fewer on timeout)."""
        ...

    def cancel_read(self) -> None:
        """Wake a blocked read (POSIX ports)."""
        ...

    def close(self) -> None:
        """Release the port."""
        ...


class ReaderState(enum.Enum):
    """Life cycle of the reader thread."""

    NEW = "new"
    OPENING = "opening"
    READING = "reading"
    WAITING = "waiting"  # port failed or absent, waiting to retry
    CLOSED = "closed"


class SerialScanner(ThreadedDevice):
    """A scanner on a serial port; delivers RawScan / ScanRejectedAtDevice."""

    role = ROLE

    def __init__(self, name: str, settings: SerialScannerSettings, env: DeviceEnv) -> None:
        """Remember the settings; opens nothing."""
        self.name = name
        self._init_worker(ROLE, f"scanner-{name}")
        self.settings = settings
        self.env = env
        self.feedback = settings.feedback
        self._framer = Framer(settings.prefix.encode(), settings.suffix.encode(),
                              settings.terminator.encode(), settings.max_length)
        self._ready = threading.Event()  # set while the port is open and being read
        self._state = ReaderState.NEW
        self._port: _Port | None = None

    # --- Device protocol -------------------------------------------------

    @property
    def state(self) -> ReaderState:
        """What the reader thread is doing now."""
        return self._state

    def close(self) -> None:
        """Stop the reader and release the port. Idempotent; never raises."""
        self._stop.set()
        with self._lock:
            self._state = ReaderState.CLOSED
        port = self._port
        if port is not None:
            try:
                port.cancel_read()  # wakes the blocked read at once
            except Exception:  # noqa: BLE001 - close must never raise
                log.debug("%s: cancel_read failed", self.name, exc_info=True)
        self._stop_worker()
        self._set_status(Health.OFFLINE, "closed", report=False)

    def wait_ready(self, timeout: float) -> bool:
        """Wait until the port is open and being read; False on timeout.

        Bytes that arrive before that are discarded by the port's open
        (pyserial flushes the input buffer), so simulators wait for this.
        """
        return self._ready.wait(timeout)

    # --- reader thread ---------------------------------------------------

    def _run(self) -> None:
        """Open, read until failure, wait with backoff, repeat until closed."""
        delay = self.settings.reopen_initial_s
        failures = 0
        while not self._stop.is_set():
            port = self._open(failures)
            if port is None:
                failures += 1
                self._stop.wait(delay)
                delay = min(delay * 2, self.settings.reopen_max_s)
                continue
            failures, delay = 0, self.settings.reopen_initial_s
            self._read_until_failure(port)
        self._close_port()
        self._state = ReaderState.CLOSED

    def _open(self, failures: int) -> _Port | None:
        """Open the port, or report why not and return None."""
        self._state = ReaderState.OPENING
        try:
            # serial_for_url is typed as returning SerialBase; every URL
            # handler's class (posix, loop://, socket://, rfc2217://) has
            # in_waiting, and a missing cancel_read is caught in close().
            port = cast(_Port, serial.serial_for_url(self.settings.url, baudrate=self.settings.baud,
                                                      timeout=READ_TIMEOUT_S))
        except (serial.SerialException, OSError, ValueError) as e:
            self._state = ReaderState.WAITING
            self._set_status(Health.OFFLINE, f"cannot open {self.settings.url}: {e}")
            if failures == 0:  # log once per outage, not on every retry
                log.warning("%s: cannot open %s: %s", self.name, self.settings.url, e)
            return None
        self._port = port
        self._framer.reset()
        self._state = ReaderState.READING
        self._ready.set()
        self._set_status(Health.OK, f"reading {self.settings.url}")
        log.info("%s: reading %s", self.name, self.settings.url)
        return port

    def _read_until_failure(self, port: _Port) -> None:
        """Blocking reads with timeout; return when the port fails or on close."""
        while not self._stop.is_set():
            try:
                chunk = port.read(max(1, min(port.in_waiting, READ_SIZE)))
            except (serial.SerialException, OSError, TypeError) as e:
                # TypeError: pyserial on a port closed under it (fd is None).
                self._ready.clear()
                if self._stop.is_set():
                    break
                self._state = ReaderState.WAITING
                log.warning("%s: read failed: %s", self.name, e)
                self._set_status(Health.FAULTED, f"read failed: {e}")
                break
            if chunk:
                self._deliver_chunk(chunk)
        self._ready.clear()
        self._close_port()

    def _deliver_chunk(self, chunk: bytes) -> None:
        """Frame ``chunk`` and emit one event per result."""
        for result in self._framer.feed(chunk):
            if isinstance(result, Frame):
                self._emit(RawScan(self.name, result.data))
            else:
                log.info("%s: rejected read: %s %s", self.name, result.reason, result.detail)
                self._emit(ScanRejectedAtDevice(self.name, result.reason, result.detail))

    def _close_port(self) -> None:
        port, self._port = self._port, None
        if port is not None:
            try:
                port.close()
            except Exception:  # noqa: BLE001 - a dead port may fail to close
                log.debug("%s: closing port failed", self.name, exc_info=True)
