"""The ordered shutdown sequence, as a small runner of given callables.

The daemon builds one :class:`ShutdownSequence` per :class:`BeginShutdown`
decision, runs it on a worker thread and calls :meth:`ShutdownSequence.cancel`
on :class:`CancelShutdown`. Steps run once each, in order; a failing step is
logged and the rest still run (keeping lockers locked and data safe matters
more than any one step). Cancellation is checked between steps and is
impossible once the power-off command has started.
"""

from __future__ import annotations

import enum
import logging
import subprocess
import threading
from collections.abc import Callable, Sequence

import msgspec

from hubagent.clock import Clock

log = logging.getLogger(__name__)

Step = Callable[[], object]
RunCommand = Callable[[Sequence[str], float], object]
"""Runs the power-off command with a timeout in seconds; the default uses subprocess.run."""


class ShutdownSteps(msgspec.Struct, frozen=True):
    """The daemon's steps, in the order they run; None skips a step."""

    stop_print_jobs: Step | None = None
    park_locks: Step | None = None
    # Called with the seconds left of the grace period.
    flush_outbox: Callable[[float], object] | None = None
    checkpoint_wal: Step | None = None
    publish_offline: Step | None = None
    # Called once if the sequence is cancelled after it began (resume printing...).
    resume: Step | None = None


class SequenceState(enum.Enum):
    """Where a sequence is."""

    IDLE = "idle"
    RUNNING = "running"
    CANCELLED = "cancelled"
    COMMAND_STARTED = "command_started"
    DONE = "done"


class ShutdownResult(msgspec.Struct):
    """What happened: steps run, steps failed, and whether the command ran."""

    state: SequenceState = SequenceState.IDLE
    steps_run: list[str] = msgspec.field(default_factory=list)
    steps_failed: list[str] = msgspec.field(default_factory=list)
    command_ran: bool = False
    command_error: str = ""


def run_subprocess(cmd: Sequence[str], timeout: float) -> object:
    """Run the command without a shell; raises OSError/SubprocessError on failure."""
    proc = subprocess.run(list(cmd), timeout=timeout, check=False, capture_output=True, text=True)
    if proc.returncode != 0:
        raise subprocess.CalledProcessError(proc.returncode, list(cmd), proc.stdout, proc.stderr)
    return proc


class ShutdownSequence:
    """Runs :class:`ShutdownSteps` then the power-off command, each at most once."""

    def __init__(
        self,
        steps: ShutdownSteps,
        command: Sequence[str],
        *,
        grace_s: float,
        command_timeout_s: float = 60.0,
        run_command: RunCommand | None = None,
        on_command_started: Step | None = None,
        clock: Clock,
    ) -> None:
        """Check the command; ``clock`` times the grace period (read from the worker thread)."""
        if not command:
            raise ValueError("shutdown command is empty")
        self._steps = steps
        self._command = tuple(command)
        self._grace_s = grace_s
        self._command_timeout_s = command_timeout_s
        self._run_command = run_command or run_subprocess
        self._on_command_started = on_command_started
        self._clock = clock
        self._lock = threading.Lock()
        self._result = ShutdownResult()

    @property
    def state(self) -> SequenceState:
        """Where the sequence is now."""
        with self._lock:
            return self._result.state

    def cancel(self) -> bool:
        """Stop before the command; True if cancelled, False if too late (or already done)."""
        with self._lock:
            if self._result.state in (SequenceState.IDLE, SequenceState.RUNNING):
                began = self._result.state is SequenceState.RUNNING
                self._result.state = SequenceState.CANCELLED
            else:
                return self._result.state is SequenceState.CANCELLED
        log.warning("shutdown cancelled%s", " mid-sequence" if began else "")
        # A run() in progress notices at its next step; resume is its job then.
        return True

    def run(self) -> ShutdownResult:
        """Run the steps and the command once; a second call returns the first result."""
        with self._lock:
            if self._result.state is not SequenceState.IDLE:
                return self._result
            self._result.state = SequenceState.RUNNING
        deadline = self._clock.monotonic() + self._grace_s
        steps = self._steps
        ordered: list[tuple[str, Step | None]] = [
            ("stop_print_jobs", steps.stop_print_jobs),
            ("park_locks", steps.park_locks),
            ("flush_outbox", self._flush(steps.flush_outbox, deadline)),
            ("checkpoint_wal", steps.checkpoint_wal),
            ("publish_offline", steps.publish_offline),
        ]
        for name, step in ordered:
            if self._cancelled():
                return self._finish_cancelled()
            if step is not None:
                self._run_step(name, step)
        with self._lock:
            if self._result.state is SequenceState.CANCELLED:
                cancelled = True
            else:
                cancelled = False
                self._result.state = SequenceState.COMMAND_STARTED
        if cancelled:
            return self._finish_cancelled()
        if self._on_command_started is not None:
            self._run_step("on_command_started", self._on_command_started)
        self._command_step()
        with self._lock:
            self._result.state = SequenceState.DONE
        return self._result

    def _flush(self, flush: Callable[[float], object] | None, deadline: float) -> Step | None:
        if flush is None:
            return None
        return lambda: flush(max(0.0, deadline - self._clock.monotonic()))

    def _cancelled(self) -> bool:
        with self._lock:
            return self._result.state is SequenceState.CANCELLED

    def _finish_cancelled(self) -> ShutdownResult:
        if self._result.steps_run and self._steps.resume is not None:
            self._run_step("resume", self._steps.resume)
        return self._result

    def _run_step(self, name: str, step: Step) -> None:
        log.info("shutdown step: %s", name)
        try:
            step()
        except Exception:  # keep going: later steps protect data and lockers
            log.exception("shutdown step %s failed; continuing", name)
            self._result.steps_failed.append(name)
        self._result.steps_run.append(name)

    def _command_step(self) -> None:
        log.warning("power-off command: %s", " ".join(self._command))
        self._result.command_ran = True
        try:
            self._run_command(self._command, self._command_timeout_s)
        except Exception as e:  # includes TimeoutExpired, FileNotFoundError
            log.error("power-off command failed: %s", e)
            self._result.command_error = str(e) or type(e).__name__
