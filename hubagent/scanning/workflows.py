"""The shelf workflows: what one understood scan does in each mode.

:func:`step` runs inside the scan's write transaction on the core thread. It
mutates the given :class:`~hubagent.scanning.session.Session` (the caller
passes a copy and keeps it only if the transaction commits), records ledger
movements and emits events through ``ctx.tx``, and returns an
:class:`~hubagent.scanning.session.Outcome`, or raises
:class:`~hubagent.scanning.session.Refused` (the caller rolls back).

Codes that work in every mode: ``HA:MODE:*`` switches mode (and drops the
current task), ``HA:STAFF:<id>`` signs staff in, ``HA:QTY:<n>`` sets the
quantity of the next item, ``HA:CANCEL`` drops the current selection/task
or, with nothing in hand, signs staff out. ``HA:BIN``, items and ``HA:DONE``
mean what the mode says (see ``docs/scan-codes.md``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Callable

from hubagent.errors import HubError, InputError
from hubagent.interfaces import LabelQueue
from hubagent.scanning import schema
from hubagent.scanning.codes import Scan, ScanKind
from hubagent.scanning.session import Mode, Outcome, Refused, Session, attention, first_needed, ok
from hubagent.scanning.settings import ScanningSettings
from hubagent.stock import ledger
from hubagent.store.store import Tx

log = logging.getLogger(__name__)


@dataclass
class StepContext:
    """What a workflow step may use besides the session and the scan."""

    tx: Tx
    scanner: str
    settings: ScanningSettings
    labels: LabelQueue | None = None  # None: no printer configured

    def who(self, s: Session) -> dict[str, Any]:
        """``actor``/``device`` of the movements this scan records."""
        return {"actor": s.staff, "device": self.scanner}


def step(ctx: StepContext, s: Session, scan: Scan) -> Outcome:
    """Carry out one scan in the scanner's mode (see the module docstring)."""
    kind = scan.kind
    if kind is ScanKind.MODE:
        mode = Mode(scan.value.lower())
        s.clear_task()
        s.mode = mode
        return ok(f"mode {mode.value}")
    if kind is ScanKind.STAFF:
        s.staff = scan.value
        return ok(f"staff {scan.value} signed in")
    if kind is ScanKind.QTY:
        s.qty = scan.quantity
        return ok(f"quantity {scan.quantity} for the next item")
    if kind is ScanKind.CANCEL:
        return _cancel(s)
    if kind is ScanKind.CONDITION:
        _need_mode(s, Mode.RETURN, scan)
        s.condition = scan.value.lower()
        return ok(f"condition {s.condition}")
    if kind is ScanKind.RETURN:
        _need_mode(s, Mode.RETURN, scan)
        s.ref = scan.value
        return ok(f"return {scan.value}")
    if kind is ScanKind.DONE:
        return _DONE[s.mode](ctx, s)
    if kind is ScanKind.BIN:
        return _BIN[s.mode](ctx, s, scan.value)
    if kind in (ScanKind.GTIN, ScanKind.SKU):
        sku = resolve_item(ctx.tx, scan)
        qty = _take_qty(s, scan)
        return _ITEM[s.mode](ctx, s, sku, qty, scan)
    raise Refused("unsupported_code", f"a {kind.value} code means nothing in {s.mode.value} mode")


def resolve_item(tx: Tx, scan: Scan) -> str:
    """The catalog SKU of a GTIN or SKU scan; Refused ``unknown_item`` otherwise."""
    if scan.kind is ScanKind.GTIN:
        row = tx.execute("SELECT sku FROM gtins WHERE gtin=?", (scan.value,)).fetchone()
        if row is None:
            raise Refused("unknown_item", f"GTIN {scan.value} is not in the catalog")
        return str(row[0])
    if tx.execute("SELECT 1 FROM skus WHERE sku=?", (scan.value,)).fetchone() is None:
        raise Refused("unknown_item", f"SKU {scan.value!r} is not in the catalog")
    return scan.value


def _take_qty(s: Session, scan: Scan) -> int:
    """The quantity of this item scan: HA:QTY first, then a GS1 count, else 1."""
    qty = s.qty or scan.count or 1
    s.qty = None
    return qty


def _need_mode(s: Session, mode: Mode, scan: Scan) -> None:
    if s.mode is not mode:
        raise Refused("wrong_mode", f"a {scan.kind.value} code is used in {mode.value} mode, "
                                    f"not {s.mode.value}")


def _cancel(s: Session) -> Outcome:
    """Drop what is in hand; with nothing in hand, sign staff out."""
    if s.has_selection():
        s.clear_task()
        return ok("cancelled")
    if s.staff is not None:
        who, s.staff = s.staff, None
        return ok(f"staff {who} signed out")
    return ok("nothing to cancel")


def _default_bin(tx: Tx, sku: str) -> str | None:
    row = tx.execute("SELECT default_bin FROM skus WHERE sku=?", (sku,)).fetchone()
    return row[0] if row and row[0] else None


