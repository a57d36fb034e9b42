"""The stock ledger: catalog, bins and movements; balances are derived.

Stock is never overwritten. Every change is a movement (receive, pick,
count, move, return, adjust, damage) with a signed quantity; on-hand per
SKU and bin is the sum of movements, cached in ``balances`` and updated in
the same transaction as the movement and its ``stock.moved`` event. A count
is recorded as the difference from what the ledger says. Stock may go
negative while offline (a pick recorded before the receive synced): that is
flagged in the event, never refused.

A movement also carries what the scan said about the goods
(:class:`ItemData`: GS1 lot, expiry, best-before, serial, and a weight or
price from a variable-measure code). Balances are also kept per SKU, bin,
lot and date in ``lot_balances``. A decrease that names no lot (a plain
EAN scanned at a pick) is taken from the lots in the bin earliest date
first (FEFO), one movement per lot, sharing a ``group``.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal, InvalidOperation
from typing import Any, Collection, Iterable

import msgspec
import msgspec.structs

from hubagent.errors import CommandError
from hubagent.stock.gtins import canonical_gtin
from hubagent.store.store import Store, Tx, dumps, ordered_id

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
    (
        # Every GTIN becomes GTIN-14 (a 13-digit EAN stored as sent never matched a
        # scan); where both forms were stored the 14-digit row wins. A GTIN names
        # `qty` units (an outer case). Movements keep the GS1 data and measure of
        # the scan; lot_balances keeps balances per lot and date ('' = none).
        "stock-0002-gtin14-packs-lots",
        """
        UPDATE OR IGNORE gtins SET gtin = substr('00000000000000' || gtin, -14) WHERE length(gtin) < 14;
        DELETE FROM gtins WHERE length(gtin) < 14;
        ALTER TABLE gtins ADD COLUMN qty INTEGER NOT NULL DEFAULT 1;
        ALTER TABLE skus ADD COLUMN net_content TEXT;
        ALTER TABLE skus ADD COLUMN net_unit TEXT;
        ALTER TABLE movements ADD COLUMN lot TEXT;
        ALTER TABLE movements ADD COLUMN expiry TEXT;
        ALTER TABLE movements ADD COLUMN best_before TEXT;
        ALTER TABLE movements ADD COLUMN serial TEXT;
        ALTER TABLE movements ADD COLUMN weight TEXT;
        ALTER TABLE movements ADD COLUMN price TEXT;
        CREATE TABLE lot_balances (
            sku         TEXT NOT NULL,
            bin         TEXT NOT NULL,
            lot         TEXT NOT NULL,
            expiry      TEXT NOT NULL,
            best_before TEXT NOT NULL,
            on_hand     INTEGER NOT NULL,
            PRIMARY KEY (sku, bin, lot, expiry, best_before)
        );
        INSERT INTO lot_balances(sku, bin, lot, expiry, best_before, on_hand)
            SELECT sku, bin, '', '', '', on_hand FROM balances;
        -- stock.expiring / stock.expired sent once per lot balance and state.
        CREATE TABLE lot_notices (
            sku         TEXT NOT NULL,
            bin         TEXT NOT NULL,
            lot         TEXT NOT NULL,
            expiry      TEXT NOT NULL,
            best_before TEXT NOT NULL,
            state       TEXT NOT NULL,
            at          TEXT NOT NULL,
            PRIMARY KEY (sku, bin, lot, expiry, best_before, state)
        );
        """,
    ),
]

NET_UNITS = ("g", "kg", "ml", "l", "piece")
"""Units of a catalog item's ``net_unit`` (labels print a unit price from them)."""

MAX_QTY = 1_000_000


class Movement(msgspec.Struct, frozen=True):
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


