"""Central tables derived from events, written in the events' transaction.

One table of rules: an event kind maps to rows to upsert. Every derived
row carries the ``db`` and ``seq`` of the event that set it, and a row is
only replaced by an event with a higher ``seq`` (or from a newer database),
so events applied late (a replay, a resend after a gap) never undo newer
ones. Hub events report states, not differences (``stock.moved`` carries
the bin's ``on_hand`` after the move), which is what makes this order-safe.
History tables (power) get one row per event instead.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from hubagent.central.db import Tx

log = logging.getLogger(__name__)

Data = Mapping[str, Any]


class DeriveError(ValueError):
    """An event's data lacks a field a derivation needs (named in the message)."""


def need(data: Data, name: str) -> Any:
    """``data[name]``, or DeriveError naming the field."""
    value = data.get(name)
    if value is None:
        raise DeriveError(f"field {name!r} is missing")
    return value


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


@dataclass(frozen=True)
class Rule:
    """Rows of ``table`` keyed by ``key(data)`` (besides ``hub``) set to ``values(data)``."""

    table: str
    key: Callable[[Data], dict[str, Any]]
    values: Callable[[Data], dict[str, Any]]
    history: bool = False  # one row per event (keyed by hub, db, seq) instead of an upsert
    # Columns an event may not carry (a parcel's size after it was assigned): a
    # null there keeps the row's value instead of erasing it.
    keep: tuple[str, ...] = ()


def _parcel(state: str) -> Rule:
    return Rule("parcels", lambda d: {"parcel": need(d, "parcel")},
                lambda d: {"state": state, "bank": _text(d.get("bank")),
                           "compartment": _text(d.get("compartment")),
                           "size": d.get("size"), "expires_at": d.get("expires_at")},
                keep=("bank", "compartment", "size", "expires_at"))


def _compartment(state: Callable[[Data], str], item: Callable[[Data], Any]) -> Rule:
    return Rule("lockers", lambda d: {"bank": str(need(d, "bank")),
                                      "compartment": str(need(d, "compartment"))},
                lambda d: {"state": state(d), "item": item(d)})


def _job(state: str) -> Rule:
    return Rule("print_jobs", lambda d: {"job": need(d, "job")},
                lambda d: {"state": state, "printer": d.get("printer"),
                           "template": d.get("template"), "reason": d.get("reason")},
                keep=("printer", "template"))


def _alarm(active: int) -> Rule:
    return Rule("locker_alarms",
                lambda d: {"bank": str(need(d, "bank")),
                           # A whole-bank alarm has no compartment.
                           "compartment": _text(d.get("compartment")) or "",
                           "kind": need(d, "kind")},
                lambda d: {"active": active, "detail": _text(d.get("detail"))})


def _power(d: Data) -> dict[str, Any]:
    return {"state": d.get("to", d.get("phase")), "previous": d.get("from"),
            "detail": json.dumps(d, sort_keys=True)}


_FREE: Callable[[Data], str] = lambda d: "free"  # noqa: E731
_NONE: Callable[[Data], Any] = lambda d: None  # noqa: E731

RULES: dict[str, tuple[Rule, ...]] = {
    "stock.moved": (Rule("stock", lambda d: {"sku": need(d, "sku"), "bin": need(d, "bin")},
                         lambda d: {"on_hand": int(need(d, "on_hand"))}),),
    "parcel.assigned": (_parcel("assigned"),
                        _compartment(lambda d: "reserved", lambda d: d["parcel"])),
    "parcel.stored": (_parcel("stored"),
                      _compartment(lambda d: "occupied", lambda d: d["parcel"])),
    "parcel.picked_up": (_parcel("picked_up"), _compartment(_FREE, _NONE)),
    "parcel.retrieved": (_parcel("retrieved"), _compartment(_FREE, _NONE)),
    "parcel.expired": (_parcel("expired"),
                       _compartment(lambda d: "free" if d.get("stage") == "assigned"
                                    else "expired", lambda d: d["parcel"])),
    "parcel.cancelled": (_parcel("cancelled"),
                         _compartment(lambda d: "free" if d.get("state") == "free"
                                      else "expired", lambda d: d["parcel"])),
    "return.dropped": (_compartment(lambda d: "return", lambda d: d.get("return")),),
    "return.collected": (_compartment(_FREE, _NONE),),
    "locker.alarm": (_alarm(1),),
    "locker.alarm_cleared": (_alarm(0),),
    "print.queued": (_job("queued"),),
    "print.done": (_job("done"),),
    "print.failed": (_job("failed"),),
    "power.changed": (Rule("power_history", lambda d: {}, _power, history=True),),
    "power.shutdown": (Rule("power_history", lambda d: {}, _power, history=True),),
}


