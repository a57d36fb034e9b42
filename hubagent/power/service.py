"""The power service: readings in, events, alerts and the shutdown sequence out.

Runs on the core thread. Each :class:`~hubagent.events.PowerReading` goes to
the pure :class:`~hubagent.power.policy.PowerPolicy`; the policy's decisions
are carried out here:

* ``StateChanged`` -> a ``power.changed`` event in the outbox and the
  ``power`` alert (on battery, low battery, or state unknown);
* ``SetCameraFps`` -> ``set_max_fps`` on every :class:`~hubagent.ports.RateLimited` device;
* ``BeginShutdown`` -> a ``power.shutdown`` event (phase ``begin``), then
  :class:`~hubagent.power.shutdown.ShutdownSequence` on a worker thread;
* ``CancelShutdown`` -> the sequence is cancelled (it resumes printing and
  lockers itself) and a ``power.shutdown`` event (phase ``cancelled``).

A marker in the ``meta`` table (key ``power.shutdown``) records a shutdown
in progress. At the next start it is reported (log and status) and
cleared: after a power-off and a boot on mains nothing more happens; a boot
still on low battery is a new boot, and the policy decides afresh.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from hubagent.clock import Clock, Timer, rfc3339
from hubagent.events import PowerReading
from hubagent.feature import Interfaces
from hubagent.ports import RateLimited
from hubagent.power.policy import (
    BeginShutdown,
    CancelShutdown,
    Decision,
    PowerPolicy,
    PowerState,
    SetCameraFps,
    StateChanged,
)
from hubagent.power.settings import PowerPolicySettings
from hubagent.power.shutdown import SequenceState, ShutdownResult, ShutdownSequence
from hubagent.power.steps import CoreCaller, build_steps, records_only, resume_work
from hubagent.store.store import Tx, dumps

if TYPE_CHECKING:
    from hubagent.app import App

log = logging.getLogger(__name__)

MARKER_KEY = "power.shutdown"
"""``meta`` key of the shutdown-in-progress marker."""

ALERTS = {
    PowerState.ON_BATTERY: "on battery",
    PowerState.LOW_BATTERY: "low battery",
    # Unknown is an alert: the hub cannot tell whether it is about to lose
    # power, and a dead UPS link usually needs someone to look at it.
    PowerState.UNKNOWN: "power state unknown",
}


def _reading_figures(r: PowerReading | None) -> dict[str, Any]:
    """The figures of a reading as JSON-friendly values."""
    if r is None:
        return {"source": None, "flags": [], "charge": None, "runtime": None,
                "input_voltage": None, "load": None}
    return {"source": r.source, "flags": sorted(r.flags), "charge": r.charge, "runtime": r.runtime,
            "input_voltage": r.input_voltage, "load": r.load}


class PowerService:
    """Carries out the power policy's decisions for one app (core thread)."""

    def __init__(self, app: "App", settings: PowerPolicySettings, *, uses: Interfaces, clock: Clock) -> None:
        """Policy for ``app``; ``uses`` are the other features it pauses, parks and flushes.

        ``clock`` times the policy's confirmations and dates the status.
        """
        self.app = app
        self.uses = uses
        self.settings = settings
        self.clock = clock
        self.policy = PowerPolicy(settings)
        self.records_only = records_only(app)
        self._timer: Timer | None = None
        self._reading: PowerReading | None = None
        self._reading_at: str | None = None
        self._since = self._now()
        self._shutdown: dict[str, Any] = {"phase": "none"}
        self._sequence: ShutdownSequence | None = None
        self._cancel_wait: threading.Event | None = None
        self._saved_fps: dict[str, float] = {}
        self._previous: dict[str, Any] | None = None
        self._stopping = False

    def install(self) -> None:
        """Register handlers, hooks, the status section and telemetry."""
        self.app.on(PowerReading, self.on_reading)
        self.app.on_start(self.start)
        self.app.on_stop(self.stop)
        self.app.add_status("power", self.status)
        if self.uses.uplink is not None:
            self.uses.uplink.add_telemetry(self.telemetry)

    # -- lifecycle -------------------------------------------------------------
    def start(self) -> None:
        """Report (and clear) a shutdown that was in progress when the last run ended."""
        raw = self.app.store.meta(MARKER_KEY)
        if raw is None:
            return
        try:
            self._previous = json.loads(raw)
        except ValueError:
            self._previous = {"phase": "unknown", "raw": raw[:200]}
        log.warning("the previous run was shutting down for power (%s); this is a new boot",
                    ", ".join(f"{k}={v}" for k, v in sorted(self._previous.items())))
        with self.app.store.write() as tx:
            tx.execute("DELETE FROM meta WHERE key=?", (MARKER_KEY,))

    def stop(self) -> None:
        """Stop the confirmation timer; a running sequence is left to finish."""
        self._stopping = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    # -- readings and time -------------------------------------------------------
    def _now(self) -> str:
        return rfc3339(self.clock.now())

    def on_reading(self, reading: PowerReading) -> None:
        """A reading from a power source (core thread)."""
        self._reading, self._reading_at = reading, self._now()
        self._apply(self.policy.observe(reading, self.clock.monotonic()))
        self._schedule()

    def _tick(self) -> None:
        self._timer = None
        try:
            self._apply(self.policy.tick(self.clock.monotonic()))
        except Exception:  # a timer callback must never raise into the loop
            log.exception("power policy tick failed")
        self._schedule()

    def _schedule(self) -> None:
        """Arm one timer for the policy's next deadline (replacing any earlier one)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        deadline = self.policy.next_deadline()
        if deadline is None or self.app.loop is None or self._stopping:
            return
        # A hair late rather than early, so the tick confirms at the first try.
        delay = max(0.0, deadline - self.clock.monotonic()) + 0.01
        self._timer = self.clock.call_later(delay, self._tick)

    def _apply(self, decisions: Sequence[Decision]) -> None:
        for d in decisions:
            try:
                if isinstance(d, StateChanged):
                    self._state_changed(d)
                elif isinstance(d, SetCameraFps):
                    self._set_camera_fps(d.fps)
                elif isinstance(d, BeginShutdown):
                    self._begin_shutdown(d.reason)
                elif isinstance(d, CancelShutdown):
                    self._cancel_shutdown(d.reason)
            except Exception:  # one failed decision must not skip the next (the shutdown)
                log.exception("power: carrying out %s failed", type(d).__name__)

    # -- decisions ---------------------------------------------------------------
    def _state_changed(self, d: StateChanged) -> None:
        self._since = self._now()
        try:
            data = {"from": d.old.value, "to": d.new.value, **_reading_figures(d.reading)}
            with self.app.store.write() as tx:
                tx.emit("power.changed", data)
        finally:  # the alert and the resume matter even if the event could not be written
            self.app.set_alert("power", ALERTS.get(d.new))
            if d.new is PowerState.MAINS and self._shutdown.get("phase") in ("failed", "recorded"):
                self._resume_after_command()

    def _resume_after_command(self) -> None:
        """Mains is back and the hub is still up although the power-off command ran.

        The command failed, or was only recorded (simulator): take work again
        and re-arm the policy rather than stay paused until a restart.
        """
        log.warning("power: mains is back and the hub is still up after the power-off "
                    "command (%s); resuming work", self._shutdown["phase"])
        self._shutdown = {**self._shutdown, "phase": "resumed"}
        self.policy.rearm()
        resume_work(self.uses)
        with self.app.store.write() as tx:  # the shutdown is over: nothing to report at the next start
            tx.execute("DELETE FROM meta WHERE key=?", (MARKER_KEY,))

    def _set_camera_fps(self, fps: float | None) -> None:
        """Slow every camera to ``fps`` (never speeding one up), or restore its rate."""
        for entry in list(self.app.devices.values()):
            dev = entry.device
            if not isinstance(dev, RateLimited):
                continue
            key = f"{entry.role}/{entry.name}"
            try:
                if fps is None:
                    saved = self._saved_fps.pop(key, None)
                    if saved is not None:
                        dev.set_max_fps(saved)
                        log.info("%s: frame rate back to %g fps", key, saved)
                else:
                    configured = self._saved_fps.setdefault(key, dev.max_fps)
                    dev.set_max_fps(min(fps, configured))
                    log.info("%s: frame rate %g fps while on battery", key, min(fps, configured))
            except Exception:
                log.exception("%s: changing the frame rate failed", key)

    def _begin_shutdown(self, reason: str) -> None:
        seq = self._sequence
        if seq is not None and seq.state in (SequenceState.RUNNING, SequenceState.COMMAND_STARTED):
            log.warning("power: shutdown already under way; ignoring a second begin")
            return
        if self._previous is not None:
            log.warning("power: shutting down again after a restart (previous: %s)", self._previous)
        at = self._now()
        self._shutdown = {"phase": "begin", "reason": reason, "at": at,
                          "command": list(self.settings.shutdown_command)}
        try:
            with self.app.store.write() as tx:
                tx.emit("power.shutdown", {"reason": reason, "phase": "begin"})
                self._mark(tx, {"phase": "begin", "reason": reason, "at": at})
        finally:  # a full disk must not stop the power-off that protects the data
            self._start_sequence()

    def _start_sequence(self) -> None:
        cancelled = threading.Event()
        s = self.settings
        seq = ShutdownSequence(
            build_steps(self.app, self.uses, CoreCaller(self.app), cancelled),
            s.shutdown_command,
            grace_s=s.shutdown_grace_s,
            command_timeout_s=s.command_timeout_s,
            run_command=self._record_command if self.records_only else None,
            on_command_started=self._command_starting,
            clock=self.clock,
        )
        self._sequence, self._cancel_wait = seq, cancelled
        threading.Thread(target=self._run_sequence, args=(seq,), name="power-shutdown", daemon=True).start()

    def _cancel_shutdown(self, reason: str) -> None:
        seq = self._sequence
        if seq is None:
            return
        if self._cancel_wait is not None:
            self._cancel_wait.set()  # wake a flush that is waiting
        if not seq.cancel():
            log.warning("power: %s, but the power-off command has already started", reason)
            return
        at = self._now()
        self._shutdown = {**self._shutdown, "phase": "cancelled", "cancelled_at": at, "cancel_reason": reason}
        with self.app.store.write() as tx:
            tx.emit("power.shutdown", {"reason": reason, "phase": "cancelled"})
            tx.execute("DELETE FROM meta WHERE key=?", (MARKER_KEY,))

    # -- the worker thread and its calls back --------------------------------------
    def _run_sequence(self, seq: ShutdownSequence) -> None:
        """Worker thread: run the sequence, then report the result on the core thread."""
        result: ShutdownResult | None
        try:
            result = seq.run()
        except Exception:
            log.exception("power: shutdown sequence failed")
            result = None
        try:
            CoreCaller(self.app)(lambda: self._sequence_done(seq, result))
        except Exception as e:  # the daemon is stopping: the log is all we have
            log.warning("power: shutdown result not recorded (%s): %s", e, result)

    def _command_starting(self) -> None:
        """Worker thread, just before the command: no cancelling from here on."""
        CoreCaller(self.app)(self._command_started)

    def _command_started(self) -> None:
        self.policy.mark_command_started()
        cmd = list(self.settings.shutdown_command)
        ran = not self.records_only
        self._shutdown = {**self._shutdown, "phase": "command", "ran": ran,
                          "recorded": self.records_only, "command_at": self._now()}
        with self.app.store.write() as tx:
            tx.emit("power.shutdown", {"reason": self._shutdown.get("reason", ""), "phase": "command",
                                       "command": cmd, "ran": ran, "recorded": self.records_only})
            self._mark(tx, {"phase": "command", "reason": self._shutdown.get("reason", ""),
                            "at": self._shutdown["command_at"], "recorded": self.records_only})

    @staticmethod
    def _record_command(cmd: Sequence[str], timeout: float) -> None:
        """Stand-in for the power-off command in the simulator: log it, run nothing."""
        log.warning("power-off command recorded, not run: %s", " ".join(cmd))

    def _sequence_done(self, seq: ShutdownSequence, result: ShutdownResult | None) -> None:
        if seq is not self._sequence:
            return
        if result is None:
            self._shutdown = {**self._shutdown, "phase": "failed", "error": "sequence crashed; see the log"}
            return
        steps = {"steps_run": list(result.steps_run), "steps_failed": list(result.steps_failed)}
        if result.state is SequenceState.CANCELLED:
            self._shutdown = {**self._shutdown, **steps}
            return
        if result.command_error:
            self._shutdown = {**self._shutdown, **steps, "phase": "failed", "error": result.command_error}
            self.app.set_alert("power", f"power-off command failed: {result.command_error}"[:200])
            with self.app.store.write() as tx:
                tx.emit("power.shutdown", {"reason": self._shutdown.get("reason", ""), "phase": "failed",
                                           "error": result.command_error})
            return
        self._shutdown = {**self._shutdown, **steps, "phase": "recorded" if self.records_only else "done"}

    @staticmethod
    def _mark(tx: Tx, marker: dict[str, Any]) -> None:
        """Write the shutdown-in-progress marker in ``tx``."""
        tx.execute("INSERT INTO meta(key, value) VALUES(?, ?) "
                   "ON CONFLICT(key) DO UPDATE SET value=excluded.value", (MARKER_KEY, dumps(marker)))

    # -- status and telemetry ---------------------------------------------------------
    def status(self) -> dict[str, Any]:
        """The ``power`` section of ``hubagent status``."""
        r = self._reading
        out: dict[str, Any] = {
            "state": self.policy.state.value,
            "since": self._since,
            **_reading_figures(r),
            "reachable": r.reachable if r is not None else None,
            "detail": r.detail if r is not None else "",
            "reading_at": self._reading_at,
            "shutdown": dict(self._shutdown),
            "shutdown_recorded_only": self.records_only,
        }
        if self._previous is not None:
            out["previous_shutdown"] = dict(self._previous)
        return out

    def telemetry(self) -> dict[str, Any]:
        """The ``power`` part of each telemetry message."""
        return {"power": {"state": self.policy.state.value, "since": self._since,
                          **_reading_figures(self._reading),
                          "shutdown": self._shutdown.get("phase", "none")}}
