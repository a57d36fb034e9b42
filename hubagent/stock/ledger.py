"""The stock ledger: catalog, bins and movements; balances are derived.

Stock is never overwritten. Every change is a movement (receive, pick,
count, move, return, adjust, damage) with a signed quantity; on-hand per
SKU and bin is the sum of movements, cached in ``balances`` and updated in
the same transaction as the movement and its ``stock.moved`` event. A count
is recorded as the difference from what the ledger says. Stock may go
negative while offline (a pick recorded before the receive synced): that is
flagged in the event, never refused.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any, Iterable

from hubagent.errors import CommandError
from hubagent.store.store import Store, Tx, dumps

MOVEMENT_TYPES = ("receive", "pick", "count", "move", "return", "adjust", "damage")

MIGRATIONS: list[tuple[str, str]] = [
    (
        "stock-0001-ledger",
        """
        CREATE TABLE skus (
            sku         TEXT PRIMARY KEY,
            name        TEXT NOT NULL,
            unit        TEXT NOT NULL DEFAULT 'each',
            price       TEXT,
            default_bin TEXT,
            extra       TEXT NOT NULL DEFAULT '{}',
            updated_at  TEXT NOT NULL
        );
        CREATE TABLE gtins (
            gtin TEXT PRIMARY KEY,
            sku  TEXT NOT NULL REFERENCES skus(sku) ON DELETE CASCADE
        );
        CREATE INDEX gtins_sku ON gtins(sku);
        CREATE TABLE bins (
            code       TEXT PRIMARY KEY,
            kind       TEXT NOT NULL DEFAULT 'shelf',
            created_at TEXT NOT NULL
        );
        CREATE TABLE movements (
            id     TEXT PRIMARY KEY,
            seq    INTEGER NOT NULL,
            type   TEXT NOT NULL,
            sku    TEXT NOT NULL REFERENCES skus(sku),
            bin    TEXT NOT NULL REFERENCES bins(code),
            delta  INTEGER NOT NULL,
            reason TEXT,
            ref    TEXT,
            actor  TEXT,
            device TEXT,
            grp    TEXT,
            at     TEXT NOT NULL
        );
        CREATE INDEX movements_sku_bin ON movements(sku, bin);
        CREATE TABLE balances (
            sku     TEXT NOT NULL,
            bin     TEXT NOT NULL,
            on_hand INTEGER NOT NULL,
            PRIMARY KEY (sku, bin)
        );
        """,
    ),
]

MAX_QTY = 1_000_000


@dataclass(frozen=True)
class Movement:
    """One recorded movement and the balance it left."""

    id: str
    seq: int
    type: str
    sku: str
    bin: str
    delta: int
    on_hand: int

    @property
    def negative(self) -> bool:
        """Whether the bin's balance went below zero."""
        return self.on_hand < 0


