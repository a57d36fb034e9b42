"""Daily rollups, updated in the transaction of each movement and locker event.

A KPI query reads these rows, a few per day of its window, so its cost does
not grow with the ledger. :func:`rebuild` recomputes them from the ledger
(the ``movements`` table and the locker audit trail), for repair, through the
same functions the incremental path uses.
"""

from __future__ import annotations

import json
from typing import Any, Iterable
from zoneinfo import ZoneInfo

import msgspec

from hubagent.kpi.days import local_day, parse_utc
from hubagent.store.store import Tx

MIGRATIONS: list[tuple[str, str]] = [
    (
        "kpi-0001-rollups",
        """
        -- Per SKU and local day. end_sellable: sellable on-hand after the day's
        -- last movement (days without movements carry the previous value).
        CREATE TABLE kpi_sku_day (
            sku          TEXT NOT NULL,
            day          TEXT NOT NULL,
            sold         INTEGER NOT NULL DEFAULT 0,
            received     INTEGER NOT NULL DEFAULT 0,
            returned     INTEGER NOT NULL DEFAULT 0,
            damaged      INTEGER NOT NULL DEFAULT 0,
            end_sellable INTEGER NOT NULL DEFAULT 0,
            PRIMARY KEY (sku, day)
        ) WITHOUT ROWID;
        -- Returns by reason and condition, and per lot ("micro-run").
        CREATE TABLE kpi_returns (
            sku       TEXT NOT NULL,
            day       TEXT NOT NULL,
            lot       TEXT NOT NULL,
            reason    TEXT NOT NULL,
            condition TEXT NOT NULL,
            units     INTEGER NOT NULL,
            PRIMARY KEY (sku, day, lot, reason, condition)
        ) WITHOUT ROWID;
        CREATE TABLE kpi_lot_sold (
            sku  TEXT NOT NULL,
            lot  TEXT NOT NULL,
            day  TEXT NOT NULL,
            sold INTEGER NOT NULL,
            PRIMARY KEY (sku, lot, day)
        ) WITHOUT ROWID;
        -- Per hub and local day.
        CREATE TABLE kpi_hub_day (
            day             TEXT PRIMARY KEY,
            stored          INTEGER NOT NULL DEFAULT 0,
            picked_up       INTEGER NOT NULL DEFAULT 0,
            expired         INTEGER NOT NULL DEFAULT 0,
            returns_dropped INTEGER NOT NULL DEFAULT 0,
            scans_accepted  INTEGER NOT NULL DEFAULT 0,
            scans_refused   INTEGER NOT NULL DEFAULT 0
        ) WITHOUT ROWID;
        -- Pickup dwell times (stored to picked up), one row per pickup.
        CREATE TABLE kpi_dwell (
            day     TEXT NOT NULL,
            parcel  TEXT NOT NULL,
            seconds REAL NOT NULL,
            PRIMARY KEY (day, parcel)
        ) WITHOUT ROWID;
        -- Parcels in a compartment now, with when they were stored.
        CREATE TABLE kpi_stored (
            parcel    TEXT PRIMARY KEY,
            stored_at TEXT NOT NULL
        ) WITHOUT ROWID;
        """,
    ),
]

HUB_COUNTERS = ("stored", "picked_up", "expired", "returns_dropped", "scans_accepted", "scans_refused")


class Move(msgspec.Struct, frozen=True):
    """What the rollups need of one movement."""

    type: str
    sku: str
    bin: str
    delta: int
    reason: str | None
    lot: str | None
    at: str


def sellable_on_hand(tx: Tx, sku: str, unsellable: frozenset[str]) -> int:
    """On-hand of ``sku`` in bins that count as sellable."""
    marks = ",".join("?" * len(unsellable)) or "''"
    row = tx.execute(f"SELECT COALESCE(SUM(on_hand), 0) FROM balances WHERE sku=? AND bin NOT IN ({marks})",
                     (sku, *sorted(unsellable))).fetchone()
    return int(row[0])


def apply_move(tx: Tx, m: Move, end_sellable: int, tz: ZoneInfo, unsellable: frozenset[str]) -> None:
    """Fold one movement into the SKU's day (and its returns and lot rows)."""
    day = local_day(m.at, tz)
    sold = -m.delta if m.type == "pick" and m.delta < 0 else 0
    received = m.delta if m.type == "receive" and m.delta > 0 else 0
    returned = m.delta if m.type == "return" and m.delta > 0 else 0
    damaged = (returned if m.bin in unsellable else 0) + (-m.delta if m.type == "damage" and m.delta < 0 else 0)
    tx.execute(
        "INSERT INTO kpi_sku_day(sku, day, sold, received, returned, damaged, end_sellable) "
        "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT(sku, day) DO UPDATE SET "
        "sold = sold + excluded.sold, received = received + excluded.received, "
        "returned = returned + excluded.returned, damaged = damaged + excluded.damaged, "
        "end_sellable = excluded.end_sellable",
        (m.sku, day, sold, received, returned, damaged, end_sellable))
    lot = m.lot or ""
    if returned:
        condition = "damaged" if m.bin in unsellable else "resellable"
        tx.execute(
            "INSERT INTO kpi_returns(sku, day, lot, reason, condition, units) VALUES (?, ?, ?, ?, ?, ?) "
            "ON CONFLICT(sku, day, lot, reason, condition) DO UPDATE SET units = units + excluded.units",
            (m.sku, day, lot, m.reason or "unspecified", condition, returned))
    if sold and lot:
        tx.execute(
            "INSERT INTO kpi_lot_sold(sku, lot, day, sold) VALUES (?, ?, ?, ?) "
            "ON CONFLICT(sku, lot, day) DO UPDATE SET sold = sold + excluded.sold",
            (m.sku, lot, day, sold))


