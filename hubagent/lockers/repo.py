"""Rows of the locker tables: small read and write helpers.

Writes take a :class:`~hubagent.store.store.Tx` (they run inside the
caller's transaction); reads take anything with ``execute`` (a Tx, or the
store's connection), so a flow reads what its own transaction wrote.
Nothing here knows about hardware or timers.
"""

from __future__ import annotations

import sqlite3
from datetime import datetime, timezone
from typing import Any, Iterable, Mapping

from hubagent.errors import CommandError
from hubagent.store.store import Reader, Tx, dumps, rows

SIZES = ("S", "M", "L")
"""Compartment sizes, smallest first; a parcel fits its size or any larger one."""

_COMPARTMENT_FIELDS = frozenset({"state", "prior", "item_kind", "item_id", "release_id", "release_ref",
                                 "released_at", "door_moved", "fault", "size"})


def one(db: Reader, sql: str, params: Any = ()) -> dict[str, Any] | None:
    """The first row of a query, or None."""
    found = rows(db, sql, params)
    return found[0] if found else None


# -- time -------------------------------------------------------------------

def parse_time(value: str, what: str = "expires_at") -> datetime:
    """An RFC 3339 timestamp as an aware UTC datetime; CommandError if it is not one."""
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    except (ValueError, AttributeError):
        raise CommandError("bad_args", f"{what} must be an RFC 3339 timestamp, not {value!r}") from None
    if parsed.tzinfo is None:
        raise CommandError("bad_args", f"{what} needs a time zone (e.g. a trailing Z)")
    return parsed.astimezone(timezone.utc)


def format_time(value: datetime) -> str:
    """RFC 3339 UTC with milliseconds, as :attr:`Tx.now <hubagent.store.store.Tx.now>` is written."""
    value = value.astimezone(timezone.utc)
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"



def future_time(value: str | None, now: datetime | None) -> str | None:
    """An ``expires_at`` argument, normalised; CommandError if it is already past.

    ``now`` is None while the wall clock cannot be trusted: then nothing is
    judged past (a real expiry must not be refused on a clock in 1970).
    """
    if value is None:
        return None
    when = parse_time(value)
    if now is not None and when <= now:
        raise CommandError("bad_args", f"expires_at {value} is already past")
    return format_time(when)

def is_past(expires_at: str | None, now: datetime) -> bool:
    """Whether a stored ``expires_at`` lies before ``now`` (None never expires)."""
    if not expires_at:
        return False
    try:
        return parse_time(expires_at) <= now
    except CommandError:
        return False  # a stored value we cannot read never expires anything by itself


# -- audit ------------------------------------------------------------------

def audit(tx: Tx, kind: str, *, bank: str | None = None, compartment: str | None = None,
          ref: str | None = None, source: str | None = None, **detail: Any) -> int:
    """Append one audit row; its seq. Never pass a code in ``detail``."""
    cur = tx.execute(
        "INSERT INTO locker_audit(at, kind, bank, compartment, ref, source, detail) "
        "VALUES (?, ?, ?, ?, ?, ?, ?)",
        (tx.now, kind, bank, compartment, ref, source, dumps(detail)),
    )
    return int(cur.lastrowid or 0)


# -- compartments --------------------------------------------------------------

def sync_compartments(tx: Tx, banks: Mapping[str, Mapping[str, str]]) -> None:
    """Make sure every configured compartment has a row with its configured size."""
    now = tx.now
    for bank, comps in banks.items():
        for name, size in comps.items():
            tx.execute(
                "INSERT INTO locker_compartments(bank, compartment, size, updated_at) VALUES (?, ?, ?, ?) "
                "ON CONFLICT(bank, compartment) DO UPDATE SET size=excluded.size",
                (bank, name, size, now),
            )


def compartment(db: Reader, bank: str, name: str) -> dict[str, Any] | None:
    """One compartment row."""
    return one(db, "SELECT * FROM locker_compartments WHERE bank=? AND compartment=?", (bank, name))


def compartments(db: Reader, banks: Iterable[str]) -> list[dict[str, Any]]:
    """Rows of the given banks' compartments."""
    names = list(banks)
    if not names:
        return []
    marks = ",".join("?" for _ in names)
    return rows(db, f"SELECT * FROM locker_compartments WHERE bank IN ({marks})", names)


