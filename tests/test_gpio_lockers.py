"""GpioLockerBank and SimLockerBank on gpiozero MockFactory pins (one fresh factory per test)."""

from __future__ import annotations

import queue
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import msgspec
import pytest
from gpiozero import DigitalOutputDevice
from gpiozero.pins.mock import MockFactory, MockPin

from hubagent import registry
from hubagent.drivers.gpio_lockers import GpioLockerBank
from hubagent.errors import BankBusy, DeviceError, DeviceUnavailable, InputError
from hubagent.events import DeviceHealthChanged, DoorChanged, Event, Health
from hubagent.lockers.settings import GpioLockerSettings, check_pin_conflicts
from hubagent.ports import DeviceEnv, LockerBank, SimControl
from hubagent.sim.lockers import SimLockerBank
from hubproc import next_matching, wait_until

TIMEOUT = 5.0
QUIET = 0.3  # How long "nothing more happens" is watched for; several debounce periods.


def settings(**bank: Any) -> GpioLockerSettings:
    """A two-compartment bank; A1 active-high, A2 an active-low relay with a short pulse."""
    table: dict[str, Any] = {
        "compartments": {
            "A1": {"lock_pin": 17, "door_pin": "GPIO27", "occupancy_pin": "BOARD29", "debounce_s": 0.1},
            "A2": {"lock_pin": "BCM22", "lock_active_high": False, "door_pin": 23,
                   "pulse_s": 0.2, "debounce_s": 0.1},
        },
        **bank,
    }
    return msgspec.convert(table, GpioLockerSettings, strict=True)


class Events:
    """A thread-safe sink that tests can wait on."""

    def __init__(self) -> None:
        self.q: queue.Queue[Event] = queue.Queue()

    def __call__(self, event: Event) -> None:
        self.q.put(event)

    def next(self, kind: type, timeout: float = TIMEOUT) -> Any:
        return next_matching(self.q, lambda e: isinstance(e, kind), timeout, kind.__name__)

    def none(self, kind: type, watch: float = QUIET) -> None:
        try:
            event = self.next(kind, watch)
        except AssertionError:
            return
        raise AssertionError(f"unexpected {event!r}")


def until(predicate: Callable[[], bool], timeout: float = TIMEOUT) -> None:
    """:func:`hubproc.wait_until` with this file's timeout and a 10 ms poll."""
    wait_until(predicate, timeout, "condition", interval=0.01)


ENV = DeviceEnv("hub-test", Path("/nonexistent"))


@pytest.fixture
def factory() -> Iterator[MockFactory]:
    f = MockFactory()
    yield f
    f.reset()


@pytest.fixture
def bank(factory: MockFactory) -> Iterator[tuple[GpioLockerBank, Events]]:
    b = GpioLockerBank("left", settings(), ENV, pin_factory=factory)
    events = Events()
    b.start(events)
    yield b, events
    b.close()


def bounce(pin: Any, times: int) -> None:
    """Contact bounce: edges a few ms apart (well inside the 100 ms debounce), ending low."""
    for _ in range(times):
        pin.drive_high()
        time.sleep(0.004)
        pin.drive_low()
        time.sleep(0.004)


def lock_level(factory: MockFactory, pin: str) -> bool:
    return bool(factory.pin(pin).state)


# -- safety of the lock outputs -------------------------------------------


def test_locks_are_off_after_start(factory: MockFactory, bank: tuple[GpioLockerBank, Events]) -> None:
    b, _ = bank
    assert isinstance(b, LockerBank)
    assert b.compartments() == ["A1", "A2"]
    assert not b.energised("A1") and not b.energised("A2")
    assert lock_level(factory, "GPIO17") is False  # active-high relay: low is off
    assert lock_level(factory, "GPIO22") is True  # active-low relay: high is off
    assert b.status().health is Health.OK


def test_close_de_energises_a_running_pulse(factory: MockFactory) -> None:
    b = GpioLockerBank("left", settings(), ENV, pin_factory=factory)
    b.start(Events())
    b.pulse("A2", 0.2)
    assert lock_level(factory, "GPIO22") is False  # active-low: energised
    b.close()
    assert lock_level(factory, "GPIO22") is True
    b.close()  # idempotent
    assert b.status().health is Health.OFFLINE
    with pytest.raises(DeviceUnavailable):
        b.pulse("A1", 0.1)