def normalise_price(value: Any) -> str | None:
    """A price as a decimal string (no binary floating point in the ledger)."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise CommandError("bad_args", "price must be a number")
    try:
        d = Decimal(str(value))
    except InvalidOperation:
        raise CommandError("bad_args", f"price {value!r} is not a number") from None
    if not d.is_finite() or d < 0 or d > Decimal("10000000"):
        raise CommandError("bad_args", f"price {value!r} is out of range")
    return str(d.quantize(Decimal("0.01")))


def ensure_bin(tx: Tx, code: str, kind: str = "shelf") -> None:
    """Create a bin on first use (bins are physical labels, not master data)."""
    tx.execute("INSERT OR IGNORE INTO bins(code, kind, created_at) VALUES (?, ?, ?)",
               (code, kind, tx.now))


def upsert_sku(tx: Tx, sku: str, name: str, gtins: Iterable[str], price: Any = None,
               bin: str | None = None, unit: str = "each", extra: dict[str, Any] | None = None) -> None:
    """Insert or update a catalog item and its GTINs (GTINs move between SKUs)."""
    tx.execute(
        "INSERT INTO skus(sku, name, unit, price, default_bin, extra, updated_at) "
        "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT(sku) DO UPDATE SET name=excluded.name, "
        "unit=excluded.unit, price=excluded.price, default_bin=excluded.default_bin, "
        "extra=excluded.extra, updated_at=excluded.updated_at",
        (sku, name, unit, normalise_price(price), bin, dumps(extra or {}), tx.now),
    )
    tx.execute("DELETE FROM gtins WHERE sku=?", (sku,))
    for gtin in gtins:
        tx.execute("INSERT INTO gtins(gtin, sku) VALUES (?, ?) "
                   "ON CONFLICT(gtin) DO UPDATE SET sku=excluded.sku", (gtin, sku))
    if bin:
        ensure_bin(tx, bin)


def on_hand(tx_or_store: Tx | Store, sku: str, bin: str) -> int:
    """Current on-hand of one SKU in one bin."""
    if isinstance(tx_or_store, Tx):
        row = tx_or_store.execute("SELECT on_hand FROM balances WHERE sku=? AND bin=?",
                                  (sku, bin)).fetchone()
        return int(row[0]) if row else 0
    rows = tx_or_store.query("SELECT on_hand FROM balances WHERE sku=? AND bin=?", (sku, bin))
    return int(rows[0]["on_hand"]) if rows else 0


def require_sku(tx: Tx, sku: str) -> None:
    """CommandError ``unknown_sku`` unless the SKU is in the catalog."""
    if tx.execute("SELECT 1 FROM skus WHERE sku=?", (sku,)).fetchone() is None:
        raise CommandError("unknown_sku", f"SKU {sku!r} is not in the catalog")


def record(tx: Tx, *, type: str, sku: str, bin: str, delta: int, reason: str | None = None,
           ref: str | None = None, actor: str | None = None, device: str | None = None,
           grp: str | None = None) -> Movement:
    """Record one movement, update the balance and emit ``stock.moved``."""
    if type not in MOVEMENT_TYPES:
        raise ValueError(f"unknown movement type {type!r}")
    if abs(delta) > MAX_QTY:
        raise CommandError("bad_args", f"quantity {delta} is out of range (max {MAX_QTY})")
    require_sku(tx, sku)
    ensure_bin(tx, bin)
    tx.execute(
        "INSERT INTO balances(sku, bin, on_hand) VALUES (?, ?, ?) "
        "ON CONFLICT(sku, bin) DO UPDATE SET on_hand = on_hand + excluded.on_hand",
        (sku, bin, delta),
    )
    after = on_hand(tx, sku, bin)
    mid = uuid.uuid4().hex
    data = {"movement": mid, "type": type, "sku": sku, "bin": bin, "delta": delta,
            "on_hand": after, "negative": after < 0, "reason": reason, "ref": ref,
            "actor": actor, "device": device, "group": grp}
    ev = tx.emit("stock.moved", data)
    tx.execute(
        "INSERT INTO movements(id, seq, type, sku, bin, delta, reason, ref, actor, device, grp, at) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (mid, ev.seq, type, sku, bin, delta, reason, ref, actor, device, grp, ev.at),
    )
    return Movement(mid, ev.seq, type, sku, bin, delta, after)


def move(tx: Tx, *, sku: str, src: str, dst: str, qty: int, **who: Any) -> tuple[Movement, Movement]:
    """Move stock between bins: two movements sharing a group id."""
    if qty <= 0:
        raise CommandError("bad_args", "a move needs a positive quantity")
    if src == dst:
        raise CommandError("bad_args", "source and destination bin are the same")
    grp = uuid.uuid4().hex
    out = record(tx, type="move", sku=sku, bin=src, delta=-qty, grp=grp, **who)
    into = record(tx, type="move", sku=sku, bin=dst, delta=qty, grp=grp, **who)
    return out, into


def count(tx: Tx, *, sku: str, bin: str, counted: int, **who: Any) -> Movement:
    """Record a counted quantity as a movement of the difference."""
    if counted < 0:
        raise CommandError("bad_args", "a counted quantity cannot be negative")
    require_sku(tx, sku)
    return record(tx, type="count", sku=sku, bin=bin, delta=counted - on_hand(tx, sku, bin), **who)


def sku_for_gtin(store: Store, gtin: str) -> str | None:
    """The SKU a GTIN belongs to, if any."""
    rows = store.query("SELECT sku FROM gtins WHERE gtin=?", (gtin,))
    return rows[0]["sku"] if rows else None


def summary(store: Store, sku: str) -> dict[str, Any] | None:
    """On-hand of one SKU, per bin and in total; None for an unknown SKU."""
    item = store.query("SELECT sku, name, unit, price, default_bin FROM skus WHERE sku=?", (sku,))
    if not item:
        return None
    bins = {r["bin"]: r["on_hand"] for r in
            store.query("SELECT bin, on_hand FROM balances WHERE sku=? ORDER BY bin", (sku,))}
    return {**item[0], "on_hand": sum(bins.values()), "bins": bins}


def balances(store: Store) -> list[dict[str, Any]]:
    """Every non-zero or negative balance, for snapshots."""
    return store.query("SELECT sku, bin, on_hand FROM balances WHERE on_hand != 0 ORDER BY sku, bin")


def recompute(store: Store) -> list[dict[str, Any]]:
    """Balances folded from the movements (to check the cache in tests and repair)."""
    return store.query("SELECT sku, bin, SUM(delta) AS on_hand FROM movements "
                       "GROUP BY sku, bin HAVING SUM(delta) != 0 ORDER BY sku, bin")
