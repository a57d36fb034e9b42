"""Pieces of the link's network thread: reconnect backoff and a cross-thread wake-up.

Reconnect backoff: attempt ``n`` after a connection is lost waits a random
time in ``[d/2, d]`` with ``d = min(max_s, min_s * 2**n)`` ("equal jitter").
The cap bounds the wait after the broker is back to ``max_s``, whatever the
length of the outage, and the jitter spreads a fleet's attempts so that a
restarted broker is not met by every hub in the same instant (the maths is
in docs/operations.md, "Reconnecting").
"""

from __future__ import annotations

import random
import socket


class Backoff:
    """Delays between reconnect attempts: doubling, capped, with jitter."""

    def __init__(self, min_s: float, max_s: float, rng: random.Random | None = None) -> None:
        self.min_s = min_s
        self.max_s = max(min_s, max_s)
        self._rng = rng or random.Random()
        self._attempt = 0

    def next(self) -> float:
        """The wait before the next attempt (and count it)."""
        d = min(self.max_s, self.min_s * (2 ** min(self._attempt, 30)))
        self._attempt += 1
        return self._rng.uniform(d / 2, d)

    def reset(self) -> None:
        """A connection succeeded: the next loss starts from ``min_s`` again."""
        self._attempt = 0


class Wakeup:
    """A socket pair that breaks the network thread's ``select`` from another thread.

    :meth:`set` writes one byte unless one is already pending, so a burst of
    calls from the core costs one system call and one wake-up.
    """

    def __init__(self) -> None:
        self._r, self._w = socket.socketpair()
        self._r.setblocking(False)
        self._w.setblocking(False)
        self._pending = False

    def fileno(self) -> int:
        """The end to select on for reading."""
        return self._r.fileno()

    def set(self) -> None:
        """Wake the network thread (any thread)."""
        if self._pending:
            return
        self._pending = True
        try:
            self._w.send(b"\0")
        except (BlockingIOError, OSError):
            pass  # already full of wake-ups, or closing

    def clear(self) -> None:
        """Drain the pending byte(s) (network thread), before it runs the queued work.

        The flag is reset only after draining: reset first, a :meth:`set`
        in between would write a byte that the drain swallows, leaving the
        flag up and every later wake-up lost.
        """
        try:
            while self._r.recv(4096):
                pass
        except (BlockingIOError, OSError):
            pass
        self._pending = False

    def close(self) -> None:
        """Close both ends."""
        self._r.close()
        self._w.close()
