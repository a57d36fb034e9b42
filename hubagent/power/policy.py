"""What to do about the power readings: pure logic, no I/O, no clock of its own.

The core feeds every :class:`PowerReading` to :meth:`PowerPolicy.observe`
together with a monotonic ``now``, and calls :meth:`PowerPolicy.tick` when
:meth:`PowerPolicy.next_deadline` comes (a reading can be confirmed by time
passing alone). Both return the decisions to carry out, in order.

Rules:

* a reading classifies as UNKNOWN (unreachable, or neither ``OL`` nor
  ``OB``), MAINS (``OL`` without ``OB``), ON_BATTERY (``OB``), or
  LOW_BATTERY: on battery with ``LB``, runtime under ``low_runtime_s`` or
  charge under ``low_charge_pct``; ``FSD`` (a NUT primary forcing shutdown)
  is LOW_BATTERY whatever the line says. Low figures while on mains (a
  battery still recharging) are not an emergency;
* a new classification must persist ``confirm_s`` before it becomes the
  state, so a flapping line produces no decisions;
* entering LOW_BATTERY decides ``BeginShutdown`` exactly once; only a
  confirmed return to MAINS before :meth:`PowerPolicy.mark_command_started`
  cancels it (and re-arms it for the next outage);
* UNKNOWN never begins or cancels a shutdown.
"""

from __future__ import annotations

import enum
import logging

import msgspec

from hubagent.events import PowerReading
from hubagent.power.settings import PowerPolicySettings

log = logging.getLogger(__name__)


class PowerState(enum.Enum):
    """The hub's confirmed power situation."""

    MAINS = "mains"
    ON_BATTERY = "on_battery"
    LOW_BATTERY = "low_battery"
    UNKNOWN = "unknown"


class StateChanged(msgspec.Struct, frozen=True):
    """The confirmed state changed; ``reading`` is the one that confirmed it."""

    old: PowerState
    new: PowerState
    reading: PowerReading


class BeginShutdown(msgspec.Struct, frozen=True):
    """Start the shutdown sequence now."""

    reason: str


class CancelShutdown(msgspec.Struct, frozen=True):
    """Mains came back before the shutdown command ran: stop the sequence."""

    reason: str


class SetCameraFps(msgspec.Struct, frozen=True):
    """Change camera frame rate; ``fps`` None means back to the configured rate."""

    fps: float | None


Decision = StateChanged | BeginShutdown | CancelShutdown | SetCameraFps


def low_reason(reading: PowerReading, settings: PowerPolicySettings) -> str | None:
    """Why this reading means the battery is critically low, or None if it does not."""
    flags = reading.flags
    if "FSD" in flags:
        return "UPS forced shutdown (FSD)"
    if "OB" not in flags:
        return None
    if "LB" in flags:
        return "UPS reports low battery (LB)"
    if reading.runtime is not None and reading.runtime < settings.low_runtime_s:
        return f"battery runtime {reading.runtime:g} s under {settings.low_runtime_s:g} s"
    pct = settings.low_charge_pct
    if pct is not None and reading.charge is not None and reading.charge < pct:
        return f"battery charge {reading.charge:g}% under {pct:g}%"
    return None


def classify(reading: PowerReading, settings: PowerPolicySettings) -> PowerState:
    """The state one reading alone indicates."""
    if not reading.reachable:
        return PowerState.UNKNOWN
    if low_reason(reading, settings) is not None:
        return PowerState.LOW_BATTERY
    if "OB" in reading.flags:
        return PowerState.ON_BATTERY
    if "OL" in reading.flags:
        return PowerState.MAINS
    return PowerState.UNKNOWN


