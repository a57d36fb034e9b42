"""Simulated locker bank: the real GPIO driver on gpiozero MockFactory pins.

Everything the core sees (pulse timing, busy refusal, debounce, events) is
:class:`~hubagent.drivers.gpio_lockers.GpioLockerBank` itself; this module
only adds the world outside the pins: a door springs ajar shortly after its
lock is energised (unless jammed), and typed verbs
(:meth:`SimLockerBank.open_door`, ``close_door``, ``jam``, ``set_occupied``...)
play the person at the locker; ``sim_command`` maps the ``hubagent sim door``
command line onto them. Each bank gets its own MockFactory, never gpiozero's
global default, so banks and tests never share pin reservations.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from hubagent.drivers.gpio_lockers import GpioLockerBank
from hubagent.errors import CommandError, InputError
from hubagent.lockers.settings import GpioLockerSettings, normalise_pin
from hubagent.ports import DeviceEnv

log = logging.getLogger(__name__)

SPRING_DELAY_S = 0.05
"""How long after the lock is energised the door springs ajar."""
UNLATCHED_FOR_S = 5.0
"""A door pulled open this soon after its lock was released is not forced."""


class SimLockerBank(GpioLockerBank):
    """:class:`GpioLockerBank` on private mock pins, with door physics.

    Typed verbs: :meth:`open_door` (a person pulls the door; forced if the
    lock was not just released), :meth:`close_door`, :meth:`jam` /
    :meth:`unjam` (the lock does not release: the door never springs),
    :meth:`set_occupied` and :meth:`compartment_state`. Command-line verbs
    (every one takes ``{"compartment": name}``): ``open``, ``close``, ``jam``,
    ``unjam``, ``occupancy`` (with ``"occupied": bool``) and ``state``.
    """

    def __init__(self, name: str, settings: GpioLockerSettings, env: DeviceEnv) -> None:
        """Create the bank's own MockFactory; opens nothing."""
        from gpiozero.pins.mock import MockFactory

        self._mock = MockFactory()
        super().__init__(name, settings, env, pin_factory=self._mock)
        self._physics = threading.Lock()
        self._jammed: set[str] = set()
        self._released_at: dict[str, float] = {}
        self._timers: list[threading.Timer] = []
        self._closed = False

    def close(self) -> None:
        """Stop the physics, close the bank, drop the mock pins. Never raises."""
        with self._physics:
            self._closed = True
            timers, self._timers = self._timers, []
        for timer in timers:
            timer.cancel()
        super().close()
        try:
            self._mock.close()
        except Exception:
            log.warning("closing mock pins of %s failed", self.name, exc_info=True)

    @property
    def mock_pins(self) -> Any:
        """The bank's private MockFactory: the simulated wiring, where tests watch the lock outputs."""
        return self._mock

    # -- typed test verbs: the person at the locker -----------------------------

    def open_door(self, compartment: str) -> bool:
        """A person pulls the door open; True when it was forced (its lock was not just released)."""
        self._running(compartment)
        with self._physics:
            released = self._released_at.get(compartment)
            unlatched = (compartment not in self._jammed and released is not None
                         and time.monotonic() - released <= UNLATCHED_FOR_S)
            forced = not (unlatched or self.energised(compartment) and compartment not in self._jammed)
            self._drive_door(compartment, is_open=True)
        if forced:
            log.info("sim bank %s: door %s forced open", self.name, compartment)
        return forced

    def close_door(self, compartment: str) -> None:
        """A person shuts the door; the latch catches."""
        self._running(compartment)
        with self._physics:
            self._released_at.pop(compartment, None)  # The latch catches as the door shuts.
            self._drive_door(compartment, is_open=False)

    def jam(self, compartment: str) -> None:
        """The lock stops releasing: an energised lock no longer springs the door."""
        self._running(compartment)
        with self._physics:
            self._jammed.add(compartment)

    def unjam(self, compartment: str) -> None:
        """The lock works again."""
        self._running(compartment)
        with self._physics:
            self._jammed.discard(compartment)

    def set_occupied(self, compartment: str, occupied: bool) -> None:
        """Put something in (True) or take it out (False) under the occupancy sensor."""
        self._running(compartment)
        if not isinstance(occupied, bool):
            raise InputError("bad_args", "occupancy needs \"occupied\": true or false")
        if self.settings.compartments[compartment].occupancy_pin is None:
            raise InputError("no_sensor", f"compartment {compartment} has no occupancy_pin")
        with self._physics:
            self._drive_occupancy(compartment, occupied=occupied)

    def compartment_state(self, compartment: str) -> dict[str, Any]:
        """Door open, lock energised, jammed and occupied, as the world sees them."""
        self._running(compartment)
        with self._physics:
            jammed = compartment in self._jammed
        return {"compartment": compartment, "door_open": self.door_open(compartment),
                "energised": self.energised(compartment), "jammed": jammed,
                "occupied": self.occupied(compartment)}

    def sim_state(self) -> dict[str, dict[str, Any]]:
        """Per compartment: door open, energised, jammed, occupied."""
        return {name: self.compartment_state(name) for name in list(self._comps)}

    # -- the ``hubagent sim door`` adapter -----------------------------------

    def sim_command(self, verb: str, args: Mapping[str, Any]) -> dict[str, Any]:
        """Map a command-line verb (``open``, ``close``, ``jam``, ``unjam``,
        ``occupancy``, ``state``, each with ``{"compartment": name}``) onto the
        typed verbs; InputError for an unknown verb or bad args."""
        if not isinstance(args, Mapping):
            raise InputError("bad_args", "arguments must be a mapping")
        verbs: dict[str, Callable[[str], dict[str, Any]]] = {
            "open": self._cmd_open, "close": self._cmd_close, "jam": self._cmd_jam,
            "unjam": self._cmd_unjam, "state": self.compartment_state,
            "occupancy": lambda comp: self._cmd_occupancy(comp, args.get("occupied"))}
        handler = verbs.get(verb)
        if handler is None:
            raise InputError("unknown_verb", f"locker sim verbs are {', '.join(sorted(verbs))}")
        compartment = args.get("compartment")
        if not isinstance(compartment, str):
            raise InputError("unknown_compartment", f"bank {self.name} has no compartment {compartment!r}")
        return handler(compartment)

    # -- physics ----------------------------------------------------------

    def _pins_opened(self) -> None:
        # The simulated world starts with every door shut and every compartment empty.
        for name in self.settings.compartments:
            self._drive_door(name, is_open=False)
            self._drive_occupancy(name, occupied=False)

    def _lock_changed(self, compartment: str, energised: bool) -> None:
        if not energised:
            return
        with self._physics:
            if self._closed or compartment in self._jammed:
                return
            self._released_at[compartment] = time.monotonic()
            timer = threading.Timer(SPRING_DELAY_S, self._spring_open, args=(compartment,))
            timer.daemon = True
            self._timers = [t for t in self._timers if t.is_alive()] + [timer]
        timer.start()

    def _spring_open(self, compartment: str) -> None:
        with self._physics:
            if self._closed or compartment in self._jammed:
                return
            self._drive_door(compartment, is_open=True)

    def _drive_door(self, compartment: str, *, is_open: bool) -> None:
        cs = self.settings.compartments[compartment]
        self._drive(cs.door_pin, high=is_open == (cs.door_open_when == "high"))

    def _drive_occupancy(self, compartment: str, *, occupied: bool) -> None:
        cs = self.settings.compartments[compartment]
        if cs.occupancy_pin is not None:
            self._drive(cs.occupancy_pin, high=occupied == (cs.occupied_when == "high"))

    def _drive(self, spec: int | str, *, high: bool) -> None:
        pin = self._mock.pin(normalise_pin(spec))
        if high:
            pin.drive_high()
        else:
            pin.drive_low()

    # -- command-line replies ---------------------------------------------

    def _running(self, compartment: str) -> None:
        """InputError for an unknown compartment, CommandError before the pins are open."""
        if compartment not in self.settings.compartments:
            raise InputError("unknown_compartment", f"bank {self.name} has no compartment {compartment!r}")
        if self._comps.get(compartment) is None:
            raise CommandError("not_started", f"locker bank {self.name} is not running")

    def _cmd_open(self, compartment: str) -> dict[str, Any]:
        return {"compartment": compartment, "forced": self.open_door(compartment)}

    def _cmd_close(self, compartment: str) -> dict[str, Any]:
        self.close_door(compartment)
        return {"compartment": compartment}

    def _cmd_jam(self, compartment: str) -> dict[str, Any]:
        self.jam(compartment)
        return {"compartment": compartment, "jammed": True}

    def _cmd_unjam(self, compartment: str) -> dict[str, Any]:
        self.unjam(compartment)
        return {"compartment": compartment, "jammed": False}

    def _cmd_occupancy(self, compartment: str, occupied: object) -> dict[str, Any]:
        if not isinstance(occupied, bool):
            self._running(compartment)
            raise InputError("bad_args", "occupancy needs \"occupied\": true or false")
        self.set_occupied(compartment, occupied)
        return {"compartment": compartment, "occupied": occupied}
