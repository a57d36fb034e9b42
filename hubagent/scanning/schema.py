"""Tables of the scanning feature and the small reads/writes on them.

``scan_stations`` keeps each scanner's mode, signed-in staff and the
delivery/pick it works on, so they survive a restart. Deliveries and picks
announced by central (``delivery.expect``, ``pick.request``) and their
progress live in their own tables, updated in the same transaction as the
stock movements they count, so progress and ledger can never disagree.
"""

from __future__ import annotations

from typing import Any

from hubagent.store.store import Store, Tx, rows

MIGRATIONS: list[tuple[str, str]] = [
    (
        "scanning-0001-stations-deliveries-picks",
        """
        CREATE TABLE scan_stations (
            scanner    TEXT PRIMARY KEY,
            mode       TEXT NOT NULL,
            staff      TEXT,
            delivery   TEXT,
            pick       TEXT,
            updated_at TEXT NOT NULL
        );
        CREATE TABLE deliveries (
            id         TEXT PRIMARY KEY,
            bin        TEXT,
            status     TEXT NOT NULL DEFAULT 'open',
            command    TEXT,
            created_at TEXT NOT NULL,
            closed_at  TEXT
        );
        -- expected 0 marks an item received that the delivery did not list.
        CREATE TABLE delivery_lines (
            delivery TEXT NOT NULL REFERENCES deliveries(id),
            line     INTEGER NOT NULL,
            sku      TEXT NOT NULL,
            expected INTEGER NOT NULL,
            received INTEGER NOT NULL DEFAULT 0,
            PRIMARY KEY (delivery, sku)
        );
        CREATE TABLE picks (
            id         TEXT PRIMARY KEY,
            scanner    TEXT,
            status     TEXT NOT NULL DEFAULT 'open',
            command    TEXT,
            created_at TEXT NOT NULL,
            closed_at  TEXT
        );
        CREATE TABLE pick_lines (
            pick   TEXT NOT NULL REFERENCES picks(id),
            line   INTEGER NOT NULL,
            sku    TEXT NOT NULL,
            bin    TEXT,
            qty    INTEGER NOT NULL,
            picked INTEGER NOT NULL DEFAULT 0,
            PRIMARY KEY (pick, sku)
        );
        """,
    ),
]


# --- stations ----------------------------------------------------------------


def load_stations(store: Store) -> dict[str, dict[str, Any]]:
    """Every stored station row, by scanner name."""
    return {r["scanner"]: r for r in store.query("SELECT * FROM scan_stations")}


def save_station(tx: Tx, scanner: str, mode: str, staff: str | None, delivery: str | None,
                 pick: str | None) -> None:
    """Insert or replace one scanner's persisted state."""
    tx.execute(
        "INSERT INTO scan_stations(scanner, mode, staff, delivery, pick, updated_at) "
        "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(scanner) DO UPDATE SET mode=excluded.mode, "
        "staff=excluded.staff, delivery=excluded.delivery, pick=excluded.pick, "
        "updated_at=excluded.updated_at",
        (scanner, mode, staff, delivery, pick, tx.now),
    )


# --- deliveries ----------------------------------------------------------------


def create_delivery(tx: Tx, delivery: str, lines: list[tuple[str, int]], bin: str | None,
                    command: str) -> None:
    """Record an expected delivery and its lines."""
    tx.execute("INSERT INTO deliveries(id, bin, command, created_at) VALUES (?, ?, ?, ?)",
               (delivery, bin, command, tx.now))
    for n, (sku, qty) in enumerate(lines, 1):
        tx.execute("INSERT INTO delivery_lines(delivery, line, sku, expected) VALUES (?, ?, ?, ?)",
                   (delivery, n, sku, qty))


def delivery_exists(tx: Tx, delivery: str) -> bool:
    """Whether a delivery of this id was ever announced."""
    return tx.execute("SELECT 1 FROM deliveries WHERE id=?", (delivery,)).fetchone() is not None


def open_delivery(tx: Tx, delivery: str | None) -> dict[str, Any] | None:
    """The delivery row if it is still open."""
    if delivery is None:
        return None
    found = rows(tx, "SELECT * FROM deliveries WHERE id=? AND status='open'", (delivery,))
    return found[0] if found else None


def delivery_for(tx: Tx, sku: str) -> dict[str, Any] | None:
    """The oldest open delivery still expecting ``sku``, else the oldest open one."""
    found = rows(tx, "SELECT d.* FROM deliveries d JOIN delivery_lines l ON l.delivery = d.id "
                     "WHERE d.status='open' AND l.sku=? AND l.received < l.expected "
                     "ORDER BY d.created_at, d.id LIMIT 1", (sku,))
    if found:
        return found[0]
    found = rows(tx, "SELECT * FROM deliveries WHERE status='open' ORDER BY created_at, id LIMIT 1")
    return found[0] if found else None