class ItemData(msgspec.Struct, frozen=True):
    """What a scan said about the goods, recorded on the movement.

    GS1 batch/lot (AI 10), expiry (17), best-before (15) and serial (21);
    a weight in kg or a price from a variable-measure code. ``date`` (expiry,
    else best-before) orders lots first-expiry-first-out.
    """

    lot: str | None = None
    expiry: dt.date | None = None
    best_before: dt.date | None = None
    serial: str | None = None
    weight: str | None = None
    price: str | None = None

    @property
    def names_lot(self) -> bool:
        """Whether this names a lot balance (a lot or a date)."""
        return bool(self.lot) or self.expiry is not None or self.best_before is not None

    @property
    def date(self) -> dt.date | None:
        """The date FEFO orders by: expiry, else best-before."""
        return self.expiry or self.best_before

    def key(self) -> tuple[str, str, str]:
        """``(lot, expiry, best_before)`` as stored in ``lot_balances`` ('' = none)."""
        return (self.lot or "", _iso(self.expiry), _iso(self.best_before))

    @classmethod
    def from_key(cls, lot: str, expiry: str, best_before: str) -> "ItemData":
        """The lot part of ``ItemData`` from a ``lot_balances`` key."""
        return cls(lot or None, _date(expiry), _date(best_before))


NO_ITEM_DATA = ItemData()


def _iso(d: dt.date | None) -> str:
    return d.isoformat() if d is not None else ""


def _date(text: str | None) -> dt.date | None:
    return dt.date.fromisoformat(text) if text else None


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


def normalise_gtins(gtins: Iterable[str | int | tuple[str | int, int]]) -> list[tuple[str, int]]:
    """Each GTIN as ``(GTIN-14, units)``; CommandError ``bad_args`` naming a bad one.

    A plain GTIN names one unit; ``(gtin, n)`` a pack of ``n``. The same
    number given twice (``5901234123457`` and ``05901234123457``) is refused.
    """
    out: dict[str, int] = {}
    for entry in gtins:
        raw, qty = entry if isinstance(entry, tuple) else (entry, 1)
        try:
            gtin = canonical_gtin(raw)
        except ValueError as e:
            raise CommandError("bad_args", str(e)) from None
        if gtin in out:
            raise CommandError("bad_args", f"GTIN {raw!r} is listed twice (as {gtin})")
        if not 1 <= qty <= MAX_QTY:
            raise CommandError("bad_args", f"GTIN {raw!r}: qty {qty} is out of range 1..{MAX_QTY}")
        out[gtin] = qty
    return list(out.items())


def normalise_net_content(value: Any, unit: str | None) -> tuple[str | None, str | None]:
    """``net_content`` as a decimal string with its ``net_unit``; both or neither."""
    if value is None and unit is None:
        return None, None
    if value is None or unit is None:
        raise CommandError("bad_args", "net_content and net_unit are given together")
    if unit not in NET_UNITS:
        raise CommandError("bad_args", f"net_unit must be one of {', '.join(NET_UNITS)}, not {unit!r}")
    try:
        d = Decimal(str(value)) if not isinstance(value, bool) else Decimal("NaN")
    except InvalidOperation:
        raise CommandError("bad_args", f"net_content {value!r} is not a number") from None
    if not d.is_finite() or d <= 0 or d > Decimal("1000000"):
        raise CommandError("bad_args", f"net_content {value!r} must be a positive number")
    return str(d.normalize()) if d == d.to_integral() else str(d), unit


