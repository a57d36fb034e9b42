"""The consortium's books: events stored once, cursors, hub states, resyncs.

Everything here runs inside one database transaction and computes from
the database, never from process memory, so several ingest processes can
take any hub's events in any order: each transaction locks the cursor rows
of the hubs it touches (in hub order, so two transactions never wait on
each other in a cycle), stores the events that are new, derives the central
tables from them, and moves the hub's gap-free cursor forward.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from hubagent.central.db import Database, Tx
from hubagent.central.derive import Stored, derive

# Walking the stored seqs above a gap, this many at a time.
_WALK = 5000
# Rows per multi-row statement (SQLite allows 32,766 parameters).
_CHUNK = 400


@dataclass(frozen=True)
class Incoming:
    """An event as received, stamped with the database id its hub announced."""

    hub: str
    db: str
    seq: int
    id: str
    kind: str
    at: str | None
    data: Any


@dataclass(frozen=True)
class Cursor:
    """Where one hub's stream stands: ``upto`` is gap-free and acknowledged."""

    hub: str
    db: str
    upto: int
    max_seq: int
    new: int = 0  # events this transaction stored

    @property
    def gap(self) -> bool:
        """True while something above a missing seq is stored."""
        return self.max_seq > self.upto


@dataclass(frozen=True)
class HubState:
    """A hub's retained state message."""

    hub: str
    state: str
    session: int | None
    db: str | None
    version: str | None
    since: str | None
    alerts: tuple[str, ...]


def store_events(tx: Tx, events: Iterable[Incoming], now: float | None = None) -> list[Cursor]:
    """Store new events, derive tables, advance cursors; one Cursor per (hub, db) touched.

    A few statements per batch, not per hub (PostgreSQL pays a round trip
    for each): lock the batch's cursors, insert the events (the database
    says which were new), update the cursors.
    """
    now = time.time() if now is None else now
    groups: dict[tuple[str, str], dict[int, Incoming]] = {}
    for ev in events:
        groups.setdefault((ev.hub, ev.db), {}).setdefault(ev.seq, ev)
    if not groups:
        return []
    pairs = sorted(groups)
    held = _lock_cursors(tx, pairs)
    stamp = _iso(now)
    rows = [(hub, db, e.seq, e.id, e.kind, e.at, json.dumps(e.data), stamp)
            for hub, db in pairs for e in groups[(hub, db)].values()]
    inserted: set[tuple[str, str, int]] = set()
    for i in range(0, len(rows), _CHUNK):
        chunk = rows[i:i + _CHUNK]
        marks = ", ".join(["(?, ?, ?, ?, ?, ?, ?, ?)"] * len(chunk))
        inserted.update((h, d, int(q)) for h, d, q in tx.rows(
            "INSERT INTO events (hub, db, seq, id, kind, at, data, stored_at) "
            f"VALUES {marks} ON CONFLICT DO NOTHING RETURNING hub, db, seq",
            [v for row in chunk for v in row]))
    cursors: list[Cursor] = []
    fresh: list[Stored] = []
    updates: list[tuple[int, int, float | None, str, str]] = []
    for hub, db in pairs:
        batch = groups[(hub, db)]
        upto, max_seq = held[(hub, db)]
        seqs = sorted(batch)
        new = [batch[s] for s in seqs if (hub, db, s) in inserted]
        fresh.extend(Stored(hub, db, e.seq, e.kind, e.at,
                            e.data if isinstance(e.data, Mapping) else {}) for e in new)
        new_upto = _advance(tx, hub, db, upto, max_seq, seqs)
        new_max = max(max_seq, seqs[-1])
        updates.append((new_upto, new_max, now if new_max > new_upto else None, hub, db))
        cursors.append(Cursor(hub, db, new_upto, new_max, len(new)))
    tx.many("UPDATE cursors SET upto = ?, max_seq = ?, "
            "gap_since = CASE WHEN gap_since IS NULL THEN ? ELSE gap_since END "
            "WHERE hub = ? AND db = ?", updates)
    tx.many("UPDATE cursors SET gap_since = NULL, replay_at = NULL WHERE hub = ? AND db = ?",
            [(hub, db) for _, _, since, hub, db in updates if since is None])
    derive(tx, fresh)
    return cursors


def _lock_cursors(tx: Tx, pairs: list[tuple[str, str]]) -> dict[tuple[str, str], tuple[int, int]]:
    """Create and lock the cursors of ``pairs`` (sorted), in that order."""
    tx.many("INSERT INTO cursors (hub, db) VALUES (?, ?) ON CONFLICT DO NOTHING", pairs)
    hubs = sorted({hub for hub, _ in pairs})
    held: dict[tuple[str, str], tuple[int, int]] = {}
    for i in range(0, len(hubs), _CHUNK):
        part = hubs[i:i + _CHUNK]
        sql = (f"SELECT hub, db, upto, max_seq FROM cursors WHERE hub IN "
               f"({', '.join('?' * len(part))}) ORDER BY hub, db")
        for hub, db, upto, max_seq in (tx.rows(sql + " FOR UPDATE", part) if tx.postgres
                                       else tx.rows(sql, part)):
            held[(hub, db)] = (int(upto), int(max_seq))
    return held


