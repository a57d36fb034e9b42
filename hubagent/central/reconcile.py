"""``hubctl reconcile HUB``: central's books against the hub's own balances.

Central's stock table is derived from the hub's event stream. If the hub's
balances no longer match what its own events say (a database edited by
hand, restored from a backup, a bug), the two disagree. ``compare`` takes
``state.snapshot`` and, once central has stored every event up to the
snapshot's ``last_seq``, lists each (SKU, bin) whose balances differ.
``apply`` sends one ``stock.count`` per difference, setting the hub to
central's balance: a ``count`` movement the hub records and reports like
any other, so both books agree again and the correction is in the audit
trail; each is recorded in central's ``corrections`` table with the reason.
(``stock.count`` cannot count below zero: a negative central balance is
corrected with ``stock.adjust`` by the difference.)
"""

from __future__ import annotations

import json
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

from hubagent.central.db import Database
from hubagent.central.link import Requester


@dataclass
class Difference:
    """One (SKU, bin) whose balances differ."""

    sku: str
    bin: str
    central: int
    hub: int
    fixed: bool | None = None
    command: str | None = None
    error: str | None = None


@dataclass
class Report:
    """The outcome of a comparison (and of ``--apply``)."""

    hub: str
    db: str | None
    last_seq: int
    central_upto: int
    caught_up: bool
    compared: int
    differences: list[Difference] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)  # rows changed after the snapshot

    def as_dict(self) -> dict[str, Any]:
        """For ``--json``."""
        return {"hub": self.hub, "db": self.db, "last_seq": self.last_seq,
                "central_upto": self.central_upto, "caught_up": self.caught_up,
                "compared": self.compared, "skipped": self.skipped,
                "differences": [vars(d) for d in self.differences]}

    def text(self) -> str:
        """Human-readable report."""
        lines = [f"hub {self.hub}: snapshot at seq {self.last_seq}, central has "
                 f"{self.central_upto} gap-free; {self.compared} balance(s) compared"]
        if not self.caught_up:
            lines.append("WARNING: central had not stored every event up to the snapshot; "
                         "differences may only be events still in flight")
        if not self.differences:
            lines.append("no differences")
        for d in self.differences:
            state = "" if d.fixed is None else (" -> fixed" if d.fixed else f" -> NOT fixed: {d.error}")
            lines.append(f"  {d.sku} @ {d.bin}: central {d.central}, hub {d.hub} "
                         f"(hub {d.hub - d.central:+d}){state}")
        return "\n".join(lines)


def compare(db: Database, requester: Requester, hub: str, wait_s: float = 15.0) -> Report:
    """Snapshot the hub and compare with central's stock rows for its current database."""
    snap = requester.call(hub, "state.snapshot", command_id=f"reconcile-{secrets.token_hex(8)}")
    last_seq = int(snap["last_seq"])
    rows = db.read("SELECT db FROM hubs WHERE hub = ?", (hub,))
    dbid = str(rows[0][0]) if rows and rows[0][0] else None
    deadline = time.monotonic() + wait_s
    while True:  # the ingest may still be storing events up to last_seq
        cur = db.read("SELECT upto FROM cursors WHERE hub = ? AND db = ?", (hub, dbid or ""))
        upto = int(cur[0][0]) if cur else 0
        if upto >= last_seq or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    central = {(s, b): (int(q), int(seq)) for s, b, q, seq in db.read(
        "SELECT sku, bin, on_hand, seq FROM stock WHERE hub = ? AND db = ?", (hub, dbid or ""))}
    hub_bal = {(b["sku"], b["bin"]): int(b["on_hand"]) for b in snap.get("balances") or []}
    report = Report(hub, dbid, last_seq, upto, upto >= last_seq, 0)
    for key in sorted(set(central) | set(hub_bal)):
        c_qty, c_seq = central.get(key, (0, 0))
        if c_seq > last_seq:
            report.skipped.append(f"{key[0]}@{key[1]}")  # moved after the snapshot
            continue
        report.compared += 1
        if c_qty != hub_bal.get(key, 0):
            report.differences.append(Difference(key[0], key[1], c_qty, hub_bal.get(key, 0)))
    return report


def apply(db: Database, requester: Requester, report: Report, reason: str) -> None:
    """Correct each difference on the hub and record it (with ``reason``) in ``corrections``."""
    for d in report.differences:
        cid = f"reconcile-{report.hub}-{secrets.token_hex(8)}"
        d.command = cid
        if d.central >= 0:
            name, args = "stock.count", {"sku": d.sku, "bin": d.bin, "counted": d.central}
        else:
            name, args = "stock.adjust", {"sku": d.sku, "bin": d.bin,
                                          "delta": d.central - d.hub, "reason": reason}
        try:
            reply = requester.send(report.hub, name, args, command_id=cid, retries=2)
        except TimeoutError as e:
            reply = {"ok": False, "error": {"code": "timeout", "message": str(e)}}
        d.fixed = reply.get("ok") is True
        if not d.fixed:
            err = reply.get("error") or {}
            d.error = f"{err.get('code')}: {err.get('message')}"
        with db.tx() as tx:
            tx.execute("INSERT INTO corrections (id, hub, sku, bin, central, hub_on_hand, reason, "
                       "at, ok, reply) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                       (cid, report.hub, d.sku, d.bin, d.central, d.hub, reason, time.time(),
                        1 if d.fixed else 0, json.dumps(reply)))
