"""The LockerBank port's contract, run on the simulator and on the GPIO driver.

Rows: ``sim`` (SimLockerBank: the GPIO driver on its own mock pins, with
door physics), ``gpio-mock`` (GpioLockerBank on a gpiozero MockFactory the
test drives), ``gpio-hw`` (GpioLockerBank on real pins: HUBAGENT_CONTRACT_GPIO
names the pin factory, e.g. ``lgpio``, and HUBAGENT_CONTRACT_LOCKER_PINS two
compartments as ``lock,door,drive,sense;lock,door,drive,sense`` BCM numbers,
where ``drive`` is an output wired to ``door`` and ``sense`` an input wired
to ``lock``, so the test can open doors and see the lock outputs).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest

from contract_kit import Events, env_value, hardware_row, pins, until
from hubagent.errors import BankBusy, DeviceUnavailable, InputError
from hubagent.events import DoorChanged, Event, Health
from hubagent.lockers.settings import GpioLockerSettings
from hubagent.ports import CompartmentInfo, DeviceEnv, LockerBank

BANK = "left"
DEFAULT_PINS = [[17, 27], [22, 23]]  # lock, door per compartment on the mock rows


def bank_settings(pin_groups: list[list[int]], factory: str | None = None) -> GpioLockerSettings:
    """A1: small, 1 s pulses; A2: large, 0.2 s pulses. Doors read high when open (pulled down)."""
    (lock1, door1, *_), (lock2, door2, *_) = pin_groups
    common = {"debounce_s": 0.1, "door_pull_up": False, "door_open_when": "high"}
    table: dict[str, Any] = {"compartments": {
        "A1": {"lock_pin": lock1, "door_pin": door1, "pulse_s": 1.0, "size": "S", **common},
        "A2": {"lock_pin": lock2, "door_pin": door2, "pulse_s": 0.2, "size": "L", **common},
    }}
    if factory is not None:
        table["pin_factory"] = factory
    return msgspec.convert(table, GpioLockerSettings, strict=True)


class LockerRig:
    """One bank implementation, the person at its doors and a probe on its lock outputs."""

    def __init__(self, bank: LockerBank) -> None:
        self.bank = bank

    def open_door(self, compartment: str) -> None:
        """A person pulls the door open."""
        raise NotImplementedError

    def close_door(self, compartment: str) -> None:
        """A person shuts the door."""
        raise NotImplementedError

    def lock_output(self, compartment: str) -> bool:
        """Whether the lock relay is driven on right now, seen at the pin."""
        raise NotImplementedError

    def cleanup(self) -> None:
        """Close the bank and the world's pins."""
        self.bank.close()


class MockRig(LockerRig):
    """GpioLockerBank on a MockFactory; the test drives the door pins itself."""

    def __init__(self, env: DeviceEnv) -> None:
        from gpiozero.pins.mock import MockFactory

        from hubagent.drivers.gpio_lockers import GpioLockerBank

        self.factory = MockFactory()
        self.settings = bank_settings(DEFAULT_PINS)
        super().__init__(GpioLockerBank(BANK, self.settings, env, pin_factory=self.factory))

    def _pin(self, compartment: str, role: str) -> Any:
        comp = self.settings.compartments[compartment]
        return self.factory.pin(f"GPIO{comp.lock_pin if role == 'lock' else comp.door_pin}")

    def open_door(self, compartment: str) -> None:
        self._pin(compartment, "door").drive_high()

    def close_door(self, compartment: str) -> None:
        self._pin(compartment, "door").drive_low()

    def lock_output(self, compartment: str) -> bool:
        return bool(self._pin(compartment, "lock").state)

    def cleanup(self) -> None:
        super().cleanup()
        self.factory.close()