def count_hub(tx: Tx, day: str, counter: str, n: int = 1) -> None:
    """Add ``n`` to one of the hub's daily counters."""
    if counter not in HUB_COUNTERS:
        raise ValueError(f"unknown hub counter {counter!r}")
    tx.execute(f"INSERT INTO kpi_hub_day(day, {counter}) VALUES (?, ?) "
               f"ON CONFLICT(day) DO UPDATE SET {counter} = {counter} + excluded.{counter}", (day, n))


def parcel_stored(tx: Tx, parcel: str, at: str, tz: ZoneInfo) -> None:
    """A parcel went into a compartment."""
    tx.execute("INSERT OR REPLACE INTO kpi_stored(parcel, stored_at) VALUES (?, ?)", (parcel, at))
    count_hub(tx, local_day(at, tz), "stored")


def parcel_left(tx: Tx, parcel: str, at: str, tz: ZoneInfo, *, picked_up: bool) -> None:
    """A parcel was picked up (with its dwell time) or expired uncollected."""
    day = local_day(at, tz)
    row = tx.execute("SELECT stored_at FROM kpi_stored WHERE parcel=?", (parcel,)).fetchone()
    tx.execute("DELETE FROM kpi_stored WHERE parcel=?", (parcel,))
    if not picked_up:
        count_hub(tx, day, "expired")
        return
    count_hub(tx, day, "picked_up")
    if row is not None:
        seconds = max(0.0, (parse_utc(at) - parse_utc(row[0])).total_seconds())
        tx.execute("INSERT OR REPLACE INTO kpi_dwell(day, parcel, seconds) VALUES (?, ?, ?)",
                   (day, parcel, seconds))


def clear(tx: Tx) -> None:
    """Empty every rollup table (before a rebuild)."""
    for table in ("kpi_sku_day", "kpi_returns", "kpi_lot_sold", "kpi_hub_day", "kpi_dwell", "kpi_stored"):
        tx.execute(f"DELETE FROM {table}")


def rebuild_stock(tx: Tx, moves: Iterable[Move], tz: ZoneInfo, unsellable: frozenset[str]) -> int:
    """Fold every movement again, in ledger order, keeping sellable on-hand as it goes."""
    sellable: dict[str, int] = {}
    n = 0
    for m in moves:
        if m.bin not in unsellable:
            sellable[m.sku] = sellable.get(m.sku, 0) + m.delta
        apply_move(tx, m, sellable.get(m.sku, 0), tz, unsellable)
        n += 1
    return n


def movement_rows(tx: Tx) -> Iterable[Move]:
    """The ledger's movements in order, as :class:`Move` (the lot from ``extra`` when recorded)."""
    cols = {r[1] for r in tx.execute("PRAGMA table_info(movements)")}
    lot_col = "lot" if "lot" in cols else "NULL"
    for r in tx.execute(f"SELECT type, sku, bin, delta, reason, {lot_col}, at FROM movements ORDER BY seq"):
        yield Move(r[0], r[1], r[2], int(r[3]), r[4], r[5], r[6])


def detail(value: Any) -> dict[str, Any]:
    """A locker audit row's JSON detail as a dict ({} when absent or not JSON)."""
    if not value:
        return {}
    try:
        parsed = json.loads(value)
    except ValueError:
        return {}
    return parsed if isinstance(parsed, dict) else {}


def rebuild_lockers(tx: Tx, tz: ZoneInfo) -> int:
    """Fold the locker audit trail again: stores, pickups (with dwell), expiries, drop-offs."""
    purposes: dict[int, str] = {}
    n = 0
    for seq, at, kind, ref, raw in tx.execute(
            "SELECT seq, at, kind, ref, detail FROM locker_audit "
            "WHERE kind IN ('release', 'release_completed', 'expired') ORDER BY seq").fetchall():
        info = detail(raw)
        if kind == "release":
            purposes[int(seq)] = str(info.get("purpose", ""))
            continue
        if kind == "expired":
            if info.get("item_kind") == "parcel" and ref:
                parcel_left(tx, ref, at, tz, picked_up=False)
                n += 1
            continue
        purpose = purposes.get(int(info.get("release") or 0), "")
        if purpose == "load" and ref:
            parcel_stored(tx, ref, at, tz)
        elif purpose == "pickup" and ref:
            parcel_left(tx, ref, at, tz, picked_up=True)
        elif purpose == "return":
            count_hub(tx, local_day(at, tz), "returns_dropped")
        else:
            continue
        n += 1
    return n