def _select_bin(ctx: StepContext, s: Session, code: str) -> Outcome:
    s.bin = code
    return ok(f"bin {code}")


def _nothing_done(ctx: StepContext, s: Session) -> Outcome:
    s.clear_selection()
    return ok("done")


# --- receive -----------------------------------------------------------------


def _receive_item(ctx: StepContext, s: Session, sku: str, qty: int, scan: Scan) -> Outcome:
    if qty > ctx.settings.max_receive_qty:
        raise Refused("qty_too_large", f"{qty} is more than max_receive_qty {ctx.settings.max_receive_qty}")
    delivery = schema.open_delivery(ctx.tx, s.delivery) or schema.delivery_for(ctx.tx, sku)
    bin = s.bin or (delivery["bin"] if delivery else None)
    if bin is None:
        raise first_needed("no_bin", "scan the bin to receive into first")
    ref = delivery["id"] if delivery else None
    m = ledger.record(ctx.tx, type="receive", sku=sku, bin=bin, delta=qty, ref=ref, **ctx.who(s))
    if delivery is None:
        return ok(f"received {qty} {sku} into {bin} (on hand {m.on_hand})")
    s.delivery = delivery["id"]
    expected, received = schema.add_received(ctx.tx, delivery["id"], sku, qty)
    if received > expected:
        return attention(f"{sku}: {received} received, {expected} expected in {delivery['id']} (over)")
    return ok(f"{sku}: {received} of {expected} in {delivery['id']}")


def _receive_done(ctx: StepContext, s: Session) -> Outcome:
    delivery = schema.open_delivery(ctx.tx, s.delivery)
    s.clear_task()
    if delivery is None:
        return ok("done")
    lines = schema.close_delivery(ctx.tx, delivery["id"])
    complete = not any(line["over"] or line["short"] for line in lines)
    ctx.tx.emit("delivery.received", {
        "delivery": delivery["id"], "complete": complete, "lines": lines,
        "scanner": ctx.scanner, "actor": s.staff})
    note = f"delivery {delivery['id']} received" + ("" if complete else " with differences")
    return ok(note) if complete else attention(note)


# --- pick --------------------------------------------------------------------


def _pick_item(ctx: StepContext, s: Session, sku: str, qty: int, scan: Scan) -> Outcome:
    pick = schema.open_pick(ctx.tx, s.pick) or schema.pick_for(ctx.tx, ctx.scanner)
    if pick is None:
        raise Refused("no_pick", "no open pick list for this scanner")
    line = schema.pick_line(ctx.tx, pick["id"], sku)
    if line is None:
        raise Refused("wrong_item", f"{sku} is not on pick list {pick['id']}")
    if line["picked"] + qty > line["qty"]:
        raise Refused("over_pick", f"{sku}: {line['picked']} of {line['qty']} picked; "
                                   f"{qty} more would be too many")
    bin = s.bin or line["bin"] or _default_bin(ctx.tx, sku)
    if bin is None:
        raise first_needed("no_bin", f"scan the bin {sku} is picked from first")
    ledger.record(ctx.tx, type="pick", sku=sku, bin=bin, delta=-qty, ref=pick["id"], **ctx.who(s))
    schema.add_picked(ctx.tx, pick["id"], sku, qty)
    s.pick = pick["id"]
    if not schema.pick_complete(ctx.tx, pick["id"]):
        return ok(f"{sku}: {line['picked'] + qty} of {line['qty']} picked")
    _close_pick(ctx, s, pick["id"], "complete")
    return ok(f"pick {pick['id']} complete")


def _pick_done(ctx: StepContext, s: Session) -> Outcome:
    pick = schema.open_pick(ctx.tx, s.pick)
    if pick is None:
        raise Refused("no_pick", "this scanner has not started a pick list")
    complete = schema.pick_complete(ctx.tx, pick["id"])
    _close_pick(ctx, s, pick["id"], "complete" if complete else "short")
    return ok(f"pick {pick['id']} complete") if complete else attention(f"pick {pick['id']} closed short")


def _close_pick(ctx: StepContext, s: Session, pick: str, status: str) -> None:
    lines = schema.close_pick(ctx.tx, pick, status)
    ctx.tx.emit("pick.done", {"pick": pick, "status": status, "lines": lines,
                              "scanner": ctx.scanner, "actor": s.staff})
    s.clear_task()


# --- count -------------------------------------------------------------------


def _count_bin(ctx: StepContext, s: Session, code: str) -> Outcome:
    if s.counts and s.bin != code:
        raise first_needed("count_open", f"finish the count of {s.bin} with HA:DONE or HA:CANCEL")
    if s.bin != code:
        s.counts = {}
    s.bin = code
    return ok(f"counting bin {code}")


def _count_item(ctx: StepContext, s: Session, sku: str, qty: int, scan: Scan) -> Outcome:
    if s.bin is None:
        raise first_needed("no_bin", "scan the bin to count first")
    s.counts[sku] = s.counts.get(sku, 0) + qty
    return ok(f"{sku}: {s.counts[sku]} counted in {s.bin}")


