"""Running the daemon: signals, systemd notifications, the local API.

SIGTERM and SIGINT stop the hub cleanly (exit 0) with every device closed;
``READY=1`` is sent once the store, devices, features and API are up, and
``WATCHDOG=1`` pings come from the core loop itself, so a wedged loop
stops them and systemd restarts the service.
"""

from __future__ import annotations

import asyncio
import logging
import signal

from hubagent.api import ApiServer
from hubagent.app import App
from hubagent.clock import Clock, Timer
from hubagent.sdnotify import Notifier

log = logging.getLogger(__name__)


async def serve(app: App, notifier: Notifier | None = None) -> None:
    """Start ``app``, serve until SIGTERM/SIGINT, then stop it."""
    notifier = notifier or Notifier()
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    api = ApiServer(app, app.config.socket_path)
    # While the hub waits (for disk space), keep systemd's start timeout from firing.
    app.waiting = lambda text: notifier.notify(f"STATUS={text}\nEXTEND_TIMEOUT_USEC=60000000")
    try:
        await app.start()
        await api.start()
        notifier.ready(f"hub {app.hub_id} running")
        log.info("ready; local API on %s", app.config.socket_path)
        watchdog = _Watchdog(app.clock, notifier) if notifier.watchdog_interval else None
        await stop.wait()
        log.info("stopping")
        notifier.stopping()
        if watchdog is not None:
            watchdog.cancel()
    finally:
        await api.stop()
        await app.stop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)


class _Watchdog:
    """Pings systemd from the core loop on the app clock until cancelled."""

    def __init__(self, clock: Clock, notifier: Notifier) -> None:
        self._clock = clock
        self._notifier = notifier
        self._interval = notifier.watchdog_interval or 10.0
        self._timer: Timer | None = None
        self._tick()

    def _tick(self) -> None:
        self._notifier.watchdog()
        self._timer = self._clock.call_later(self._interval, self._tick)

    def cancel(self) -> None:
        """Stop pinging."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


def run(app: App) -> int:
    """Run the daemon to completion; the process exit status."""
    asyncio.run(serve(app))
    return 0