def test_pulse_ends_by_itself(factory: MockFactory, bank: tuple[GpioLockerBank, Events]) -> None:
    b, _ = bank
    b.pulse("A1", 0.1)
    assert b.energised("A1") and lock_level(factory, "GPIO17") is True
    assert "pulsing A1" in b.status().detail
    until(lambda: not b.energised("A1"))  # nobody calls anything in between
    assert lock_level(factory, "GPIO17") is False


def test_second_pulse_on_the_bank_is_refused_while_one_runs(bank: tuple[GpioLockerBank, Events]) -> None:
    b, _ = bank
    b.pulse("A1", 0.3)
    with pytest.raises(BankBusy, match="bank busy"):
        b.pulse("A2", 0.1)
    with pytest.raises(BankBusy, match="bank busy"):
        b.pulse("A1", 0.1)
    assert not b.energised("A2")
    until(lambda: not b.energised("A1"))
    b.pulse("A2", 0.1)  # free again once the first pulse ended
    assert b.energised("A2")


def test_pulse_is_capped_at_pulse_s(factory: MockFactory, bank: tuple[GpioLockerBank, Events]) -> None:
    b, _ = bank
    pin = factory.pin("GPIO22")
    pin.clear_states()
    b.pulse("A2", 3.0)  # A2's pulse_s is 0.2
    until(lambda: not b.energised("A2"))
    on_for = pin.states[-1].timestamp  # time between the on and the off edge
    assert [s.state for s in pin.states] == [True, False, True]
    assert 0.15 <= on_for < 2.0


def test_release_all_cancels_a_pulse(factory: MockFactory, bank: tuple[GpioLockerBank, Events]) -> None:
    b, _ = bank
    b.pulse("A1", 0.6)
    b.release_all()
    assert not b.energised("A1") and lock_level(factory, "GPIO17") is False
    b.pulse("A2", 0.1)  # the bank is no longer busy


@pytest.mark.parametrize("seconds", [0, -1, float("nan"), float("inf"), "1", True])
def test_bad_pulse_lengths_are_input_errors(bank: tuple[GpioLockerBank, Events], seconds: Any) -> None:
    b, _ = bank
    with pytest.raises(InputError) as err:
        b.pulse("A1", seconds)
    assert err.value.code == "bad_pulse"
    assert not b.energised("A1")


def test_unknown_compartment_and_pulse_before_start(factory: MockFactory) -> None:
    b = GpioLockerBank("left", settings(), ENV, pin_factory=factory)
    with pytest.raises(DeviceUnavailable):
        b.pulse("A1", 0.1)
    assert b.status().health is Health.UNKNOWN
    b.start(Events())
    with pytest.raises(InputError) as err:
        b.pulse("Z9", 0.1)
    assert err.value.code == "unknown_compartment"
    b.close()


class StuckPin(MockPin):
    """A relay driver that can fail: refuses to go low while ``stuck``."""

    stuck = False

    def _set_state(self, value: Any) -> None:
        if self.stuck and not value:
            raise OSError("relay driver fault")
        super()._set_state(value)


def test_a_lock_that_will_not_switch_off_faults_the_bank(factory: MockFactory) -> None:
    pin = factory.pin("GPIO17", pin_class=StuckPin)
    b = GpioLockerBank("left", settings(), ENV, pin_factory=factory)
    events = Events()
    b.start(events)
    try:
        assert events.next(DeviceHealthChanged).status.health is Health.OK
        pin.stuck = True
        b.pulse("A1", 0.1)
        faulted = events.next(DeviceHealthChanged)
        assert faulted.status.health is Health.FAULTED and "A1" in faulted.status.detail
        assert b.energised("A1")  # still readable, and still on
        with pytest.raises(DeviceUnavailable):
            b.pulse("A2", 0.1)  # nothing more is pulsed on a faulted bank
        pin.stuck = False
        b.release_all()
        assert events.next(DeviceHealthChanged).status.health is Health.OK
        assert not b.energised("A1")
        b.pulse("A2", 0.1)
    finally:
        b.close()


# -- doors ------------------------------------------------------------------


def test_door_chatter_gives_one_door_changed(factory: MockFactory, bank: tuple[GpioLockerBank, Events]) -> None:
    b, events = bank
    door = factory.pin("GPIO27")  # pull-up, open when high; starts open with nothing attached
    door.drive_low()
    events.next(DoorChanged)  # settles closed
    bounce(door, 10)  # reed switch bouncing as the door swings open
    door.drive_high()
    changed = events.next(DoorChanged)
    assert (changed.bank, changed.compartment, changed.is_open) == ("left", "A1", True)
    events.none(DoorChanged)
    assert b.door_open("A1") is True


