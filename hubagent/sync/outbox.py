"""Reading and acknowledging the outbox (core thread only).

A row is committed together with the change it reports, and stays until
central's application ack (``meta.acked_seq``) covers it; only then, and
only beyond the configured retention, is it pruned, so ``events.replay``
can still serve recent history. Whether the broker PUBACKed a row is
tracked in memory by the link, not written here: after a restart every
unacknowledged row is sent again anyway, and a write per PUBACK would cost
an fsync per event on an SD card.
"""

from __future__ import annotations


import msgspec

from hubagent.store.store import Store


class OutboxStats(msgspec.Struct, frozen=True):
    """Depth and age of what central has not acknowledged yet."""

    last_seq: int
    acked_seq: int
    depth: int
    oldest_unacked_at: str | None


def acked_seq(store: Store) -> int:
    """The highest seq central has acknowledged."""
    return int(store.meta("acked_seq", "0") or 0)


class Outgoing(msgspec.Struct, frozen=True):
    """An event ready to publish: its seq, kind and MQTT payload."""

    seq: int
    kind: str
    payload: bytes


def envelope_bytes(seq: int, event_id: str, kind: str, at: str, data_json: str,
                   replayed: bool = False) -> bytes:
    """The MQTT payload of an event, built around its stored ``data`` text.

    The envelope of ``docs/mqtt-api.md``; the stored ``data`` is
    JSON already, so it is embedded as is (``msgspec.Raw``) instead of being
    parsed and serialised again for every publish: on a Pi that is a good
    part of the cost of draining a backlog.
    """
    return msgspec.json.encode({"id": event_id, "seq": seq, "kind": kind, "at": at,
                                "replayed": replayed, "data": msgspec.Raw(data_json.encode())})


def pending_payloads(store: Store, after_seq: int, limit: int) -> list[Outgoing]:
    """Unacknowledged events with seq > ``after_seq``, in seq order, ready to publish."""
    floor = max(after_seq, acked_seq(store))
    rows = store.query(
        "SELECT seq, id, kind, at, data FROM outbox WHERE seq > ? ORDER BY seq LIMIT ?",
        (floor, limit),
    )
    return [Outgoing(r["seq"], r["kind"],
                     envelope_bytes(r["seq"], r["id"], r["kind"], r["at"], r["data"]))
            for r in rows]


def acknowledge(store: Store, upto_seq: int, keep: int, prune_rows: int) -> int:
    """Apply central's ack and delete up to ``prune_rows`` rows beyond retention.

    Returns the new acked seq. An ack beyond the last seq the hub ever
    allocated is clamped: central cannot acknowledge what the hub has not
    sent. The delete is capped because the core thread waits for it: a
    prune that falls behind catches up with the next acks.
    """
    current = acked_seq(store)
    target = min(upto_seq, store.last_seq())
    if target <= current:
        return current
    with store.write() as tx:
        tx.execute(
            "INSERT INTO meta(key, value) VALUES('acked_seq', ?) "
            "ON CONFLICT(key) DO UPDATE SET value=excluded.value",
            (str(target),),
        )
        oldest = tx.execute("SELECT MIN(seq) FROM outbox").fetchone()[0] if prune_rows else None
        if oldest is not None:
            tx.execute("DELETE FROM outbox WHERE seq <= ?",
                       (min(target - keep, oldest + prune_rows - 1),))
    return target


def stats(store: Store) -> OutboxStats:
    """Outbox depth and the timestamp of the oldest unacknowledged event.

    seq is gap-free and rows are only pruned below the acked seq, so the
    depth is a subtraction, not a COUNT over a possibly large table.
    """
    acked = acked_seq(store)
    last = store.last_seq()
    rows = store.query("SELECT at FROM outbox WHERE seq > ? ORDER BY seq LIMIT 1", (acked,))
    return OutboxStats(last, acked, last - acked, rows[0]["at"] if rows else None)


def replay_payloads(store: Store, first_seq: int, last_seq: int) -> list[Outgoing]:
    """Stored events ``first_seq`` to ``last_seq`` (acknowledged or not), marked replayed."""
    rows = store.query(
        "SELECT seq, id, kind, at, data FROM outbox WHERE seq BETWEEN ? AND ? ORDER BY seq",
        (first_seq, last_seq),
    )
    return [Outgoing(r["seq"], r["kind"],
                     envelope_bytes(r["seq"], r["id"], r["kind"], r["at"], r["data"], replayed=True))
            for r in rows]


def oldest_retained(store: Store) -> int | None:
    """The lowest seq still stored, or None when the outbox is empty."""
    row = store.query("SELECT MIN(seq) AS s FROM outbox")[0]
    return row["s"]