class PowerPolicy:
    """Turns readings into decisions (see module docstring). Not thread-safe: one owner."""

    def __init__(self, settings: PowerPolicySettings) -> None:
        self._settings = settings
        self._state = PowerState.UNKNOWN
        self._candidate: PowerState | None = None
        self._candidate_since = 0.0
        self._latest: PowerReading | None = None
        self._last_now: float | None = None
        self._shutdown_pending = False
        self._command_started = False
        self._fps_reduced = False

    @property
    def state(self) -> PowerState:
        """The confirmed state."""
        return self._state

    @property
    def shutdown_pending(self) -> bool:
        """Whether BeginShutdown was decided and not cancelled."""
        return self._shutdown_pending

    @property
    def command_started(self) -> bool:
        """Whether the shutdown command has started (nothing can be cancelled now)."""
        return self._command_started

    def mark_command_started(self) -> None:
        """The shutdown command is running: from now on nothing cancels the shutdown."""
        self._command_started = True

    def rearm(self) -> None:
        """Allow a new shutdown decision.

        For a hub still up after its power-off command (the command failed,
        or the simulator only recorded it) once mains is back: the next
        outage must be able to shut it down again.
        """
        self._shutdown_pending = False
        self._command_started = False

    def observe(self, reading: PowerReading, now: float) -> list[Decision]:
        """Take one reading at monotonic time ``now``; the decisions to carry out."""
        self._advance_clock(now)
        self._latest = reading
        indicated = classify(reading, self._settings)
        if indicated == self._state:
            self._candidate = None  # a flap back: the pending change is forgotten
        elif indicated != self._candidate:
            self._candidate, self._candidate_since = indicated, now
        return self._confirm(now)

    def tick(self, now: float) -> list[Decision]:
        """Let time pass without a new reading; confirms a persisting candidate."""
        self._advance_clock(now)
        return self._confirm(now)

    def next_deadline(self) -> float | None:
        """When :meth:`tick` could next decide something, or None if nothing is pending."""
        if self._candidate is None:
            return None
        return self._candidate_since + self._settings.confirm_s

    # -- internals ------------------------------------------------------------

    def _advance_clock(self, now: float) -> None:
        # ``now`` should be monotonic; if it ever runs backwards (a caller
        # passing wall time across an NTP step), restart the confirmation
        # window rather than confirming early or never.
        if self._last_now is not None and now < self._last_now and self._candidate is not None:
            log.warning("power policy: clock went back %.1f s; restarting confirmation", self._last_now - now)
            self._candidate_since = now
        self._last_now = now

    def _confirm(self, now: float) -> list[Decision]:
        if self._candidate is None or self._latest is None:
            return []
        if now - self._candidate_since < self._settings.confirm_s:
            return []
        old, new = self._state, self._candidate
        self._state, self._candidate = new, None
        reading = self._latest
        log.info("power state %s -> %s", old.value, new.value)
        decisions: list[Decision] = [StateChanged(old, new, reading)]
        decisions += self._camera(new)
        decisions += self._shutdown(new, reading)
        return decisions

    def _camera(self, new: PowerState) -> list[Decision]:
        fps = self._settings.camera_fps_on_battery
        if fps is None:
            return []
        if new in (PowerState.ON_BATTERY, PowerState.LOW_BATTERY) and not self._fps_reduced:
            self._fps_reduced = True
            return [SetCameraFps(fps)]
        if new is PowerState.MAINS and self._fps_reduced:
            self._fps_reduced = False
            return [SetCameraFps(None)]
        return []

    def _shutdown(self, new: PowerState, reading: PowerReading) -> list[Decision]:
        if new is PowerState.LOW_BATTERY and not self._shutdown_pending:
            self._shutdown_pending = True
            reason = low_reason(reading, self._settings) or "battery low"
            log.warning("power: beginning shutdown: %s", reason)
            return [BeginShutdown(reason)]
        if new is PowerState.MAINS and self._shutdown_pending and not self._command_started:
            self._shutdown_pending = False
            log.warning("power: mains returned; cancelling shutdown")
            return [CancelShutdown("mains power returned")]
        return []
