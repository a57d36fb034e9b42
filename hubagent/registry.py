"""Device backends, chosen by name per device.

Like gpiozero's pin factories: the configuration names a driver for each
device (``driver = "serial"``), and this table says where that driver lives,
which settings it takes and which optional extra it needs. Nothing here is
imported until a configured device asks for it, so a hub without a camera
never loads OpenCV; and nothing ever falls back to the simulator.
"""

from __future__ import annotations

import importlib.util
import sys
from typing import Any, Callable

import msgspec

from hubagent.lockers.settings import GpioLockerSettings, HidKeypadSettings, SimKeypadSettings
from hubagent.ports import Device, DeviceEnv
from hubagent.power.settings import GpioPowerSettings, NutPowerSettings, SimPowerSettings
from hubagent.printing.settings import EscposPrinterSettings, SimPrinterSettings, ZplPrinterSettings
from hubagent.scanning.settings import (
    CameraScannerSettings,
    GpioFeedbackSettings,
    HidScannerSettings,
    SerialScannerSettings,
    SimFeedbackSettings,
    SimScannerSettings,
)

ROLES = ("scanners", "feedback", "printers", "lockers", "keypads", "power")
"""Config sections that hold named devices, one table per device."""


DeviceFactory = Callable[[str, Any, DeviceEnv], Device]
"""A driver class: ``cls(name, settings, env)`` builds the device (opens nothing)."""


class DriverSpec(msgspec.Struct, frozen=True):
    """Where a driver lives and what it needs.

    ``load`` imports the driver module and returns its class; it runs only
    when a configured device is built, never while the configuration is
    checked. ``settings`` is the msgspec Struct the device's table must
    match; settings modules import no hardware library.
    """

    role: str
    name: str
    load: Callable[[], DeviceFactory]
    settings: type[msgspec.Struct]
    extra: str | None = None
    modules: tuple[str, ...] = ()
    summary: str = ""


# The driver table stays lazy by necessity: importing a driver module imports
# its hardware library (gpiozero, pyserial, evdev, OpenCV...), which a hub
# without that device may not have installed and must not pay for at
# start-up. Each loader is a plain function with a static import, so a
# reader and the type checker can still follow it to the class.
def _scanners_serial() -> DeviceFactory:
    from hubagent.drivers.serial_scanner import SerialScanner

    return SerialScanner


def _scanners_hid() -> DeviceFactory:
    from hubagent.drivers.hid_scanner import HidScanner

    return HidScanner


def _scanners_camera() -> DeviceFactory:
    from hubagent.drivers.camera_scanner import CameraScanner

    return CameraScanner


def _scanners_sim() -> DeviceFactory:
    from hubagent.sim.scanner import SimScanner

    return SimScanner


def _feedback_gpio() -> DeviceFactory:
    from hubagent.drivers.gpio_feedback import GpioFeedback

    return GpioFeedback


def _feedback_sim() -> DeviceFactory:
    from hubagent.sim.feedback import SimFeedback

    return SimFeedback


def _printers_escpos() -> DeviceFactory:
    from hubagent.drivers.escpos_printer import EscposPrinter

    return EscposPrinter


def _printers_zpl() -> DeviceFactory:
    from hubagent.drivers.zpl_printer import ZplPrinter

    return ZplPrinter


def _printers_sim() -> DeviceFactory:
    from hubagent.sim.printer import SimPrinter

    return SimPrinter


def _lockers_gpio() -> DeviceFactory:
    from hubagent.drivers.gpio_lockers import GpioLockerBank

    return GpioLockerBank


def _lockers_sim() -> DeviceFactory:
    from hubagent.sim.lockers import SimLockerBank

    return SimLockerBank


def _keypads_hid() -> DeviceFactory:
    from hubagent.drivers.hid_keypad import HidKeypad

    return HidKeypad


def _keypads_sim() -> DeviceFactory:
    from hubagent.sim.keypad import SimKeypad

    return SimKeypad


def _power_nut() -> DeviceFactory:
    from hubagent.drivers.nut_power import NutPowerSource

    return NutPowerSource


def _power_gpio() -> DeviceFactory:
    from hubagent.drivers.gpio_power import GpioPowerSource

    return GpioPowerSource