@dataclass(frozen=True)
class Stored:
    """One newly stored event, as the derivations see it."""

    hub: str
    db: str
    seq: int
    kind: str
    at: str | None
    data: Data


@dataclass
class _Row:
    """One derived row folded from a batch's events: the newest wins, ``keep`` columns fill."""

    rule: Rule
    key: dict[str, Any]
    values: dict[str, Any]
    db: str
    seq: int

    def fold(self, seq: int, db: str, values: dict[str, Any]) -> None:
        newer, older = (values, self.values) if seq > self.seq else (self.values, values)
        merged = dict(newer)
        for col in self.rule.keep:
            if merged.get(col) is None:
                merged[col] = older.get(col)
        self.values = merged
        if seq > self.seq:
            self.seq, self.db = seq, db


def derive(tx: Tx, events: list[Stored]) -> int:
    """Apply the rules to newly stored events; returns how many were skipped as malformed.

    For upserts only the newest event per row matters (plus, for ``keep``
    columns, the last value any event gave), so rows are folded in memory
    first and written with one batched statement per table.
    """
    latest: dict[tuple[str, tuple[tuple[str, Any], ...]], _Row] = {}
    history: list[tuple[Stored, Rule]] = []
    skipped = 0
    for ev in events:
        for rule in RULES.get(ev.kind, ()):
            try:
                key = {"hub": ev.hub, **rule.key(ev.data)}
                values = rule.values(ev.data)
            except (DeriveError, TypeError, ValueError, KeyError) as e:
                log.warning("hub %s seq %s (%s): not derived into %s: %s",
                            ev.hub, ev.seq, ev.kind, rule.table, e)
                skipped += 1
                continue
            if rule.history:
                history.append((ev, rule))
                continue
            row_key = (rule.table, tuple(sorted(key.items())))
            row = latest.get(row_key)
            if row is None:
                latest[row_key] = _Row(rule, key, values, ev.db, ev.seq)
            else:
                row.fold(ev.seq, ev.db, values)
    by_table: dict[str, list[_Row]] = {}
    for row in latest.values():
        by_table.setdefault(row.rule.table, []).append(row)
    for table, rows in by_table.items():
        _upsert(tx, table, rows)
    for ev, rule in history:
        cols = {"hub": ev.hub, "db": ev.db, "seq": ev.seq, "at": ev.at, "kind": ev.kind,
                **rule.values(ev.data)}
        tx.execute(f"INSERT INTO {rule.table} ({', '.join(cols)}) VALUES "
                   f"({', '.join('?' * len(cols))}) ON CONFLICT DO NOTHING", list(cols.values()))
    return skipped


def _upsert(tx: Tx, table: str, rows: list[_Row]) -> None:
    """Batched upserts into one table: a row only moves forward.

    An older event (a late replay) changes nothing, except that it fills a
    ``keep`` column the row still lacks.
    """
    groups: dict[tuple[str, ...], list[list[Any]]] = {}
    shapes: dict[tuple[str, ...], tuple[list[str], list[str], tuple[str, ...]]] = {}
    for row in rows:
        row_values = {**row.values, "db": row.db, "seq": row.seq}
        shape = (*row.key, *row_values, "|", *row.rule.keep)
        shapes[shape] = (list(row.key), list(row_values), row.rule.keep)
        groups.setdefault(shape, []).append([*row.key.values(), *row_values.values()])
    for shape, params in groups.items():
        keys, values, keep = shapes[shape]
        cols = keys + values
        newer = f"({table}.db <> excluded.db OR {table}.seq < excluded.seq)"
        sets = []
        for c in values:  # every SET expression reads the row as it was before
            if c in keep:
                sets.append(f"{c} = CASE WHEN {newer} THEN COALESCE(excluded.{c}, {table}.{c}) "
                            f"ELSE COALESCE({table}.{c}, excluded.{c}) END")
            else:
                sets.append(f"{c} = CASE WHEN {newer} THEN excluded.{c} ELSE {table}.{c} END")
        tx.many(f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))}) "
                f"ON CONFLICT ({', '.join(keys)}) DO UPDATE SET {', '.join(sets)}", params)
