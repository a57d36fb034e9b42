"""The one owner of writes to the hub's database.

All writes go through :meth:`Store.write`, which opens a ``BEGIN
IMMEDIATE`` transaction and hands out a :class:`Tx`. A business change,
the event that tells central about it (:meth:`Tx.emit`) and the next
sequence number are committed together or not at all; anything physical or
networked that depends on the change runs only after the commit
(:meth:`Tx.after_commit`).
"""

from __future__ import annotations

import json
import logging
import secrets
import sqlite3
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator, Protocol, Sequence

import msgspec

from hubagent.clock import Clock, LoopClock, rfc3339
from hubagent.errors import DiskFull, StoreError
from hubagent.store import migrations
from hubagent.store.db import check_at_open, integrity_check, open_database
from hubagent.store.space import Reserve, Space, is_disk_full

log = logging.getLogger(__name__)


Row = dict[str, Any]
"""A result row by column name."""


class Reader(Protocol):
    """Anything that runs SQL: a :class:`Tx` or a sqlite3 connection."""

    def execute(self, sql: str, params: Any = ..., /) -> sqlite3.Cursor:
        """Run one statement."""
        ...


def rows(db: Reader, sql: str, params: Any = ()) -> list[Row]:
    """Rows of a query as dicts by column name (the one place rows become dicts)."""
    cur = db.execute(sql, params)
    cols = [c[0] for c in cur.description or ()]
    return [dict(zip(cols, r)) for r in cur.fetchall()]


_last_id_time = 0
_id_lock = threading.Lock()


def ordered_id() -> str:
    """A unique 32-hex-digit id that sorts by creation time.

    Nanoseconds since the epoch (strictly increasing in this process), then
    64 random bits. A new row's id lands at the end of the index on it, on
    the page the previous one touched, instead of on a random page: the
    commands of one group write one index page, not one each.
    """
    global _last_id_time
    with _id_lock:
        _last_id_time = max(time.time_ns(), _last_id_time + 1)
        stamp = _last_id_time
    return f"{stamp:016x}{secrets.randbits(64):016x}"


def dumps(value: Any) -> str:
    """Compact, deterministic JSON as stored in the database."""
    return json.dumps(value, separators=(",", ":"), sort_keys=True, ensure_ascii=False)


class EmittedEvent(msgspec.Struct, frozen=True):
    """An event row as written to the outbox."""

    seq: int
    id: str
    kind: str
    at: str
    data: dict[str, Any]


class Tx:
    """One write transaction. Valid only inside ``with store.write()``."""

    def __init__(self, store: "Store", *, read_only: bool = False) -> None:
        self._store = store
        self.read_only = read_only
        self.now = rfc3339(store.clock.now())
        """The transaction's wall time (RFC 3339 UTC, ms): every row it stamps gets this one."""
        self.conn = store.conn
        self.events: list[EmittedEvent] = []
        self._after: list[Callable[[], None]] = []

    def execute(self, sql: str, params: Any = ()) -> sqlite3.Cursor:
        """Run one statement inside the transaction."""
        return self.conn.execute(sql, params)

    def emit(self, kind: str, data: dict[str, Any]) -> EmittedEvent:
        """Add an event to the outbox with the next gap-free seq."""
        if self.read_only:
            raise RuntimeError("a read-only command tried to emit an event")
        row = self.conn.execute("SELECT value FROM meta WHERE key='last_seq'").fetchone()
        seq = (int(row[0]) if row else 0) + 1
        self.conn.execute(
            "INSERT INTO meta(key, value) VALUES('last_seq', ?) "
            "ON CONFLICT(key) DO UPDATE SET value=excluded.value",
            (str(seq),),
        )
        ev = EmittedEvent(seq, ordered_id(), kind, self.now, data)
        self.conn.execute(
            "INSERT INTO outbox(seq, id, kind, at, data) VALUES (?, ?, ?, ?, ?)",
            (ev.seq, ev.id, ev.kind, ev.at, dumps(ev.data)),
        )
        self.events.append(ev)
        for fn in self._store._emit_hooks:
            fn(self, ev)
        return ev

    @contextmanager
    def savepoint(self, name: str) -> Iterator[None]:
        """A nested part of the transaction: rolled back alone if the block raises.

        What the block emitted or asked to run after commit is dropped with it,
        so no event is published whose row was rolled back.
        """
        events, after = len(self.events), len(self._after)
        self.conn.execute(f"SAVEPOINT {name}")
        try:
            yield
        except BaseException:
            self.conn.execute(f"ROLLBACK TO {name}")
            del self.events[events:]
            del self._after[after:]
            raise
        finally:
            self.conn.execute(f"RELEASE {name}")

    def after_commit(self, fn: Callable[[], None]) -> None:
        """Run ``fn`` once the transaction has committed (never on rollback)."""
        self._after.append(fn)


