"""The staff registry: who central registered, and checks of codes, badges and PINs.

Central registers each staff member with ``staff.set`` (a keypad code, a
badge, a PIN, an expiry) and revokes them. Nothing here is stored as given:
codes and PINs are keyed hashes exactly as locker codes are
(:func:`hubagent.lockers.codes.hash_code`, purposes ``staff`` and
``staff_pin``), and a badge's identifier is keyed-hashed too (purpose
``staff_badge``), so a copied database shows neither who holds which badge
nor how to print one.

Every check is against the registry at the moment of use: a revoked or
expired member is nobody, whether a badge, a code or a sign-in from earlier
names them. Checks compare in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from datetime import datetime
from typing import Any, Callable, Protocol

import msgspec

from hubagent.errors import InputError
from hubagent.lockers import codes

CODE_PURPOSE = "staff"
"""Purpose of a staff keypad code's hash (unchanged from before the registry)."""
PIN_PURPOSE = "staff_pin"
"""Purpose of a staff PIN's hash."""
BADGE_PURPOSE = "staff_badge"
"""Purpose of a badge identifier's hash."""

BADGE_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,39}$")
"""What ``HA:STAFF:<badge>`` may carry (as the scan-code rules)."""

_HASH = re.compile(r"^[0-9a-f]{64}$")


class Reader(Protocol):
    """A connection or transaction that can run a query."""

    def execute(self, sql: str, params: Any = ...) -> Any:
        """Run ``sql``."""
        ...


class Member(msgspec.Struct, frozen=True):
    """A registered staff member who may act right now."""

    id: str
    has_pin: bool


def badge_hash(secret: bytes, badge: str) -> str:
    """Hex HMAC-SHA256 of a badge identifier (``staff_badge`` + NUL + badge).

    Raises ``InputError("bad_badge")`` unless ``badge`` is 1-40 letters,
    digits, ``.``, ``_`` or ``-`` starting with a letter or digit.
    """
    if not isinstance(badge, str) or not BADGE_PATTERN.match(badge):
        raise InputError("bad_badge", "a badge is 1-40 letters, digits, '.', '_' or '-'")
    message = BADGE_PURPOSE.encode("ascii") + b"\x00" + badge.encode("ascii")
    return hmac.new(secret, message, hashlib.sha256).hexdigest()


def is_hash(value: str) -> bool:
    """Whether ``value`` looks like a stored hash (64 lower-case hex digits)."""
    return bool(_HASH.match(value))


