"""Locker commands from central (and the local API).

Each handler runs inside the dispatcher's write transaction; the inbox
makes a repeated command id return the first reply with no second effect,
and lock pulses happen only after the commit. Codes arrive either as plain
digits (``"code"``, over the TLS link; hashed here at once and never
stored) or as ``"code_hash"``: ``HMAC-SHA256(secret, purpose + "\\0" + code)``
in hex, for a central that holds the hub's secret.
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Annotated, Any, Literal

import msgspec
from msgspec import Meta

from hubagent.commands import CommandArgs, CommandContext
from hubagent.errors import CommandError
from hubagent.interfaces import LabelQueue
from hubagent.lockers.audit_list import LockerAudit, locker_audit
from hubagent.lockers import barcodes, loading, repo
from hubagent.lockers.service_state import LockerServiceArgs, ServiceCommands
from hubagent.lockers import state as sm
from hubagent.lockers.state import Purpose, State

if TYPE_CHECKING:
    from hubagent.app import App
    from hubagent.lockers.service import LockerService

Id = Annotated[str, Meta(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,39}$")]
Name = Annotated[str, Meta(min_length=1, max_length=32)]
Size = Literal["S", "M", "L"]
Reason = Annotated[str, Meta(min_length=1, max_length=200)]


class CodeSpec(CommandArgs, frozen=True):
    """A code given by central: the digits, or their keyed hash."""

    code: str | None = None
    code_hash: str | None = None


class ParcelAssign(CommandArgs, frozen=True):
    """``parcel.assign``: reserve a compartment for a parcel."""

    parcel: Id
    size: Size
    expires_at: str | None = None
    pickup: Literal["generate"] | CodeSpec = "generate"
    bank: Name | None = None
    # Carrier tracking numbers and/or SSCCs already on the parcel (lockers/barcodes.py).
    barcodes: list[str] = msgspec.field(default_factory=list)
    # "chilled" only lands in a chilled compartment, "ambient" only in an ambient one.
    temperature: Literal["ambient", "chilled"] = "ambient"
    # "now" reserves a compartment at once; "on_load" when the courier scans the parcel.
    allocate: Literal["now", "on_load"] = "now"
    # Queue the parcel's HA:PCL label on the printer (also [locker_policy] print_parcel_labels).
    label: bool = False


class ParcelCancel(CommandArgs, frozen=True):
    """``parcel.cancel``: an assigned parcel will not come, or a stored one is recalled."""

    parcel: Id


class ReturnExpect(CommandArgs, frozen=True):
    """``return.expect``: a customer will drop a return off with a code."""

    # "return" is a Python keyword, hence the rename.
    return_id: Id = msgspec.field(name="return")
    size: Size
    code: str | None = None
    code_hash: str | None = None
    expires_at: str | None = None


class LockerOpen(CommandArgs, frozen=True):
    """``locker.open``: central opens one compartment, with a reason for the audit trail."""

    bank: Name
    compartment: Name
    reason: Reason


class ClearFault(CommandArgs, frozen=True):
    """``locker.clear_fault``: someone checked a faulted compartment."""

    bank: Name
    compartment: Name


class LockerCommands:
    """Handlers of the locker commands."""

    def __init__(self, svc: "LockerService", labels: LabelQueue | None = None) -> None:
        """Use ``svc`` for allocation, releases and the code secret; ``labels`` to print parcel labels."""
        self.svc = svc
        self.labels = labels

    def register(self, app: "App") -> None:
        """Add every locker command to the dispatcher."""
        c = app.commands
        c.register("parcel.assign", self.assign, ParcelAssign)
        c.register("parcel.cancel", self.cancel, ParcelCancel)
        c.register("return.expect", self.expect_return, ReturnExpect)
        c.register("locker.open", self.open, LockerOpen)
        c.register("locker.clear_fault", self.clear_fault, ClearFault)
        c.register("locker.service", ServiceCommands(self.svc).handle, LockerServiceArgs)
        c.register("locker.audit", locker_audit, LockerAudit, read_only=True)

    # -- handlers -----------------------------------------------------------------
    def assign(self, ctx: CommandContext, args: ParcelAssign) -> dict[str, Any]:
        """Reserve the smallest free compartment that fits the parcel."""
        tx = ctx.tx
        if repo.parcel(tx, args.parcel) is not None:
            raise CommandError("duplicate_parcel", f"parcel {args.parcel} is already known")
        expires_at = self.svc.expires_at(args.expires_at)
        found = barcodes.parse_barcodes(args.barcodes)
        bank: str | None = None
        comp: str | None = None
        if args.allocate == "now":
            bank, comp = self.svc.allocate(tx, args.size, args.bank, temperature=args.temperature)
        elif args.bank is not None:
            self.svc.bank(args.bank)
        generate = args.pickup == "generate"
        now = repo.format_time(self.svc.wall())
        tx.execute("INSERT INTO locker_parcels(id, size, state, bank, compartment, expires_at, generate, "
                   "assigned_by, created_at, updated_at, temperature) "
                   "VALUES (?, ?, 'assigned', ?, ?, ?, ?, ?, ?, ?, ?)",
                   (args.parcel, args.size, bank, comp, expires_at, int(generate), ctx.id, now, now,
                    args.temperature))
        loading.record_barcodes(tx, args.parcel, found)
        if isinstance(args.pickup, CodeSpec):
            code_hash = self.svc.new_code_hash(tx, "pickup", args.pickup.code, args.pickup.code_hash)
            if code_hash is None:
                raise CommandError("bad_args", "pickup needs code or code_hash (or \"generate\")")
            repo.add_code(tx, code_hash, "pickup", args.parcel, expires_at)
        if bank is not None and comp is not None:
            row = repo.compartment(tx, bank, comp)
            assert row is not None
            repo.update_compartment(tx, bank, comp, state=sm.assign(State(row["state"])).value,
                                    item_kind="parcel", item_id=args.parcel)
        repo.audit(tx, "assigned", bank=bank, compartment=comp, ref=args.parcel, source=ctx.source,
                   command=ctx.id, size=args.size, temperature=args.temperature,
                   barcodes=[b.code for b in found])
        result: dict[str, Any] = {
            "parcel": args.parcel, "bank": bank, "compartment": comp,
            "size": self.svc.layouts[bank][comp].size if bank and comp else args.size,
            "expires_at": expires_at, "temperature": args.temperature}
        if args.label or self.svc.policy.print_parcel_labels:
            result["label_job"] = loading.queue_label(self.labels, tx, args.parcel, comp,
                                                      self.svc.app.hub_id)
        ctx.tx.emit("parcel.assigned", {**result, "command": ctx.id})
        return result

    def cancel(self, ctx: CommandContext, args: ParcelCancel) -> dict[str, Any]:
        """Free a reserved compartment, or mark a stored parcel for staff retrieval."""
        tx = ctx.tx
        parcel = repo.parcel(tx, args.parcel)
        if parcel is None or parcel["state"] not in ("assigned", "stored"):
            raise CommandError("wrong_state", f"parcel {args.parcel} cannot be cancelled now")
        if parcel["bank"] is None:
            return self._cancel_unplaced(ctx, args.parcel)
        row = repo.compartment(tx, parcel["bank"], parcel["compartment"])
        assert row is not None
        try:
            target = sm.cancel(State(row["state"]))
        except sm.TransitionError as e:
            raise CommandError("busy", str(e)) from None
        fields: dict[str, Any] = {"state": target.value}
        if target is State.FREE:
            fields.update(item_kind=None, item_id=None)
        repo.update_compartment(tx, parcel["bank"], parcel["compartment"], **fields)
        repo.set_item_state(tx, "parcel", args.parcel, "cancelled" if target is State.FREE else "expired")
        repo.spend_codes_of(tx, "pickup", args.parcel, "cancelled")
        repo.audit(tx, "cancelled", bank=parcel["bank"], compartment=parcel["compartment"],
                   ref=args.parcel, command=ctx.id)
        result = {"parcel": args.parcel, "bank": parcel["bank"], "compartment": parcel["compartment"],
                  "state": target.value}
        tx.emit("parcel.cancelled", {**result, "command": ctx.id})
        return result

    def _cancel_unplaced(self, ctx: CommandContext, parcel: str) -> dict[str, Any]:
        """Cancel a parcel that waits for its load scan with no compartment yet."""
        repo.set_item_state(ctx.tx, "parcel", parcel, "cancelled")
        repo.spend_codes_of(ctx.tx, "pickup", parcel, "cancelled")
        repo.audit(ctx.tx, "cancelled", ref=parcel, command=ctx.id)
        result = {"parcel": parcel, "bank": None, "compartment": None, "state": "cancelled"}
        ctx.tx.emit("parcel.cancelled", {**result, "command": ctx.id})
        return result

    def expect_return(self, ctx: CommandContext, args: ReturnExpect) -> dict[str, Any]:
        """Accept a return code; the drop-off allocates a compartment then."""
        tx = ctx.tx
        if repo.return_row(tx, args.return_id) is not None:
            raise CommandError("duplicate_return", f"return {args.return_id} is already known")
        code_hash = self.svc.new_code_hash(tx, "return", args.code, args.code_hash)
        if code_hash is None:
            raise CommandError("bad_args", "return.expect needs code or code_hash")
        expires_at = self.svc.expires_at(args.expires_at)
        by_hub = expires_at is None and self.svc.wall_clock_sane()
        if by_hub:
            expires_at = repo.format_time(self.svc.wall() + timedelta(seconds=self.svc.policy.return_expiry_s))
        now = repo.format_time(self.svc.wall())
        tx.execute("INSERT INTO locker_returns(id, size, state, expires_at, created_at, updated_at, deadline_by_hub) "
                   "VALUES (?, ?, 'expected', ?, ?, ?, ?)",
                   (args.return_id, args.size, expires_at, now, now, int(by_hub)))
        repo.add_code(tx, code_hash, "return", args.return_id, expires_at)
        repo.audit(tx, "return_expected", ref=args.return_id, source=ctx.source, command=ctx.id)
        result = {"return": args.return_id, "size": args.size, "expires_at": expires_at}
        tx.emit("return.expected", {**result, "command": ctx.id})
        return result

    def open(self, ctx: CommandContext, args: LockerOpen) -> dict[str, Any]:
        """Release one compartment for central; refused once the MQTT v5 expiry passed."""
        expires = ctx.extra.get("expires_at_monotonic")
        if expires is not None and self.svc.clock.monotonic() >= expires:
            raise CommandError("expired", "the command expired before the lock could be released")
        release = self.svc.release(ctx.tx, args.bank, args.compartment, Purpose.REMOTE,
                                   source=ctx.source, reason=args.reason, command=ctx.id,
                                   expires_at=expires)
        return {"bank": args.bank, "compartment": args.compartment, "release": release}

    def clear_fault(self, ctx: CommandContext, args: ClearFault) -> dict[str, Any]:
        """Clear a forced_open / lock_failed fault once someone checked the compartment."""
        fault = self.svc.clear_fault(ctx.tx, args.bank, args.compartment, ctx.id)
        return {"bank": args.bank, "compartment": args.compartment, "cleared": fault}