def update_compartment(tx: Tx, bank: str, name: str, **fields: Any) -> None:
    """Set some columns of one compartment."""
    unknown = set(fields) - _COMPARTMENT_FIELDS
    if unknown:
        raise ValueError(f"unknown compartment fields {sorted(unknown)}")
    sets = ", ".join(f"{k}=?" for k in fields)
    tx.execute(f"UPDATE locker_compartments SET {sets}, updated_at=? WHERE bank=? AND compartment=?",
               (*fields.values(), tx.now, bank, name))


# -- parcels and returns ---------------------------------------------------------

def parcel(db: Reader, parcel_id: str) -> dict[str, Any] | None:
    """One parcel row."""
    return one(db, "SELECT * FROM locker_parcels WHERE id=?", (parcel_id,))


def return_row(db: Reader, return_id: str) -> dict[str, Any] | None:
    """One expected or dropped return."""
    return one(db, "SELECT * FROM locker_returns WHERE id=?", (return_id,))


def set_item_state(tx: Tx, kind: str, item_id: str, state: str, **fields: Any) -> None:
    """Update a parcel's or return's state (and bank/compartment/expires_at)."""
    table = {"parcel": "locker_parcels", "return": "locker_returns"}[kind]
    allowed = {"bank", "compartment", "expires_at", "generate"}
    if set(fields) - allowed:
        raise ValueError(f"unknown {kind} fields {sorted(set(fields) - allowed)}")
    sets = "".join(f", {k}=?" for k in fields)
    tx.execute(f"UPDATE {table} SET state=?{sets}, updated_at=? WHERE id=?",
               (state, *fields.values(), tx.now, item_id))


# -- codes -------------------------------------------------------------------

def add_code(tx: Tx, code_hash: str, purpose: str, ref: str, expires_at: str | None) -> int:
    """Store a live code hash; CommandError("code_in_use") if an identical one is live."""
    try:
        cur = tx.execute(
            "INSERT INTO locker_codes(hash, purpose, ref, expires_at, created_at) VALUES (?, ?, ?, ?, ?)",
            (code_hash, purpose, ref, expires_at, tx.now),
        )
    except sqlite3.IntegrityError:
        raise CommandError("code_in_use", f"that {purpose} code is already in use; choose another") from None
    return int(cur.lastrowid or 0)


def code_is_live(db: Reader, purpose: str, code_hash: str) -> bool:
    """Whether a live code of ``purpose`` has this hash."""
    return one(db, "SELECT 1 AS x FROM locker_codes WHERE purpose=? AND hash=? AND spent_at IS NULL",
               (purpose, code_hash)) is not None


def live_codes(db: Reader, purpose: str) -> list[dict[str, Any]]:
    """Unspent code rows of one purpose (expiry is the caller's business)."""
    return rows(db, "SELECT id, hash, ref, expires_at FROM locker_codes "
                    "WHERE purpose=? AND spent_at IS NULL ORDER BY id", (purpose,))


def expired_codes(db: Reader, purpose: str) -> list[dict[str, Any]]:
    """Code rows of one purpose voided by expiry (to tell "expired" from "wrong")."""
    return rows(db, "SELECT id, hash, ref, expires_at FROM locker_codes "
                    "WHERE purpose=? AND spent_why='expired' ORDER BY id", (purpose,))


def spend_code(tx: Tx, code_id: int, why: str) -> None:
    """Mark one code used (single use) or void."""
    tx.execute("UPDATE locker_codes SET spent_at=?, spent_why=? WHERE id=? AND spent_at IS NULL",
               (tx.now, why, code_id))


def spend_codes_of(tx: Tx, purpose: str, ref: str, why: str) -> None:
    """Void every live code of one parcel, return or staff member."""
    tx.execute("UPDATE locker_codes SET spent_at=?, spent_why=? WHERE purpose=? AND ref=? "
               "AND spent_at IS NULL", (tx.now, why, purpose, ref))


def unspend_code(tx: Tx, code_id: int) -> bool:
    """Make a code used by a release that never opened the door live again."""
    try:
        tx.execute("UPDATE locker_codes SET spent_at=NULL, spent_why=NULL WHERE id=? AND spent_why='used'",
                   (code_id,))
    except sqlite3.IntegrityError:
        return False  # an identical code went live meanwhile; keep this one spent
    return True
