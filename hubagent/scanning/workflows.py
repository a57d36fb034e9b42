"""The shelf workflows: what one understood scan does in each mode.

:func:`step` runs inside the scan's write transaction on the core thread. It
mutates the given :class:`~hubagent.scanning.session.Session` (the caller
passes a copy and keeps it only if the transaction commits), records ledger
movements and emits events through ``ctx.tx``, and returns an
:class:`~hubagent.scanning.session.Outcome`, or raises
:class:`~hubagent.scanning.session.Refused` (the caller rolls back).

Codes that work in every mode: ``HA:MODE:*`` switches mode (and drops the
current task), ``HA:STAFF:<badge>`` signs in the registered holder of the badge
(:func:`sign_in`), ``HA:QTY:<n>`` sets the
quantity of the next item, ``HA:CANCEL`` drops the current selection/task
or, with nothing in hand, signs staff out. ``HA:BIN``, items and ``HA:DONE``
mean what the mode says (see ``docs/scan-codes.md``).

An item scan resolves to an :class:`Item`: the SKU, how many units the
scanned GTIN stands for (an outer case), and what the code said about the
goods (GS1 lot/dates/serial, a variable-measure weight or price), which is
recorded on every movement it causes.
"""

from __future__ import annotations

import logging
from typing import Any, Callable

import msgspec
import msgspec.structs

from hubagent.errors import HubError, InputError
from hubagent.interfaces import LabelQueue, StaffRecords
from hubagent.scanning import measure, schema
from hubagent.scanning.codes import Scan, ScanKind
from hubagent.scanning.session import Mode, Outcome, Refused, Session, attention, first_needed, ok
from hubagent.scanning.settings import ScanningSettings
from hubagent.stock import ledger
from hubagent.store.store import Tx

log = logging.getLogger(__name__)


class StepContext(msgspec.Struct):
    """What a workflow step may use besides the session and the scan."""

    tx: Tx
    scanner: str
    settings: ScanningSettings
    labels: LabelQueue | None = None  # None: no printer configured
    staff: StaffRecords | None = None  # the staff registry (badges are checked against it)
    require_pin: bool = False  # [staff] require_pin: a badge waits for its PIN
    now: float = 0.0  # monotonic time of the scan (the PIN wait starts then)

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
        return sign_in(ctx, s, scan.value)
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
        _need_staff(ctx, s)
        return _DONE[s.mode](ctx, s)
    if kind is ScanKind.ZERO:
        _need_mode(s, Mode.COUNT, scan)
        _need_staff(ctx, s)
        return _count_zero(ctx, s)
    if kind is ScanKind.BIN:
        return _BIN[s.mode](ctx, s, scan.value)
    if kind in (ScanKind.GTIN, ScanKind.SKU):
        _need_staff(ctx, s)
        item = resolve_item(ctx.tx, scan, ctx.settings)
        qty = _take_qty(s, scan) * item.pack
        return _ITEM[s.mode](ctx, s, item, qty, scan)
    raise Refused("unsupported_code", f"a {kind.value} code means nothing in {s.mode.value} mode")


def sign_in(ctx: StepContext, s: Session, badge: str) -> Outcome:
    """``HA:STAFF:<badge>``: sign in the registered holder, or await their PIN.

    An unknown, revoked or expired badge is refused (``unknown_staff``) and
    changes nothing. With ``require_pin`` the scanner signs out whoever was
    signed in and waits for the badge holder's PIN on the keypad of the same
    name; nobody is signed in until it is right.
    """
    member = ctx.staff.by_badge(ctx.tx, badge) if ctx.staff is not None else None
    if member is None:
        raise Refused("unknown_staff", "that badge is not registered (or it was revoked or expired)")
    if ctx.require_pin:
        s.staff = None
        s.pin_staff, s.pin_since = member.id, ctx.now
        return attention(f"badge of {member.id}: type the PIN on keypad {ctx.scanner}")
    s.staff = member.id
    s.pin_staff = s.pin_since = None
    return ok(f"staff {member.id} signed in")


def _need_staff(ctx: StepContext, s: Session) -> None:
    """``require_staff``: a movement needs a signed-in staff member who is still registered."""
    if not ctx.settings.require_staff or s.mode is Mode.LOOKUP:
        return
    if s.staff is None or ctx.staff is None or ctx.staff.member(ctx.tx, s.staff) is None:
        raise first_needed("no_staff", "scan your staff badge first")


