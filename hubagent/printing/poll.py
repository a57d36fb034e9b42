"""A background thread that asks a printer for its state now and then.

Two-way printers report paper out or an open cover only when asked; polling
turns that into a :class:`~hubagent.events.DeviceHealthChanged` event before
someone tries to print. The thread does one thing: call the query, which
emits the event itself when the health changes.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

log = logging.getLogger(__name__)


class StatusPoller:
    """Calls ``query`` every ``interval`` seconds on its own daemon thread until stopped."""

    def __init__(self, name: str, interval: float, query: Callable[[], object]) -> None:
        """Prepare the poller; nothing runs until :meth:`start`."""
        self._name = name
        self._interval = interval
        self._query = query
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start polling (no-op when already running or the interval is 0)."""
        if self._interval <= 0 or (self._thread is not None and self._thread.is_alive()):
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name=f"printer-status-{self._name}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop polling and wait briefly for the thread. Idempotent; never raises."""
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=5.0)

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                self._query()
            except Exception:  # a poll failure must never kill the thread
                log.exception("status poll of printer %s failed", self._name)