class SimRig(LockerRig):
    """SimLockerBank through its typed verbs; its mock pins show the lock outputs."""

    def __init__(self, env: DeviceEnv) -> None:
        from hubagent.sim.lockers import SimLockerBank

        self.settings = bank_settings(DEFAULT_PINS)
        self.sim = SimLockerBank(BANK, self.settings, env)
        super().__init__(self.sim)

    def open_door(self, compartment: str) -> None:
        self.sim.open_door(compartment)

    def close_door(self, compartment: str) -> None:
        self.sim.close_door(compartment)

    def lock_output(self, compartment: str) -> bool:
        return bool(self.sim.mock_pins.pin(f"GPIO{self.settings.compartments[compartment].lock_pin}").state)


class HardwareRig(LockerRig):
    """GpioLockerBank on real pins, with a jumper per door and a sense input per lock."""

    def __init__(self, env: DeviceEnv) -> None:
        from gpiozero import DigitalInputDevice, DigitalOutputDevice

        from hubagent.drivers.gpio_lockers import GpioLockerBank, make_pin_factory

        factory_name = env_value("gpio")
        groups = pins(env_value("locker_pins"))
        settings = bank_settings(groups, factory_name)
        self.world = make_pin_factory(factory_name)
        self.drive = {c: DigitalOutputDevice(g[2], initial_value=False, pin_factory=self.world)
                      for c, g in zip(("A1", "A2"), groups)}
        self.sense = {c: DigitalInputDevice(g[3], pull_up=False, pin_factory=self.world)
                      for c, g in zip(("A1", "A2"), groups)}
        super().__init__(GpioLockerBank(BANK, settings, env))

    def open_door(self, compartment: str) -> None:
        self.drive[compartment].on()

    def close_door(self, compartment: str) -> None:
        self.drive[compartment].off()

    def lock_output(self, compartment: str) -> bool:
        return bool(self.sense[compartment].is_active)

    def cleanup(self) -> None:
        super().cleanup()
        for device in [*self.drive.values(), *self.sense.values()]:
            device.close()
        self.world.close()


