"""The inbox keeps command ids for a documented window, not forever.

Real store on a real SQLite file (on tmpfs: 100,000 commits), the real
dispatcher, and a manual clock that moves ten simulated seconds per command.
"""

from __future__ import annotations

import json
import tempfile
from datetime import timedelta
from pathlib import Path
from typing import Any, Iterator

import pytest

from hubagent.clock import ManualClock
from hubagent.commands import PRUNE_BATCH, PRUNE_EVERY, CommandArgs, CommandContext, Commands, InboxWindow
from hubagent.features import all_migrations
from hubagent.store.store import Store


class Note(CommandArgs, frozen=True):
    """Arguments of the test's own write command."""

    text: str


def note(ctx: CommandContext, args: Note) -> dict[str, Any]:
    ctx.tx.execute("INSERT INTO meta(key, value) VALUES('note', ?) "
                   "ON CONFLICT(key) DO UPDATE SET value=excluded.value", (args.text,))
    return {"noted": args.text}


@pytest.fixture
def store() -> Iterator[Store]:
    with tempfile.TemporaryDirectory(prefix="inbox-", dir="/dev/shm") as d:
        s = Store(Path(d) / "hub.db", all_migrations())
        s.open()
        yield s
        s.close()


def make(store: Store, clock: ManualClock, window: InboxWindow) -> Commands:
    c = Commands(store, clock=clock, window=window)
    c.register("note", note, Note)
    c.register("ping", lambda ctx, args: {"pong": True}, read_only=True)
    return c


def inbox_ids(store: Store) -> list[str]:
    return [r["id"] for r in store.query("SELECT id FROM inbox ORDER BY rowid")]


def test_after_100000_commands_the_inbox_holds_only_the_window(store: Store) -> None:
    clock = ManualClock()
    window = InboxWindow(keep_s=24 * 3600.0, keep_min=1000)
    cmds = make(store, clock, window)
    step = 10.0
    for i in range(100_000):
        name = "ping" if i % 4 == 3 else "note"
        reply = cmds.handle(name, json.dumps({"id": f"c{i}", "text": "x"} if name == "note"
                                             else {"id": f"c{i}"}).encode())
        assert reply["ok"], reply
        clock.advance(step)
    ids = inbox_ids(store)
    per_window = int(window.keep_s / step)  # commands that arrive within one window
    writes_per_window = per_window * 3 // 4
    assert "c0" not in ids and len(ids) <= writes_per_window + PRUNE_EVERY + PRUNE_BATCH
    # Everything inside the window is still deduplicated...
    for i in range(100_000 - per_window + 1, 100_000):
        if i % 4 != 3:
            assert f"c{i}" in ids
    again = cmds.handle("note", json.dumps({"id": "c99996", "text": "y"}).encode())
    assert again["duplicate"] is True and again["result"] == {"noted": "x"}
    # ...and reads left no row at all.
    assert not any(int(i[1:]) % 4 == 3 for i in ids)


def test_a_clock_years_ahead_keeps_the_newest_ids(store: Store) -> None:
    clock = ManualClock()
    cmds = make(store, clock, InboxWindow(keep_s=3600.0, keep_min=300))
    for i in range(600):
        cmds.handle("note", json.dumps({"id": f"n{i}", "text": "x"}).encode())
    clock.set_wall(clock.now() + timedelta(days=365 * 70))
    for i in range(600, 1200):
        cmds.handle("note", json.dumps({"id": f"n{i}", "text": "x"}).encode())
    ids = inbox_ids(store)
    # Pruning ran, but never into the newest keep_min ids.
    assert "n0" not in ids
    assert all(f"n{i}" in ids for i in range(1200 - 300, 1200))


def test_read_only_commands_write_nothing(store: Store) -> None:
    cmds = make(store, ManualClock(), InboxWindow())
    wal = store.path.with_name(store.path.name + "-wal")
    store.checkpoint()
    before = wal.stat().st_size, store.query("SELECT COUNT(*) AS n FROM inbox")[0]["n"]
    for i in range(50):
        assert cmds.handle("ping", json.dumps({"id": f"p{i}"}).encode())["ok"]
    # A repeated read is answered afresh, not as a duplicate.
    assert "duplicate" not in cmds.handle("ping", b'{"id":"p1"}')
    assert (wal.stat().st_size, store.query("SELECT COUNT(*) AS n FROM inbox")[0]["n"]) == before


def test_a_read_only_handler_cannot_emit(store: Store) -> None:
    cmds = Commands(store, clock=ManualClock())

    def sneaky(ctx: CommandContext, args: Any) -> dict[str, Any]:
        ctx.tx.emit("sneaky", {})
        return {}

    cmds.register("sneaky", sneaky, read_only=True)
    reply = cmds.handle("sneaky", b'{"id":"s1"}')
    assert reply["error"]["code"] == "internal"
    assert store.last_seq() == 0
