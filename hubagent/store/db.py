"""Opening the hub's SQLite database safely.

The database is the only source of truth on the hub. It is opened in WAL
mode with ``synchronous=FULL`` (checked, not assumed: under NORMAL a commit
already published could vanish in a power cut and its seq be reused). A
file that is not a healthy SQLite database is never overwritten: it is
moved aside under a quarantine name together with its WAL and SHM files.
"""

from __future__ import annotations

import logging
import os
import sqlite3
from datetime import datetime
from pathlib import Path

from hubagent.errors import DatabaseCorrupt, DiskFull, StoreError
from hubagent.store.space import Reserve, is_disk_full

log = logging.getLogger(__name__)

_HEADER = b"SQLite format 3\x00"
_SIDECARS = ("-wal", "-shm", "-journal")


def quarantine(path: Path, now: datetime) -> Path:
    """Move ``path`` and its sidecar files aside; return the new main path.

    ``now`` (the core clock's wall time) names the quarantined copy.
    """
    stamp = now.strftime("%Y%m%dT%H%M%SZ")
    target = path.with_name(f"{path.name}.corrupt-{stamp}")
    n = 1
    while target.exists():
        n += 1
        target = path.with_name(f"{path.name}.corrupt-{stamp}-{n}")
    os.rename(path, target)
    for suffix in _SIDECARS:
        side = Path(str(path) + suffix)
        if side.exists():
            os.rename(side, Path(str(target) + suffix))
    return target


def _check_header(path: Path) -> str | None:
    """Why the file cannot be an SQLite database, or None if it may be."""
    try:
        with open(path, "rb") as f:
            head = f.read(100)
    except OSError as e:
        return f"cannot read: {e.strerror or e}"
    if not head:
        # An empty file is what sqlite itself creates before the first write.
        return None
    if len(head) < 100 or not head.startswith(_HEADER):
        return "not an SQLite database (bad header)"
    return None


def _pragmas(conn: sqlite3.Connection, exclusive: bool) -> None:
    if exclusive:
        # No -shm file (the WAL index lives in memory): the only way to open a
        # WAL database on a disk too full to create one.
        conn.execute("PRAGMA locking_mode=EXCLUSIVE")
    mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
    if str(mode).lower() != "wal":
        raise StoreError(f"cannot switch the database to WAL mode (got {mode!r})")
    conn.execute("PRAGMA synchronous=FULL")
    if conn.execute("PRAGMA synchronous").fetchone()[0] != 2:
        raise StoreError("synchronous=FULL was not accepted")
    conn.execute("PRAGMA foreign_keys=ON")
    # A reader (hubagent status --db, sqlite3 CLI) must not make us fail.
    conn.execute("PRAGMA busy_timeout=5000")


def _verify(conn: sqlite3.Connection) -> str | None:
    rows = conn.execute("PRAGMA quick_check").fetchall()
    result = "; ".join(str(r[0]) for r in rows[:5])
    return None if result == "ok" else result


def _corrupt(path: Path, reason: str, now: datetime) -> DatabaseCorrupt:
    moved = quarantine(path, now)
    log.error("database %s is damaged (%s); moved aside to %s", path, reason, moved)
    return DatabaseCorrupt(
        f"database {path} is damaged ({reason}); it was moved aside to {moved} "
        "and left untouched. The next start creates a new, empty database; "
        "see docs/operations.md for recovery.",
        str(moved),
    )


def open_database(path: Path, now: datetime, reserve: Reserve | None = None, *,
                  exclusive: bool = False) -> sqlite3.Connection:
    """Open (or create) the database at ``path`` with the required settings.

    Raises DatabaseCorrupt (after quarantining the files, named after the
    wall time ``now``) if the file is damaged, DiskFull if there is no room
    to open it (a full disk is never mistaken for damage: nothing is moved
    aside), StoreError if it cannot be used for another reason.
    ``exclusive`` opens it without a ``-shm`` file, holding the lock until
    closed (for a full disk).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.exists():
        bad = _check_header(path)
        if bad and bad.startswith("cannot read"):
            raise StoreError(f"database {path}: {bad}")
        if bad:
            raise _corrupt(path, bad, now)
    try:
        # isolation_level=None: we issue BEGIN IMMEDIATE ourselves, so the
        # transaction boundaries are exactly the ones the code shows.
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    except sqlite3.Error as e:
        if is_disk_full(e, reserve):
            raise DiskFull(f"database {path}: no space to open it: {e}") from e
        raise StoreError(f"cannot open database {path}: {e}") from e
    try:
        _pragmas(conn, exclusive)
        bad = _verify(conn)
    except sqlite3.DatabaseError as e:
        conn.close()
        if is_disk_full(e, reserve):
            raise DiskFull(f"database {path}: no space to open it: {e}") from e
        raise _corrupt(path, str(e), now) from e
    if bad:
        conn.close()
        raise _corrupt(path, f"integrity check: {bad}", now)
    return conn


def integrity_check(conn: sqlite3.Connection) -> str:
    """``PRAGMA integrity_check`` result ("ok" when healthy)."""
    rows = conn.execute("PRAGMA integrity_check").fetchall()
    return "; ".join(str(r[0]) for r in rows)
