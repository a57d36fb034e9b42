"""When the integrity check runs: before use after an unclean stop or for a small
file, beside the running hub for a big file stopped cleanly; damage is found either way.

Real SQLite files; the unclean stop is a real process that exits without
closing its database.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from hubagent.store.db import background_check, check_at_open, stopped_cleanly
from hubagent.store.store import Store
from hubagent.features import all_migrations
from hubagent.clock import ManualClock


def _make(path: Path, rows: int = 2000) -> None:
    s = Store(path, all_migrations(), clock=ManualClock())
    s.open()
    with s.write() as tx:
        for i in range(rows):
            tx.emit("filler", {"i": i, "pad": "x" * 200})
    s.close()


def test_a_clean_stop_leaves_no_wal_and_a_big_file_is_checked_later(tmp_path: Path) -> None:
    db = tmp_path / "h.db"
    _make(db)
    assert stopped_cleanly(db)
    assert check_at_open(db)  # small: checked before use
    assert not check_at_open(db, limit=1024)  # "big" after a clean stop: in the background
    assert background_check(db) is None


def test_an_unclean_stop_is_always_checked_before_use(tmp_path: Path) -> None:
    db = tmp_path / "h.db"
    _make(db, rows=10)
    code = ("import os, sqlite3, sys; c = sqlite3.connect(sys.argv[1], isolation_level=None); "
            "c.execute('PRAGMA journal_mode=WAL'); c.execute('BEGIN IMMEDIATE'); "
            "c.execute(\"INSERT INTO meta(key, value) VALUES ('crash', 'x')\"); c.execute('COMMIT'); "
            "os._exit(0)")
    subprocess.run([sys.executable, "-c", code, str(db)], check=True)
    assert not stopped_cleanly(db)
    assert check_at_open(db, limit=1024)


def test_the_background_check_finds_a_damaged_page(tmp_path: Path) -> None:
    db = tmp_path / "h.db"
    _make(db)
    data = bytearray(db.read_bytes())
    page = 4096
    data[page * 2: page * 6] = b"\xff" * (page * 4)
    db.write_bytes(bytes(data))
    assert not check_at_open(db, limit=1024)
    found = background_check(db)
    assert found is not None and found != "ok"