def upsert_sku(tx: Tx, sku: str, name: str, gtins: Iterable[str | int | tuple[str | int, int]],
               price: Any = None, bin: str | None = None, unit: str = "each",
               extra: dict[str, Any] | None = None, net_content: Any = None,
               net_unit: str | None = None) -> None:
    """Insert or update a catalog item and its GTINs (GTINs move between SKUs).

    GTINs are stored as GTIN-14 (see :mod:`hubagent.stock.gtins`); a wrong
    check digit raises CommandError ``bad_args`` before anything is written.
    """
    codes = normalise_gtins(gtins)
    content, content_unit = normalise_net_content(net_content, net_unit)
    tx.execute(
        "INSERT INTO skus(sku, name, unit, price, default_bin, extra, net_content, net_unit, updated_at) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT(sku) DO UPDATE SET name=excluded.name, "
        "unit=excluded.unit, price=excluded.price, default_bin=excluded.default_bin, "
        "extra=excluded.extra, net_content=excluded.net_content, net_unit=excluded.net_unit, "
        "updated_at=excluded.updated_at",
        (sku, name, unit, normalise_price(price), bin, dumps(extra or {}), content, content_unit,
         tx.now),
    )
    tx.execute("DELETE FROM gtins WHERE sku=?", (sku,))
    for gtin, qty in codes:
        tx.execute("INSERT INTO gtins(gtin, sku, qty) VALUES (?, ?, ?) "
                   "ON CONFLICT(gtin) DO UPDATE SET sku=excluded.sku, qty=excluded.qty", (gtin, sku, qty))
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
           grp: str | None = None, item: ItemData = NO_ITEM_DATA,
           extra: dict[str, Any] | None = None) -> Movement:
    """Record a movement, update the balances and emit ``stock.moved``.

    A decrease whose ``item`` names no lot is split over the bin's lots,
    earliest date first (one movement per lot, sharing a group id); the
    last movement is returned (its ``on_hand`` is the bin's). ``extra`` is
    added to the event data.
    """
    if type not in MOVEMENT_TYPES:
        raise ValueError(f"unknown movement type {type!r}")
    if abs(delta) > MAX_QTY:
        raise CommandError("bad_args", f"quantity {delta} is out of range (max {MAX_QTY})")
    require_sku(tx, sku)
    ensure_bin(tx, bin)
    parts = [(item, delta)]
    if delta < 0 and not item.names_lot:
        parts = [(msgspec.structs.replace(item, lot=lot.lot, expiry=lot.expiry, best_before=lot.best_before), -qty)
                 for lot, qty in allocate(tx, sku, bin, -delta)]
        if len(parts) > 1 and grp is None:
            grp = ordered_id()
    last: Movement | None = None
    for part, qty in parts:
        last = _record_one(tx, type, sku, bin, qty, reason, ref, actor, device, grp, part, extra)
    assert last is not None
    return last


def allocate(tx: Tx, sku: str, bin: str, qty: int) -> list[tuple[ItemData, int]]:
    """Split taking ``qty`` out of a bin over its lots, earliest date first (FEFO).

    Lots with a date come first (by date, then lot), then undated ones;
    what the bin does not hold comes from the unknown lot (it goes negative).
    """
    out: list[tuple[ItemData, int]] = []
    left = qty
    for lot, exp, bb, have in fefo_lots(tx, sku, bin):
        take = min(left, have)
        out.append((ItemData.from_key(lot, exp, bb), take))
        left -= take
        if left == 0:
            return out
    for i, (part, n) in enumerate(out):
        if not part.names_lot:
            out[i] = (part, n + left)
            return out
    out.append((NO_ITEM_DATA, left))
    return out


def known_lot(tx: Tx, sku: str, bin: str, item: ItemData) -> ItemData:
    """A lot scanned without its dates (GS1-128 with AI 10 only) gets the bin's dates of that lot."""
    if not item.lot or item.date is not None:
        return item
    row = tx.execute("SELECT expiry, best_before FROM lot_balances WHERE sku=? AND bin=? AND lot=? "
                     "ORDER BY on_hand > 0 DESC, " + _FEFO_ORDER + " LIMIT 1", (sku, bin, item.lot)).fetchone()
    if row is None:
        return item
    return msgspec.structs.replace(item, expiry=_date(row[0]), best_before=_date(row[1]))


