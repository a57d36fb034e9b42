"""Commands from central ops (and the local API): validation, dedup, replies.

A command is ``{"id": <command id>, ...arguments}``. Its effect, its
outgoing events and its entry in the ``inbox`` table commit in one
transaction, so a repeated id (at-least-once delivery, a replay after a
restart) gets the first reply again, marked ``duplicate``, and has no
second effect. Nothing a client sends can raise out of :meth:`handle`.
"""

from __future__ import annotations

import functools
import json
import logging
import math
import sqlite3
from datetime import datetime, timedelta
from typing import Any, Callable, Mapping, Sequence

import msgspec

from hubagent.clock import Clock, LoopClock, rfc3339
from hubagent.errors import CommandError, DiskFull, HubError
from hubagent.store.store import Store, Tx, dumps
from hubagent.textcheck import printable, text_problem, tree_problem

log = logging.getLogger(__name__)

MAX_ID_LENGTH = 128
# The inbox is pruned in arrival order, a few hundred rows at a time, inside a
# transaction that writes anyway, so pruning costs no extra fsync.
PRUNE_EVERY = 100
PRUNE_BATCH = 500
# No command needs deeper JSON; a limit keeps handlers and msgspec away from
# pathological nesting (Python's own parser gives up near 1,000 levels).
MAX_DEPTH = 32


class CommandContext(msgspec.Struct):
    """What a handler gets besides its arguments."""

    tx: Tx
    id: str
    name: str
    source: str
    extra: dict[str, Any] = msgspec.field(default_factory=dict)


Handler = Callable[[CommandContext, Any], Mapping[str, Any]]


class Incoming(msgspec.Struct, frozen=True):
    """One command as it arrived, for :meth:`Commands.handle_batch`."""

    name: str
    payload: bytes
    source: str = "mqtt"
    extra: dict[str, Any] | None = None


class _Parsed(msgspec.Struct):
    """A command of a group, parsed, and where its reply goes."""

    index: int
    name: str
    cid: str
    doc: dict[str, Any]
    source: str
    extra: dict[str, Any]


class _GroupLost(Exception):
    """SQLite ended the shared transaction (disk full, I/O error): the whole group fails."""


class _Entry(msgspec.Struct, frozen=True):
    handler: Handler
    schema: type | None
    read_only: bool = False


class CommandArgs(msgspec.Struct, forbid_unknown_fields=True, frozen=True, kw_only=True):
    """Base of every command's arguments: unknown fields are errors, values immutable."""


class NoArgs(CommandArgs, frozen=True):
    """Arguments of a command that takes none."""


def error_reply(cmd_id: Any, code: str, message: str) -> dict[str, Any]:
    """An ``ok: false`` reply."""
    return {"id": cmd_id, "ok": False, "error": {"code": code, "message": message}}


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _finite_float(text: str) -> float:
    """Parse a JSON number, refusing ones too large for a double (``1e400``)."""
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"number {text[:40]} is too large")
    return value


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """An object hook refusing duplicate keys (which one would win is ambiguous)."""
    seen: set[str] = set()
    for key, _ in pairs:
        if key in seen:
            raise ValueError(f"duplicate key {key[:40]!r}")
        seen.add(key)
    return dict(pairs)


