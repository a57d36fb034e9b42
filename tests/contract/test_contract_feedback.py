"""The Feedback port's contract, run on the simulator and on the GPIO driver.

Rows: ``sim`` (SimFeedback, which records what it was asked to play),
``gpio-mock`` (GpioFeedback on gpiozero's MockFactory), ``gpio-hw``
(GpioFeedback on real pins: HUBAGENT_CONTRACT_GPIO names the pin factory and
HUBAGENT_CONTRACT_FEEDBACK_PINS the outputs as ``buzzer,sense;ok,sense;error,sense``
BCM numbers, each ``sense`` an input wired to its output).

What was played is read where a person would notice it: on the GPIO rows
from the output pins (which of buzzer, green and red LED went on), on the
simulator from its record.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest

from contract_kit import env_value, hardware_row, holds, pins, until
from hubagent.events import Health
from hubagent.ports import DeviceEnv, Feedback, FeedbackPattern

LONG_S = 2.0
"""The attention pattern's single beep: long enough to act while it plays."""
OUTPUTS = ("buzzer", "ok", "error")
BEEP_S = 0.05
PATTERNS: dict[FeedbackPattern, tuple[frozenset[str], int]] = {
    FeedbackPattern.OK: (frozenset({"buzzer", "ok"}), 1),
    FeedbackPattern.OPENED: (frozenset({"buzzer", "ok"}), 2),
    FeedbackPattern.ERROR: (frozenset({"buzzer", "error"}), 2),
    FeedbackPattern.WRONG: (frozenset({"buzzer", "error"}), 1),
    FeedbackPattern.EXPIRED: (frozenset({"buzzer", "error"}), 3),
    FeedbackPattern.LOCKED_OUT: (frozenset({"buzzer", "error"}), 4),
    FeedbackPattern.ATTENTION: (frozenset({"buzzer", "ok", "error"}), 1),
    FeedbackPattern.NOTHING: (frozenset({"buzzer", "ok", "error"}), 2),
}
"""Which outputs a person sees, and how many beeps they hear, for each pattern on a GPIO station."""
HEARD = {heard: pattern for pattern, heard in PATTERNS.items()}


def beeps(n: int, long: bool = False) -> list[float]:
    """``n`` beeps as an [on, off, on, ...] pattern."""
    steps: list[float] = []
    for _ in range(n):
        steps += [LONG_S if long else BEEP_S, BEEP_S]
    return steps[:-1]


def gpio_settings(buzzer: int, ok: int, error: int) -> Any:
    from hubagent.scanning.settings import GpioFeedbackSettings

    patterns = {f"{p.value}_pattern": beeps(n, long=p is FeedbackPattern.ATTENTION)
                for p, (_, n) in PATTERNS.items()}
    return msgspec.convert({"buzzer_pin": buzzer, "ok_led_pin": ok, "error_led_pin": error, **patterns},
                           GpioFeedbackSettings, strict=True)


class FeedbackRig:
    """One feedback implementation and what a person at the scanner notices."""

    def __init__(self, device: Feedback) -> None:
        self.device = device

    def played(self) -> list[FeedbackPattern]:
        """The patterns noticed since start, in order."""
        raise NotImplementedError

    def outputs_on(self) -> set[str]:
        """The outputs on right now."""
        raise NotImplementedError

    def cleanup(self) -> None:
        """Close the device and the world's pins."""
        self.device.close()


class SimRig(FeedbackRig):
    """SimFeedback: its record is what was played; it has no outputs to leave on."""

    def __init__(self, env: DeviceEnv) -> None:
        from hubagent.scanning.settings import SimFeedbackSettings
        from hubagent.sim.feedback import SimFeedback

        self.sim = SimFeedback("front", SimFeedbackSettings(), env)
        super().__init__(self.sim)

    def played(self) -> list[FeedbackPattern]:
        return [p for _, p in self.sim.history()]

    def outputs_on(self) -> set[str]:
        return set()


class MockRig(FeedbackRig):
    """GpioFeedback on MockFactory pins (gpiozero's default factory for the test)."""

    PINS = {"buzzer": 17, "ok": 27, "error": 22}

    def __init__(self, env: DeviceEnv, factory: Any) -> None:
        from hubagent.drivers.gpio_feedback import GpioFeedback

        self.factory = factory
        super().__init__(GpioFeedback("front", gpio_settings(*self.PINS.values()), env))

    def _lit(self) -> frozenset[str]:
        return frozenset(o for o, pin in self.PINS.items()
                         if any(s.state for s in self.factory.pin(pin).states))

    def _beeps(self) -> int:
        states = self.factory.pin(self.PINS["buzzer"]).states
        return sum(1 for before, after in zip(states, states[1:]) if after.state and not before.state)

    def played(self) -> list[FeedbackPattern]:
        # One pattern per test: which outputs went on, and how often the buzzer did, tell which it was.
        heard = (self._lit(), self._beeps())
        return [HEARD[heard]] if heard in HEARD else []

    def outputs_on(self) -> set[str]:
        return {o for o, pin in self.PINS.items() if self.factory.pin(pin).state}


