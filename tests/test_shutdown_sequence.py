"""The shutdown runner: order, once-only, failures, cancellation, the real command."""

from __future__ import annotations

import sys
import threading
from collections.abc import Sequence
from pathlib import Path

import pytest

from hubagent.clock import ManualClock
from hubagent.power.shutdown import SequenceState, ShutdownSequence, ShutdownSteps

ORDER = ["stop_print_jobs", "park_locks", "flush_outbox", "checkpoint_wal", "publish_offline"]


class Journal:
    """What the steps did, as a hub would see it (an ordered log of effects)."""

    def __init__(self) -> None:
        self.entries: list[str] = []
        self.flush_timeouts: list[float] = []
        self.commands: list[tuple[tuple[str, ...], float]] = []

    def step(self, name: str):  # type: ignore[no-untyped-def]
        return lambda: self.entries.append(name)

    def flush(self, timeout: float) -> None:
        self.flush_timeouts.append(timeout)
        self.entries.append("flush_outbox")

    def run_command(self, cmd: Sequence[str], timeout: float) -> None:
        self.commands.append((tuple(cmd), timeout))
        self.entries.append("command")

    def steps(self, **override: object) -> ShutdownSteps:
        fields = {n: self.step(n) for n in ORDER if n != "flush_outbox"}
        fields["flush_outbox"] = self.flush
        fields["resume"] = self.step("resume")
        fields.update(override)
        return ShutdownSteps(**fields)  # type: ignore[arg-type]


def test_steps_run_in_order_once_then_the_command() -> None:
    j = Journal()
    seq = ShutdownSequence(j.steps(), ["poweroff", "-f"], clock=ManualClock(), grace_s=20,
                           command_timeout_s=7, run_command=j.run_command)
    result = seq.run()
    assert j.entries == [*ORDER, "command"]
    assert j.commands == [(("poweroff", "-f"), 7)]
    assert result.state is SequenceState.DONE and result.command_ran
    assert result.steps_failed == []
    # Running again does nothing more.
    again = seq.run()
    assert j.entries == [*ORDER, "command"]
    assert again.state is SequenceState.DONE


def test_failing_step_does_not_stop_the_rest() -> None:
    j = Journal()

    def jammed_lock() -> None:
        raise RuntimeError("lock 3 jammed")

    seq = ShutdownSequence(j.steps(park_locks=jammed_lock), ["poweroff"], clock=ManualClock(), grace_s=5,
                           run_command=j.run_command)
    result = seq.run()
    assert j.entries == ["stop_print_jobs", "flush_outbox", "checkpoint_wal", "publish_offline", "command"]
    assert result.steps_failed == ["park_locks"]
    assert result.command_ran


def test_missing_steps_are_skipped() -> None:
    j = Journal()
    seq = ShutdownSequence(ShutdownSteps(checkpoint_wal=j.step("checkpoint_wal")), ["x"],
                           clock=ManualClock(), grace_s=1, run_command=j.run_command)
    seq.run()
    assert j.entries == ["checkpoint_wal", "command"]


def test_flush_gets_what_is_left_of_the_grace_period() -> None:
    j = Journal()
    clock = ManualClock()

    def slow_print_stop() -> None:
        clock.advance(8)  # stopping the printer took 8 s

    seq = ShutdownSequence(j.steps(stop_print_jobs=slow_print_stop), ["x"], grace_s=20,
                           run_command=j.run_command, clock=clock)
    seq.run()
    assert j.flush_timeouts == [12.0]


def test_cancel_before_run_runs_nothing() -> None:
    j = Journal()
    seq = ShutdownSequence(j.steps(), ["x"], clock=ManualClock(), grace_s=1, run_command=j.run_command)
    assert seq.cancel()
    result = seq.run()
    assert j.entries == [] and not result.command_ran
    assert result.state is SequenceState.CANCELLED


def test_cancel_mid_sequence_stops_before_the_command_and_resumes() -> None:
    j = Journal()
    seq: ShutdownSequence

    def flush_while_mains_returns(timeout: float) -> None:
        j.entries.append("flush_outbox")
        assert seq.cancel()  # CancelShutdown arrives while we flush

    seq = ShutdownSequence(j.steps(flush_outbox=flush_while_mains_returns), ["x"],
                           clock=ManualClock(), grace_s=5,
                           run_command=j.run_command)
    result = seq.run()
    assert j.entries == ["stop_print_jobs", "park_locks", "flush_outbox", "resume"]
    assert j.commands == [] and not result.command_ran
    assert seq.state is SequenceState.CANCELLED


def test_cancel_is_impossible_once_the_command_started() -> None:
    j = Journal()
    seq: ShutdownSequence
    answers: list[bool] = []

    def command(cmd: Sequence[str], timeout: float) -> None:
        answers.append(seq.cancel())
        j.run_command(cmd, timeout)

    seq = ShutdownSequence(j.steps(), ["x"], clock=ManualClock(), grace_s=5, run_command=command,
                           on_command_started=j.step("marked"))
    result = seq.run()
    assert answers == [False]
    assert j.entries == [*ORDER, "marked", "command"]
    assert result.command_ran and result.state is SequenceState.DONE
    assert not seq.cancel()


def test_cancel_from_another_thread_while_a_step_blocks() -> None:
    j = Journal()
    in_step, release = threading.Event(), threading.Event()

    def blocking_checkpoint() -> None:
        in_step.set()
        release.wait(10)

    seq = ShutdownSequence(j.steps(checkpoint_wal=blocking_checkpoint), ["x"],
                           clock=ManualClock(), grace_s=5,
                           run_command=j.run_command)
    results = []
    worker = threading.Thread(target=lambda: results.append(seq.run()))
    worker.start()
    assert in_step.wait(10)
    assert seq.cancel()
    release.set()
    worker.join(10)
    assert results[0].state is SequenceState.CANCELLED
    assert "command" not in j.entries and "publish_offline" not in j.entries


def test_real_command_runs_once(tmp_path: Path) -> None:
    marker = tmp_path / "powered-off"
    cmd = [sys.executable, "-c", f"open({str(marker)!r}, 'a').write('x')"]
    result = ShutdownSequence(ShutdownSteps(), cmd, clock=ManualClock(), grace_s=1, command_timeout_s=30).run()
    assert marker.read_text() == "x"
    assert result.command_ran and result.command_error == ""


@pytest.mark.parametrize(
    ("cmd", "error"),
    [
        (["/nonexistent/poweroff"], "No such file"),
        ([sys.executable, "-c", "import sys; sys.exit(3)"], "exit status 3"),
        ([sys.executable, "-c", "import time; time.sleep(30)"], "timed out"),
    ],
)
def test_failing_command_is_reported_not_raised(cmd: list[str], error: str) -> None:
    result = ShutdownSequence(ShutdownSteps(), cmd, clock=ManualClock(), grace_s=1, command_timeout_s=0.5).run()
    assert result.command_ran and error in result.command_error


def test_empty_command_is_refused() -> None:
    with pytest.raises(ValueError):
        ShutdownSequence(ShutdownSteps(), [], clock=ManualClock(), grace_s=1)