def test_chatter_that_settles_back_reports_nothing(factory: MockFactory,
                                                  bank: tuple[GpioLockerBank, Events]) -> None:
    b, events = bank
    door = factory.pin("GPIO23")
    door.drive_low()
    events.next(DoorChanged)
    bounce(door, 5)  # a knock on a shut door
    events.none(DoorChanged)
    assert b.door_open("A2") is False


def test_a_failing_sink_does_not_stop_door_reports(factory: MockFactory) -> None:
    seen: list[Event] = []
    lock = threading.Lock()

    def sink(event: Event) -> None:
        with lock:
            seen.append(event)
        raise RuntimeError("core is broken")

    b = GpioLockerBank("left", settings(), ENV, pin_factory=factory)
    b.start(sink)
    try:
        factory.pin("GPIO27").drive_low()
        until(lambda: any(isinstance(e, DoorChanged) for e in seen))
        factory.pin("GPIO27").drive_high()
        until(lambda: sum(isinstance(e, DoorChanged) for e in seen) == 2)
    finally:
        b.close()


def test_occupancy_input(factory: MockFactory, bank: tuple[GpioLockerBank, Events]) -> None:
    b, _ = bank
    sensor = factory.pin("GPIO5")  # BOARD29; pull-up, occupied when low
    assert b.occupied("A1") is False
    sensor.drive_low()
    assert b.occupied("A1") is True
    assert b.occupied("A2") is None  # no sensor fitted


# -- opening the pins ---------------------------------------------------------


def test_pin_in_use_faults_then_recovers(factory: MockFactory) -> None:
    squatter = DigitalOutputDevice("GPIO23", pin_factory=factory)
    b = GpioLockerBank("left", settings(retry_s=0.1), ENV, pin_factory=factory)
    events = Events()
    b.start(events)
    try:
        faulted = events.next(DeviceHealthChanged)
        assert faulted.status.health is Health.FAULTED and "GPIO23" in faulted.status.detail
        assert b.status().health is Health.FAULTED
        with pytest.raises(DeviceUnavailable):
            b.pulse("A1", 0.1)
        squatter.close()
        assert events.next(DeviceHealthChanged).status.health is Health.OK
        assert not b.energised("A1")
    finally:
        b.close()
        squatter.close()


def test_pin_factory_chosen_by_name() -> None:
    b = GpioLockerBank("left", settings(pin_factory="mock"), ENV)
    b.start(Events())
    try:
        b.pulse("A1", 0.1)
        assert b.energised("A1")
    finally:
        b.close()
    assert b.status().health is Health.OFFLINE


# -- settings -------------------------------------------------------------------


def test_duplicate_pins_in_a_bank_are_rejected() -> None:
    table = {"compartments": {"A1": {"lock_pin": 17, "door_pin": 27},
                              "B2": {"lock_pin": "BOARD11", "door_pin": 22}}}  # BOARD11 is GPIO17
    with pytest.raises(msgspec.ValidationError, match=r"GPIO17 is used by both compartment A1.lock_pin "
                                                      r"and compartment B2.lock_pin"):
        msgspec.convert(table, GpioLockerSettings, strict=True)


@pytest.mark.parametrize("table, message", [
    ({"compartments": {"A1": {"lock_pin": 17, "door_pin": "BCM17"}}}, "A1.lock_pin and compartment A1.door_pin"),
    ({"compartments": {"A1": {"lock_pin": 17, "door_pin": "BOARD6"}}}, "A1 door_pin: .* ground pin"),
    ({"compartments": {"A1": {"lock_pin": 40, "door_pin": 4}}}, "out of range"),
    ({"compartments": {"A1": {"lock_pin": "PIN7", "door_pin": 4}}}, "not a pin name"),
    ({"compartments": {"A1": {"lock_pin": 17, "door_pin": 4, "pulse_s": 10}}}, "<= 3.0"),
    ({"compartments": {"A1": {"lock_pin": 17, "door_pin": 4, "colour": "red"}}}, "unknown field"),
    ({"compartments": {}}, "length >= 1"),
    ({"compartments": {"A1": {"lock_pin": 17}}}, "door_pin"),
])
def test_bad_settings_give_clear_errors(table: dict[str, Any], message: str) -> None:
    with pytest.raises(msgspec.ValidationError, match=message):
        msgspec.convert(table, GpioLockerSettings, strict=True)