@pytest.fixture(params=["sim", "gpio-mock", hardware_row("gpio-hw", "gpio", "locker_pins")])
def rig(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[LockerRig]:
    """Each locker bank implementation in turn, not started."""
    env = DeviceEnv("hub-contract", tmp_path)
    made: LockerRig = {"sim": SimRig, "gpio-mock": MockRig, "gpio-hw": HardwareRig}[request.param](env)
    try:
        yield made
    finally:
        made.cleanup()


def started(rig: LockerRig) -> Events:
    events = Events()
    rig.bank.start(events)
    events.health(Health.OK)
    return events


def door_of(compartment: str) -> Any:
    return lambda e: isinstance(e, DoorChanged) and e.compartment == compartment


def test_the_layout_comes_from_the_bank_before_it_starts(rig: LockerRig) -> None:
    layout = rig.bank.layout()
    assert list(layout) == rig.bank.compartments() == ["A1", "A2"]
    assert layout["A1"] == CompartmentInfo(size="S", max_pulse_s=1.0, door_open_limit_s=60.0)
    assert layout["A2"] == CompartmentInfo(size="L", max_pulse_s=0.2, door_open_limit_s=60.0)


def test_every_lock_starts_off_and_doors_closed(rig: LockerRig) -> None:
    started(rig)
    for comp in ("A1", "A2"):
        assert not rig.bank.energised(comp) and not rig.lock_output(comp)
        assert rig.bank.door_open(comp) is False


def test_a_pulse_is_ended_by_the_bank_at_the_compartments_limit(rig: LockerRig) -> None:
    started(rig)
    rig.bank.pulse("A2", 30.0)  # far beyond A2's 0.2 s limit
    assert rig.bank.energised("A2") and rig.lock_output("A2")
    # Nobody calls anything: the bank itself switches the lock off, long before 30 s.
    until(lambda: not rig.lock_output("A2"), "the lock to switch off by itself", timeout=5.0)
    assert not rig.bank.energised("A2")


def test_a_second_pulse_is_refused_with_bank_busy(rig: LockerRig) -> None:
    started(rig)
    rig.bank.pulse("A1", 1.0)
    with pytest.raises(BankBusy) as busy:
        rig.bank.pulse("A2", 0.2)
    assert busy.value.bank == BANK
    assert not rig.lock_output("A2") and not rig.bank.energised("A2")  # nothing energised
    with pytest.raises(BankBusy):
        rig.bank.pulse("A1", 0.2)
    until(lambda: not rig.lock_output("A1"), "the first pulse to end")
    rig.bank.pulse("A2", 0.2)  # the bank is free again
    assert rig.lock_output("A2")


def test_release_all_switches_off_at_once_and_frees_the_bank(rig: LockerRig) -> None:
    started(rig)
    rig.bank.pulse("A1", 1.0)
    rig.bank.release_all()
    assert not rig.lock_output("A1") and not rig.bank.energised("A1")
    rig.bank.pulse("A2", 0.2)
    assert rig.lock_output("A2")


def test_door_changes_arrive_once_each_after_the_contacts_settle(rig: LockerRig) -> None:
    events = started(rig)
    for _ in range(3):  # contact bounce well inside the 0.1 s debounce
        rig.open_door("A2")
        rig.close_door("A2")
    rig.open_door("A2")
    opened = events.next(door_of("A2"), "A2 opening")
    assert (opened.bank, opened.compartment, opened.is_open) == (BANK, "A2", True)
    assert rig.bank.door_open("A2") is True
    rig.close_door("A2")
    closed = events.next(door_of("A2"), "A2 closing")
    assert closed.is_open is False and rig.bank.door_open("A2") is False
    a2_events = [e for e in events.seen if door_of("A2")(e)]
    assert [e.is_open for e in a2_events] == [True, False]  # the bounce made no events


@pytest.mark.parametrize("compartment, seconds, code", [
    ("Z9", 0.1, "unknown_compartment"),
    ("A1", 0, "bad_pulse"),
    ("A1", -1.0, "bad_pulse"),
    ("A1", math.nan, "bad_pulse"),
    ("A1", True, "bad_pulse"),
])
def test_bad_pulse_requests_are_input_errors_and_energise_nothing(
        rig: LockerRig, compartment: str, seconds: float, code: str) -> None:
    started(rig)
    with pytest.raises(InputError) as err:
        rig.bank.pulse(compartment, seconds)
    assert err.value.code == code
    assert not rig.lock_output("A1") and not rig.lock_output("A2")


def test_a_pulse_before_start_is_refused_as_unavailable(rig: LockerRig) -> None:
    with pytest.raises(DeviceUnavailable):
        rig.bank.pulse("A1", 0.2)


def test_close_switches_every_lock_off_and_is_idempotent(rig: LockerRig) -> None:
    events = started(rig)
    rig.bank.pulse("A1", 1.0)
    assert rig.lock_output("A1")
    rig.bank.close()
    assert not rig.lock_output("A1")
    rig.bank.close()
    assert rig.bank.status().health is Health.OFFLINE
    with pytest.raises(DeviceUnavailable):
        rig.bank.pulse("A2", 0.2)
    events.none(lambda e: isinstance(e, DoorChanged) and e.compartment == "A2", "door event after close")


def test_close_before_start_never_raises(rig: LockerRig) -> None:
    rig.bank.close()
    rig.bank.close()


def test_a_failing_sink_does_not_stop_door_events(rig: LockerRig) -> None:
    events = Events()
    calls: list[Event] = []

    def flaky(event: Event) -> None:
        calls.append(event)
        if isinstance(event, DoorChanged) and event.compartment == "A2" and event.is_open:
            raise RuntimeError("a bug in the core's sink")
        events(event)

    rig.bank.start(flaky)
    events.health(Health.OK)
    rig.open_door("A2")
    until(lambda: any(door_of("A2")(e) for e in calls), "the first door event")
    rig.close_door("A2")
    assert events.next(door_of("A2"), "the door event after the failing one").is_open is False
