"""Plumbing shared by device classes: health bookkeeping and a safe sink.

Every driver and simulator reports its health the same way: remember the
current :class:`DeviceStatus`, tell the core (a
:class:`DeviceHealthChanged` event) when the health changes, and hand
events to the sink without ever letting a sink failure kill the device's
thread. :class:`HealthReporter` is that, once.
"""

from __future__ import annotations

import logging
import threading

from hubagent.events import DeviceHealthChanged, DeviceStatus, Event, EventSink, Health

log = logging.getLogger(__name__)


def emit_safely(sink: EventSink | None, event: Event, who: str) -> None:
    """Hand ``event`` to ``sink`` (if any); a failing sink is logged, never raised."""
    if sink is None:
        return
    try:
        sink(event)
    except Exception:  # the device thread must survive any sink bug
        log.exception("%s: event sink failed for %r", who, event)


class HealthReporter:
    """Mixin for device classes; call :meth:`_init_health` from ``__init__``."""

    name: str
    # Report a new detail under the same health too (a printer going from
    # "paper out" to "cover open" is news; a scanner's retry text is not).
    report_detail_changes = False

    def _init_health(self, role: str, detail: str = "not started") -> None:
        """Set up the bookkeeping; ``role`` is the config section (``scanners``...)."""
        self._role = role
        self._status_lock = threading.Lock()
        self._status = DeviceStatus(Health.UNKNOWN, detail)
        self._sink: EventSink | None = None

    def status(self) -> DeviceStatus:
        """Current health (thread-safe)."""
        with self._status_lock:
            return self._status

    def _set_status(self, health: Health, detail: str, *, report: bool = True) -> None:
        """Record the status; emit DeviceHealthChanged when the health changed."""
        status = DeviceStatus(health, detail)
        with self._status_lock:
            changed = health is not self._status.health or (
                self.report_detail_changes and status != self._status)
            self._status = status
        if report and changed:
            self._emit(DeviceHealthChanged(self._role, self.name, status))

    def _emit(self, event: Event) -> None:
        """Hand one event to the sink; a failing sink must not kill the caller."""
        emit_safely(self._sink, event, f"{self._role} {self.name}")


class ThreadedDevice(HealthReporter):
    """A device whose work runs in one thread of its own.

    Subclasses call :meth:`_init_worker` from ``__init__`` and implement
    ``_run()``, which must return soon after ``self._stop`` is set; their
    ``close()`` calls :meth:`_stop_worker` and then releases the hardware.
    """

    def _init_worker(self, role: str, thread_name: str) -> None:
        """Set up health bookkeeping, the stop flag and the thread slot."""
        self._init_health(role)
        self._thread_name = thread_name
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def _run(self) -> None:
        raise NotImplementedError

    def start(self, sink: EventSink) -> None:
        """Start the worker thread; never blocks, never raises for absent hardware."""
        with self._lock:
            if self._thread is not None or self._stop.is_set():
                return
            self._sink = sink
            self._thread = threading.Thread(target=self._run, name=self._thread_name, daemon=True)
            self._thread.start()

    def _stop_worker(self, timeout: float = 5.0) -> None:
        """Ask the worker to stop and wait for it (not from the worker itself)."""
        self._stop.set()
        with self._lock:
            thread, self._thread = self._thread, None
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=timeout)
            if thread.is_alive():
                log.warning("%s %s: worker thread did not stop", self._role, self.name)
