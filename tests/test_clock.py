"""The core clock: the manual clock runs timers only when told, in order."""

from __future__ import annotations

import asyncio
import threading
from datetime import datetime, timezone
from pathlib import Path

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


def test_rfc3339_is_utc_with_milliseconds() -> None:
    from datetime import timedelta

    from hubagent.clock import rfc3339

    cest = timezone(timedelta(hours=2))
    assert rfc3339(datetime(2026, 11, 2, 11, 0, 0, 123_999, tzinfo=cest)) == "2026-11-02T09:00:00.123Z"
    assert rfc3339(ManualClock(wall=datetime(1970, 1, 1, tzinfo=timezone.utc)).now()) == "1970-01-01T00:00:00.000Z"


def test_calls_from_threads_say_whether_they_were_queued() -> None:
    clock = LoopClock()
    assert clock.call_from_thread(lambda: None) is False  # not attached: the core is not running
    loop = asyncio.new_event_loop()
    try:
        clock.attach(loop)
        assert clock.call_from_thread(lambda: None) is True
        clock.detach()
        assert clock.call_from_thread(lambda: None) is False
    finally:
        loop.close()
    manual = ManualClock()
    seen: list[int] = []
    assert manual.call_from_thread(lambda: seen.append(1)) is True  # queued until the test runs it
    manual.run_pending()
    assert seen == [1]


def test_the_app_stamps_posted_events_and_counts_uptime_on_its_clock(tmp_path: Path) -> None:
    from hubagent.app import build_app
    from hubagent.config import from_dict
    from hubagent.events import CodeEntered

    clock = ManualClock()
    app = build_app(from_dict({"hub": {"id": "c1", "state_dir": str(tmp_path)}}), clock=clock)
    seen: list[CodeEntered] = []

    async def main() -> dict[str, object]:
        await app.start()
        try:
            clock.advance(42.0)
            done = asyncio.Event()
            app.on(CodeEntered, lambda ev: (seen.append(ev), len(seen) == 2 and done.set()))
            for ev in (CodeEntered("front", "1234"), CodeEntered("side", "5678", at=7.0)):
                threading.Thread(target=app.post, args=(ev,)).start()  # as from a device thread
            await asyncio.wait_for(done.wait(), 5)
            return app.status()
        finally:
            await app.stop()

    status = asyncio.run(main())
    assert status["uptime_s"] == 42.0
    assert sorted((ev.source, ev.at) for ev in seen) == [("front", clock.monotonic()), ("side", 7.0)]
