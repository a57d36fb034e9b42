"""Restock claims: a slot reserved atomically, a delivery expected, no-shows freed.

Every change runs inside a command's (or the no-show check's) write
transaction with its event, so a claim, its delivery expectation and
``restock.claimed`` commit together or not at all.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from hubagent.errors import CommandError
from hubagent.restock.settings import RestockSettings
from hubagent.restock.slots import Slot, SlotError, resolve, upcoming
from hubagent.store.store import Tx

MIGRATIONS: list[tuple[str, str]] = [
    (
        "restock-0001-claims",
        """
        CREATE TABLE restock_claims (
            id         TEXT PRIMARY KEY,
            slot       TEXT NOT NULL,
            slot_start TEXT NOT NULL,
            slot_end   TEXT NOT NULL,
            claimant   TEXT NOT NULL,
            state      TEXT NOT NULL CHECK (state IN ('claimed', 'arrived', 'released', 'no_show')),
            command    TEXT,
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL
        );
        CREATE INDEX restock_claims_slot ON restock_claims(slot, state);
        CREATE INDEX restock_claims_open ON restock_claims(slot_end) WHERE state = 'claimed';
        """,
    ),
]

ACTIVE = ("claimed", "arrived")


def iso(moment: datetime) -> str:
    """UTC RFC 3339 with milliseconds, as the hub stores times."""
    from hubagent.commands import iso_utc

    return iso_utc(moment)


def taken(tx: Tx, slot: str) -> int:
    """Active claims of one slot."""
    return int(tx.execute("SELECT COUNT(*) FROM restock_claims WHERE slot=? AND state IN ('claimed', 'arrived')",
                          (slot,)).fetchone()[0])


def claim(tx: Tx, *, claim_id: str, slot_name: str, claimant: str, now: datetime,
          settings: RestockSettings, tz: ZoneInfo, command: str) -> Slot:
    """Reserve one place in ``slot_name``, or CommandError (full, past, outside_hours, exists)."""
    if not settings.enabled:
        raise CommandError("no_restock", "this hub has no receiving hours configured ([restock] hours)")
    if tx.execute("SELECT 1 FROM restock_claims WHERE id=?", (claim_id,)).fetchone() is not None:
        raise CommandError("exists", f"claim {claim_id!r} exists already")
    try:
        slot = resolve(slot_name, now, settings, tz)
    except SlotError as e:
        raise CommandError(e.code, e.message) from None
    if taken(tx, slot.name) >= settings.capacity:
        raise CommandError("full", f"slot {slot.name} is full ({settings.capacity} deliveries)")
    stamp = iso(now)
    tx.execute("INSERT INTO restock_claims(id, slot, slot_start, slot_end, claimant, state, command, "
               "created_at, updated_at) VALUES (?, ?, ?, ?, ?, 'claimed', ?, ?, ?)",
               (claim_id, slot.name, iso(slot.start), iso(slot.end), claimant, command, stamp, stamp))
    return slot


def release(tx: Tx, claim_id: str, now: datetime) -> dict[str, Any]:
    """Free a claim that has not arrived; CommandError if unknown or no longer open."""
    row = tx.execute("SELECT slot, state FROM restock_claims WHERE id=?", (claim_id,)).fetchone()
    if row is None:
        raise CommandError("unknown_claim", f"claim {claim_id!r} is not known")
    if row[1] != "claimed":
        raise CommandError("not_open", f"claim {claim_id!r} is {row[1]}; only an open claim can be released")
    _set(tx, claim_id, "released", now)
    return {"claim": claim_id, "slot": row[0]}


def _set(tx: Tx, claim_id: str, state: str, now: datetime) -> None:
    tx.execute("UPDATE restock_claims SET state=?, updated_at=? WHERE id=?", (state, iso(now), claim_id))


def arrived_or_due(tx: Tx, now: datetime, grace: timedelta) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Open claims whose delivery has received something (arrived), and those past slot end + grace (no-shows)."""
    arrived, no_show = [], []
    rows = tx.execute(
        "SELECT c.id, c.slot, c.slot_end, c.claimant, "
        "(SELECT COALESCE(SUM(received), 0) FROM delivery_lines l WHERE l.delivery = c.id) "
        "FROM restock_claims c WHERE c.state = 'claimed'").fetchall()
    for cid, slot, slot_end, claimant, received in rows:
        item = {"claim": cid, "slot": slot, "claimant": claimant}
        if int(received) > 0:
            arrived.append(item)
        elif datetime.fromisoformat(slot_end.replace("Z", "+00:00")) + grace <= now:
            no_show.append(item)
    return arrived, no_show


def mark(tx: Tx, claim_id: str, state: str, now: datetime) -> None:
    """Set a claim's state (arrived or no_show)."""
    _set(tx, claim_id, state, now)


def next_deadline(tx: Tx, grace: timedelta) -> datetime | None:
    """When the earliest open claim becomes a no-show, if any."""
    row = tx.execute("SELECT MIN(slot_end) FROM restock_claims WHERE state = 'claimed'").fetchone()
    if row is None or row[0] is None:
        return None
    return datetime.fromisoformat(str(row[0]).replace("Z", "+00:00")) + grace


def windows(tx: Tx, now: datetime, settings: RestockSettings, tz: ZoneInfo) -> list[dict[str, Any]]:
    """The coming slots with their free places (for the retained topic and ``restock.windows``)."""
    slots = upcoming(now, settings.publish_days, settings, tz)
    if not slots:
        return []
    counts = dict(tx.execute(
        "SELECT slot, COUNT(*) FROM restock_claims WHERE state IN ('claimed', 'arrived') "
        "AND slot >= ? GROUP BY slot", (slots[0].name,)).fetchall())
    return [{"slot": s.name, "start": iso(s.start), "end": iso(s.end),
             "free": max(0, settings.capacity - int(counts.get(s.name, 0)))} for s in slots]


def kpis(tx: Tx, first_day_start: datetime, now: datetime) -> dict[str, int]:
    """Claims, arrivals, no-shows and releases with slots in a window (for ``kpi.get``)."""
    out = {"restock_claims": 0, "restock_arrived": 0, "restock_no_shows": 0, "restock_released": 0}
    for state, n in tx.execute("SELECT state, COUNT(*) FROM restock_claims WHERE slot_start >= ? "
                               "AND slot_start <= ? GROUP BY state", (iso(first_day_start), iso(now))):
        out["restock_claims"] += int(n)
        key = {"arrived": "restock_arrived", "no_show": "restock_no_shows", "released": "restock_released"}.get(state)
        if key:
            out[key] += int(n)
    return out