class StaffRegistry:
    """Looks staff up by code, badge and PIN (see the module docstring).

    ``secret_loader`` returns the per-hub code secret (called once, on
    :meth:`start`); ``wall`` the wall clock, which counts for expiry only
    while it reads ``min_sane_year`` or later (a Pi without RTC boots in 1970).
    """

    def __init__(self, secret_loader: Callable[[], bytes], wall: Callable[[], datetime],
                 min_sane_year: int) -> None:
        """Keep the loaders; nothing is read until :meth:`start`."""
        self._load_secret = secret_loader
        self.wall = wall
        self.min_sane_year = min_sane_year
        self.secret: bytes | None = None
        self.clash_checks: list[Callable[[Reader, str], bool]] = []
        """Other keypad code owners: ``check(db, code)`` is True if ``code`` is theirs."""

    def add_clash_check(self, check: Callable[[Reader, str], bool]) -> None:
        """Also refuse a staff code for which ``check(db, code)`` is true (another keypad code)."""
        self.clash_checks.append(check)

    def start(self) -> None:
        """Load the code secret."""
        self.secret = self._load_secret()

    def _secret(self) -> bytes:
        if self.secret is None:
            self.secret = self._load_secret()
        return self.secret

    # -- hashing -------------------------------------------------------------------
    def hash_code(self, code: str) -> str:
        """The stored form of a staff keypad code (normalised first; InputError if bad)."""
        return codes.hash_code(self._secret(), codes.normalise_code(code), CODE_PURPOSE)

    def hash_pin(self, pin: str) -> str:
        """The stored form of a PIN (4-12 digits; InputError ``bad_code`` if not)."""
        return codes.hash_code(self._secret(), codes.normalise_code(pin), PIN_PURPOSE)

    def hash_badge(self, badge: str) -> str:
        """The stored form of a badge identifier (InputError ``bad_badge`` if malformed)."""
        return badge_hash(self._secret(), badge)

    def code_in_use(self, db: Reader, code: str) -> bool:
        """Whether a live member's keypad code is ``code`` (normalised digits)."""
        mac = codes.hash_code(self._secret(), code, CODE_PURPOSE)
        row = db.execute("SELECT 1 FROM staff_members WHERE code_hash=? AND revoked_at IS NULL",
                         (mac,)).fetchone()
        return row is not None

    # -- lookups ---------------------------------------------------------------------
    def _sane(self) -> bool:
        return self.wall().year >= self.min_sane_year

    def _expired(self, expires_at: str | None) -> bool:
        if not expires_at or not self._sane():
            return False
        try:
            when = datetime.fromisoformat(expires_at.replace("Z", "+00:00"))
        except ValueError:
            return False
        return when <= self.wall()

    def member(self, db: Reader, staff: str | None) -> Member | None:
        """``staff`` if registered, not revoked and not expired; else None."""
        if not staff:
            return None
        row = db.execute("SELECT id, pin_hash, expires_at FROM staff_members "
                         "WHERE id=? AND revoked_at IS NULL", (staff,)).fetchone()
        if row is None or self._expired(row[2]):
            return None
        return Member(str(row[0]), row[1] is not None)

    def by_badge(self, db: Reader, badge: str) -> Member | None:
        """The live member holding ``badge``; None for an unknown, revoked or expired one."""
        try:
            mac = self.hash_badge(badge)
        except InputError:
            return None
        row = db.execute("SELECT id FROM staff_members WHERE badge_hash=? AND revoked_at IS NULL",
                         (mac,)).fetchone()
        return self.member(db, str(row[0])) if row is not None else None

    def pin_matches(self, db: Reader, staff: str, pin: str) -> bool:
        """Whether ``pin`` is the PIN of live member ``staff`` (constant-time compare)."""
        row = db.execute("SELECT pin_hash, expires_at FROM staff_members WHERE id=? AND revoked_at IS NULL",
                         (staff,)).fetchone()
        stored = str(row[0]) if row is not None and row[0] is not None else "0" * 64
        ok = codes.verify(self._secret(), pin, PIN_PURPOSE, stored)
        return ok and row is not None and row[0] is not None and not self._expired(row[1])

    def live_codes(self, db: Reader) -> list[dict[str, Any]]:
        """Every live member's keypad code hash: ``id`` (None), ``hash``, ``ref`` (staff), ``expires_at``.

        Shaped like the locker desk's code rows so one compare loop checks
        pickup, return and staff codes alike; expired rows are included so
        the desk can say ``expired`` rather than ``wrong``.
        """
        rows = db.execute("SELECT id, code_hash, expires_at FROM staff_members "
                          "WHERE revoked_at IS NULL AND code_hash IS NOT NULL ORDER BY id").fetchall()
        return [{"id": None, "hash": str(r[1]), "ref": str(r[0]), "expires_at": r[2]} for r in rows]

    def by_code(self, db: Reader, code: str) -> tuple[Member | None, str]:
        """The live member whose keypad code is ``code``, or None and why (wrong/expired/malformed)."""
        try:
            mac = self.hash_code(code)
        except InputError:
            return None, "malformed"
        found: dict[str, Any] | None = None
        for row in self.live_codes(db):
            # No early exit: every live code is compared, match or not.
            if hmac.compare_digest(mac, row["hash"]) and found is None:
                found = row
        if found is None:
            return None, "wrong"
        member = self.member(db, found["ref"])
        return (member, "") if member is not None else (None, "expired")

    def count(self, db: Reader) -> int:
        """Staff members registered and not revoked."""
        return int(db.execute("SELECT COUNT(*) FROM staff_members WHERE revoked_at IS NULL").fetchone()[0])
