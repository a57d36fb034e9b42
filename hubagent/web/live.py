"""Live updates: one server-sent event stream per open staff page.

Changes (a commit, an alert) are coalesced: at most one ``refresh`` event
per ``min_gap_s`` goes to each page, which then re-fetches the parts it
shows (htmx ``hx-trigger="sse:refresh"``). With no page open nothing runs.
"""

from __future__ import annotations

import asyncio
from typing import AsyncIterator

from hubagent.clock import Clock


class Live:
    """Fans ``refresh`` out to every connected page."""

    def __init__(self, clock: Clock, min_gap_s: float = 0.25, keepalive_s: float = 25.0) -> None:
        self._clock = clock
        self._queues: set[asyncio.Queue[str]] = set()
        self._pending = False
        self.min_gap_s = min_gap_s
        self.keepalive_s = keepalive_s
        self.sent = 0

    def changed(self) -> None:
        """Something the pages show may have changed (core thread)."""
        if self._pending or not self._queues:
            return
        self._pending = True
        self._clock.call_later(self.min_gap_s, self._send)

    def _send(self) -> None:
        self._pending = False
        self.sent += 1
        for q in list(self._queues):
            if q.qsize() < 4:  # a slow page misses nothing: one refresh covers all
                q.put_nowait("refresh")

    async def stream(self) -> AsyncIterator[str]:
        """The text/event-stream body for one page."""
        q: asyncio.Queue[str] = asyncio.Queue()
        self._queues.add(q)
        try:
            yield "retry: 2000\n\n"
            while True:
                try:
                    kind = await asyncio.wait_for(q.get(), self.keepalive_s)
                except asyncio.TimeoutError:
                    yield ": keepalive\n\n"
                    continue
                yield f"event: {kind}\ndata: {self.sent}\n\n"
        finally:
            self._queues.discard(q)

    @property
    def clients(self) -> int:
        """Pages connected now."""
        return len(self._queues)