class HardwareRig(FeedbackRig):
    """GpioFeedback on real pins, each output looped back to a sense input."""

    def __init__(self, env: DeviceEnv) -> None:
        from gpiozero import Device, DigitalInputDevice

        from hubagent.drivers.gpio_feedback import GpioFeedback
        from hubagent.drivers.gpio_lockers import make_pin_factory

        groups = pins(env_value("feedback_pins"))
        self._old_factory = Device.pin_factory
        Device.pin_factory = self.factory = make_pin_factory(env_value("gpio"))
        self._seen: set[str] = set()
        self._buzzes = 0
        self._lock = threading.Lock()
        self.sense = {}
        for name, (_, sense) in zip(OUTPUTS, groups):
            device = DigitalInputDevice(sense, pull_up=False)
            device.when_activated = self._noticed(name)
            self.sense[name] = device
        super().__init__(GpioFeedback("front", gpio_settings(*(g[0] for g in groups)), env))

    def _noticed(self, name: str) -> Any:
        def seen() -> None:
            with self._lock:
                self._seen.add(name)
                self._buzzes += name == "buzzer"
        return seen

    def played(self) -> list[FeedbackPattern]:
        with self._lock:
            heard = (frozenset(self._seen), self._buzzes)
        return [HEARD[heard]] if heard in HEARD else []

    def outputs_on(self) -> set[str]:
        return {name for name, device in self.sense.items() if device.is_active}

    def cleanup(self) -> None:
        from gpiozero import Device

        super().cleanup()
        for device in self.sense.values():
            device.close()
        self.factory.close()
        Device.pin_factory = self._old_factory


@pytest.fixture(params=["sim", "gpio-mock", hardware_row("gpio-hw", "gpio", "feedback_pins")])
def rig(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[FeedbackRig]:
    """Each feedback implementation in turn, not started."""
    env = DeviceEnv("hub-contract", tmp_path)
    made: FeedbackRig
    if request.param == "sim":
        made = SimRig(env)
    elif request.param == "gpio-mock":
        made = MockRig(env, request.getfixturevalue("mock_pins"))
    else:
        made = HardwareRig(env)
    try:
        yield made
    finally:
        made.cleanup()


def started(rig: FeedbackRig) -> FeedbackRig:
    rig.device.start(lambda event: None)
    until(lambda: rig.device.status().health is Health.OK, "health OK")
    return rig


@pytest.mark.parametrize("pattern", list(FeedbackPattern))
def test_each_pattern_is_played(rig: FeedbackRig, pattern: FeedbackPattern) -> None:
    started(rig).device.signal(pattern)
    until(lambda: rig.played() == [pattern], f"{pattern.value} to be played")


def test_signal_returns_while_a_long_pattern_still_plays(rig: FeedbackRig) -> None:
    started(rig)
    begun = time.monotonic()
    rig.device.signal(FeedbackPattern.ATTENTION)  # one LONG_S beep
    returned_after = time.monotonic() - begun
    until(lambda: rig.played() == [FeedbackPattern.ATTENTION], "the pattern to be played")
    # The core thread called it: it must not wait for the beep to finish.
    assert returned_after < LONG_S / 2


def test_close_in_the_middle_of_a_pattern_leaves_every_output_off(rig: FeedbackRig) -> None:
    started(rig).device.signal(FeedbackPattern.ATTENTION)
    until(lambda: rig.played() == [FeedbackPattern.ATTENTION], "the pattern to be playing")
    rig.device.close()
    assert rig.outputs_on() == set()
    rig.device.close()
    assert rig.device.status().health is Health.OFFLINE


def test_signal_never_raises_and_plays_nothing_after_close(rig: FeedbackRig) -> None:
    rig.device.signal(FeedbackPattern.ERROR)  # before start: played or dropped, never raised
    started(rig)
    rig.device.close()
    before = rig.played()
    rig.device.signal(FeedbackPattern.OK)
    holds(lambda: rig.played() == before and rig.outputs_on() == set(), "silence after close")


def test_close_before_start_never_raises(rig: FeedbackRig) -> None:
    rig.device.close()
    rig.device.close()


def test_repeat_plays_the_pattern_that_many_times(rig: FeedbackRig) -> None:
    """A lock-out's wait is told by repetition: 3 repeats of one beep are three beeps."""
    started(rig).device.signal(FeedbackPattern.WRONG, repeat=3, text="wait 3 min")
    if isinstance(rig, SimRig):
        until(lambda: rig.sim.played(), "the signal to be recorded")
        (played,) = rig.sim.played()
        assert (played.pattern, played.repeat, played.text) == (FeedbackPattern.WRONG, 3, "wait 3 min")
    elif isinstance(rig, MockRig):
        until(lambda: rig._beeps() == 3 and not rig.outputs_on(), "three separate beeps")
    else:
        until(lambda: rig._buzzes == 3, "three separate beeps")
