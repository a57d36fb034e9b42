"""A scripted UPS: the ``sim`` power source, driven by ``hubagent sim power``.

Verbs (``sim_command``):

* ``mains`` — back on line power (``OL``), charge and runtime back to the
  configured values unless given;
* ``battery`` — on battery (``OB``), optional ``charge`` (percent) and
  ``runtime`` (seconds);
* ``low`` — on battery with the low-battery flag (``OB LB``), same options;
* ``unreachable`` — the UPS cannot be read (like a stopped upsd).

Each verb emits one :class:`PowerReading` and returns it as a dict.
"""

from __future__ import annotations

import logging
import math
import threading
from typing import Any, Mapping

from hubagent.devicekit import HealthReporter
from hubagent.errors import InputError
from hubagent.events import EventSink, Health, PowerReading
from hubagent.ports import DeviceEnv
from hubagent.power.settings import SimPowerSettings

log = logging.getLogger(__name__)

ROLE = "power"
_FLAGS = {"mains": ("OL",), "battery": ("OB",), "low": ("OB", "LB")}
_LIMITS = {"charge": (0.0, 100.0), "runtime": (0.0, 1_000_000.0)}


def _figure(args: Mapping[str, Any], key: str) -> float | None:
    """An optional numeric argument, validated; InputError when it is not a number in range."""
    if key not in args or args[key] is None:
        return None
    raw = args[key]
    try:
        if isinstance(raw, bool):
            raise ValueError
        value = float(raw)
    except (TypeError, ValueError):
        raise InputError("bad_argument", f"{key} must be a number, got {raw!r}") from None
    lo, hi = _LIMITS[key]
    if not math.isfinite(value) or not lo <= value <= hi:
        raise InputError("bad_argument", f"{key} must be between {lo:g} and {hi:g}, got {raw!r}")
    return value


class SimPowerSource(HealthReporter):
    """PowerSource port with SimControl verbs (see module docstring)."""

    def __init__(self, name: str, settings: SimPowerSettings, env: DeviceEnv) -> None:
        self.name = name
        self._init_health(ROLE)
        self._settings = settings
        self._env = env
        self._lock = threading.Lock()
        self._current = self._make(("OL",), settings.charge, settings.runtime_s, reachable=True)

    def start(self, sink: EventSink) -> None:
        """Report health and the initial (mains) reading."""
        with self._lock:
            self._sink = sink
            current = self._current
        self._set_status(Health.OK, "simulated")
        self._emit(current)

    def close(self) -> None:
        """Stop delivering events. Idempotent; never raises."""
        with self._lock:
            self._sink = None

    def current(self) -> PowerReading:
        """The last reading this source produced."""
        with self._lock:
            return self._current

    def sim_command(self, verb: str, args: Mapping[str, Any]) -> dict[str, Any]:
        """Carry out ``verb``; InputError for an unknown verb or bad arguments."""
        unknown = set(args) - {"charge", "runtime"}
        if unknown:
            raise InputError("bad_argument", f"unknown argument(s): {', '.join(sorted(unknown))}")
        if verb == "unreachable":
            if args:
                raise InputError("bad_argument", "unreachable takes no arguments")
            reading = PowerReading(source=self.name, reachable=False, detail="simulated outage")
            health = Health.OFFLINE
        elif verb in _FLAGS:
            charge, runtime = _figure(args, "charge"), _figure(args, "runtime")
            s = self._settings
            if verb == "mains":
                charge = s.charge if charge is None else charge
                runtime = s.runtime_s if runtime is None else runtime
            else:  # keep the last known figures unless given
                charge = self._current.charge if charge is None else charge
                runtime = self._current.runtime if runtime is None else runtime
            reading = self._make(_FLAGS[verb], charge, runtime, reachable=True)
            health = Health.OK
        else:
            known = ", ".join(sorted([*_FLAGS, "unreachable"]))
            raise InputError("unknown_verb", f"unknown power verb {verb!r} (known: {known})")
        with self._lock:
            self._current = reading
        self._set_status(health, "simulated" if health is Health.OK else "simulated outage")
        self._emit(reading)
        return _as_dict(reading)

    def _make(
        self, flags: tuple[str, ...], charge: float | None, runtime: float | None, reachable: bool
    ) -> PowerReading:
        on_mains = "OL" in flags
        return PowerReading(
            source=self.name,
            reachable=reachable,
            flags=frozenset(flags),
            charge=charge,
            runtime=runtime,
            input_voltage=self._settings.input_voltage if on_mains else 0.0,
            load=20.0,
        )

def _as_dict(reading: PowerReading) -> dict[str, Any]:
    """A JSON-friendly view of a reading for the sim command's reply."""
    return {
        "source": reading.source,
        "reachable": reading.reachable,
        "flags": sorted(reading.flags),
        "charge": reading.charge,
        "runtime": reading.runtime,
        "input_voltage": reading.input_voltage,
        "load": reading.load,
    }