def test_pin_conflicts_across_banks_and_other_users() -> None:
    left = settings()
    right = msgspec.convert({"compartments": {"B1": {"lock_pin": 24, "door_pin": 25}}},
                            GpioLockerSettings, strict=True)
    check_pin_conflicts({"left": left, "right": right}, {"feedback.shelf.buzzer_pin": 18})
    with pytest.raises(ValueError, match="GPIO22 is used by both lockers.left.A2.lock_pin and lockers.right.B1"):
        clash = msgspec.convert({"compartments": {"B1": {"lock_pin": 24, "door_pin": 22}}},
                                GpioLockerSettings, strict=True)
        check_pin_conflicts({"left": left, "right": clash}, {})
    with pytest.raises(ValueError, match=r"GPIO27 is used by both lockers.left.A1.door_pin and power.hat.pins\[1\]"):
        check_pin_conflicts({"left": left}, {"power.hat.pins": [6, "BOARD13"]})
    with pytest.raises(ValueError, match="feedback.x: pin 'nope'"):
        check_pin_conflicts({"left": left}, {"feedback.x": "nope"})


# -- the simulator ----------------------------------------------------------------


@pytest.fixture
def sim() -> Iterator[tuple[SimLockerBank, Events]]:
    b = SimLockerBank("sim", settings(), ENV)
    events = Events()
    b.start(events)
    yield b, events
    b.close()


def test_sim_pulse_springs_the_door_open(sim: tuple[SimLockerBank, Events]) -> None:
    b, events = sim
    assert isinstance(b, SimControl)
    assert b.sim_state()["A1"] == {"compartment": "A1", "door_open": False, "energised": False,
                                   "jammed": False, "occupied": False}
    b.pulse("A1", 0.2)
    changed = events.next(DoorChanged)
    assert (changed.compartment, changed.is_open) == ("A1", True)
    assert b.door_open("A1")
    assert b.sim_command("open", {"compartment": "A1"})["forced"] is False
    b.sim_command("close", {"compartment": "A1"})
    changed = events.next(DoorChanged)
    assert (changed.compartment, changed.is_open) == ("A1", False)
    assert b.sim_command("state", {"compartment": "A1"})["door_open"] is False


def test_sim_jammed_lock_keeps_the_door_shut(sim: tuple[SimLockerBank, Events]) -> None:
    b, events = sim
    assert b.sim_command("jam", {"compartment": "A2"})["jammed"] is True
    b.pulse("A2", 0.1)
    until(lambda: not b.energised("A2"))
    events.none(DoorChanged)
    assert b.door_open("A2") is False and b.sim_state()["A2"]["jammed"] is True
    b.sim_command("unjam", {"compartment": "A2"})
    b.pulse("A2", 0.1)
    assert events.next(DoorChanged).is_open


def test_sim_forced_open_and_occupancy(sim: tuple[SimLockerBank, Events]) -> None:
    b, events = sim
    assert b.sim_command("open", {"compartment": "A2"}) == {"compartment": "A2", "forced": True}
    assert events.next(DoorChanged).is_open
    assert b.sim_command("occupancy", {"compartment": "A1", "occupied": True})["occupied"] is True
    assert b.occupied("A1") is True


@pytest.mark.parametrize("verb, args, code", [
    ("explode", {"compartment": "A1"}, "unknown_verb"),
    ("open", {"compartment": "Z9"}, "unknown_compartment"),
    ("open", {}, "unknown_compartment"),
    ("occupancy", {"compartment": "A1", "occupied": "yes"}, "bad_args"),
    ("occupancy", {"compartment": "A2", "occupied": True}, "no_sensor"),
])
def test_sim_bad_commands(sim: tuple[SimLockerBank, Events], verb: str, args: dict[str, Any], code: str) -> None:
    b, _ = sim
    with pytest.raises(InputError) as err:
        b.sim_command(verb, args)
    assert err.value.code == code


def test_sim_banks_do_not_share_pins() -> None:
    spec = registry.lookup("lockers", "sim")
    first = registry.build(spec, "one", settings(), ENV)
    second = registry.build(spec, "two", settings(), ENV)  # same pin numbers, own MockFactory
    try:
        first.start(Events())
        second.start(Events())
        assert first.status().health is Health.OK and second.status().health is Health.OK
        first.pulse("A1", 0.2)  # type: ignore[attr-defined]
        second.pulse("A1", 0.2)  # type: ignore[attr-defined]  # not busy: another bank
        assert not second.energised("A2")  # type: ignore[attr-defined]
    finally:
        first.close()
        second.close()
