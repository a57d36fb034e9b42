"""The core's one clock and scheduler.

Everything in ``hubagent/`` that needs the time or a timer asks a
:class:`Clock`: resend timeouts, pulse lengths seen by the core, debounce,
lock-outs, token buckets, expiry, power confirmation, telemetry. This module
is the only one that reads the system clocks.

* :class:`LoopClock` runs on the daemon's asyncio loop and the real clocks.
* :class:`ManualClock` is for tests: its time moves only when the test calls
  :meth:`ManualClock.advance` (or :meth:`ManualClock.set_wall`), so a test of
  a timeout never sleeps. It can still be attached to a real asyncio loop,
  so callbacks posted from device threads run on the core thread as in
  production.

Monotonic time orders in-process timers; wall time is for records and for
expiries agreed with central, and may jump (a Pi without a real-time clock
boots in 1970).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import heapq
import itertools
import logging
import threading
import time as _time
from datetime import datetime, timedelta, timezone
from typing import Callable, Protocol

log = logging.getLogger(__name__)

Callback = Callable[[], object]


class Timer(Protocol):
    """A scheduled call that can be cancelled before it runs."""

    def cancel(self) -> None:
        """Do not run the call; harmless after it ran or was cancelled."""


class Clock(Protocol):
    """Time and scheduling for the core thread.

    ``call_soon``, ``call_later`` and ``call_at`` must be called on the core
    thread; ``call_from_thread`` is the one entry for other threads (device
    readers, paho's network thread, gpiozero callbacks), and drops the call
    when the core is not running. Callbacks run on the core thread, one at a
    time; an exception in one is logged and does not stop the others.
    """

    def monotonic(self) -> float:
        """Seconds on a clock that never jumps (for timeouts and ordering)."""
        ...

    def time(self) -> float:
        """Wall-clock seconds since the epoch (may jump)."""
        ...

    def now(self) -> datetime:
        """Wall-clock time, timezone-aware UTC."""
        ...

    def call_soon(self, fn: Callback) -> None:
        """Run ``fn`` on the core thread after the current callback."""
        ...

    def call_later(self, delay: float, fn: Callback) -> Timer:
        """Run ``fn`` on the core thread ``delay`` seconds from now."""
        ...

    def call_at(self, when: float, fn: Callback) -> Timer:
        """Run ``fn`` on the core thread at monotonic time ``when``."""
        ...

    def call_from_thread(self, fn: Callback) -> bool:
        """Thread-safe: queue ``fn`` for the core thread; False if dropped (core stopped)."""
        ...

    def attach(self, loop: asyncio.AbstractEventLoop) -> None:
        """Bind to the core thread's running loop (the app does this as it starts)."""
        ...

    def detach(self) -> None:
        """Unbind from the loop (the app does this as it stops)."""
        ...


def rfc3339(when: datetime) -> str:
    """``when`` as RFC 3339 UTC with milliseconds (``2026-11-02T09:00:00.000Z``)."""
    utc = when.astimezone(timezone.utc)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def _safe(fn: Callback) -> Callback:
    """Wrap ``fn`` so an exception is logged, never propagated into the loop."""

    def run() -> None:
        try:
            fn()
        except Exception:
            log.exception("scheduled call %r failed", fn)

    return run


class LoopClock:
    """The production clock: real time, timers on the asyncio loop.

    Built before the loop exists; :meth:`attach` binds it when the core
    starts and :meth:`detach` when it stops.
    """

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None

    def attach(self, loop: asyncio.AbstractEventLoop) -> None:
        """Bind to the core thread's running loop."""
        self._loop = loop

    def detach(self) -> None:
        """Stop accepting calls from other threads."""
        self._loop = None

    @property
    def attached(self) -> bool:
        """Whether the core loop is running."""
        return self._loop is not None and not self._loop.is_closed()

    def monotonic(self) -> float:
        """``time.monotonic()``."""
        return _time.monotonic()

    def time(self) -> float:
        """``time.time()``."""
        return _time.time()

    def now(self) -> datetime:
        """The wall clock as aware UTC."""
        return datetime.now(timezone.utc)

    def _require(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            raise RuntimeError("the clock is not attached to the core loop")
        return self._loop

    def call_soon(self, fn: Callback) -> None:
        """Run ``fn`` next on the loop."""
        self._require().call_soon(_safe(fn))

    def call_later(self, delay: float, fn: Callback) -> Timer:
        """Run ``fn`` after ``delay`` seconds."""
        return self._require().call_later(max(0.0, delay), _safe(fn))

    def call_at(self, when: float, fn: Callback) -> Timer:
        """Run ``fn`` at monotonic ``when`` (the loop's clock is monotonic)."""
        return self.call_later(when - _time.monotonic(), fn)

    def call_from_thread(self, fn: Callback) -> bool:
        """Queue ``fn`` for the loop from any thread; dropped (False) when not running."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return False
        try:
            loop.call_soon_threadsafe(_safe(fn))
        except RuntimeError:
            return False  # the loop is closing; the call dies with it
        return True


class _ManualTimer:
    """A timer in a :class:`ManualClock`'s queue."""

    __slots__ = ("when", "fn", "cancelled")

    def __init__(self, when: float, fn: Callback) -> None:
        self.when = when
        self.fn = fn
        self.cancelled = False

    def cancel(self) -> None:
        """Drop the call."""
        self.cancelled = True


class ManualClock:
    """A clock whose time moves only when the test says so.

    Without a loop, ``call_soon`` and ``call_from_thread`` calls queue up and
    run at the next :meth:`advance` or :meth:`run_pending`. Attached to a
    running asyncio loop (:meth:`attach`), they go to that loop like the
    production clock, and :meth:`advance` called from another thread runs
    the due timers on the loop's thread and waits for them.
    """

    def __init__(self, wall: datetime | None = None, monotonic: float = 1000.0) -> None:
        self._mono = monotonic
        self._wall = wall or datetime(2026, 11, 2, 9, 0, tzinfo=timezone.utc)
        self._timers: list[tuple[float, int, _ManualTimer]] = []
        self._seq = itertools.count()
        self._soon: list[Callback] = []
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None

    # -- the Clock port ------------------------------------------------------
    def monotonic(self) -> float:
        """The manual monotonic time."""
        return self._mono

    def time(self) -> float:
        """The manual wall time as epoch seconds."""
        return self._wall.timestamp()

    def now(self) -> datetime:
        """The manual wall time."""
        return self._wall

    def call_soon(self, fn: Callback) -> None:
        """Run ``fn`` next (on the loop when attached)."""
        self.call_from_thread(fn)

    def call_later(self, delay: float, fn: Callback) -> Timer:
        """Run ``fn`` once the test advances ``delay`` seconds."""
        return self.call_at(self._mono + max(0.0, delay), fn)

    def call_at(self, when: float, fn: Callback) -> Timer:
        """Run ``fn`` once the test advances to monotonic ``when``."""
        timer = _ManualTimer(when, fn)
        with self._lock:
            heapq.heappush(self._timers, (when, next(self._seq), timer))
        return timer

    def call_from_thread(self, fn: Callback) -> bool:
        """Queue ``fn`` for the core (the loop when attached); False if that loop is closing."""
        loop = self._loop
        if loop is not None and not loop.is_closed():
            try:
                loop.call_soon_threadsafe(_safe(fn))
                return True
            except RuntimeError:
                return False
        with self._lock:
            self._soon.append(fn)
        return True

    # -- test verbs ------------------------------------------------------------
    def attach(self, loop: asyncio.AbstractEventLoop) -> None:
        """Deliver posted calls to ``loop`` (the core thread)."""
        self._loop = loop

    def detach(self) -> None:
        """Queue posted calls again instead of delivering them."""
        self._loop = None

    def advance(self, seconds: float) -> None:
        """Move both clocks forward, running every timer that falls due, in order."""
        if seconds < 0:
            raise ValueError("a manual clock only moves forward; use set_wall for wall jumps")
        self._on_core(lambda: self._advance(seconds))

    def run_pending(self) -> None:
        """Run queued calls without moving time."""
        self._on_core(lambda: self._advance(0.0))

    def set_wall(self, wall: datetime) -> None:
        """Jump the wall clock (either way) without moving monotonic time."""
        if wall.tzinfo is None:
            raise ValueError("wall time must be timezone-aware")
        self._wall = wall

    def pending_timers(self) -> int:
        """How many timers wait (cancelled ones excluded)."""
        with self._lock:
            return sum(1 for _, _, t in self._timers if not t.cancelled)

    # -- internals -------------------------------------------------------------
    def _on_core(self, fn: Callable[[], None]) -> None:
        """Run ``fn`` on the attached loop's thread and wait, or here without one."""
        loop = self._loop
        if loop is None or loop.is_closed() or _on_loop_thread(loop):
            fn()
            return
        fut: concurrent.futures.Future[None] = concurrent.futures.Future()

        def run() -> None:
            try:
                fn()
                fut.set_result(None)
            except BaseException as e:  # hand it to the waiting test
                fut.set_exception(e)

        loop.call_soon_threadsafe(run)
        fut.result(60)

    def _advance(self, seconds: float) -> None:
        target = self._mono + seconds
        self._drain_soon()
        while True:
            with self._lock:
                if not self._timers or self._timers[0][0] > target:
                    break
                when, _, timer = heapq.heappop(self._timers)
            if timer.cancelled:
                continue
            self._step_to(max(self._mono, when))
            _safe(timer.fn)()
            self._drain_soon()
        self._step_to(target)

    def _step_to(self, mono: float) -> None:
        delta = mono - self._mono
        self._mono = mono
        self._wall = self._wall + timedelta(seconds=delta)

    def _drain_soon(self) -> None:
        while True:
            with self._lock:
                if not self._soon:
                    return
                batch, self._soon = self._soon, []
            for fn in batch:
                _safe(fn)()


def _on_loop_thread(loop: asyncio.AbstractEventLoop) -> bool:
    try:
        return asyncio.get_running_loop() is loop
    except RuntimeError:
        return False