class Item(msgspec.Struct, frozen=True):
    """A scanned item: its SKU, units per scan, and what the code said about the goods."""

    sku: str
    pack: int = 1
    data: ledger.ItemData = ledger.NO_ITEM_DATA


def resolve_item(tx: Tx, scan: Scan, settings: ScanningSettings) -> Item:
    """The catalog item of a GTIN or SKU scan; Refused ``unknown_item`` otherwise.

    A GTIN is looked up in every form it may stand for (an EAN-13 and its
    GTIN-14 are one number; a variable-measure code names the item with its
    value zeroed, see :mod:`hubagent.scanning.measure`).
    """
    if scan.kind is not ScanKind.GTIN:
        if tx.execute("SELECT 1 FROM skus WHERE sku=?", (scan.value,)).fetchone() is None:
            raise Refused("unknown_item", f"SKU {scan.value!r} is not in the catalog")
        return Item(scan.value)
    measured = measure.read(scan.value, settings.variable_measure)
    candidates = ((measured.gtin,) if measured else ()) + scan.gtins
    for gtin in candidates:
        row = tx.execute("SELECT sku, qty FROM gtins WHERE gtin=?", (gtin,)).fetchone()
        if row is not None:
            break
    else:
        shown = f"{scan.value} ({measured.kind} code of {measured.gtin})" if measured else scan.value
        raise Refused("unknown_item", f"GTIN {shown} is not in the catalog")
    data = ledger.ItemData(scan.lot, scan.expiry, scan.best_before, scan.serial)
    if measured is not None and gtin == measured.gtin:
        value = str(measured.value)
        data = msgspec.structs.replace(data, weight=value) if measured.kind == "weight" else msgspec.structs.replace(data, price=value)
    return Item(str(row[0]), int(row[1]), data)


def _take_qty(s: Session, scan: Scan) -> int:
    """The quantity of this item scan: HA:QTY first, then a GS1 count, else 1 (times the pack)."""
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


def _receive_item(ctx: StepContext, s: Session, item: Item, qty: int, scan: Scan) -> Outcome:
    sku = item.sku
    if qty > ctx.settings.max_receive_qty:
        raise Refused("qty_too_large", f"{qty} is more than max_receive_qty {ctx.settings.max_receive_qty}")
    delivery = schema.open_delivery(ctx.tx, s.delivery) or schema.delivery_for(ctx.tx, sku)
    bin = s.bin or (delivery["bin"] if delivery else None)
    if bin is None:
        raise first_needed("no_bin", "scan the bin to receive into first")
    ref = delivery["id"] if delivery else None
    m = ledger.record(ctx.tx, type="receive", sku=sku, bin=bin, delta=qty, ref=ref, item=item.data,
                      **ctx.who(s))
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


def _pick_item(ctx: StepContext, s: Session, item: Item, qty: int, scan: Scan) -> Outcome:
    sku = item.sku
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
    data = ledger.known_lot(ctx.tx, sku, bin, item.data)
    skipped = _fefo_skipped(ctx.tx, sku, bin, data)
    extra = {"fefo_first": skipped} if skipped else None
    ledger.record(ctx.tx, type="pick", sku=sku, bin=bin, delta=-qty, ref=pick["id"], item=data,
                  reason="fefo_skipped" if skipped else None, extra=extra, **ctx.who(s))
    schema.add_picked(ctx.tx, pick["id"], sku, qty)
    s.pick = pick["id"]
    done = ok
    note = f"{sku}: {line['picked'] + qty} of {line['qty']} picked"
    if skipped:
        done = attention
        note += f"; lot {skipped['lot'] or '?'} ({skipped['expiry'] or skipped['best_before']}) was due first"
    if not schema.pick_complete(ctx.tx, pick["id"]):
        return done(note)
    _close_pick(ctx, s, pick["id"], "complete")
    return done(f"pick {pick['id']} complete" + (f" ({note})" if skipped else ""))


