"""The PowerSource port's contract, run on the simulator and on both real drivers.

Rows: ``sim`` (SimPowerSource through its typed verbs), ``nut`` (NutPowerSource
against a real ``upsd`` with the ``dummy-ups`` driver, see
``tests/fixtures_nut.py``), ``gpio-mock`` (GpioPowerSource, a UPS HAT's
power-fail and low-battery pins, on gpiozero's MockFactory), and the
real-hardware rows ``nut-hw`` (HUBAGENT_CONTRACT_NUT = ``UPS@HOST[:PORT]``, a
real UPS that is only read, never switched) and ``gpio-hw`` (HUBAGENT_CONTRACT_GPIO
names the pin factory, HUBAGENT_CONTRACT_POWER_PINS = ``fail,drive;low,drive``
BCM numbers, each ``drive`` an output wired to the HAT input it stands for).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest

from contract_kit import Events, env_value, hardware_row, pins
from hubagent.events import Event, Health, PowerReading
from hubagent.ports import DeviceEnv, PowerSource
from hubagent.power.settings import GpioPowerSettings, NutPowerSettings, SimPowerSettings


class PowerRig:
    """One power source implementation and the mains supply behind it."""

    can_switch = True
    can_cut_link = False

    def __init__(self, source: PowerSource) -> None:
        self.source = source

    def mains(self) -> None:
        """Mains power is back."""
        raise NotImplementedError

    def mains_lost(self) -> None:
        """Mains power fails: the UPS runs on battery."""
        raise NotImplementedError

    def battery_low(self) -> None:
        """On battery and the battery is low."""
        raise NotImplementedError

    def cut_link(self) -> None:
        """The UPS can no longer be read."""
        raise NotImplementedError

    def restore_link(self) -> None:
        """The UPS can be read again (on mains)."""
        raise NotImplementedError

    def cleanup(self) -> None:
        """Close the source and its world."""
        self.source.close()


class SimRig(PowerRig):
    """SimPowerSource through its typed verbs."""

    can_cut_link = True

    def __init__(self, env: DeviceEnv) -> None:
        from hubagent.sim.power import SimPowerSource

        self.sim = SimPowerSource("ups", SimPowerSettings(), env)
        super().__init__(self.sim)

    def mains(self) -> None:
        self.sim.mains()

    def mains_lost(self) -> None:
        self.sim.mains_lost()

    def battery_low(self) -> None:
        self.sim.battery_low(charge=12.0, runtime=120.0)

    def cut_link(self) -> None:
        self.sim.unreachable()

    def restore_link(self) -> None:
        self.sim.mains()


class NutRig(PowerRig):
    """NutPowerSource against a private upsd + dummy-ups; the UPS data file is the mains."""

    can_cut_link = True

    def __init__(self, env: DeviceEnv, server: Any) -> None:
        from hubagent.drivers.nut_power import NutPowerSource

        self.server = server
        settings = msgspec.convert({"host": server.host, "port": server.port, "ups": server.ups,
                                    "username": server.username, "password_env": server.password_env,
                                    "poll_s": 0.2, "timeout_s": 1.0, "reconnect_max_s": 0.5},
                                   NutPowerSettings, strict=True)
        super().__init__(NutPowerSource("ups", settings, env))

    def mains(self) -> None:
        self.server.set_vars(**{"ups.status": "OL CHRG", "input.voltage": 230})

    def mains_lost(self) -> None:
        self.server.set_vars(**{"ups.status": "OB DISCHRG", "input.voltage": 0})

    def battery_low(self) -> None:
        self.server.set_vars(**{"ups.status": "OB LB", "charge": 12, "runtime": 120})

    def cut_link(self) -> None:
        self.server.stop()

    def restore_link(self) -> None:
        self.server.start()


class GpioRig(PowerRig):
    """GpioPowerSource on MockFactory pins (or real pins with drive outputs wired to them)."""

    FAIL, LOW = 17, 27

    def __init__(self, env: DeviceEnv, factory: Any) -> None:
        from hubagent.drivers.gpio_power import GpioPowerSource

        self.factory = factory
        settings = GpioPowerSettings(power_fail_pin=self.FAIL, low_battery_pin=self.LOW, debounce_s=0)
        super().__init__(GpioPowerSource("ups", settings, env))

    def _set(self, fail: bool, low: bool) -> None:
        for pin, high in ((self.FAIL, fail), (self.LOW, low)):
            if high:
                self.factory.pin(pin).drive_high()
            else:
                self.factory.pin(pin).drive_low()

    def mains(self) -> None:
        self._set(fail=False, low=False)

    def mains_lost(self) -> None:
        self._set(fail=True, low=False)

    def battery_low(self) -> None:
        self._set(fail=True, low=True)


class GpioHardwareRig(GpioRig):
    """GpioPowerSource on real pins, each HAT input driven by a wired output."""

    def __init__(self, env: DeviceEnv) -> None:
        from gpiozero import Device, DigitalOutputDevice

        from hubagent.drivers.gpio_lockers import make_pin_factory
        from hubagent.drivers.gpio_power import GpioPowerSource

        (fail, fail_drive), (low, low_drive) = pins(env_value("power_pins"))
        self._old = Device.pin_factory
        Device.pin_factory = self.world = make_pin_factory(env_value("gpio"))
        self.drives = {fail: DigitalOutputDevice(fail_drive, initial_value=False),
                       low: DigitalOutputDevice(low_drive, initial_value=False)}
        self.FAIL, self.LOW = fail, low
        settings = GpioPowerSettings(power_fail_pin=fail, low_battery_pin=low, debounce_s=0)
        PowerRig.__init__(self, GpioPowerSource("ups", settings, env))

    def _set(self, fail: bool, low: bool) -> None:
        self.drives[self.FAIL].value = fail
        self.drives[self.LOW].value = low

    def cleanup(self) -> None:
        from gpiozero import Device

        super().cleanup()
        for device in self.drives.values():
            device.close()
        self.world.close()
        Device.pin_factory = self._old


class NutHardwareRig(PowerRig):
    """A real UPS through its upsd: read only."""

    can_switch = False

    def __init__(self, env: DeviceEnv) -> None:
        from hubagent.drivers.nut_power import NutPowerSource

        ups, _, where = env_value("nut").partition("@")
        host, _, port = where.partition(":")
        settings = NutPowerSettings(ups=ups, host=host, port=int(port or 3493), poll_s=0.5)
        super().__init__(NutPowerSource("ups", settings, env))


@pytest.fixture(params=["sim", "nut", "gpio-mock", hardware_row("nut-hw", "nut"),
                        hardware_row("gpio-hw", "gpio", "power_pins")])
def rig(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[PowerRig]:
    """Each power source implementation in turn, not started (on mains)."""
    env = DeviceEnv("hub-contract", tmp_path)
    made: PowerRig
    if request.param == "sim":
        made = SimRig(env)
    elif request.param == "nut":
        made = NutRig(env, request.getfixturevalue("nut_server"))
    elif request.param == "gpio-mock":
        made = GpioRig(env, request.getfixturevalue("mock_pins"))
    elif request.param == "nut-hw":
        made = NutHardwareRig(env)
    else:
        made = GpioHardwareRig(env)
    try:
        yield made
    finally:
        made.cleanup()


def is_reading(event: Event) -> bool:
    return isinstance(event, PowerReading)


def reading(events: Events, *flags: str, reachable: bool = True) -> PowerReading:
    """The next reading with every one of ``flags`` (and, unless "LB" is asked for, without LB)."""
    want = set(flags)

    def match(e: Event) -> bool:
        return (isinstance(e, PowerReading) and e.reachable == reachable and want <= e.flags
                and ("LB" in want or "LB" not in e.flags))

    found: PowerReading = events.next(match, f"a reading with {' '.join(flags) or 'no flags'}")
    return found


def test_a_reading_arrives_soon_after_start(rig: PowerRig) -> None:
    events = Events()
    rig.source.start(events)
    first: PowerReading = events.next(is_reading, "the first reading")
    assert first.source == "ups" and first.reachable and first.flags
    if rig.can_switch:
        assert "OL" in first.flags and "OB" not in first.flags
    assert rig.source.status().health is Health.OK


def test_outage_low_battery_and_return_arrive_in_order(rig: PowerRig) -> None:
    if not rig.can_switch:
        pytest.skip("a real UPS is not switched by tests")
    events = Events()
    rig.source.start(events)
    reading(events, "OL")
    rig.mains_lost()
    assert "OL" not in reading(events, "OB").flags
    rig.battery_low()
    reading(events, "OB", "LB")
    rig.mains()
    back = reading(events, "OL")
    assert "OB" not in back.flags


def test_an_unreadable_ups_is_one_reading_and_a_health_change_then_recovers(rig: PowerRig) -> None:
    if not rig.can_cut_link:
        pytest.skip("this rig cannot cut the link to its UPS")
    events = Events()
    rig.source.start(events)
    reading(events, "OL")
    rig.cut_link()
    assert events.health(Health.OFFLINE, Health.FAULTED).device == "ups"
    gone = reading(events, reachable=False)
    assert gone.flags == frozenset() and gone.charge is None
    events.none(lambda e: isinstance(e, PowerReading) and not e.reachable, "a second unreachable reading")
    rig.restore_link()
    events.health(Health.OK)
    reading(events, "OL")


def test_close_is_idempotent_and_ends_delivery(rig: PowerRig) -> None:
    events = Events()
    rig.source.start(events)
    events.next(is_reading, "the first reading")
    rig.source.close()
    rig.source.close()
    if rig.can_switch:
        rig.mains_lost()
    events.none(is_reading, "a reading after close", watch=1.0)


def test_close_before_start_never_raises(rig: PowerRig) -> None:
    rig.source.close()
    rig.source.close()