def _count_done(ctx: StepContext, s: Session) -> Outcome:
    """Book every difference in the bin: SKUs on the ledger not scanned count as 0."""
    if s.bin is None:
        raise first_needed("no_bin", "scan the bin to count first")
    listed = {str(r[0]) for r in ctx.tx.execute(
        "SELECT sku FROM balances WHERE bin=? AND on_hand != 0", (s.bin,)).fetchall()}
    changed = 0
    for sku in sorted(listed | set(s.counts)):
        counted = s.counts.get(sku, 0)
        if counted != ledger.on_hand(ctx.tx, sku, s.bin):
            ledger.count(ctx.tx, sku=sku, bin=s.bin, counted=counted, **ctx.who(s))
            changed += 1
    note = f"count of {s.bin} booked: {changed} difference(s)"
    s.clear_selection()
    return ok(note)


# --- move --------------------------------------------------------------------


def _move_bin(ctx: StepContext, s: Session, code: str) -> Outcome:
    """First bin is the source, second the destination, a third starts again."""
    if s.bin is None or s.dest is not None:
        s.bin, s.dest = code, None
        return ok(f"moving from {code}")
    if code == s.bin:
        raise Refused("same_bin", f"{code} is already the source bin")
    s.dest = code
    return ok(f"moving from {s.bin} to {code}")


def _move_item(ctx: StepContext, s: Session, sku: str, qty: int, scan: Scan) -> Outcome:
    if s.bin is None or s.dest is None:
        raise first_needed("no_bin", "scan the source bin, then the destination bin")
    ledger.move(ctx.tx, sku=sku, src=s.bin, dst=s.dest, qty=qty, **ctx.who(s))
    return ok(f"moved {qty} {sku} from {s.bin} to {s.dest}")


# --- return ------------------------------------------------------------------


def _return_item(ctx: StepContext, s: Session, sku: str, qty: int, scan: Scan) -> Outcome:
    if s.condition is None:
        raise first_needed("no_condition", "scan HA:COND:RESELLABLE or HA:COND:DAMAGED first")
    bin: str | None
    if s.condition == "damaged":
        bin = ctx.settings.quarantine_bin
        ledger.ensure_bin(ctx.tx, bin, kind="quarantine")
    else:
        bin = s.bin or _default_bin(ctx.tx, sku)
        if bin is None:
            raise first_needed("no_bin", f"{sku} has no default bin: scan the bin to return into")
    ledger.record(ctx.tx, type="return", sku=sku, bin=bin, delta=qty, reason=s.condition,
                  ref=s.ref, **ctx.who(s))
    return ok(f"returned {qty} {sku} ({s.condition}) into {bin}")


# --- lookup ------------------------------------------------------------------


def _lookup_item(ctx: StepContext, s: Session, sku: str, qty: int, scan: Scan) -> Outcome:
    """Feedback only; a shelf label when ``lookup_prints_label`` names a printer."""
    printer = ctx.settings.lookup_prints_label
    if printer and ctx.labels is not None:
        _print_shelf_label(ctx, ctx.labels, sku, printer, qty)
    return ok(f"{sku}: {ledger.on_hand(ctx.tx, sku, s.bin) if s.bin else 'known'}")


def _print_shelf_label(ctx: StepContext, labels: LabelQueue, sku: str, printer: str, copies: int) -> None:
    """Queue a shelf label (filled from the catalog) in a savepoint: a failure never spoils the scan."""
    try:
        with ctx.tx.savepoint("shelf_label"):
            labels.enqueue(ctx.tx, "shelf", {"sku": sku}, printer=printer, copies=copies)
    except (HubError, InputError, ValueError, TypeError) as e:
        log.warning("shelf label for %s not queued: %s", sku, e)


_DoneFn = Callable[[StepContext, Session], Outcome]
_BinFn = Callable[[StepContext, Session, str], Outcome]
_ItemFn = Callable[[StepContext, Session, str, int, Scan], Outcome]

_DONE: dict[Mode, _DoneFn] = {
    Mode.RECEIVE: _receive_done, Mode.PICK: _pick_done, Mode.COUNT: _count_done,
    Mode.MOVE: _nothing_done, Mode.RETURN: _nothing_done, Mode.LOOKUP: _nothing_done,
}
_BIN: dict[Mode, _BinFn] = {
    Mode.RECEIVE: _select_bin, Mode.PICK: _select_bin, Mode.COUNT: _count_bin,
    Mode.MOVE: _move_bin, Mode.RETURN: _select_bin, Mode.LOOKUP: _select_bin,
}
_ITEM: dict[Mode, _ItemFn] = {
    Mode.RECEIVE: _receive_item, Mode.PICK: _pick_item, Mode.COUNT: _count_item,
    Mode.MOVE: _move_item, Mode.RETURN: _return_item, Mode.LOOKUP: _lookup_item,
}