def first_lot(db: Tx | Store, sku: str, bin: str | None) -> dict[str, Any] | None:
    """The lot to pick first (FEFO) in ``bin``, or in any bin when None; None if no stock."""
    where, params = ("AND bin=?", (sku, bin)) if bin else ("", (sku,))
    sql = ("SELECT bin, lot, expiry, best_before FROM lot_balances WHERE sku=? AND on_hand > 0 "
           + where + " ORDER BY " + _FEFO_ORDER + ", bin LIMIT 1")
    if isinstance(db, Tx):
        found = db.execute(sql, params).fetchone()
    else:
        rows = db.query(sql, params)
        found = tuple(rows[0][k] for k in ("bin", "lot", "expiry", "best_before")) if rows else None
    if found is None:
        return None
    b, lot, expiry, best_before = found
    return {"bin": b, "lot": lot or None, "expiry": expiry or None, "best_before": best_before or None}


def fefo_lots(tx: Tx, sku: str, bin: str) -> list[tuple[str, str, str, int]]:
    """Positive ``(lot, expiry, best_before, on_hand)`` of a SKU in a bin, first to pick first."""
    return [(str(r[0]), str(r[1]), str(r[2]), int(r[3])) for r in tx.execute(
        "SELECT lot, expiry, best_before, on_hand FROM lot_balances "
        "WHERE sku=? AND bin=? AND on_hand > 0 ORDER BY " + _FEFO_ORDER, (sku, bin)).fetchall()]


_FEFO_ORDER = ("COALESCE(NULLIF(expiry, ''), NULLIF(best_before, '')) IS NULL, "
               "COALESCE(NULLIF(expiry, ''), NULLIF(best_before, '')), lot = '', lot")
"""Earliest date first; undated lots after dated ones; the unknown lot last."""


def _record_one(tx: Tx, type: str, sku: str, bin: str, delta: int, reason: str | None,
                ref: str | None, actor: str | None, device: str | None, grp: str | None,
                item: ItemData, extra: dict[str, Any] | None) -> Movement:
    tx.execute(
        "INSERT INTO balances(sku, bin, on_hand) VALUES (?, ?, ?) "
        "ON CONFLICT(sku, bin) DO UPDATE SET on_hand = on_hand + excluded.on_hand",
        (sku, bin, delta),
    )
    tx.execute(
        "INSERT INTO lot_balances(sku, bin, lot, expiry, best_before, on_hand) VALUES (?, ?, ?, ?, ?, ?) "
        "ON CONFLICT(sku, bin, lot, expiry, best_before) DO UPDATE SET on_hand = on_hand + excluded.on_hand",
        (sku, bin, *item.key(), delta),
    )
    after = on_hand(tx, sku, bin)
    mid = ordered_id()
    lot, expiry, best_before = item.key()
    data = {"movement": mid, "type": type, "sku": sku, "bin": bin, "delta": delta,
            "on_hand": after, "negative": after < 0, "reason": reason, "ref": ref,
            "actor": actor, "device": device, "group": grp,
            "lot": lot or None, "expiry": expiry or None, "best_before": best_before or None,
            "serial": item.serial, "weight": item.weight, "price": item.price, **(extra or {})}
    ev = tx.emit("stock.moved", data)
    tx.execute(
        "INSERT INTO movements(id, seq, type, sku, bin, delta, reason, ref, actor, device, grp, at, "
        "lot, expiry, best_before, serial, weight, price) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (mid, ev.seq, type, sku, bin, delta, reason, ref, actor, device, grp, ev.at,
         lot or None, expiry or None, best_before or None, item.serial, item.weight, item.price),
    )
    return Movement(mid, ev.seq, type, sku, bin, delta, after)


