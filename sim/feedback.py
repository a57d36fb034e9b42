"""Simulated scan feedback: remembers the patterns it was asked to play.

Tests and ``hubagent sim`` read what a hub would have beeped with
``history()`` (time and pattern), ``played()`` (with repetitions and
display text) or the ``history`` verb; the last pattern shows in status.
"""

from __future__ import annotations

import collections
import threading
import time
from typing import Any, Mapping

import msgspec

from hubagent.errors import InputError
from hubagent.events import DeviceStatus, EventSink, Health
from hubagent.ports import MAX_REPEAT, DeviceEnv, FeedbackPattern
from hubagent.scanning.settings import SimFeedbackSettings


class Played(msgspec.Struct, frozen=True):
    """One signal the simulator was asked to play."""

    at: float
    pattern: FeedbackPattern
    repeat: int = 1
    text: str | None = None


class SimFeedback:
    """Feedback port that records each signal: time, pattern, repetitions and text."""

    role = "feedback"

    def __init__(self, name: str, settings: SimFeedbackSettings, env: DeviceEnv) -> None:
        """Keep the last ``settings.history`` patterns."""
        self.name = name
        self.settings = settings
        self.env = env
        self._lock = threading.Lock()
        self._history: collections.deque[Played] = collections.deque(maxlen=settings.history)
        self._running = False
        self._closed = False

    def start(self, sink: EventSink) -> None:
        """Nothing to open; no events to deliver."""
        self._running = True

    def signal(self, pattern: FeedbackPattern, *, repeat: int = 1, text: str | None = None) -> None:
        """Record ``pattern`` with the time it was asked for; dropped once closed (like GPIO)."""
        if not isinstance(pattern, FeedbackPattern):
            raise TypeError(f"expected a FeedbackPattern, got {pattern!r}")
        if self._closed:
            return
        with self._lock:
            self._history.append(Played(time.time(), pattern, max(1, min(repeat, MAX_REPEAT)),
                                        text[:32] if text else None))

    def history(self) -> list[tuple[float, FeedbackPattern]]:
        """Recorded ``(time, pattern)`` pairs, oldest first."""
        with self._lock:
            return [(p.at, p.pattern) for p in self._history]

    def played(self) -> list[Played]:
        """Recorded signals with their repetitions and text, oldest first."""
        with self._lock:
            return list(self._history)

    def clear(self) -> None:
        """Forget the recorded patterns."""
        with self._lock:
            self._history.clear()

    def status(self) -> DeviceStatus:
        """OK while running; the detail names the last pattern."""
        with self._lock:
            last = self._history[-1] if self._history else None
        detail = (f"last {last.pattern.value} at {time.strftime('%H:%M:%S', time.localtime(last.at))}"
                  if last else "silent")
        return DeviceStatus(Health.OK if self._running else Health.OFFLINE, detail)

    def close(self) -> None:
        """Stop; the history is kept for inspection, later signals are dropped."""
        self._running = False
        self._closed = True

    def sim_command(self, verb: str, args: Mapping[str, Any]) -> dict[str, Any]:
        """``history`` returns the recorded patterns; ``clear`` forgets them."""
        if verb == "history":
            return {"history": [{"at": p.at, "pattern": p.pattern.value, "repeat": p.repeat, "text": p.text}
                                for p in self.played()]}
        if verb == "clear":
            self.clear()
            return {"cleared": True}
        raise InputError("unknown_verb", f"feedback simulator has no verb {verb!r} (history, clear)")
