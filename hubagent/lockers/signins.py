"""Who is signed in at a locker input: one small typed lookup.

A *station* is an input's name: a keypad and a scanner configured under
the same name (``[keypads.front]`` and ``[scanners.front]``) are one
station, so a courier who types a sign-in code on the keypad may then scan
parcels on the scanner beside it. Couriers sign in here
(:class:`CourierSessions`); staff sign in through the staff registry,
reached by a plain ``staff_for(station)`` function. :class:`WhoIsSignedIn`
answers for both, so a flow asks one question and gets a typed answer.
"""

from __future__ import annotations

import enum
from typing import Callable, Protocol

import msgspec


class Role(str, enum.Enum):
    """What a signed-in person may do at the lockers."""

    COURIER = "courier"
    STAFF = "staff"


class SignedIn(msgspec.Struct, frozen=True):
    """One person signed in at a station; ``carrier`` only for couriers."""

    role: Role
    person: str
    carrier: str | None = None


class SignInLookup(Protocol):
    """Answers "who is signed in on this input?"."""

    def signed_in(self, station: str) -> SignedIn | None:
        """The person signed in at ``station`` now, if any."""
        ...


class _Session(msgspec.Struct):
    courier: str
    carrier: str
    until: float


class CourierSessions:
    """Courier sign-ins per station, each ending ``idle_s`` after its last use.

    ``clock`` is monotonic (a sign-in never outlives its window because the
    wall clock jumped). ``still_valid(courier)`` is asked on every lookup, so
    a courier revoked or expired in the registry is signed out at once.
    """

    def __init__(self, idle_s: float, clock: Callable[[], float],
                 still_valid: Callable[[str], bool]) -> None:
        """Hold no sessions yet."""
        self.idle_s = idle_s
        self.clock = clock
        self.still_valid = still_valid
        self._sessions: dict[str, _Session] = {}

    def sign_in(self, station: str, courier: str, carrier: str) -> None:
        """Sign ``courier`` in at ``station`` (replacing whoever was there)."""
        self._sessions[station] = _Session(courier, carrier, self.clock() + self.idle_s)

    def sign_out(self, courier: str) -> list[str]:
        """End every session of ``courier``; the stations it was signed in at."""
        gone = [s for s, v in self._sessions.items() if v.courier == courier]
        for station in gone:
            del self._sessions[station]
        return gone

    def touch(self, station: str) -> None:
        """The courier at ``station`` did something: restart the idle window."""
        session = self._sessions.get(station)
        if session is not None:
            session.until = self.clock() + self.idle_s

    def signed_in(self, station: str) -> SignedIn | None:
        """The courier signed in at ``station``, if the session is live and the courier valid."""
        session = self._sessions.get(station)
        if session is None:
            return None
        if self.clock() >= session.until or not self.still_valid(session.courier):
            del self._sessions[station]
            return None
        return SignedIn(Role.COURIER, session.courier, session.carrier)

    def stations(self) -> dict[str, str]:
        """Live sessions: station -> courier (for status)."""
        return {s: who.person for s in list(self._sessions) if (who := self.signed_in(s)) is not None}


class WhoIsSignedIn:
    """Couriers first, then staff: the one lookup the locker flows use."""

    def __init__(self, couriers: CourierSessions, staff_for: Callable[[str], str | None]) -> None:
        """Combine the courier sessions with the staff registry's lookup."""
        self.couriers = couriers
        self.staff_for = staff_for

    def signed_in(self, station: str) -> SignedIn | None:
        """The courier or staff member signed in at ``station``, if any."""
        courier = self.couriers.signed_in(station)
        if courier is not None:
            return courier
        staff = self.staff_for(station)
        return SignedIn(Role.STAFF, staff) if staff else None
