"""A scripted UPS: the ``sim`` power source, driven by ``hubagent sim power``.

Typed verbs, each emitting one :class:`PowerReading` and returning it:

* :meth:`SimPowerSource.mains` — back on line power (``OL``), charge and
  runtime back to the configured values unless given;
* :meth:`SimPowerSource.mains_lost` — on battery (``OB``), optional
  ``charge`` (percent) and ``runtime`` (seconds);
* :meth:`SimPowerSource.battery_low` — on battery with the low-battery flag
  (``OB LB``), same options;
* :meth:`SimPowerSource.unreachable` — the UPS cannot be read (like a
  stopped upsd).

``sim_command`` maps the command-line verbs ``mains``, ``battery``, ``low``
and ``unreachable`` onto them and returns the reading as a dict.
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
    """An optional numeric argument from the command line (numbers may come as strings)."""
    if key not in args or args[key] is None:
        return None
    raw = args[key]
    try:
        if isinstance(raw, bool):
            raise ValueError
        value = float(raw)
    except (TypeError, ValueError):
        raise InputError("bad_argument", f"{key} must be a number, got {raw!r}") from None
    return _checked(key, value)


def _checked(key: str, value: float | None) -> float | None:
    """``value`` if it is None or a finite number in range; InputError otherwise."""
    if value is None:
        return None
    lo, hi = _LIMITS[key]
    if isinstance(value, bool) or not isinstance(value, int | float) \
            or not math.isfinite(value) or not lo <= value <= hi:
        raise InputError("bad_argument", f"{key} must be between {lo:g} and {hi:g}, got {value!r}")
    return float(value)


class SimPowerSource(HealthReporter):
    """PowerSource port with typed test verbs (see module docstring)."""

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

    # -- typed test verbs -------------------------------------------------------

    def mains(self, charge: float | None = None, runtime: float | None = None) -> PowerReading:
        """Back on line power (``OL``); charge and runtime back to the configured values unless given."""
        s = self._settings
        return self._on(("OL",), s.charge if charge is None else charge,
                        s.runtime_s if runtime is None else runtime)

    def mains_lost(self, charge: float | None = None, runtime: float | None = None) -> PowerReading:
        """On battery (``OB``); the last known figures unless given."""
        return self._on(("OB",), charge, runtime)

    def battery_low(self, charge: float | None = None, runtime: float | None = None) -> PowerReading:
        """On battery with the low-battery flag (``OB LB``); the last known figures unless given."""
        return self._on(("OB", "LB"), charge, runtime)

    def unreachable(self) -> PowerReading:
        """The UPS cannot be read (like a stopped upsd): OFFLINE and one unreachable reading."""
        reading = PowerReading(source=self.name, reachable=False, detail="simulated outage")
        self._deliver(reading, Health.OFFLINE, "simulated outage")
        return reading

    # -- the ``hubagent sim power`` adapter ------------------------------------

    def sim_command(self, verb: str, args: Mapping[str, Any]) -> dict[str, Any]:
        """Map ``mains``/``battery``/``low``/``unreachable`` onto the typed verbs."""
        unknown = set(args) - {"charge", "runtime"}
        if unknown:
            raise InputError("bad_argument", f"unknown argument(s): {', '.join(sorted(unknown))}")
        verbs = {"mains": self.mains, "battery": self.mains_lost, "low": self.battery_low}
        if verb == "unreachable":
            if args:
                raise InputError("bad_argument", "unreachable takes no arguments")
            return _as_dict(self.unreachable())
        if verb not in verbs:
            known = ", ".join(sorted([*verbs, "unreachable"]))
            raise InputError("unknown_verb", f"unknown power verb {verb!r} (known: {known})")
        return _as_dict(verbs[verb](_figure(args, "charge"), _figure(args, "runtime")))

    def _on(self, flags: tuple[str, ...], charge: float | None, runtime: float | None) -> PowerReading:
        """Deliver a reachable reading with ``flags``; None figures keep the last known ones."""
        charge = _checked("charge", charge)
        runtime = _checked("runtime", runtime)
        with self._lock:
            last = self._current
        reading = self._make(flags, last.charge if charge is None else charge,
                             last.runtime if runtime is None else runtime, reachable=True)
        self._deliver(reading, Health.OK, "simulated")
        return reading

    def _deliver(self, reading: PowerReading, health: Health, detail: str) -> None:
        with self._lock:
            self._current = reading
        self._set_status(health, detail)
        self._emit(reading)

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