def _lock_cursor(tx: Tx, hub: str, db: str) -> tuple[int, int]:
    tx.execute("INSERT INTO cursors (hub, db) VALUES (?, ?) ON CONFLICT DO NOTHING", (hub, db))
    row = tx.lock("SELECT upto, max_seq FROM cursors WHERE hub = ? AND db = ?", (hub, db))
    assert row is not None  # inserted just above
    return int(row[0]), int(row[1])


def _advance(tx: Tx, hub: str, db: str, upto: int, max_seq: int, seqs: list[int]) -> int:
    """The new gap-free seq after storing ``seqs`` (ascending)."""
    if upto + 1 not in seqs:
        return upto  # the first missing seq is still missing
    if max_seq <= upto:
        # No gap was open: the frontier runs through this batch's contiguous seqs.
        n = upto
        for s in seqs:
            if s == n + 1:
                n = s
            elif s > n + 1:
                break
        return n
    return _walk(tx, hub, db, upto)  # a gap just closed: walk what is stored above it


def _walk(tx: Tx, hub: str, db: str, n: int) -> int:
    """The highest seq reached from ``n`` through consecutive stored seqs."""
    while True:
        rows = tx.rows("SELECT seq FROM events WHERE hub = ? AND db = ? AND seq > ? "
                       "ORDER BY seq LIMIT ?", (hub, db, n, _WALK))
        for (s,) in rows:
            if s != n + 1:
                return n
            n = s
        if len(rows) < _WALK:
            return n


def _save_cursor(tx: Tx, hub: str, db: str, upto: int, max_seq: int, now: float) -> None:
    if max_seq > upto:
        tx.execute("UPDATE cursors SET upto = ?, max_seq = ?, gap_since = COALESCE(gap_since, ?) "
                   "WHERE hub = ? AND db = ?", (upto, max_seq, now, hub, db))
    else:
        tx.execute("UPDATE cursors SET upto = ?, max_seq = ?, gap_since = NULL, replay_at = NULL "
                   "WHERE hub = ? AND db = ?", (upto, max_seq, hub, db))


def cursor_of(tx: Tx, hub: str, db: str) -> Cursor:
    """The cursor of one hub's database (zero when nothing is stored)."""
    row = tx.one("SELECT upto, max_seq FROM cursors WHERE hub = ? AND db = ?", (hub, db))
    return Cursor(hub, db, int(row[0]), int(row[1])) if row else Cursor(hub, db, 0, 0)


def record_state(tx: Tx, st: HubState, now: float | None = None) -> str | None:
    """Store a hub's retained state; returns why the hub needs a resync, or None.

    Only the transaction that changes the row sees the change, so of several
    processes receiving the same state message exactly one asks for a resync.
    """
    now = time.time() if now is None else now
    # Insert-then-lock: two processes seeing a new hub at once must not both insert it.
    tx.execute("INSERT INTO hubs (hub) VALUES (?) ON CONFLICT DO NOTHING", (st.hub,))
    row = tx.lock("SELECT db, session, state FROM hubs WHERE hub = ?", (st.hub,))
    assert row is not None  # inserted just above
    alerts = json.dumps(list(st.alerts))
    reason: str | None = None
    old_db, old_session, old_state = row
    if st.db is not None and old_db is not None and st.db != old_db:
        reason = "new_db"
    elif (st.session is not None and old_session is not None and st.session > old_session
          and old_state not in ("offline", None)):
        # A restart we did not see end cleanly: after `lost`, or a `lost` we missed.
        reason = f"restart_after_{old_state}"
    tx.execute("UPDATE hubs SET db = COALESCE(?, db), session = COALESCE(?, session), "
               "state = ?, alerts = ?, version = ?, since = ?, seen_at = ? WHERE hub = ?",
               (st.db, st.session, st.state, alerts, st.version, st.since, now, st.hub))
    tx.execute("INSERT INTO alert_history (hub, session, since, state, alerts, seen_at) "
               "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
               (st.hub, st.session or 0, st.since or "", st.state, alerts, now))
    if reason is not None:
        tx.execute("UPDATE hubs SET resync_wanted = ?, resync_at = NULL WHERE hub = ?",
                   (reason, st.hub))
    return reason


def record_telemetry(tx: Tx, hub: str, sample: Any, now: float | None = None) -> None:
    """Keep the latest telemetry sample of a hub already known from its state."""
    now = time.time() if now is None else now
    tx.execute("UPDATE hubs SET telemetry = ?, telemetry_at = ? WHERE hub = ?",
               (json.dumps(sample), now, hub))


def want_resync(tx: Tx, hub: str, reason: str) -> None:
    """Ask (any process) for a resync of ``hub``."""
    tx.execute("UPDATE hubs SET resync_wanted = ?, resync_at = NULL WHERE hub = ?", (reason, hub))