def _power_sim() -> DeviceFactory:
    from hubagent.sim.power import SimPowerSource

    return SimPowerSource


_SPECS: tuple[DriverSpec, ...] = (
    DriverSpec("scanners", "serial", _scanners_serial, SerialScannerSettings, "serial", ("serial",),
               "USB CDC-ACM or RS-232 scanner through pyserial"),
    DriverSpec("scanners", "hid", _scanners_hid, HidScannerSettings, "hid", ("evdev",),
               "USB keyboard-wedge scanner through the Linux input layer"),
    DriverSpec("scanners", "camera", _scanners_camera, CameraScannerSettings, "camera", ("cv2", "pyzbar"),
               "camera through OpenCV with zbar (or zxing-cpp) decoding"),
    DriverSpec("scanners", "sim", _scanners_sim, SimScannerSettings, "serial", ("serial",),
               "simulated serial scanner on a pseudo-terminal"),
    DriverSpec("feedback", "gpio", _feedback_gpio, GpioFeedbackSettings, "gpio", ("gpiozero",),
               "buzzer and LEDs on GPIO pins"),
    DriverSpec("feedback", "sim", _feedback_sim, SimFeedbackSettings, None, (),
               "records feedback patterns for status and tests"),
    DriverSpec("printers", "escpos", _printers_escpos, EscposPrinterSettings, "print", ("escpos", "PIL"),
               "ESC/POS printer over USB, serial, network, file or CUPS"),
    DriverSpec("printers", "zpl", _printers_zpl, ZplPrinterSettings, "print", ("PIL",),
               "ZPL label printer over TCP 9100 or a device file"),
    DriverSpec("printers", "sim", _printers_sim, SimPrinterSettings, "print", ("escpos", "PIL"),
               "captures printer bytes and writes PNG previews"),
    DriverSpec("lockers", "gpio", _lockers_gpio, GpioLockerSettings, "gpio", ("gpiozero",),
               "lock relays and door reed switches on GPIO pins"),
    DriverSpec("lockers", "sim", _lockers_sim, GpioLockerSettings, "gpio", ("gpiozero",),
               "the GPIO driver on gpiozero MockFactory pins with door physics"),
    DriverSpec("keypads", "hid", _keypads_hid, HidKeypadSettings, "hid", ("evdev",),
               "USB keypad or touchscreen keyboard through the Linux input layer"),
    DriverSpec("keypads", "sim", _keypads_sim, SimKeypadSettings, None, (),
               "codes typed with `hubagent sim code`"),
    DriverSpec("power", "nut", _power_nut, NutPowerSettings, None, (),
               "a UPS through a NUT upsd server"),
    DriverSpec("power", "gpio", _power_gpio, GpioPowerSettings, "gpio", ("gpiozero",),
               "power-fail and low-battery pins of a UPS HAT"),
    DriverSpec("power", "sim", _power_sim, SimPowerSettings, None, (),
               "scripted UPS driven by `hubagent sim power`"),
)


def drivers_for(role: str) -> dict[str, DriverSpec]:
    """The drivers known for ``role``, by name."""
    return {s.name: s for s in _SPECS if s.role == role}


def lookup(role: str, name: str) -> DriverSpec:
    """The spec for ``role``/``name``; KeyError names the known drivers."""
    known = drivers_for(role)
    if name not in known:
        raise KeyError(f"unknown driver {name!r} (known: {', '.join(sorted(known))})")
    return known[name]


def installed(module: str) -> bool:
    """Whether ``module`` can be imported (checked without importing it)."""
    if module in sys.modules:
        # None in sys.modules is the documented way to block an import.
        return sys.modules[module] is not None
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def missing_modules(spec: DriverSpec) -> list[str]:
    """Modules the driver needs that are not installed (checked without importing)."""
    return [m for m in spec.modules if not installed(m)]


def settings_type(spec: DriverSpec) -> type[msgspec.Struct]:
    """The msgspec Struct that validates this driver's settings."""
    return spec.settings


def build(spec: DriverSpec, name: str, settings: object, env: DeviceEnv) -> Device:
    """Import the driver and construct the device (opens nothing)."""
    return spec.load()(name, settings, env)
