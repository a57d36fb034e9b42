"""GpioFeedback on gpiozero MockFactory pins, and SimFeedback."""

from __future__ import annotations

import queue
from pathlib import Path
from typing import Callable

import msgspec
import pytest
from gpiozero import LED
from gpiozero.pins.mock import MockFactory

from hubagent.drivers.gpio_feedback import GpioFeedback, runs
from hubagent.errors import InputError
from hubagent.events import DeviceHealthChanged, Health
from hubagent.ports import DeviceEnv, FeedbackPattern
from hubagent.scanning.settings import GpioFeedbackSettings, SimFeedbackSettings
from hubagent.sim.feedback import SimFeedback
from hubproc import wait_until

BUZZER, GREEN, RED = 17, 27, 22


@pytest.fixture
def factory(mock_pins: MockFactory) -> MockFactory:
    return mock_pins


@pytest.fixture
def env(tmp_path: Path) -> DeviceEnv:
    return DeviceEnv("hub", tmp_path)


def levels(factory: MockFactory, pin: int) -> list[bool]:
    """The levels a pin went through, in order, without repeats."""
    out: list[bool] = []
    for state in factory.pin(pin).states:
        if not out or out[-1] != bool(state.state):
            out.append(bool(state.state))
    return out


def until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    """:func:`hubproc.wait_until` with this file's timeout and a 10 ms poll."""
    wait_until(condition, timeout, "condition", interval=0.01)


def make(env: DeviceEnv, **kw: object) -> GpioFeedback:
    settings = msgspec.convert({"buzzer_pin": BUZZER, "ok_led_pin": GREEN, "error_led_pin": RED,
                                "ok_pattern": [0.02], "error_pattern": [0.02, 0.02, 0.02, 0.02, 0.02],
                                "attention_pattern": [0.02, 0.02, 0.05], **kw},
                               GpioFeedbackSettings, strict=True)
    return GpioFeedback("fb", settings, env)


def test_ok_beeps_once_and_lights_green(factory: MockFactory, env: DeviceEnv) -> None:
    fb = make(env)
    fb.start(lambda e: None)
    try:
        fb.signal(FeedbackPattern.OK)
        until(lambda: levels(factory, BUZZER) == [False, True, False]
              and levels(factory, GREEN) == [False, True, False])
        assert levels(factory, RED) == [False]
        assert fb.status().health is Health.OK
    finally:
        fb.close()


def test_error_beeps_three_times_with_red(factory: MockFactory, env: DeviceEnv) -> None:
    fb = make(env)
    fb.start(lambda e: None)
    try:
        fb.signal(FeedbackPattern.ERROR)
        three = [False, True, False, True, False, True, False]
        until(lambda: levels(factory, BUZZER) == three and levels(factory, RED) == three)
        assert levels(factory, GREEN) == [False]
    finally:
        fb.close()


def test_attention_uses_both_leds(factory: MockFactory, env: DeviceEnv) -> None:
    fb = make(env)
    fb.start(lambda e: None)
    try:
        fb.signal(FeedbackPattern.ATTENTION)
        two = [False, True, False, True, False]
        until(lambda: levels(factory, GREEN) == two and levels(factory, RED) == two)
    finally:
        fb.close()


def test_active_low_wiring_idles_high(factory: MockFactory, env: DeviceEnv) -> None:
    fb = make(env, active_high=False, error_led_pin=None)
    fb.start(lambda e: None)
    try:
        fb.signal(FeedbackPattern.OK)
        # The mock pin starts low before gpiozero drives it to the idle (high) level.
        until(lambda: levels(factory, BUZZER)[-3:] == [True, False, True]
              and levels(factory, GREEN)[-3:] == [True, False, True])
        assert factory.pin(BUZZER).state and factory.pin(GREEN).state
    finally:
        fb.close()


def test_close_during_a_long_pattern_switches_off(factory: MockFactory, env: DeviceEnv) -> None:
    fb = make(env, attention_pattern=[5.0])
    fb.start(lambda e: None)
    fb.signal(FeedbackPattern.ATTENTION)
    until(lambda: factory.pin(BUZZER).state)
    fb.close()
    fb.close()
    assert not factory.pin(BUZZER).state and not factory.pin(GREEN).state
    assert fb.status().health is Health.OFFLINE
    fb.signal(FeedbackPattern.OK)  # after close: ignored, no error


def test_newer_signal_interrupts_the_playing_one(factory: MockFactory, env: DeviceEnv) -> None:
    fb = make(env, error_pattern=[5.0])
    fb.start(lambda e: None)
    try:
        fb.signal(FeedbackPattern.ERROR)
        until(lambda: factory.pin(RED).state)
        fb.signal(FeedbackPattern.OK)
        until(lambda: levels(factory, GREEN) == [False, True, False])
        assert not factory.pin(RED).state
    finally:
        fb.close()


def test_pin_in_use_is_reported_faulted(factory: MockFactory, env: DeviceEnv) -> None:
    other = LED(BUZZER)
    q: queue.Queue = queue.Queue()
    fb = make(env)
    try:
        fb.start(q.put)
        event = q.get(timeout=5)
        assert isinstance(event, DeviceHealthChanged) and event.status.health is Health.FAULTED
        fb.signal(FeedbackPattern.OK)  # dropped, no exception
    finally:
        fb.close()
        other.close()


def test_runs_group_equal_pairs() -> None:
    assert runs([0.1, 0.1, 0.1, 0.1, 0.1]) == [(0.1, 0.1, 2), (0.1, 0.0, 1)]
    assert runs([0.4, 0.2, 0.1]) == [(0.4, 0.2, 1), (0.1, 0.0, 1)]


@pytest.mark.parametrize("bad", [
    {},                                            # no pin at all
    {"buzzer_pin": 17, "ok_led_pin": 17},          # same pin twice
    {"buzzer_pin": 17, "ok_pattern": []},
    {"buzzer_pin": 17, "ok_pattern": [0.0, 0.1]},  # never on
    {"buzzer_pin": 17, "error_pattern": [9.0]},
    {"buzzer_pin": 17, "volume": 3},
])
def test_bad_gpio_settings_refused(bad: dict) -> None:
    with pytest.raises(msgspec.ValidationError):
        msgspec.convert(bad, GpioFeedbackSettings, strict=True)


def test_sim_feedback_records_history(env: DeviceEnv) -> None:
    fb = SimFeedback("simfb", SimFeedbackSettings(history=2), env)
    fb.start(lambda e: None)
    assert fb.status().detail == "silent"
    for p in (FeedbackPattern.OK, FeedbackPattern.ERROR, FeedbackPattern.ATTENTION):
        fb.signal(p)
    assert [p for _, p in fb.history()] == [FeedbackPattern.ERROR, FeedbackPattern.ATTENTION]
    assert "attention" in fb.status().detail
    assert [h["pattern"] for h in fb.sim_command("history", {})["history"]] == ["error", "attention"]
    fb.sim_command("clear", {})
    assert fb.history() == []
    with pytest.raises(InputError):
        fb.sim_command("explode", {})
    fb.close()
    assert fb.status().health is Health.OFFLINE
