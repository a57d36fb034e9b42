"""Locker bank on GPIO through gpiozero: lock relays out, door reed switches in.

Safe by construction: every lock output is created de-energised
(``initial_value=False``), is switched off again by ``release_all()`` and
``close()``, and a pulse is ended by the driver's own timer, so a lock is
never held on longer than its ``pulse_s`` even if the core stalls. Only one
pulse runs per bank at a time because the locks share a supply that browns
out on two solenoids at once.

Door inputs are debounced here, not by gpiozero's ``bounce_time``: that
ignores edges for a while after the first one, so chatter can leave it
reporting the wrong final position. Instead every edge restarts a settle
timer and the level is read once it has been steady for ``debounce_s``.
"""

from __future__ import annotations

import enum
import logging
import math
import threading
import time
from collections.abc import Mapping
from typing import Any, Callable

import msgspec

from hubagent.devicekit import emit_safely
from hubagent.errors import BankBusy, DeviceError, DeviceUnavailable, InputError
from hubagent.events import DeviceHealthChanged, DeviceStatus, DoorChanged, Event, EventSink, Health
from hubagent.lockers.settings import CompartmentSettings, GpioLockerSettings, normalise_pin
from hubagent.ports import CompartmentInfo, DeviceEnv

log = logging.getLogger(__name__)

ROLE = "lockers"

_FACTORIES = {
    "lgpio": ("gpiozero.pins.lgpio", "LGPIOFactory"),
    "rpigpio": ("gpiozero.pins.rpigpio", "RPiGPIOFactory"),
    "native": ("gpiozero.pins.native", "NativeFactory"),
    "mock": ("gpiozero.pins.mock", "MockFactory"),
}


class BankState(enum.Enum):
    """Life cycle of a bank."""

    NEW = "new"
    RUNNING = "running"
    FAULTED = "faulted"  # pins could not be opened; retrying
    CLOSED = "closed"


def make_pin_factory(name: str) -> Any:
    """Construct the gpiozero pin factory called ``name`` (see ``_FACTORIES``)."""
    import importlib

    module, cls = _FACTORIES[name]
    return getattr(importlib.import_module(module), cls)()


class _Compartment(msgspec.Struct):
    """The open gpiozero devices of one compartment."""

    settings: CompartmentSettings
    lock: Any
    door: Any
    occupancy: Any | None

    def door_open(self) -> bool:
        return bool(self.door.pin.state) == (self.settings.door_open_when == "high")

    def occupied(self) -> bool | None:
        if self.occupancy is None:
            return None
        return bool(self.occupancy.pin.state) == (self.settings.occupied_when == "high")

    def close(self) -> None:
        for device in (self.lock, self.door, self.occupancy):
            if device is not None:
                _quietly(device.close)


class _Pulse(msgspec.Struct):
    compartment: str
    timer: threading.Timer


class _DoorMonitor:
    """One thread that settles door edges (a door open too long is the core's timer)."""

    def __init__(self, bank: str, doors: dict[str, _Compartment], emit: Callable[[Event], None]) -> None:
        self._bank = bank
        self._doors = doors
        self._emit = emit
        self._cond = threading.Condition()
        self._settle: dict[str, float] = {}
        self._open = {name: c.door_open() for name, c in doors.items()}
        self._stopped = False
        self._thread = threading.Thread(target=self._run, name=f"doors-{bank}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        with self._cond:
            self._stopped = True
            self._cond.notify()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout=2.0)

    def edge(self, compartment: str) -> None:
        """A door input changed level: (re)start its settle time."""
        with self._cond:
            if not self._stopped:
                debounce = self._doors[compartment].settings.debounce_s
                self._settle[compartment] = time.monotonic() + debounce
                self._cond.notify()

    def is_open(self, compartment: str) -> bool:
        with self._cond:
            return self._open[compartment]

    def open_count(self) -> int:
        with self._cond:
            return sum(self._open.values())

    def _run(self) -> None:
        while True:
            with self._cond:
                due = self._wait_for_due()
                if due is None:
                    return
            for name in due:
                self._settled(name)

    def _wait_for_due(self) -> list[str] | None:
        # Called with the condition held; blocks until something is due or stop.
        while not self._stopped:
            now = time.monotonic()
            deadlines = list(self._settle.values())
            if deadlines and min(deadlines) <= now:
                settled = [n for n, t in self._settle.items() if t <= now]
                for name in settled:
                    del self._settle[name]
                return settled
            self._cond.wait(min(deadlines) - now if deadlines else None)
        return None

    def _settled(self, name: str) -> None:
        try:
            is_open = self._doors[name].door_open()
        except Exception:  # pin closed under us during shutdown
            log.debug("door %s unreadable", name, exc_info=True)
            return
        with self._cond:
            if self._open[name] == is_open or self._stopped:
                return
            self._open[name] = is_open
        self._emit(DoorChanged(self._bank, name, is_open))


