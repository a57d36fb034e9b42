"""Central's database: one URL, SQLite or PostgreSQL, the same SQL.

``sqlite:///path/central.db`` (the default, for one office) or
``postgresql://user@host/db`` (psycopg 3, imported only for such a URL).
Statements are written with ``?`` placeholders; the PostgreSQL connection
turns them into ``%s``. Every write happens in :meth:`Database.tx`: on
SQLite a ``BEGIN IMMEDIATE`` transaction (writers from several processes
queue on the file lock), on PostgreSQL a READ COMMITTED transaction in
which :meth:`Tx.lock` takes row locks (``FOR UPDATE``) so several ingest
processes can share one hub's stream.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

DEFAULT_URL = "sqlite:///central.db"

Row = tuple[Any, ...]
Params = Sequence[Any]

SCHEMA = [
    # Every event of every hub, once: keyed by hub, database id and seq.
    """CREATE TABLE IF NOT EXISTS events (
        hub TEXT NOT NULL, db TEXT NOT NULL, seq BIGINT NOT NULL,
        id TEXT NOT NULL, kind TEXT NOT NULL, at TEXT, data TEXT NOT NULL,
        stored_at TEXT NOT NULL,
        PRIMARY KEY (hub, db, seq))""",
    # Per hub and database: the highest gap-free seq stored (what we ack),
    # the highest seq stored, since when a gap has been open, and when a
    # replay or resync was last asked for (a claim shared by all processes).
    """CREATE TABLE IF NOT EXISTS cursors (
        hub TEXT NOT NULL, db TEXT NOT NULL,
        upto BIGINT NOT NULL DEFAULT 0, max_seq BIGINT NOT NULL DEFAULT 0,
        gap_since DOUBLE PRECISION, replay_at DOUBLE PRECISION,
        PRIMARY KEY (hub, db))""",
    # The fleet as central last saw it (retained state, last telemetry).
    """CREATE TABLE IF NOT EXISTS hubs (
        hub TEXT PRIMARY KEY, db TEXT, session BIGINT, state TEXT, alerts TEXT,
        version TEXT, since TEXT, seen_at DOUBLE PRECISION,
        telemetry TEXT, telemetry_at DOUBLE PRECISION,
        resync_wanted TEXT, resync_at DOUBLE PRECISION)""",
    # Derived tables: each row carries the db and seq of the event that set it.
    """CREATE TABLE IF NOT EXISTS stock (
        hub TEXT NOT NULL, sku TEXT NOT NULL, bin TEXT NOT NULL, on_hand BIGINT NOT NULL,
        db TEXT NOT NULL, seq BIGINT NOT NULL, PRIMARY KEY (hub, sku, bin))""",
    """CREATE TABLE IF NOT EXISTS parcels (
        hub TEXT NOT NULL, parcel TEXT NOT NULL, state TEXT NOT NULL,
        bank TEXT, compartment TEXT, size TEXT, expires_at TEXT,
        db TEXT NOT NULL, seq BIGINT NOT NULL, PRIMARY KEY (hub, parcel))""",
    """CREATE TABLE IF NOT EXISTS lockers (
        hub TEXT NOT NULL, bank TEXT NOT NULL, compartment TEXT NOT NULL,
        state TEXT NOT NULL, item TEXT,
        db TEXT NOT NULL, seq BIGINT NOT NULL, PRIMARY KEY (hub, bank, compartment))""",
    """CREATE TABLE IF NOT EXISTS locker_alarms (
        hub TEXT NOT NULL, bank TEXT NOT NULL, compartment TEXT NOT NULL, kind TEXT NOT NULL,
        active INTEGER NOT NULL, detail TEXT,
        db TEXT NOT NULL, seq BIGINT NOT NULL, PRIMARY KEY (hub, bank, compartment, kind))""",
    """CREATE TABLE IF NOT EXISTS print_jobs (
        hub TEXT NOT NULL, job TEXT NOT NULL, state TEXT NOT NULL,
        printer TEXT, template TEXT, reason TEXT,
        db TEXT NOT NULL, seq BIGINT NOT NULL, PRIMARY KEY (hub, job))""",
    """CREATE TABLE IF NOT EXISTS power_history (
        hub TEXT NOT NULL, db TEXT NOT NULL, seq BIGINT NOT NULL, at TEXT,
        kind TEXT NOT NULL, state TEXT, previous TEXT, detail TEXT,
        PRIMARY KEY (hub, db, seq))""",
    """CREATE TABLE IF NOT EXISTS alert_history (
        hub TEXT NOT NULL, session BIGINT NOT NULL, since TEXT NOT NULL, state TEXT NOT NULL,
        alerts TEXT NOT NULL, seen_at DOUBLE PRECISION NOT NULL,
        PRIMARY KEY (hub, session, since, state, alerts))""",
    # Each resync: why, what the snapshot said, which seqs were skipped.
    """CREATE TABLE IF NOT EXISTS resyncs (
        id TEXT PRIMARY KEY, hub TEXT NOT NULL, db TEXT NOT NULL, at DOUBLE PRECISION NOT NULL,
        reason TEXT NOT NULL, last_seq BIGINT, oldest_retained_seq BIGINT,
        skipped_from BIGINT, skipped_to BIGINT, balances TEXT NOT NULL)""",
    # Stock corrections sent by `hubctl reconcile --apply`, keyed by command id.
    """CREATE TABLE IF NOT EXISTS corrections (
        id TEXT PRIMARY KEY, hub TEXT NOT NULL, sku TEXT NOT NULL, bin TEXT NOT NULL,
        central BIGINT, hub_on_hand BIGINT, reason TEXT NOT NULL, at DOUBLE PRECISION NOT NULL,
        ok INTEGER, reply TEXT)""",
    "CREATE INDEX IF NOT EXISTS events_by_kind ON events (hub, kind)",
]


class DatabaseError(RuntimeError):
    """The database URL is unusable."""


class _Cursor(Protocol):
    rowcount: int

    def fetchall(self) -> list[Row]: ...
    def fetchone(self) -> Row | None: ...


class Tx:
    """One open transaction: ``execute``, ``many``, ``rows``, ``one``, ``lock``."""

    def __init__(self, conn: Any, postgres: bool) -> None:
        self._conn = conn
        self.postgres = postgres

    def _sql(self, sql: str) -> str:
        return sql.replace("?", "%s") if self.postgres else sql

    def execute(self, sql: str, params: Params = ()) -> _Cursor:
        """Run one statement; returns the cursor (``rowcount``, ``fetch*``)."""
        cur: _Cursor = self._conn.execute(self._sql(sql), tuple(params))
        return cur

    def many(self, sql: str, rows: Sequence[Params]) -> None:
        """Run one statement for each parameter row (batched by the driver)."""
        if not rows:
            return
        if self.postgres:
            with self._conn.cursor() as cur:
                cur.executemany(self._sql(sql), rows)
        else:
            self._conn.executemany(sql, rows)

    def rows(self, sql: str, params: Params = ()) -> list[Row]:
        """All rows of a query."""
        return self.execute(sql, params).fetchall()

    def one(self, sql: str, params: Params = ()) -> Row | None:
        """The first row of a query, or None."""
        return self.execute(sql, params).fetchone()

    def lock(self, sql: str, params: Params = ()) -> Row | None:
        """A query whose rows stay locked until commit (PostgreSQL ``FOR UPDATE``).

        On SQLite the whole database is already locked by ``BEGIN IMMEDIATE``.
        """
        return self.one(sql + (" FOR UPDATE" if self.postgres else ""), params)


class Database:
    """A connection to central's database, for one thread."""

    def __init__(self, url: str = DEFAULT_URL) -> None:
        self.url = url
        scheme = urlsplit(url).scheme
        if scheme == "sqlite":
            self.postgres = False
            self._conn: Any = _open_sqlite(url)
        elif scheme in ("postgresql", "postgres"):
            self.postgres = True
            self._conn = _open_postgres(url)
        else:
            raise DatabaseError(f"--db: unsupported URL scheme {scheme!r} "
                                "(use sqlite:///path or postgresql://...)")

    def migrate(self) -> None:
        """Create the tables that are missing (idempotent, safe from several processes)."""
        with self.tx() as tx:
            if self.postgres:
                # Two processes starting at once must not race on CREATE TABLE.
                tx.execute("SELECT pg_advisory_xact_lock(160016)")
            for stmt in SCHEMA:
                tx.execute(stmt)

    @contextmanager
    def tx(self) -> Iterator[Tx]:
        """A write transaction, committed on success and rolled back on error."""
        if self.postgres:
            with self._conn.transaction():
                yield Tx(self._conn, True)
            return
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            yield Tx(self._conn, False)
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        self._conn.execute("COMMIT")

    def read(self, sql: str, params: Params = ()) -> list[Row]:
        """Rows of a read-only query outside any write transaction."""
        if self.postgres:
            with self._conn.transaction():
                return list(self._conn.execute(sql.replace("?", "%s"), tuple(params)).fetchall())
        return list(self._conn.execute(sql, tuple(params)).fetchall())

    def close(self) -> None:
        """Close the connection. Idempotent."""
        self._conn.close()


def sqlite_path(url: str) -> Path:
    """The file of a ``sqlite:///relative`` or ``sqlite:////absolute`` URL."""
    parts = urlsplit(url)
    if parts.netloc not in ("", "localhost"):
        raise DatabaseError(f"--db: a sqlite URL has no host ({url!r}); use sqlite:///path")
    path = parts.path[1:] if parts.path.startswith("/") else parts.path
    if not path:
        raise DatabaseError(f"--db: no file in {url!r}")
    return Path(path)


def _open_sqlite(url: str) -> sqlite3.Connection:
    path = sqlite_path(url)
    # Autocommit mode: transactions are explicit (BEGIN IMMEDIATE) in Database.tx.
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=60)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA busy_timeout=60000")
    return conn


def _open_postgres(url: str) -> Any:
    try:
        import psycopg  # only when a PostgreSQL URL is used
    except ImportError as e:
        raise DatabaseError("--db postgresql://... needs psycopg: "
                            "pip install 'hubagent[central]'") from e
    try:
        return psycopg.connect(url, autocommit=True)
    except psycopg.OperationalError as e:
        raise DatabaseError(f"--db: cannot connect to PostgreSQL: {e}".strip()) from e
