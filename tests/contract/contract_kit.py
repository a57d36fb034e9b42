"""Shared pieces of the contract suite: the event sink, waits and hardware rows.

A contract test takes a *rig*: one implementation of a port (a simulator or
a real driver) together with the world around it (a pseudo-terminal, mock
pins, a NUT server, a printer socket) and verbs to act on that world. Each
role's fixture is parametrised over its rigs, so every test runs once per
implementation, and what is checked is what the core or a person would see:
events, health, errors, output levels, printed bytes.

Rows that need real hardware are skipped unless the environment variable
named in :data:`HARDWARE` is set (see ``tests/contract/README.md``).
"""

from __future__ import annotations

import os
import queue
import time
from collections.abc import Callable
from typing import Any

import pytest

from hubagent.events import DeviceHealthChanged, Event, Health
from hubproc import next_matching, wait_until

TIMEOUT = 10.0
"""Longest wait for an event a device owes us (generous: two cores shared by many)."""
QUIET = 0.4
"""How long "nothing more arrives" is watched for after close (many device poll periods)."""

HARDWARE = {
    "serial": "HUBAGENT_CONTRACT_SERIAL",
    "serial_peer": "HUBAGENT_CONTRACT_SERIAL_PEER",
    "gpio": "HUBAGENT_CONTRACT_GPIO",
    "locker_pins": "HUBAGENT_CONTRACT_LOCKER_PINS",
    "feedback_pins": "HUBAGENT_CONTRACT_FEEDBACK_PINS",
    "power_pins": "HUBAGENT_CONTRACT_POWER_PINS",
    "uinput": "HUBAGENT_CONTRACT_UINPUT",
    "nut": "HUBAGENT_CONTRACT_NUT",
    "escpos": "HUBAGENT_CONTRACT_ESCPOS",
    "zpl": "HUBAGENT_CONTRACT_ZPL",
}
"""Environment variables that name real devices, by what they name."""


def hardware_row(row: str, *needs: str) -> Any:
    """A ``pytest.param`` for ``row`` that is skipped unless every variable in ``needs`` is set."""
    names = [HARDWARE[n] for n in needs]
    missing = [n for n in names if not os.environ.get(n)]
    return pytest.param(row, marks=pytest.mark.skipif(
        bool(missing), reason=f"real hardware row: set {', '.join(missing)}"))


def env_value(need: str) -> str:
    """The value of a hardware variable (the row is only built when it is set)."""
    return os.environ[HARDWARE[need]]


def pins(spec: str) -> list[list[int]]:
    """``"5,6;12,13"`` as ``[[5, 6], [12, 13]]`` (BCM numbers, one group per compartment/output)."""
    return [[int(p) for p in group.split(",")] for group in spec.split(";") if group.strip()]


class Events:
    """A thread-safe sink the test thread waits on; every event taken is kept in ``seen``."""

    def __init__(self) -> None:
        self.q: queue.Queue[Event] = queue.Queue()
        self.seen: list[Event] = []

    def __call__(self, event: Event) -> None:
        self.q.put(event)

    def next(self, match: Callable[[Event], bool], what: str, timeout: float = TIMEOUT) -> Any:
        """The next event for which ``match`` is true (others are skipped into ``seen``)."""
        return next_matching(self.q, match, timeout, lambda: f"{what} (saw {self.seen[-6:]})",
                             seen=self.seen)

    def of(self, kind: type, what: str = "", timeout: float = TIMEOUT) -> Any:
        """The next event of type ``kind``."""
        return self.next(lambda e: isinstance(e, kind), what or kind.__name__, timeout)

    def health(self, *healths: Health) -> DeviceHealthChanged:
        """The next health change to one of ``healths``."""
        wanted = set(healths)
        event: DeviceHealthChanged = self.next(
            lambda e: isinstance(e, DeviceHealthChanged) and e.status.health in wanted,
            f"health {'/'.join(h.value for h in healths)}")
        return event

    def none(self, match: Callable[[Event], bool], what: str, watch: float = QUIET) -> None:
        """Fail if an event matching ``match`` arrives within ``watch`` seconds."""
        try:
            event = next_matching(self.q, match, watch, what)
        except AssertionError:
            return
        raise AssertionError(f"unexpected {what}: {event!r}")


def until(predicate: Callable[[], Any], what: str, timeout: float = TIMEOUT) -> Any:
    """Wait (10 ms polls) for ``predicate`` to hold; its value."""
    return wait_until(predicate, timeout, what, interval=0.01)


def holds(predicate: Callable[[], Any], what: str, watch: float = QUIET) -> None:
    """Fail as soon as ``predicate`` stops holding within ``watch`` seconds (10 ms polls).

    For "nothing happens after close": a device thread that was not stopped
    would act well within ``watch``.
    """
    deadline = time.monotonic() + watch
    while time.monotonic() < deadline:
        assert predicate(), f"{what} stopped holding"
        time.sleep(0.01)
    assert predicate(), f"{what} stopped holding"
