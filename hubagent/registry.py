"""Device backends, chosen by name per device.

Like gpiozero's pin factories: the configuration names a driver for each
device (``driver = "serial"``), and this table says where that driver lives,
which settings it takes and which optional extra it needs. Nothing here is
imported until a configured device asks for it, so a hub without a camera
never loads OpenCV; and nothing ever falls back to the simulator.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from dataclasses import dataclass
from typing import Any

from hubagent.ports import Device, DeviceEnv

ROLES = ("scanners", "feedback", "printers", "lockers", "keypads", "power")
"""Config sections that hold named devices, one table per device."""


@dataclass(frozen=True)
class DriverSpec:
    """Where a driver lives and what it needs.

    ``target`` and ``settings`` are ``module:attribute`` paths. The settings
    module must be importable without any hardware library (it is imported
    while the configuration is checked); the target module may import them.
    """

    role: str
    name: str
    target: str
    settings: str
    extra: str | None = None
    modules: tuple[str, ...] = ()
    summary: str = ""


_SPECS: tuple[DriverSpec, ...] = (
    DriverSpec("scanners", "serial", "hubagent.drivers.serial_scanner:SerialScanner",
               "hubagent.scanning.settings:SerialScannerSettings", "serial", ("serial",),
               "USB CDC-ACM or RS-232 scanner through pyserial"),
    DriverSpec("scanners", "hid", "hubagent.drivers.hid_scanner:HidScanner",
               "hubagent.scanning.settings:HidScannerSettings", "hid", ("evdev",),
               "USB keyboard-wedge scanner through the Linux input layer"),
    DriverSpec("scanners", "camera", "hubagent.drivers.camera_scanner:CameraScanner",
               "hubagent.scanning.settings:CameraScannerSettings", "camera", ("cv2", "pyzbar"),
               "camera through OpenCV with zbar (or zxing-cpp) decoding"),
    DriverSpec("scanners", "sim", "hubagent.sim.scanner:SimScanner",
               "hubagent.scanning.settings:SimScannerSettings", "serial", ("serial",),
               "simulated serial scanner on a pseudo-terminal"),
    DriverSpec("feedback", "gpio", "hubagent.drivers.gpio_feedback:GpioFeedback",
               "hubagent.scanning.settings:GpioFeedbackSettings", "gpio", ("gpiozero",),
               "buzzer and LEDs on GPIO pins"),
    DriverSpec("feedback", "sim", "hubagent.sim.feedback:SimFeedback",
               "hubagent.scanning.settings:SimFeedbackSettings", None, (),
               "records feedback patterns for status and tests"),
    DriverSpec("printers", "escpos", "hubagent.drivers.escpos_printer:EscposPrinter",
               "hubagent.printing.settings:EscposPrinterSettings", "print", ("escpos", "PIL"),
               "ESC/POS printer over USB, serial, network, file or CUPS"),
    DriverSpec("printers", "zpl", "hubagent.drivers.zpl_printer:ZplPrinter",
               "hubagent.printing.settings:ZplPrinterSettings", "print", ("PIL",),
               "ZPL label printer over TCP 9100 or a device file"),
    DriverSpec("printers", "sim", "hubagent.sim.printer:SimPrinter",
               "hubagent.printing.settings:SimPrinterSettings", "print", ("escpos", "PIL"),
               "captures printer bytes and writes PNG previews"),
    DriverSpec("lockers", "gpio", "hubagent.drivers.gpio_lockers:GpioLockerBank",
               "hubagent.lockers.settings:GpioLockerSettings", "gpio", ("gpiozero",),
               "lock relays and door reed switches on GPIO pins"),
    DriverSpec("lockers", "sim", "hubagent.sim.lockers:SimLockerBank",
               "hubagent.lockers.settings:GpioLockerSettings", "gpio", ("gpiozero",),
               "the GPIO driver on gpiozero MockFactory pins with door physics"),
    DriverSpec("keypads", "hid", "hubagent.drivers.hid_keypad:HidKeypad",
               "hubagent.lockers.settings:HidKeypadSettings", "hid", ("evdev",),
               "USB keypad or touchscreen keyboard through the Linux input layer"),
    DriverSpec("keypads", "sim", "hubagent.sim.keypad:SimKeypad",
               "hubagent.lockers.settings:SimKeypadSettings", None, (),
               "codes typed with `hubagent sim code`"),
    DriverSpec("power", "nut", "hubagent.drivers.nut_power:NutPowerSource",
               "hubagent.power.settings:NutPowerSettings", None, (),
               "a UPS through a NUT upsd server"),
    DriverSpec("power", "gpio", "hubagent.drivers.gpio_power:GpioPowerSource",
               "hubagent.power.settings:GpioPowerSettings", "gpio", ("gpiozero",),
               "power-fail and low-battery pins of a UPS HAT"),
    DriverSpec("power", "sim", "hubagent.sim.power:SimPowerSource",
               "hubagent.power.settings:SimPowerSettings", None, (),
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


def _resolve(path: str) -> Any:
    module, _, attr = path.partition(":")
    return getattr(importlib.import_module(module), attr)


def settings_type(spec: DriverSpec) -> type:
    """The msgspec Struct that validates this driver's settings."""
    return _resolve(spec.settings)  # type: ignore[no-any-return]


def build(spec: DriverSpec, name: str, settings: Any, env: DeviceEnv) -> Device:
    """Import the driver and construct the device (opens nothing)."""
    cls = _resolve(spec.target)
    return cls(name, settings, env)  # type: ignore[no-any-return]