def _fefo_skipped(tx: Tx, sku: str, bin: str, data: ledger.ItemData) -> dict[str, Any] | None:
    """The earlier-dated lot in the bin that a pick of lot ``data`` passed over, if any."""
    if not data.names_lot:
        return None  # no lot scanned: the ledger takes the first-expiring lots itself
    for lot, expiry, best_before, _ in ledger.fefo_lots(tx, sku, bin):
        first = ledger.ItemData.from_key(lot, expiry, best_before)
        if first.date is None or first.key() == data.key():
            return None
        if data.date is None or first.date < data.date:
            return {"lot": first.lot, "expiry": expiry or None, "best_before": best_before or None}
        return None
    return None


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


def _count_item(ctx: StepContext, s: Session, item: Item, qty: int, scan: Scan) -> Outcome:
    if s.bin is None:
        raise first_needed("no_bin", "scan the bin to count first")
    s.counts[item.sku] = s.counts.get(item.sku, 0) + qty
    return ok(f"{item.sku}: {s.counts[item.sku]} counted in {s.bin}")


def _count_done(ctx: StepContext, s: Session) -> Outcome:
    """Book every difference in the bin: SKUs on the ledger not scanned count as 0.

    Nothing scanned is refused (``empty_count``): an empty bin is booked with
    ``HA:ZERO``, so a stray ``HA:DONE`` can never wipe a bin.
    """
    if s.bin is None:
        raise first_needed("no_bin", "scan the bin to count first")
    if not s.counts:
        raise Refused("empty_count", f"nothing counted in {s.bin}: scan the items, "
                                     "or HA:ZERO if the bin is empty")
    return _book_count(ctx, s)


def _count_zero(ctx: StepContext, s: Session) -> Outcome:
    """``HA:ZERO``: the bin is empty; every SKU the ledger has in it is counted as 0."""
    if s.bin is None:
        raise first_needed("no_bin", "scan the bin that is empty first")
    if s.counts:
        raise Refused("count_open", f"items were counted in {s.bin}: HA:DONE books them, "
                                    "HA:CANCEL drops them")
    return _book_count(ctx, s)


def _book_count(ctx: StepContext, s: Session) -> Outcome:
    assert s.bin is not None
    listed = {str(r[0]) for r in ctx.tx.execute(
        "SELECT sku FROM balances WHERE bin=? AND on_hand != 0", (s.bin,)).fetchall()}
    changed, worst = 0, 0
    for sku in sorted(listed | set(s.counts)):
        counted = s.counts.get(sku, 0)
        diff = counted - ledger.on_hand(ctx.tx, sku, s.bin)
        if diff:
            ledger.count(ctx.tx, sku=sku, bin=s.bin, counted=counted, **ctx.who(s))
            changed += 1
            worst = max(worst, abs(diff))
    note = f"count of {s.bin} booked: {changed} difference(s)"
    s.clear_selection()
    if worst > ctx.settings.count_tolerance:
        return attention(f"{note}, up to {worst} units (count_tolerance {ctx.settings.count_tolerance})")
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


def _move_item(ctx: StepContext, s: Session, item: Item, qty: int, scan: Scan) -> Outcome:
    if s.bin is None or s.dest is None:
        raise first_needed("no_bin", "scan the source bin, then the destination bin")
    data = ledger.known_lot(ctx.tx, item.sku, s.bin, item.data)
    ledger.move(ctx.tx, sku=item.sku, src=s.bin, dst=s.dest, qty=qty, item=data, **ctx.who(s))
    return ok(f"moved {qty} {item.sku} from {s.bin} to {s.dest}")


# --- return ------------------------------------------------------------------


def _return_item(ctx: StepContext, s: Session, item: Item, qty: int, scan: Scan) -> Outcome:
    sku = item.sku
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
                  ref=s.ref, item=item.data, **ctx.who(s))
    return ok(f"returned {qty} {sku} ({s.condition}) into {bin}")


# --- lookup ------------------------------------------------------------------


def _lookup_item(ctx: StepContext, s: Session, item: Item, qty: int, scan: Scan) -> Outcome:
    """Feedback only; a shelf label when ``lookup_prints_label`` names a printer."""
    sku = item.sku
    printer = ctx.settings.lookup_prints_label
    if printer and ctx.labels is not None:
        _print_shelf_label(ctx, ctx.labels, sku, printer, max(1, qty // item.pack))
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
_ItemFn = Callable[[StepContext, Session, Item, int, Scan], Outcome]

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
