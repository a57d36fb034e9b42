"""Schema migrations, applied at start-up.

Migrations are named, not numbered, so features can add theirs
independently (each feature declares its own, see
:func:`hubagent.features.all_migrations`); each is applied once, in the
order listed, inside its own
``BEGIN IMMEDIATE`` transaction together with its row in ``migrations``.
A migration is never edited after release: add a new one instead.
"""

from __future__ import annotations

import sqlite3
from datetime import datetime
from typing import Iterable

CORE: list[tuple[str, str]] = [
    (
        "core-0001-outbox-inbox",
        """
        CREATE TABLE meta (
            key   TEXT PRIMARY KEY,
            value TEXT NOT NULL
        );
        -- Identifies this database file: a quarantined and recreated
        -- database starts seq at 1 again, and central sees a new db id.
        INSERT INTO meta(key, value) VALUES ('db_id', lower(hex(randomblob(16))));
        -- Every event the hub emits, in seq order. seq is allocated from
        -- meta.last_seq, never from MAX(seq), so pruning cannot cause reuse.
        CREATE TABLE outbox (
            seq      INTEGER PRIMARY KEY,
            id       TEXT NOT NULL UNIQUE,
            kind     TEXT NOT NULL,
            at       TEXT NOT NULL,
            data     TEXT NOT NULL
        );
        -- Commands already handled, with the reply they got, so a repeat
        -- gets the same reply and has no second effect.
        CREATE TABLE inbox (
            id          TEXT PRIMARY KEY,
            name        TEXT NOT NULL,
            received_at TEXT NOT NULL,
            ok          INTEGER NOT NULL,
            reply       TEXT NOT NULL
        );
        """,
    ),
    (
        # Event ids are unique by construction (time-ordered, with 64 random
        # bits) and nothing looks an event up by id: the index on id only cost
        # a page write for every event. The outbox holds only what central has
        # not acknowledged (or the retention window), so the copy is small.
        "core-0002-outbox-without-id-index",
        """
        CREATE TABLE outbox_new (
            seq      INTEGER PRIMARY KEY,
            id       TEXT NOT NULL,
            kind     TEXT NOT NULL,
            at       TEXT NOT NULL,
            data     TEXT NOT NULL
        );
        INSERT INTO outbox_new(seq, id, kind, at, data) SELECT seq, id, kind, at, data FROM outbox;
        DROP TABLE outbox;
        ALTER TABLE outbox_new RENAME TO outbox;
        """,
    ),
]

def apply(conn: sqlite3.Connection, migrations: Iterable[tuple[str, str]], now: datetime) -> list[str]:
    """Apply the migrations not yet applied, stamped with wall time ``now``; return their names."""
    conn.execute(
        "CREATE TABLE IF NOT EXISTS migrations (name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)"
    )
    done = {r[0] for r in conn.execute("SELECT name FROM migrations")}
    applied = []
    for name, sql in migrations:
        if name in done:
            continue
        conn.execute("BEGIN IMMEDIATE")
        try:
            for statement in _statements(sql):
                conn.execute(statement)
            conn.execute(
                "INSERT INTO migrations(name, applied_at) VALUES (?, ?)",
                (name, now.strftime("%Y-%m-%dT%H:%M:%SZ")),
            )
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        applied.append(name)
    return applied


def _statements(sql: str) -> list[str]:
    """Split a script into statements (executescript would COMMIT for us)."""
    out, buf = [], ""
    for line in sql.splitlines(keepends=True):
        buf += line
        if sqlite3.complete_statement(buf):
            out.append(buf.strip())
            buf = ""
    if buf.strip():
        out.append(buf.strip())
    return [s for s in out if s]
