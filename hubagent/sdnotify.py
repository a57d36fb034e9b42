"""The systemd notification protocol (``sd_notify``), without a dependency.

systemd passes a datagram socket in ``$NOTIFY_SOCKET``; a service of
``Type=notify`` writes ``READY=1`` when it is ready and ``WATCHDOG=1`` at
least every ``$WATCHDOG_USEC`` microseconds. Outside systemd this is a no-op.
"""

from __future__ import annotations

import logging
import os
import socket

log = logging.getLogger(__name__)


class Notifier:
    """Sends state lines to systemd if it is listening."""

    def __init__(self, environ: dict[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        self._address = env.get("NOTIFY_SOCKET", "")
        usec = env.get("WATCHDOG_USEC", "")
        pid = env.get("WATCHDOG_PID", "")
        # WATCHDOG_PID names the process systemd watches; if it is not us
        # (we were started by a wrapper), the pings would be ignored anyway.
        mine = not pid or pid == str(os.getpid())
        self.watchdog_interval: float | None = (
            int(usec) / 1_000_000 / 2 if usec.isdigit() and mine else None
        )

    def notify(self, state: str) -> None:
        """Send one state string such as ``READY=1``; never raises."""
        if not self._address:
            return
        addr = self._address
        if addr.startswith("@"):
            addr = "\0" + addr[1:]  # abstract namespace socket
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
                sock.connect(addr)
                sock.sendall(state.encode())
        except OSError as e:
            log.warning("sd_notify %s failed: %s", state.split("=")[0], e)

    def ready(self, status: str = "") -> None:
        """Tell systemd start-up is complete."""
        self.notify("READY=1" + (f"\nSTATUS={status}" if status else ""))

    def watchdog(self) -> None:
        """Keep-alive ping for ``WatchdogSec``."""
        self.notify("WATCHDOG=1")

    def stopping(self) -> None:
        """Tell systemd a clean shutdown has begun."""
        self.notify("STOPPING=1")
