"""The core clock: the manual clock runs timers only when told, in order."""

from __future__ import annotations

import asyncio
import threading
from datetime import datetime, timezone

import pytest

from hubagent.clock import LoopClock, ManualClock


def test_manual_timers_run_in_order_only_when_advanced() -> None:
    clock = ManualClock()
    seen: list[tuple[str, float]] = []
    clock.call_later(2.0, lambda: seen.append(("b", clock.monotonic())))
    clock.call_later(1.0, lambda: seen.append(("a", clock.monotonic())))
    cancelled = clock.call_later(1.5, lambda: seen.append(("x", clock.monotonic())))
    cancelled.cancel()
    start = clock.monotonic()
    clock.advance(0.5)
    assert seen == []
    clock.advance(2.0)
    assert seen == [("a", start + 1.0), ("b", start + 2.0)]
    assert clock.monotonic() == start + 2.5


def test_manual_timer_scheduled_by_a_timer_runs_within_the_same_advance() -> None:
    clock = ManualClock()
    seen: list[float] = []

    def tick() -> None:
        seen.append(clock.monotonic())
        if len(seen) < 3:
            clock.call_later(1.0, tick)

    clock.call_later(1.0, tick)
    clock.advance(10.0)
    assert [s - seen[0] for s in seen] == [0.0, 1.0, 2.0]


def test_wall_moves_with_monotonic_and_jumps_alone() -> None:
    clock = ManualClock(wall=datetime(1970, 1, 1, 0, 1, tzinfo=timezone.utc))
    clock.advance(60)
    assert clock.now() == datetime(1970, 1, 1, 0, 2, tzinfo=timezone.utc)
    mono = clock.monotonic()
    clock.set_wall(datetime(2026, 11, 29, tzinfo=timezone.utc))
    assert clock.monotonic() == mono
    assert clock.time() == datetime(2026, 11, 29, tzinfo=timezone.utc).timestamp()
    with pytest.raises(ValueError):
        clock.advance(-1)


def test_a_failing_callback_does_not_stop_the_others() -> None:
    clock = ManualClock()
    seen: list[int] = []
    clock.call_later(1, lambda: 1 / 0)
    clock.call_later(2, lambda: seen.append(2))
    clock.advance(3)
    assert seen == [2]


def test_manual_clock_on_a_loop_runs_timers_on_the_loop_thread() -> None:
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        clock = ManualClock()
        clock.attach(loop)
        threads: list[threading.Thread] = []
        clock.call_later(1.0, lambda: threads.append(threading.current_thread()))
        clock.advance(1.0)
        assert threads == [thread]
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        loop.close()


def test_loop_clock_drops_calls_from_threads_when_not_running() -> None:
    clock = LoopClock()
    clock.call_from_thread(lambda: None)  # no loop yet: dropped, no error
    with pytest.raises(RuntimeError):
        clock.call_later(1, lambda: None)

    async def main() -> list[str]:
        clock.attach(asyncio.get_running_loop())
        out: list[str] = []
        done = asyncio.Event()
        threading.Thread(target=lambda: clock.call_from_thread(lambda: (out.append("t"), done.set()))).start()
        await asyncio.wait_for(done.wait(), 5)
        return out

    assert asyncio.run(main()) == ["t"]
