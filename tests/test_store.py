"""The database: WAL + FULL, migrations, gap-free seq, quarantine of damaged files."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from hubagent.errors import DatabaseCorrupt
from hubagent.features import all_migrations
from hubagent.store.store import Store


def open_store(path: Path) -> Store:
    s = Store(path, all_migrations())
    s.open()
    return s


def test_pragmas_and_migrations(tmp_path: Path) -> None:
    s = open_store(tmp_path / "h.db")
    assert s.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert s.conn.execute("PRAGMA synchronous").fetchone()[0] == 2
    assert {"outbox", "inbox", "meta", "migrations"} <= {r["name"] for r in s.query("SELECT name FROM sqlite_master WHERE type='table'")}
    s.close()
    again = Store(tmp_path / "h.db", all_migrations())
    assert again.open() == []  # nothing applied twice
    again.close()


def test_seq_is_gap_free_and_survives_rollback_and_pruning(tmp_path: Path) -> None:
    s = open_store(tmp_path / "h.db")
    with s.write() as tx:
        tx.emit("a", {})
        tx.emit("a", {})
    with pytest.raises(RuntimeError):
        with s.write() as tx:
            tx.emit("a", {})
            raise RuntimeError("business rule failed")
    with s.write() as tx:
        ev = tx.emit("a", {})
    assert ev.seq == 3  # the rolled-back seq was never used
    with s.write() as tx:
        tx.execute("DELETE FROM outbox")
    with s.write() as tx:
        assert tx.emit("a", {}).seq == 4  # pruning never causes reuse
    s.close()


def test_after_commit_runs_only_after_commit(tmp_path: Path) -> None:
    s = open_store(tmp_path / "h.db")
    seen: list[str] = []
    with pytest.raises(ValueError):
        with s.write() as tx:
            tx.after_commit(lambda: seen.append("rolled back"))
            raise ValueError
    with s.write() as tx:
        tx.after_commit(lambda: seen.append("committed"))
        assert seen == []
    assert seen == ["committed"]
    s.close()


def _make_db(path: Path) -> None:
    s = open_store(path)
    with s.write() as tx:
        for i in range(2000):
            tx.emit("filler", {"i": i, "pad": "x" * 200})
    s.close()


@pytest.mark.parametrize("damage", ["garbage", "truncated", "zeroed_page"])
def test_damaged_database_is_quarantined_never_overwritten(tmp_path: Path, damage: str) -> None:
    db = tmp_path / "h.db"
    if damage == "garbage":
        db.write_bytes(b"this is not a database\n" * 100)
    else:
        _make_db(db)
        data = bytearray(db.read_bytes())
        if damage == "truncated":
            data = data[: len(data) // 3 + 17]
        else:
            page = 4096
            data[page * 2: page * 6] = b"\xff" * (page * 4)
        db.write_bytes(bytes(data))
    original = db.read_bytes()
    with pytest.raises(DatabaseCorrupt) as exc:
        open_store(db)
    moved = Path(exc.value.quarantined or "")
    assert moved.exists() and moved.name.startswith("h.db.corrupt-")
    assert moved.read_bytes() == original, "the damaged file must be kept byte for byte"
    assert not db.exists()
    assert "moved aside" in str(exc.value)
    # The next start begins a fresh database beside the quarantined one.
    fresh = open_store(db)
    assert fresh.last_seq() == 0
    fresh.close()
    assert moved.read_bytes() == original


def test_orphan_wal_with_garbage_is_quarantined_together(tmp_path: Path) -> None:
    db = tmp_path / "h.db"
    db.write_bytes(b"\x00garbage header" * 10)
    Path(str(db) + "-wal").write_bytes(b"wal bytes")
    with pytest.raises(DatabaseCorrupt) as exc:
        open_store(db)
    moved = Path(exc.value.quarantined or "")
    assert Path(str(moved) + "-wal").read_bytes() == b"wal bytes"
    assert not Path(str(db) + "-wal").exists()


def test_integrity_check_ok_after_use(tmp_path: Path) -> None:
    s = open_store(tmp_path / "h.db")
    with s.write() as tx:
        tx.emit("k", {"x": 1})
    assert s.integrity() == "ok"
    s.close()
    conn = sqlite3.connect(tmp_path / "h.db")
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    conn.close()


def test_a_rolled_back_savepoint_takes_its_events_and_actions_with_it(tmp_path: Path) -> None:
    store = open_store(tmp_path / "hub.db")
    published: list[list[str]] = []
    ran: list[str] = []
    store.on_commit(lambda events: published.append([e.kind for e in events]))
    with store.write() as tx:
        tx.emit("kept", {})
        with pytest.raises(ValueError):
            with tx.savepoint("part"):
                tx.emit("dropped", {})
                tx.after_commit(lambda: ran.append("dropped"))
                raise ValueError("this part fails")
        tx.after_commit(lambda: ran.append("kept"))
        tx.emit("kept-too", {})
    assert published == [["kept", "kept-too"]] and ran == ["kept"]
    # seq stays gap-free: the dropped event's seq was rolled back and reused.
    rows = store.query("SELECT seq, kind FROM outbox ORDER BY seq")
    assert [(r["seq"], r["kind"]) for r in rows] == [(1, "kept"), (2, "kept-too")]
    store.close()


def test_emit_hooks_run_inside_the_transaction(tmp_path: Path) -> None:
    store = open_store(tmp_path / "hub.db")
    store.on_emit(lambda tx, ev: tx.execute("INSERT INTO meta(key, value) VALUES (?, ?)",
                                            (f"seen-{ev.seq}", ev.kind)))
    with pytest.raises(RuntimeError):
        with store.write() as tx:
            tx.emit("rolled back", {})
            raise RuntimeError("abort")
    with store.write() as tx:
        tx.emit("committed", {})
    assert store.meta("seen-1") == "committed"
    store.close()
