"""Compartments out of service: taken out with a reason, put back, audited.

An out-of-service compartment is never assigned (at ``parcel.assign``, at a
courier's load scan or at a return drop-off) and never opened by a
customer's code or a load; staff and central may still open it (that is
how it gets fixed). Its contents stay where they are: a parcel stored in it
waits, and its customer is told ``out_of_service`` at the keypad.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

from msgspec import Meta

from hubagent.commands import CommandArgs, CommandContext
from hubagent.errors import CommandError
from hubagent.lockers import repo
from hubagent.store.store import Tx

if TYPE_CHECKING:
    from hubagent.lockers.service import LockerService

Name = Annotated[str, Meta(min_length=1, max_length=32)]
Reason = Annotated[str, Meta(min_length=1, max_length=200)]


class LockerServiceArgs(CommandArgs, frozen=True):
    """``locker.service``: take a compartment out of service (with a reason) or put it back."""

    bank: Name
    compartment: Name
    in_service: bool
    reason: Reason | None = None


def out_of_service(db: repo.Reader) -> dict[tuple[str, str], dict[str, Any]]:
    """Every compartment out of service: (bank, compartment) -> its row (reason, since, by)."""
    return {(r["bank"], r["compartment"]): r for r in repo.rows(db, "SELECT * FROM locker_out_of_service")}


def is_out(db: repo.Reader, bank: str, compartment: str) -> bool:
    """Whether one compartment is out of service."""
    return repo.one(db, "SELECT 1 AS x FROM locker_out_of_service WHERE bank=? AND compartment=?",
                    (bank, compartment)) is not None


def set_service(svc: "LockerService", tx: Tx, bank: str, compartment: str, in_service: bool,
                reason: str | None, *, by: str, source: str | None) -> dict[str, Any]:
    """Change one compartment's service state; audited and announced as ``locker.service_changed``."""
    svc.bank(bank)
    if repo.compartment(tx, bank, compartment) is None or compartment not in svc.layouts[bank]:
        raise CommandError("unknown_compartment", f"bank {bank} has no compartment {compartment!r}")
    was_out = is_out(tx, bank, compartment)
    if not in_service:
        if not reason:
            raise CommandError("bad_args", "reason is required to take a compartment out of service")
        tx.execute("INSERT INTO locker_out_of_service(bank, compartment, reason, since, by) VALUES (?, ?, ?, ?, ?) "
                   "ON CONFLICT(bank, compartment) DO UPDATE SET reason=excluded.reason, by=excluded.by",
                   (bank, compartment, reason, tx.now, by))
    else:
        tx.execute("DELETE FROM locker_out_of_service WHERE bank=? AND compartment=?", (bank, compartment))
    changed = was_out == in_service
    repo.audit(tx, "out_of_service" if not in_service else "back_in_service", bank=bank,
               compartment=compartment, ref=by, source=source, reason=reason or "", changed=changed)
    result = {"bank": bank, "compartment": compartment, "in_service": in_service, "reason": reason or "",
              "changed": changed}
    tx.emit("locker.service_changed", {**result, "command": by})
    return result


class ServiceCommands:
    """The ``locker.service`` command."""

    def __init__(self, svc: "LockerService") -> None:
        """Use ``svc`` for the banks and layouts."""
        self.svc = svc

    def handle(self, ctx: CommandContext, args: LockerServiceArgs) -> dict[str, Any]:
        """Take a compartment out of service or put it back."""
        return set_service(self.svc, ctx.tx, args.bank, args.compartment, args.in_service, args.reason,
                           by=ctx.id, source=ctx.source)