def add_received(tx: Tx, delivery: str, sku: str, qty: int) -> tuple[int, int]:
    """Count ``qty`` of ``sku`` against the delivery; return (expected, received)."""
    tx.execute(
        "INSERT INTO delivery_lines(delivery, line, sku, expected, received) VALUES "
        "(?, (SELECT COALESCE(MAX(line), 0) + 1 FROM delivery_lines WHERE delivery=?), ?, 0, ?) "
        "ON CONFLICT(delivery, sku) DO UPDATE SET received = received + excluded.received",
        (delivery, delivery, sku, qty),
    )
    row = tx.execute("SELECT expected, received FROM delivery_lines WHERE delivery=? AND sku=?",
                     (delivery, sku)).fetchone()
    return int(row[0]), int(row[1])


def delivery_lines(tx_or_store: Tx | Store, delivery: str) -> list[dict[str, Any]]:
    """Lines with expected/received/over/short, in announced order."""
    sql = "SELECT sku, expected, received FROM delivery_lines WHERE delivery=? ORDER BY line"
    found = rows(tx_or_store, sql, (delivery,)) if isinstance(tx_or_store, Tx) \
        else tx_or_store.query(sql, (delivery,))
    return [{**r, "over": max(0, r["received"] - r["expected"]),
             "short": max(0, r["expected"] - r["received"])} for r in found]


def close_delivery(tx: Tx, delivery: str) -> list[dict[str, Any]]:
    """Mark the delivery received; return its final lines."""
    tx.execute("UPDATE deliveries SET status='received', closed_at=? WHERE id=?", (tx.now, delivery))
    return delivery_lines(tx, delivery)


# --- picks -------------------------------------------------------------------


def create_pick(tx: Tx, pick: str, lines: list[tuple[str, int, str | None]], scanner: str | None,
                command: str) -> None:
    """Record a pick list and its lines."""
    tx.execute("INSERT INTO picks(id, scanner, command, created_at) VALUES (?, ?, ?, ?)",
               (pick, scanner, command, tx.now))
    for n, (sku, qty, bin) in enumerate(lines, 1):
        tx.execute("INSERT INTO pick_lines(pick, line, sku, bin, qty) VALUES (?, ?, ?, ?, ?)",
                   (pick, n, sku, bin, qty))


def pick_exists(tx: Tx, pick: str) -> bool:
    """Whether a pick of this id was ever requested."""
    return tx.execute("SELECT 1 FROM picks WHERE id=?", (pick,)).fetchone() is not None


def open_pick(tx: Tx, pick: str | None) -> dict[str, Any] | None:
    """The pick row if it is still open."""
    if pick is None:
        return None
    found = rows(tx, "SELECT * FROM picks WHERE id=? AND status='open'", (pick,))
    return found[0] if found else None


def pick_for(tx: Tx, scanner: str) -> dict[str, Any] | None:
    """The oldest open pick sent to this scanner, else the oldest open unassigned one."""
    found = rows(tx, "SELECT * FROM picks WHERE status='open' AND (scanner=? OR scanner IS NULL) "
                     "ORDER BY scanner IS NULL, created_at, id LIMIT 1", (scanner,))
    return found[0] if found else None


def pick_line(tx: Tx, pick: str, sku: str) -> dict[str, Any] | None:
    """The line of ``sku`` in the pick, if listed."""
    found = rows(tx, "SELECT * FROM pick_lines WHERE pick=? AND sku=?", (pick, sku))
    return found[0] if found else None


def add_picked(tx: Tx, pick: str, sku: str, qty: int) -> None:
    """Count ``qty`` picked on the line of ``sku``."""
    tx.execute("UPDATE pick_lines SET picked = picked + ? WHERE pick=? AND sku=?", (qty, pick, sku))


def pick_lines(tx_or_store: Tx | Store, pick: str) -> list[dict[str, Any]]:
    """Lines with qty/picked, in requested order."""
    sql = "SELECT sku, bin, qty, picked FROM pick_lines WHERE pick=? ORDER BY line"
    return rows(tx_or_store, sql, (pick,)) if isinstance(tx_or_store, Tx) \
        else tx_or_store.query(sql, (pick,))


def pick_complete(tx: Tx, pick: str) -> bool:
    """Whether every line is fully picked."""
    return tx.execute("SELECT 1 FROM pick_lines WHERE pick=? AND picked < qty LIMIT 1",
                      (pick,)).fetchone() is None


def close_pick(tx: Tx, pick: str, status: str) -> list[dict[str, Any]]:
    """Close the pick as ``complete`` or ``short``; return its final lines."""
    tx.execute("UPDATE picks SET status=?, closed_at=? WHERE id=?", (status, tx.now, pick))
    return pick_lines(tx, pick)