class Store:
    """The hub's database: schema, the single writer, outbox and inbox."""

    def __init__(self, path: Path, migrations: Sequence[tuple[str, str]], *, reserve_bytes: int = 0,
                 clock: Clock | None = None) -> None:
        """A store at ``path`` with this schema (see :func:`hubagent.features.all_migrations`).

        ``clock`` stamps rows and events with its wall time (the real clock
        when not given).
        """
        self.path = path
        self.clock: Clock = clock if clock is not None else LoopClock()
        self.migrations = tuple(migrations)
        self.reserve = Reserve.beside(path, reserve_bytes)
        self.space = Space.OK
        self.full_detail = ""
        self._conn: sqlite3.Connection | None = None
        self._lock = threading.RLock()
        self._listeners: list[Callable[[list[EmittedEvent]], None]] = []
        self._space_listeners: list[Callable[[Space], None]] = []
        self.check_pending = False
        """True when :meth:`open` skipped ``quick_check`` (big file, clean stop): run it in the background."""
        self._emit_hooks: list[Callable[[Tx, EmittedEvent], None]] = []

    # -- lifecycle -------------------------------------------------------
    def open(self) -> list[str]:
        """Open the file and apply pending migrations; return their names.

        On a full disk the reserve file is given up to make room to open;
        the store then runs degraded (:attr:`space` is FULL, writes refused).
        """
        # Decided before opening: opening may itself leave a WAL file behind.
        checked = check_at_open(self.path)
        self.check_pending = not checked
        try:
            self._conn = open_database(self.path, self.clock.now(), self.reserve, quick_check=checked)
        except DiskFull as e:
            self._conn = self._open_degraded()
            self._enter_full(str(e))
        else:
            if not self.reserve.make():
                log.warning("no room for the %d-byte disk reserve %s",
                            self.reserve.size, self.reserve.path)
        applied = migrations.apply(self._conn, self.migrations, self.clock.now())
        if applied:
            log.info("applied migrations: %s", ", ".join(applied))
        return applied

    def _open_degraded(self) -> sqlite3.Connection:
        """Open on a full disk: with the reserve's room, else without a ``-shm`` file."""
        if self.reserve.release():
            try:
                return open_database(self.path, self.clock.now(), self.reserve)
            except DiskFull:
                pass
        log.warning("opening %s in exclusive mode: no room for its -shm file", self.path)
        return open_database(self.path, self.clock.now(), self.reserve, exclusive=True)

    def close(self) -> None:
        """Checkpoint the WAL and close; idempotent."""
        if self._conn is None:
            return
        try:
            self.checkpoint()
        except sqlite3.OperationalError as e:
            # Committed data is safe in the WAL; the next open folds it in.
            log.warning("closing without a checkpoint: %s", e)
        finally:
            self._conn.close()
            self._conn = None

    def checkpoint(self) -> None:
        """Fold the WAL into the main file (before power-off)."""
        with self._lock:
            self.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    @property
    def conn(self) -> sqlite3.Connection:
        """The connection; StoreError if the store is closed."""
        if self._conn is None:
            raise StoreError("the store is not open")
        return self._conn

    def integrity(self) -> str:
        """Full ``integrity_check`` ("ok" when healthy)."""
        with self._lock:
            return integrity_check(self.conn)

    # -- disk space ------------------------------------------------------
    def on_space(self, fn: Callable[[Space], None]) -> None:
        """Call ``fn(space)`` whenever the store turns full or writable again."""
        self._space_listeners.append(fn)

    def _enter_full(self, detail: str) -> None:
        """Stop writing: give up the reserve, fold the WAL in, tell listeners once."""
        if self.space is Space.FULL:
            return
        self.space = Space.FULL
        free = self.reserve.free_bytes()
        self.reserve.release()
        self.full_detail = (f"disk full ({free // 1024} KiB free on {self.path.parent}); "
                            "writes are refused until space is freed")
        log.error("%s: %s", self.full_detail, detail)
        try:
            self.checkpoint()
        except sqlite3.Error:
            pass  # no room even for that; the WAL keeps every commit
        self._tell_space()

    def check_space(self) -> Space:
        """While full: resume writes once there is room again (checkpoint, new reserve)."""
        if self.space is Space.OK or self._conn is None or not self.reserve.room_to_resume():
            return self.space
        try:
            self.checkpoint()
        except sqlite3.Error as e:
            log.warning("disk space is back but the checkpoint failed: %s", e)
            return self.space
        self.reserve.make()
        self.space = Space.OK
        self.full_detail = ""
        log.warning("disk space is back on %s: writes resume", self.path.parent)
        self._tell_space()
        return self.space

    def _tell_space(self) -> None:
        for fn in self._space_listeners:
            try:
                fn(self.space)
            except Exception:
                log.exception("disk space listener failed")

    # -- writing ---------------------------------------------------------
    def on_emit(self, fn: Callable[[Tx, EmittedEvent], None]) -> None:
        """Call ``fn(tx, event)`` inside the transaction of every event as it is emitted.

        For figures that must commit with what they count (the KPI rollups);
        an exception rolls the whole transaction back.
        """
        self._emit_hooks.append(fn)

    def on_commit(self, fn: Callable[[list[EmittedEvent]], None]) -> None:
        """Call ``fn(events)`` after every commit that emitted events."""
        self._listeners.append(fn)

    @contextmanager
    def write(self) -> Iterator[Tx]:
        """A ``BEGIN IMMEDIATE`` transaction; commits on normal exit."""
        with self._lock:
            if self.space is Space.FULL:
                raise DiskFull(f"{self.full_detail}; nothing was written")
            tx = Tx(self)
            self.conn.execute("BEGIN IMMEDIATE")
            try:
                yield tx
                self.conn.execute("COMMIT")
            except sqlite3.OperationalError as e:
                self._rollback()
                if is_disk_full(e, self.reserve):
                    self._enter_full(str(e))
                    raise DiskFull(f"{self.full_detail}; nothing was written") from e
                raise
            except BaseException:
                self._rollback()
                raise
        self._after_commit(tx)

    @contextmanager
    def read(self) -> Iterator[Tx]:
        """A read transaction that writes nothing (``query_only`` is on inside it).

        One consistent snapshot for a read-only command; no WAL frame and no
        fsync, so a ``ping`` or ``stock.get`` costs the SD card nothing.
        """
        with self._lock:
            self.conn.execute("PRAGMA query_only=1")
            try:
                self.conn.execute("BEGIN DEFERRED")
                try:
                    yield Tx(self, read_only=True)
                finally:
                    self._rollback()
            finally:
                self.conn.execute("PRAGMA query_only=0")

    def _rollback(self) -> None:
        try:
            self.conn.execute("ROLLBACK")
        except sqlite3.Error:
            pass  # already rolled back by SQLite itself (e.g. disk full)

    def _after_commit(self, tx: Tx) -> None:
        for fn in tx._after:
            try:
                fn()
            except Exception:
                log.exception("after-commit action failed")
        if tx.events:
            for listener in self._listeners:
                try:
                    listener(tx.events)
                except Exception:
                    log.exception("commit listener failed")

    # -- reading ---------------------------------------------------------
    def query(self, sql: str, params: Any = ()) -> list[Row]:
        """Rows of a read-only query."""
        with self._lock:
            return rows(self.conn, sql, params)

    def meta(self, key: str, default: str | None = None) -> str | None:
        """A value from the ``meta`` table."""
        rows = self.query("SELECT value FROM meta WHERE key=?", (key,))
        return rows[0]["value"] if rows else default

    def last_seq(self) -> int:
        """The highest seq ever allocated (0 if none)."""
        return int(self.meta("last_seq", "0") or 0)


def row_to_event(row: dict[str, Any]) -> EmittedEvent:
    """An outbox row as an :class:`EmittedEvent`."""
    return EmittedEvent(row["seq"], row["id"], row["kind"], row["at"], json.loads(row["data"]))