def move(tx: Tx, *, sku: str, src: str, dst: str, qty: int, item: ItemData = NO_ITEM_DATA,
         **who: Any) -> tuple[Movement, Movement]:
    """Move stock between bins, lot by lot: movements sharing a group id.

    Without a lot named, the lots leave the source bin earliest date first
    and arrive in the destination as the same lots.
    """
    if qty <= 0:
        raise CommandError("bad_args", "a move needs a positive quantity")
    if src == dst:
        raise CommandError("bad_args", "source and destination bin are the same")
    require_sku(tx, sku)
    grp = ordered_id()
    parts = [(item, qty)] if item.names_lot else allocate(tx, sku, src, qty)
    out = into = None
    for part, n in parts:
        out = record(tx, type="move", sku=sku, bin=src, delta=-n, grp=grp, item=part, **who)
        into = record(tx, type="move", sku=sku, bin=dst, delta=n, grp=grp, item=part, **who)
    assert out is not None and into is not None
    return out, into


def count(tx: Tx, *, sku: str, bin: str, counted: int, **who: Any) -> Movement:
    """Record a counted quantity as a movement of the difference."""
    if counted < 0:
        raise CommandError("bad_args", "a counted quantity cannot be negative")
    require_sku(tx, sku)
    return record(tx, type="count", sku=sku, bin=bin, delta=counted - on_hand(tx, sku, bin), **who)


def sku_for_gtin(store: Store, gtin: str) -> str | None:
    """The SKU a GTIN (any form, see :func:`canonical_gtin`) belongs to, if any."""
    try:
        gtin = canonical_gtin(gtin)
    except ValueError:
        return None
    rows = store.query("SELECT sku FROM gtins WHERE gtin=?", (gtin,))
    return rows[0]["sku"] if rows else None


def summary(store: Store, sku: str, unsellable: Collection[str] = ()) -> dict[str, Any] | None:
    """On-hand of one SKU per bin and in total, ``available`` and its lots; None if unknown.

    ``available`` counts only bins not in ``unsellable`` (quarantine...).
    ``lots`` lists each non-zero balance per bin, lot and date, FEFO order.
    """
    item = store.query("SELECT sku, name, unit, price, default_bin, net_content, net_unit "
                       "FROM skus WHERE sku=?", (sku,))
    if not item:
        return None
    bins = {r["bin"]: r["on_hand"] for r in
            store.query("SELECT bin, on_hand FROM balances WHERE sku=? ORDER BY bin", (sku,))}
    lots = [{"bin": r["bin"], "lot": r["lot"] or None, "expiry": r["expiry"] or None,
             "best_before": r["best_before"] or None, "on_hand": r["on_hand"]}
            for r in store.query("SELECT bin, lot, expiry, best_before, on_hand FROM lot_balances "
                                 "WHERE sku=? AND on_hand != 0 ORDER BY bin, " + _FEFO_ORDER, (sku,))]
    available = sum(n for b, n in bins.items() if b not in unsellable)
    return {**item[0], "on_hand": sum(bins.values()), "available": available, "bins": bins,
            "lots": lots}


def balances(store: Store) -> list[dict[str, Any]]:
    """Every non-zero or negative balance, for snapshots."""
    return [dict(r) for r in store.query("SELECT sku, bin, on_hand FROM balances WHERE on_hand != 0 "
                                         "ORDER BY sku, bin")]


def recompute(store: Store) -> list[dict[str, Any]]:
    """Balances folded from the movements (to check the cache in tests and repair)."""
    return [dict(r) for r in store.query("SELECT sku, bin, SUM(delta) AS on_hand FROM movements "
                                         "GROUP BY sku, bin HAVING SUM(delta) != 0 ORDER BY sku, bin")]


def lot_balances(store: Store) -> list[dict[str, Any]]:
    """Every non-zero balance per SKU, bin, lot and date, for snapshots."""
    return [{"sku": r["sku"], "bin": r["bin"], "lot": r["lot"] or None, "expiry": r["expiry"] or None,
             "best_before": r["best_before"] or None, "on_hand": r["on_hand"]}
            for r in store.query("SELECT * FROM lot_balances WHERE on_hand != 0 "
                                 "ORDER BY sku, bin, " + _FEFO_ORDER)]
