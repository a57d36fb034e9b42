"""Movement counts kept as movements are written, so reading them costs nothing.

A trigger adds one to ``meta['movements:<type>']`` in the transaction that
inserts the movement (``meta`` is already written by every movement for
``last_seq``, so the count adds no page to the commit). Telemetry and
``status`` read these rows instead of counting a ledger of millions.
A partial index holds only the negative balances: ``status`` counts and
lists them without reading the others. (The same migrations drop the
index of movements by SKU and bin, which no query used.)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from hubagent.store.store import Store

PREFIX = "movements:"
NEGATIVE_LIMIT = 20
"""How many negative balances ``status`` lists (their total is given beside)."""

MIGRATIONS: list[tuple[str, str]] = [
    (
        "stock-0003-movement-counts",
        """
        INSERT INTO meta(key, value)
            SELECT 'movements:' || type, COUNT(*) FROM movements GROUP BY type
            ON CONFLICT(key) DO UPDATE SET value = excluded.value;
        CREATE TRIGGER movements_counted AFTER INSERT ON movements BEGIN
            INSERT INTO meta(key, value) VALUES ('movements:' || NEW.type, 1)
            ON CONFLICT(key) DO UPDATE SET value = CAST(value AS INTEGER) + 1;
        END;
        CREATE TRIGGER movements_uncounted AFTER DELETE ON movements BEGIN
            UPDATE meta SET value = CAST(value AS INTEGER) - 1
            WHERE key = 'movements:' || OLD.type;
        END;
        CREATE INDEX balances_negative ON balances(sku, bin) WHERE on_hand < 0;
        """,
    ),
    (
        # Balances are kept per SKU and bin (balances, lot_balances), so no
        # query reads movements by SKU and bin: the index cost a page write for
        # every movement and about a third of the ledger's size on disk.
        "stock-0004-no-movements-sku-bin-index",
        "DROP INDEX IF EXISTS movements_sku_bin;",
    ),
]


def by_type(store: "Store") -> dict[str, int]:
    """Movements recorded so far, by type (types never used are absent)."""
    rows = store.query("SELECT substr(key, ?) AS type, value FROM meta WHERE key > ? AND key < ?",
                       (len(PREFIX) + 1, PREFIX, PREFIX + "\uffff"))
    return {str(r["type"]): int(r["value"]) for r in rows if int(r["value"])}


def negative_balances(store: "Store", limit: int = NEGATIVE_LIMIT) -> tuple[list[dict[str, Any]], int]:
    """The first ``limit`` negative balances (by SKU and bin) and how many there are."""
    total = int(store.query("SELECT COUNT(*) AS n FROM balances WHERE on_hand < 0")[0]["n"])
    first = store.query("SELECT sku, bin, on_hand FROM balances WHERE on_hand < 0 "
                        "ORDER BY sku, bin LIMIT ?", (limit,))
    return first, total