def _depth(value: Any) -> int:
    """Nesting depth of a parsed JSON value (iterative: no recursion)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, (dict, list)):
            deepest = max(deepest, depth)
            stack.extend((child, depth + 1) for child in
                         (item.values() if isinstance(item, dict) else item))
    return deepest


def parse_payload(payload: bytes, max_bytes: int) -> dict[str, Any]:
    """Decode a command payload or raise CommandError saying what is wrong."""
    if len(payload) > max_bytes:
        raise CommandError("too_large", f"payload is {len(payload)} bytes; the limit is {max_bytes}")
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError as e:
        raise CommandError("not_utf8", f"payload is not UTF-8 ({e.reason} at byte {e.start})") from None
    try:
        doc = json.loads(text, parse_constant=_reject_constant, parse_float=_finite_float,
                         object_pairs_hook=_unique_keys)
    except RecursionError:
        raise CommandError("too_deep", f"payload nests deeper than {MAX_DEPTH} levels") from None
    except ValueError as e:
        raise CommandError("bad_json", f"payload is not valid JSON: {e}") from None
    if _depth(doc) > MAX_DEPTH:
        raise CommandError("too_deep", f"payload nests deeper than {MAX_DEPTH} levels")
    if not isinstance(doc, dict):
        raise CommandError("bad_payload", f"payload must be a JSON object, not {type(doc).__name__}")
    return doc


def _command_id(doc: Mapping[str, Any]) -> str:
    if "id" not in doc:
        raise CommandError("missing_id", "the command has no \"id\"")
    cid = doc["id"]
    if not isinstance(cid, str) or not cid.strip():
        raise CommandError("bad_id", "\"id\" must be a non-empty string")
    if len(cid) > MAX_ID_LENGTH:
        raise CommandError("bad_id", f"\"id\" is longer than {MAX_ID_LENGTH} characters")
    problem = text_problem(cid)
    if problem is not None:
        raise CommandError("bad_id", f"\"id\" {problem}")
    return cid


def _safe_id(doc: Any) -> Any:
    """The id to echo in an error reply: only if it is a sane string."""
    if isinstance(doc, dict):
        cid = doc.get("id")
        if (isinstance(cid, str) and cid.strip() and len(cid) <= MAX_ID_LENGTH
                and text_problem(cid) is None):
            return cid
    return None


class InboxWindow(msgspec.Struct, frozen=True):
    """How long command ids are remembered for dedup.

    A row is kept while it is younger than ``keep_s`` by the wall clock, and
    the newest ``keep_min`` rows are kept whatever the clock says, so a clock
    that jumps years ahead cannot empty the inbox while the broker still
    holds commands to redeliver (Mosquitto queues 1,000 per client by default).
    """

    keep_s: float = 7 * 24 * 3600.0
    keep_min: int = 1000


class Commands:
    """The command registry and dispatcher (runs on the core thread)."""

    def __init__(self, store: Store, max_payload: int = 256 * 1024, *,
                 clock: Clock | None = None, window: InboxWindow = InboxWindow()) -> None:
        self._store = store
        self._entries: dict[str, _Entry] = {}
        self.max_payload = max_payload
        self.window = window
        self._clock: Clock = clock or LoopClock()
        self._since_prune = 0

    def register(self, name: str, handler: Handler, schema: type | None = NoArgs, *,
                 read_only: bool = False) -> None:
        """Add a command; ``schema`` is a msgspec Struct for its arguments.

        A ``read_only`` command writes nothing: it runs in a read transaction,
        gets no inbox row, and a repeated id is answered afresh (a read has
        no effect to protect, so its answer is the current state).
        """
        if name in self._entries:
            raise ValueError(f"command {name!r} registered twice")
        self._entries[name] = _Entry(handler, schema, read_only)

    def is_read_only(self, name: str) -> bool:
        """Whether ``name`` is a registered read-only command."""
        entry = self._entries.get(name)
        return entry is not None and entry.read_only

    def names(self) -> list[str]:
        """Registered command names."""
        return sorted(self._entries)

    def schema(self, name: str) -> type | None:
        """The msgspec Struct a command's arguments are checked against."""
        return self._entries[name].schema

    def handle(self, name: str, payload: bytes, source: str = "mqtt",
               extra: dict[str, Any] | None = None) -> dict[str, Any]:
        """Carry out one command and return its reply; never raises (a group of one)."""
        return self.handle_batch([Incoming(name, payload, source, extra)])[0]

    def handle_batch(self, commands: Sequence[Incoming]) -> list[dict[str, Any]]:
        """Carry out commands that arrived together; their replies in order; never raises.

        Consecutive write commands share one transaction and so one fsync,
        each inside its own savepoint: one that fails rolls back alone (its
        events and after-commit actions with it) and the others commit. No
        reply is returned before the commit that makes it durable, so the
        caller sends replies (and PUBACKs) only after. A read-only command
        first commits the writes before it, then reads, so it sees them. If
        the commit itself fails (disk full), every command of the group is
        answered ``unavailable`` and none took effect.
        """
        replies: list[dict[str, Any] | None] = [None] * len(commands)
        group: list[_Parsed] = []
        for i, cmd in enumerate(commands):
            doc: Any = None
            try:
                doc = parse_payload(cmd.payload, self.max_payload)
                cid = _command_id(doc)
            except CommandError as e:
                replies[i] = error_reply(_safe_id(doc), e.code, e.message)
                continue
            parsed = _Parsed(i, cmd.name, cid, doc, cmd.source, cmd.extra or {})
            if self.is_read_only(cmd.name):
                self._commit_group(group, replies)
                group = []
                replies[i] = self._guarded(parsed, functools.partial(
                    self._read_command, parsed.name, parsed.cid, parsed.doc, parsed.source, parsed.extra))
            else:
                group.append(parsed)
        self._commit_group(group, replies)
        return [r if r is not None else error_reply(None, "internal", "no reply") for r in replies]

    def _guarded(self, cmd: _Parsed, run: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        """``run()``, with the hub's failures turned into error replies."""
        try:
            return run()
        except DiskFull as e:
            # Logged once by the store, which also raised the disk_full alert.
            return error_reply(cmd.cid, "unavailable", str(e))
        except HubError as e:
            log.error("command %s %s failed: %s", printable(cmd.name), cmd.cid, e)
            return error_reply(cmd.cid, "unavailable", str(e))
        except Exception:
            log.exception("command %s %s failed unexpectedly", printable(cmd.name), cmd.cid)
            return error_reply(cmd.cid, "internal", "internal error; see the hub's log")

    def _commit_group(self, group: list[_Parsed], replies: list[dict[str, Any] | None]) -> None:
        """Run ``group`` in one transaction; fill in its replies only once it committed."""
        if not group:
            return
        done: dict[int, dict[str, Any]] = {}
        try:
            with self._store.write() as tx:
                for cmd in group:
                    done[cmd.index] = self._in_group(tx, cmd)
        except (_GroupLost, DiskFull, HubError, sqlite3.Error) as e:
            if not isinstance(e, DiskFull):  # a full disk was logged once, by the store
                log.error("a group of %d commands failed to commit: %s", len(group), e)
            for cmd in group:
                replies[cmd.index] = error_reply(cmd.cid, "unavailable", str(e))
            return
        for index, reply in done.items():
            replies[index] = reply

    def _in_group(self, tx: Tx, cmd: _Parsed) -> dict[str, Any]:
        """One write command inside the group's transaction, in its own savepoint."""
        # Looks in the inbox through the same connection: it sees the
        # uncommitted rows of this group, so a repeated id inside it is a duplicate.
        prior = self.previous_reply(cmd.cid)
        if prior is not None:
            return prior
        entry = self._entries.get(cmd.name)
        if entry is None:
            known = ", ".join(self.names())
            return error_reply(cmd.cid, "unknown_command", f"unknown command {cmd.name!r} (known: {known})")
        try:
            args = self._args(entry, cmd.doc)
            with tx.savepoint("command"):
                result = dict(entry.handler(CommandContext(tx, cmd.cid, cmd.name, cmd.source,
                                                           cmd.extra), args))
                reply = {"id": cmd.cid, "ok": True, "result": result}
                self._record(tx, cmd.cid, cmd.name, reply)
            return reply
        except CommandError as e:
            # The failed effect was rolled back; remember the answer so a
            # retry of the same id gets it again instead of a second try.
            reply = error_reply(cmd.cid, e.code, e.message)
            self._record(tx, cmd.cid, cmd.name, reply)
            return reply
        except sqlite3.OperationalError:
            raise  # disk full or I/O error: the store decides; the whole group fails
        except Exception as e:
            if not tx.conn.in_transaction:
                raise _GroupLost(str(e)) from e  # SQLite rolled the whole group back
            return self._guarded(cmd, functools.partial(_reraise, e))

    def previous_reply(self, cid: str) -> dict[str, Any] | None:
        """The stored reply of an already handled command id."""
        rows = self._store.query("SELECT reply FROM inbox WHERE id=?", (cid,))
        if not rows:
            return None
        reply: dict[str, Any] = json.loads(rows[0]["reply"])
        reply["duplicate"] = True
        return reply

    def _read_command(self, name: str, cid: str, doc: dict[str, Any], source: str,
                      extra: dict[str, Any]) -> dict[str, Any]:
        """A read-only command: an id already used by a write gets that write's reply."""
        prior = self.previous_reply(cid)
        if prior is not None:
            return prior
        return self._read(self._entries[name], name, cid, doc, source, extra)

    def _read(self, entry: _Entry, name: str, cid: str, doc: dict[str, Any], source: str,
              extra: dict[str, Any]) -> dict[str, Any]:
        """Run a read-only command: no write transaction, no inbox row."""
        try:
            args = self._args(entry, doc)
            with self._store.read() as tx:
                result = dict(entry.handler(CommandContext(tx, cid, name, source, extra), args))
        except CommandError as e:
            return error_reply(cid, e.code, e.message)
        return {"id": cid, "ok": True, "result": result}

    @staticmethod
    def _args(entry: _Entry, doc: dict[str, Any]) -> Any:
        body = {k: v for k, v in doc.items() if k != "id"}
        problem = tree_problem(body)
        if problem is not None:
            field_, what = problem
            raise CommandError("bad_args", f"{field_} {what}")
        if entry.schema is None:
            return body
        try:
            return msgspec.convert(body, entry.schema, strict=True)
        except msgspec.ValidationError as e:
            raise CommandError("bad_args", str(e).replace("$.", "")) from None

    def _record(self, tx: Tx, cid: str, name: str, reply: dict[str, Any]) -> None:
        now = self._clock.now()
        tx.execute(
            "INSERT INTO inbox(id, name, received_at, ok, reply) VALUES (?, ?, ?, ?, ?)",
            (cid, name, iso_utc(now), 1 if reply["ok"] else 0, dumps(reply)),
        )
        self._since_prune += 1
        if self._since_prune >= PRUNE_EVERY:
            self._since_prune = 0
            cutoff = iso_utc(now - timedelta(seconds=self.window.keep_s))
            prune_inbox(tx, cutoff, self.window.keep_min)


def _reraise(e: Exception) -> dict[str, Any]:
    raise e


def iso_utc(moment: datetime) -> str:
    """RFC 3339 UTC with milliseconds, as the inbox and outbox store times."""
    return rfc3339(moment)


def prune_inbox(tx: Tx, cutoff: str, keep_min: int, limit: int = PRUNE_BATCH) -> int:
    """Delete up to ``limit`` of the oldest inbox rows received before ``cutoff``.

    Looks only at the ``limit`` oldest rows (by arrival), never at the newest
    ``keep_min``, so the cost is bounded whatever the size of the inbox.
    """
    cur = tx.execute(
        "DELETE FROM inbox WHERE rowid IN ("
        " SELECT rowid FROM inbox"
        " WHERE rowid <= (SELECT max(rowid) FROM inbox) - ?"
        " ORDER BY rowid LIMIT ?) AND received_at < ?",
        (keep_min, limit, cutoff),
    )
    return cur.rowcount

