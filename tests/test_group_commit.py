"""Commands that arrive together commit together: one transaction, a savepoint each.

Real store on a real SQLite file, the real dispatcher, the real stock
commands. A failing command rolls back alone, with the events and
after-commit actions it added; the others commit and their replies come
back only from the committed group. A group the disk cannot hold fails as
a whole and leaves nothing behind.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any, Iterator

import pytest

from hubagent.clock import ManualClock
from hubagent.commands import CommandArgs, CommandContext, Commands, Incoming
from hubagent.features import all_migrations
from hubagent.store.store import EmittedEvent, Store
from tests.test_disk_full import fill


class Note(CommandArgs, frozen=True):
    """Arguments of the test's own write command."""

    key: str
    text: str
    fail: str = ""


def _cmd(name: str, **doc: Any) -> Incoming:
    return Incoming(name, json.dumps(doc).encode(), source="test")


class Hub:
    """A store and a dispatcher with a note command that can fail after writing."""

    def __init__(self, path: Path) -> None:
        self.store = Store(path, all_migrations())
        self.store.open()
        self.published: list[EmittedEvent] = []
        self.after: list[str] = []
        self.store.on_commit(self.published.extend)
        self.commands = Commands(self.store, clock=ManualClock())
        self.commands.register("note", self.note, Note)
        self.commands.register("ping", lambda ctx, args: {"pong": True}, read_only=True)

    def note(self, ctx: CommandContext, args: Note) -> dict[str, Any]:
        ctx.tx.execute("INSERT INTO meta(key, value) VALUES(?, ?)", (f"note:{args.key}", args.text))
        ctx.tx.emit("note.added", {"key": args.key})
        ctx.tx.after_commit(lambda: self.after.append(args.key))
        if args.fail == "bad_args":
            from hubagent.errors import CommandError

            raise CommandError("bad_args", "this note is refused")
        if args.fail == "crash":
            raise RuntimeError("a bug in the handler")
        return {"noted": args.key}

    def notes(self) -> list[str]:
        return [r["key"][5:] for r in self.store.query("SELECT key FROM meta WHERE key LIKE 'note:%' ORDER BY key")]

    def outbox(self) -> list[Any]:
        return [json.loads(r["data"])["key"] for r in
                self.store.query("SELECT data FROM outbox WHERE kind='note.added' ORDER BY seq")]


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[Hub]:
    h = Hub(tmp_path / "hub.db")
    yield h
    h.store.close()


@pytest.mark.parametrize("failure,code", [("bad_args", "bad_args"), ("crash", "internal")])
def test_one_failing_command_rolls_back_alone(hub: Hub, failure: str, code: str) -> None:
    replies = hub.commands.handle_batch([
        _cmd("note", id="c1", key="a", text="first"),
        _cmd("note", id="c2", key="b", text="second", fail=failure),
        _cmd("note", id="c3", key="c", text="third"),
    ])
    assert [r["ok"] for r in replies] == [True, False, True]
    assert [r["id"] for r in replies] == ["c1", "c2", "c3"]
    assert replies[1]["error"]["code"] == code
    assert hub.notes() == ["a", "c"]
    # The failed command's event and after-commit action went with its savepoint.
    assert hub.outbox() == ["a", "c"]
    assert [e.data["key"] for e in hub.published] == ["a", "c"]
    assert hub.after == ["a", "c"]
    # The committed ones share one gap-free run of seqs.
    assert [e.seq for e in hub.published] == [hub.published[0].seq, hub.published[0].seq + 1]


def test_a_refused_command_is_remembered_and_a_retry_gets_the_same_answer(hub: Hub) -> None:
    first = hub.commands.handle_batch([_cmd("note", id="c1", key="a", text="x", fail="bad_args"),
                                       _cmd("note", id="c2", key="b", text="y")])
    again = hub.commands.handle("note", json.dumps({"id": "c1", "key": "a", "text": "x"}).encode())
    assert again["duplicate"] is True
    assert again["error"] == first[0]["error"]
    assert hub.notes() == ["b"]


def test_a_repeated_id_inside_one_group_takes_effect_once(hub: Hub) -> None:
    replies = hub.commands.handle_batch([_cmd("note", id="same", key="a", text="x"),
                                         _cmd("note", id="same", key="a", text="x")])
    assert replies[0]["ok"] and "duplicate" not in replies[0]
    assert replies[1]["duplicate"] is True and replies[1]["result"] == replies[0]["result"]
    assert hub.notes() == ["a"] and hub.outbox() == ["a"]


def test_a_read_in_the_group_sees_the_writes_before_it_and_bad_payloads_are_answered(hub: Hub) -> None:
    replies = hub.commands.handle_batch([
        _cmd("note", id="c1", key="a", text="x"),
        Incoming("note", b"{not json", source="test"),
        _cmd("ping", id="p1"),
        _cmd("nope", id="u1"),
        _cmd("note", id="c2", key="b", text="y"),
    ])
    assert [r["ok"] for r in replies] == [True, False, True, False, True]
    assert replies[1]["error"]["code"] == "bad_json"
    assert replies[3]["error"]["code"] == "unknown_command"
    assert hub.notes() == ["a", "b"]
    # Neither the read nor the unknown command left an inbox row.
    ids = [r["id"] for r in hub.store.query("SELECT id FROM inbox ORDER BY rowid")]
    assert ids == ["c1", "c2"]


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tmpfs needs root")
def test_a_group_the_disk_cannot_hold_fails_whole_and_leaves_nothing(tmp_path: Path) -> None:
    mnt = tmp_path / "disk"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=6m", "tmpfs", str(mnt)], check=True)
    try:
        hub = Hub(mnt / "hub.db")
        try:
            assert hub.commands.handle_batch([_cmd("note", id="c0", key="0", text="x")])[0]["ok"]
            ballast = fill(mnt)
            big = "y" * 200_000
            replies = hub.commands.handle_batch(
                [_cmd("note", id=f"c{i}", key=str(i), text=big) for i in range(1, 4)])
            assert [r["error"]["code"] for r in replies] == ["unavailable"] * 3
            assert [r["id"] for r in replies] == ["c1", "c2", "c3"]
            ballast.unlink()
            hub.store.check_space()
            assert hub.notes() == ["0"]
            assert hub.outbox() == ["0"] and hub.after == ["0"]
            # Nothing of the group was remembered: sent again, it takes effect.
            again = hub.commands.handle_batch([_cmd("note", id="c1", key="1", text="z")])
            assert again[0]["ok"] and "duplicate" not in again[0]
        finally:
            hub.store.close()
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)