def _everyone(hub: str) -> bool:
    return True


def claim_resyncs(db: Database, retry_s: float, now: float | None = None,
                  owns: Callable[[str], bool] = _everyone) -> list[tuple[str, str]]:
    """Hubs wanting a resync that nobody tried within ``retry_s``; claims them for us."""
    now = time.time() if now is None else now
    claimed = []
    for hub, reason in db.read("SELECT hub, resync_wanted FROM hubs WHERE resync_wanted IS NOT NULL "
                               "AND (resync_at IS NULL OR resync_at < ?)", (now - retry_s,)):
        if not owns(hub):
            continue
        with db.tx() as tx:
            cur = tx.execute("UPDATE hubs SET resync_at = ? WHERE hub = ? AND resync_wanted = ? "
                             "AND (resync_at IS NULL OR resync_at < ?)",
                             (now, hub, reason, now - retry_s))
            if cur.rowcount == 1:
                claimed.append((hub, reason))
    return claimed


def claim_gaps(db: Database, gap_s: float, retry_s: float, now: float | None = None,
               owns: Callable[[str], bool] = _everyone) -> list[tuple[str, str, int, int]]:
    """Gaps open longer than ``gap_s`` in the hub's current database, claimed for a replay.

    Returns ``(hub, db, from_seq, limit)`` where ``limit`` covers the gap.
    """
    now = time.time() if now is None else now
    rows = db.read("SELECT c.hub, c.db, c.upto FROM cursors c JOIN hubs h "
                   "ON h.hub = c.hub AND h.db = c.db WHERE c.gap_since IS NOT NULL "
                   "AND c.gap_since < ? AND (c.replay_at IS NULL OR c.replay_at < ?)",
                   (now - gap_s, now - retry_s))
    claimed = []
    for hub, dbid, upto in rows:
        if not owns(hub):
            continue
        with db.tx() as tx:
            cur = tx.execute("UPDATE cursors SET replay_at = ? WHERE hub = ? AND db = ? "
                             "AND upto = ? AND gap_since IS NOT NULL "
                             "AND (replay_at IS NULL OR replay_at < ?)",
                             (now, hub, dbid, upto, now - retry_s))
            if cur.rowcount != 1:
                continue
            nxt = tx.one("SELECT MIN(seq) FROM events WHERE hub = ? AND db = ? AND seq > ?",
                         (hub, dbid, upto))
        limit = min(10_000, max(1, int(nxt[0]) - upto - 1)) if nxt and nxt[0] else 10_000
        claimed.append((hub, dbid, int(upto) + 1, limit))
    return claimed


def apply_snapshot(tx: Tx, hub: str, reason: str, snapshot: Mapping[str, Any],
                   now: float | None = None) -> Cursor:
    """Reset a hub's stock to its ``state.snapshot`` and move its cursor past pruned seqs.

    Stock rows set by events after the snapshot are kept (they are newer);
    every other row of the hub is replaced by the snapshot's balances, a
    balance missing from the snapshot being zero. Returns the cursor.
    """
    now = time.time() if now is None else now
    row = tx.lock("SELECT db FROM hubs WHERE hub = ?", (hub,))
    if row is None or row[0] is None:
        raise ValueError(f"hub {hub!r} has announced no database id")
    dbid = str(row[0])
    upto, max_seq = _lock_cursor(tx, hub, dbid)
    last_seq = int(snapshot["last_seq"])
    oldest = snapshot.get("oldest_retained_seq")
    balances = snapshot.get("balances") or []
    tx.execute("DELETE FROM stock WHERE hub = ? AND NOT (db = ? AND seq > ?)", (hub, dbid, last_seq))
    tx.many("INSERT INTO stock (hub, sku, bin, on_hand, db, seq) VALUES (?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (hub, sku, bin) DO NOTHING",
            [(hub, b["sku"], b["bin"], int(b["on_hand"]), dbid, last_seq) for b in balances])
    skipped: tuple[int | None, int | None] = (None, None)
    # Seqs below the oldest the hub still holds will never come: the snapshot covers them.
    floor = (int(oldest) - 1) if oldest is not None else last_seq
    if floor > upto:
        skipped = (upto + 1, floor)
        upto = _walk(tx, hub, dbid, floor) if max_seq > floor else floor
    _save_cursor(tx, hub, dbid, upto, max(max_seq, upto), now)
    tx.execute("INSERT INTO resyncs (id, hub, db, at, reason, last_seq, oldest_retained_seq, "
               "skipped_from, skipped_to, balances) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
               (uuid.uuid4().hex, hub, dbid, now, reason, last_seq, oldest, skipped[0],
                skipped[1], json.dumps(balances)))
    tx.execute("UPDATE hubs SET resync_wanted = NULL, resync_at = NULL "
               "WHERE hub = ? AND resync_wanted = ?", (hub, reason))
    return Cursor(hub, dbid, upto, max(max_seq, upto))


def _iso(ts: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts)) + f".{int(ts % 1 * 1000):03d}Z"