class GpioLockerBank:
    """A :class:`~hubagent.ports.LockerBank` on gpiozero pins.

    ``pin_factory`` overrides the configured factory (the simulator passes
    its own MockFactory); a factory passed in is not closed by the bank.
    """

    def __init__(self, name: str, settings: GpioLockerSettings, env: DeviceEnv, *,
                 pin_factory: Any | None = None) -> None:
        """Remember the configuration; opens nothing."""
        self.name = name
        self.settings = settings
        self.env = env
        self._given_factory = pin_factory
        self._owned_factory: Any | None = None
        self._lock = threading.Lock()
        self._state = BankState.NEW
        self._detail = "not started"
        self._sink: EventSink | None = None
        self._comps: dict[str, _Compartment] = {}
        self._monitor: _DoorMonitor | None = None
        self._pulse: _Pulse | None = None
        self._stop = threading.Event()
        self._retry: threading.Thread | None = None
        self._layout = {name: CompartmentInfo(cs.size, cs.pulse_s, settings.door_open_limit_s,
                                              chilled=cs.chilled)
                        for name, cs in settings.compartments.items()}

    # -- life cycle -------------------------------------------------------

    def start(self, sink: EventSink) -> None:
        """Open the pins (locks off) and start reporting doors; retries if the pins fail."""
        with self._lock:
            if self._state is not BankState.NEW:
                raise DeviceError(f"locker bank {self.name} already started")
            self._sink = sink
        if not self._try_open():
            self._retry = threading.Thread(target=self._retry_loop, name=f"bank-retry-{self.name}",
                                           daemon=True)
            self._retry.start()

    def close(self) -> None:
        """De-energise every lock, stop the door thread, release the pins. Never raises."""
        self._stop.set()
        with self._lock:
            if self._state is BankState.CLOSED:
                return
            self._state, self._detail = BankState.CLOSED, "closed"
            _, stuck = self._release_locked()
            comps, self._comps = self._comps, {}
            monitor, self._monitor = self._monitor, None
        if stuck:
            log.error("bank %s: lock %s would not de-energise on close", self.name, ", ".join(stuck))
        if monitor is not None:
            monitor.stop()
        for comp in comps.values():
            comp.close()
        if self._owned_factory is not None:
            _quietly(self._owned_factory.close)
            self._owned_factory = None

    def status(self) -> DeviceStatus:
        """OK with open doors and a running pulse in the detail, FAULTED while pins fail."""
        with self._lock:
            state, detail, monitor, pulse = self._state, self._detail, self._monitor, self._pulse
        if state is BankState.RUNNING and monitor is not None:
            detail = f"{len(self._comps)} compartments, {monitor.open_count()} open"
            if pulse is not None:
                detail += f", pulsing {pulse.compartment}"
            return DeviceStatus(Health.OK, detail)
        health = {BankState.NEW: Health.UNKNOWN, BankState.FAULTED: Health.FAULTED,
                  BankState.CLOSED: Health.OFFLINE}.get(state, Health.UNKNOWN)
        return DeviceStatus(health, detail)

    # -- LockerBank -------------------------------------------------------

    def layout(self) -> Mapping[str, CompartmentInfo]:
        """Size, longest pulse (``pulse_s``) and door-open limit per compartment, in configuration order."""
        return self._layout

    def compartments(self) -> list[str]:
        """Names of the compartments in this bank, in configuration order."""
        return list(self.settings.compartments)

    def pulse(self, compartment: str, seconds: float) -> None:
        """Energise one lock for ``min(seconds, pulse_s)``; BankBusy if a pulse runs."""
        duration = self._pulse_length(compartment, seconds)
        with self._lock:
            comp = self._compartment(compartment)
            if self._state is not BankState.RUNNING:
                raise DeviceUnavailable(f"locker bank {self.name} is {self._state.value}: {self._detail}")
            if self._pulse is not None:
                raise BankBusy(self.name, self._pulse.compartment)
            pulse = _Pulse(compartment, threading.Timer(duration, self._end_pulse))
            pulse.timer.daemon = True
            pulse.timer.name = f"pulse-{self.name}-{compartment}"
            try:
                comp.lock.on()
            except Exception as e:
                _quietly(comp.lock.off)
                raise DeviceError(f"cannot energise lock {compartment}: {e}") from e
            self._pulse = pulse
            pulse.timer.start()
        log.info("bank %s: lock %s energised for %.2f s", self.name, compartment, duration)
        self._lock_changed(compartment, True)

    def release_all(self) -> None:
        """De-energise every lock output now and cancel a running pulse."""
        with self._lock:
            was, stuck = self._release_locked()
        self._after_release(was, stuck)

    def door_open(self, compartment: str) -> bool:
        """Debounced door position (as last reported in a DoorChanged)."""
        with self._lock:
            self._compartment(compartment)
            monitor = self._monitor
        assert monitor is not None
        return monitor.is_open(compartment)

    def energised(self, compartment: str) -> bool:
        """Whether the lock output is active right now."""
        with self._lock:
            return bool(self._compartment(compartment).lock.is_active)

    def occupied(self, compartment: str) -> bool | None:
        """Occupancy sensor reading, or None when the compartment has no sensor."""
        with self._lock:
            return self._compartment(compartment).occupied()

    # -- hooks for the simulator --------------------------------------------

    def _pins_opened(self) -> None:
        """Called once the pins exist, before door states are first read."""

    def _lock_changed(self, compartment: str, energised: bool) -> None:
        """Called (outside the bank lock) after a lock output was switched."""

    # -- internals --------------------------------------------------------

    def _pulse_length(self, compartment: str, seconds: float) -> float:
        comp = self.settings.compartments.get(compartment)
        if comp is None:
            raise InputError("unknown_compartment", f"bank {self.name} has no compartment {compartment!r}")
        if isinstance(seconds, bool) or not isinstance(seconds, int | float) \
                or not math.isfinite(seconds) or seconds <= 0:
            raise InputError("bad_pulse", f"pulse length must be a positive number, not {seconds!r}")
        return min(float(seconds), comp.pulse_s)

    def _compartment(self, compartment: str) -> _Compartment:
        # Called with self._lock held. Readable whenever the pins are open,
        # even on a faulted bank (a stuck lock's door still reports).
        if compartment not in self.settings.compartments:
            raise InputError("unknown_compartment", f"bank {self.name} has no compartment {compartment!r}")
        comp = self._comps.get(compartment)
        if comp is None:
            raise DeviceUnavailable(f"locker bank {self.name} is {self._state.value}: {self._detail}")
        return comp

    def _end_pulse(self) -> None:
        with self._lock:
            pulse, self._pulse = self._pulse, None
            if pulse is None:
                return
            comp = self._comps.get(pulse.compartment)
            stuck = [] if comp is None or _switch_off(comp) else [pulse.compartment]
        self._after_release(pulse.compartment, stuck)

    def _release_locked(self) -> tuple[str | None, list[str]]:
        # Called with self._lock held: every output off, pulse cancelled.
        pulse, self._pulse = self._pulse, None
        if pulse is not None:
            pulse.timer.cancel()
        stuck = [name for name, comp in self._comps.items() if not _switch_off(comp)]
        return (pulse.compartment if pulse is not None else None), stuck

    def _after_release(self, released: str | None, stuck: list[str]) -> None:
        # Outside the lock. A lock that will not switch off burns out and leaves
        # its door free: fault the bank so nothing else is pulsed, and say so.
        if stuck:
            self._set_health(BankState.FAULTED, f"cannot de-energise lock {', '.join(stuck)}")
        elif self._state is BankState.FAULTED and self._comps:
            self._set_health(BankState.RUNNING, "")  # every lock is off again (release_all)
        if released is not None:
            log.info("bank %s: lock %s released", self.name, released)
            self._lock_changed(released, False)

    def _try_open(self) -> bool:
        try:
            comps = self._open_pins()
        except DeviceError as e:
            self._set_health(BankState.FAULTED, str(e))
            return False
        with self._lock:
            if self._state is BankState.CLOSED:
                closing = True
            else:
                closing = False
                self._comps = comps
                self._pins_opened()
                self._monitor = _DoorMonitor(self.name, comps, self._emit)
                for name, comp in comps.items():
                    comp.door.when_activated = comp.door.when_deactivated = self._edge_callback(name)
                self._monitor.start()
        if closing:
            for comp in comps.values():
                comp.close()
            return True
        self._set_health(BankState.RUNNING, "")
        return True

    def _open_pins(self) -> dict[str, _Compartment]:
        comps: dict[str, _Compartment] = {}
        try:
            from gpiozero import DigitalInputDevice, DigitalOutputDevice

            factory = self._factory()
            for name, cs in self.settings.compartments.items():
                lock = DigitalOutputDevice(normalise_pin(cs.lock_pin), active_high=cs.lock_active_high,
                                           initial_value=False, pin_factory=factory)
                comps[name] = _Compartment(cs, lock, None, None)
                comps[name].door = DigitalInputDevice(normalise_pin(cs.door_pin), pull_up=cs.door_pull_up,
                                                      pin_factory=factory)
                if cs.occupancy_pin is not None:
                    comps[name].occupancy = DigitalInputDevice(normalise_pin(cs.occupancy_pin),
                                                               pull_up=True, pin_factory=factory)
        except Exception as e:
            for comp in comps.values():
                comp.close()
            raise DeviceError(f"cannot open the pins of bank {self.name}: {e}") from e
        return comps

    def _factory(self) -> Any:
        if self._given_factory is not None:
            return self._given_factory
        if self.settings.pin_factory is None:
            return None  # gpiozero's default factory
        if self._owned_factory is None:
            self._owned_factory = make_pin_factory(self.settings.pin_factory)
        return self._owned_factory

    def _retry_loop(self) -> None:
        while not self._stop.wait(self.settings.retry_s):
            if self._try_open():
                return

    def _edge_callback(self, compartment: str) -> Callable[[], None]:
        def on_edge() -> None:
            # gpiozero's callback thread: only arm the settle timer.
            try:
                monitor = self._monitor
                if monitor is not None:
                    monitor.edge(compartment)
            except Exception:
                log.exception("bank %s: door edge on %s", self.name, compartment)
        return on_edge

    def _set_health(self, state: BankState, detail: str) -> None:
        with self._lock:
            if self._state is BankState.CLOSED or (self._state, self._detail) == (state, detail):
                return
            self._state, self._detail = state, detail
        if state is BankState.FAULTED:
            log.error("locker bank %s: %s", self.name, detail)
        self._emit(DeviceHealthChanged(ROLE, self.name, self.status()))

    def _emit(self, event: Event) -> None:
        emit_safely(self._sink, event, f"bank {self.name}")


def _switch_off(comp: _Compartment) -> bool:
    """De-energise one lock output; False (logged) if the pin refused."""
    try:
        comp.lock.off()
    except Exception:
        log.exception("lock output %s refused to switch off", comp.settings.lock_pin)
        return False
    return True


def _quietly(action: Callable[[], object]) -> None:
    """Run a release action; log and swallow failures (used on safety paths)."""
    try:
        action()
    except Exception:
        log.warning("release action failed", exc_info=True)
