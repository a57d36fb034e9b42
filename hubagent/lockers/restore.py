"""Compartments whose contents the database does not know, and how they become known again.

After a damaged database is quarantined, or on any start where a new
database replaces one that knew the lockers (:func:`database_lost`), the hub
cannot tell what is inside. Each compartment is then ``unknown`` unless its
occupancy sensor reads empty with the door closed (a compartment whose
sensor reads occupied is ``unknown`` on any new row, first start included): an ``unknown`` compartment is never assigned and no customer
code, token or return opens it. It stays so until central replays its
record with ``lockers.restore`` (parcels and returns in compartments, with
their code hashes or codes) or staff look inside and clear it on site
(``locker.clear_unknown``). Both are audited; the hub alert
``lockers:unknown`` says how many compartments wait.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import msgspec
from msgspec import Meta

from hubagent.commands import CommandArgs, CommandContext
from hubagent.errors import CommandError
from hubagent.lockers import repo
from hubagent.lockers.commands import CodeSpec, Id, Name, Size
from hubagent.lockers.state import State
from hubagent.store.store import Tx

if TYPE_CHECKING:
    from hubagent.app import App
    from hubagent.lockers.service import LockerService

log = logging.getLogger(__name__)

ALERT = "lockers:unknown"


MARKER = "lockers.db-id"
"""State-dir file naming the database that last knew the compartments' contents."""


def database_lost(store: Any) -> bool:
    """Whether this database replaces one that knew the lockers.

    Evidence: the marker names another database id, or a quarantined
    database file lies beside this one. A first start has neither.
    """
    path: Path = store.path
    marker = path.parent / MARKER
    try:
        known = marker.read_text("ascii").strip()
    except (OSError, UnicodeDecodeError):
        known = ""
    if known and known != store.meta("db_id"):
        return True
    return any(path.parent.glob(f"{path.name}.corrupt-*"))


def remember_database(store: Any) -> None:
    """Write the marker (once per database: a small write, not one per start)."""
    marker = store.path.parent / MARKER
    db_id = store.meta("db_id") or ""
    try:
        if marker.exists() and marker.read_text("ascii").strip() == db_id:
            return
        tmp = marker.with_suffix(".tmp")
        tmp.write_text(db_id + "\n", "ascii")
        os.replace(tmp, marker)
    except OSError:
        log.warning("cannot write %s; a lost database would not be recognised", marker, exc_info=True)


def sync_compartments(svc: "LockerService", tx: Tx, layout: dict[str, dict[str, str]]) -> list[tuple[str, str]]:
    """Create missing compartment rows; those whose contents cannot be known become ``unknown``.

    A new row is ``unknown`` when its occupancy sensor reads occupied, or
    when this database replaces a lost one (:func:`database_lost`) and the
    compartment is not known empty. Known empty means the occupancy sensor
    reads empty and the door reads closed; a compartment without an
    occupancy sensor, or a bank that cannot be read, is never assumed empty.
    Returns the compartments marked unknown.
    """
    before = {(r["bank"], r["compartment"]) for r in repo.compartments(tx, layout)}
    repo.sync_compartments(tx, layout)
    lost = database_lost(svc.store)
    marked = []
    for bank, comps in layout.items():
        for comp in comps:
            if (bank, comp) in before:
                continue
            occupied, door = svc.occupied(bank, comp), svc.door_open(bank, comp)
            known_empty = occupied is False and door is False
            if known_empty or not (lost or occupied):
                continue
            repo.update_compartment(tx, bank, comp, state=State.UNKNOWN.value)
            sensors = {"occupied": occupied, "door_open": door}
            repo.audit(tx, "contents_unknown", bank=bank, compartment=comp, occupied=occupied, door_open=door)
            tx.emit("locker.unknown", {"bank": bank, "compartment": comp, **sensors})
            marked.append((bank, comp))
    if marked:
        log.warning("%d compartment(s) have unknown contents (new database): restore them from central "
                    "(lockers.restore) or clear them on site (locker.clear_unknown)", len(marked))
    return marked


def refresh_alert(app: "App", db: Any, banks: Any) -> None:
    """Raise or clear the ``lockers:unknown`` alert from the compartments' states."""
    unknown = sorted(f"{r['bank']}/{r['compartment']}" for r in repo.compartments(db, banks)
                     if r["state"] == State.UNKNOWN.value)
    app.set_alert(ALERT, f"contents unknown: {', '.join(unknown)} (lockers.restore or locker.clear_unknown)"
                  if unknown else None)


def snapshot(db: Any, banks: Any) -> dict[str, Any]:
    """The lockers' part of ``state.snapshot``: each compartment's state and what is in it.

    Never codes or their hashes: central holds them already (it sent them,
    or got a generated code in ``parcel.stored``), and a snapshot is read
    by more tools than the ones that need them. ``lockers.restore`` takes
    the same shape plus the codes.
    """
    parcels = {r["id"]: r for r in repo.rows(db, "SELECT id, size, state, expires_at FROM locker_parcels "
                                                 "WHERE bank IS NOT NULL AND state IN ('assigned', 'stored', 'expired')")}
    returns = {r["id"]: r for r in repo.rows(db, "SELECT id, size, state FROM locker_returns "
                                                 "WHERE state IN ('dropping', 'dropped')")}
    out = []
    for r in sorted(repo.compartments(db, banks), key=lambda r: (r["bank"], r["compartment"])):
        entry: dict[str, Any] = {"bank": r["bank"], "compartment": r["compartment"], "size": r["size"],
                                 "state": r["state"], "fault": r["fault"]}
        if r["item_kind"] == "parcel" and r["item_id"] in parcels:
            p = parcels[r["item_id"]]
            entry["parcel"] = {"id": p["id"], "size": p["size"], "state": p["state"], "expires_at": p["expires_at"]}
        elif r["item_kind"] == "return" and r["item_id"] in returns:
            ret = returns[r["item_id"]]
            entry["return"] = {"id": ret["id"], "size": ret["size"], "state": ret["state"]}
        out.append(entry)
    return {"compartments": out}


# -- lockers.restore ---------------------------------------------------------------

class RestoredItem(CommandArgs, frozen=True):
    """One compartment as central recorded it."""

    bank: Name
    compartment: Name
    contents: Literal["empty", "parcel", "return"]
    parcel: Id | None = None
    # "return" is a Python keyword, hence the rename.
    return_id: Id | None = msgspec.field(name="return", default=None)
    size: Size | None = None
    # a parcel: "stored" (waiting for its customer) or "expired" (staff take it out)
    state: Literal["stored", "expired"] = "stored"
    expires_at: str | None = None
    pickup: CodeSpec | None = None


class LockersRestore(CommandArgs, frozen=True):
    """``lockers.restore``: central replays its record of unknown compartments."""

    compartments: Annotated[list[RestoredItem], Meta(min_length=1, max_length=1000)]


class ClearUnknown(CommandArgs, frozen=True):
    """``locker.clear_unknown``: someone looked inside and found the compartment empty."""

    bank: Name
    compartment: Name
    staff: Id | None = None
    note: Annotated[str, Meta(max_length=200)] = ""


class RestoreCommands:
    """Handlers of ``lockers.restore`` and ``locker.clear_unknown``."""

    def __init__(self, svc: "LockerService") -> None:
        """Use ``svc`` for compartments and code hashing."""
        self.svc = svc

    def register(self, app: "App") -> None:
        """Add both commands to the dispatcher."""
        app.commands.register("lockers.restore", self.restore, LockersRestore)
        app.commands.register("locker.clear_unknown", self.clear_unknown, ClearUnknown)

    def restore(self, ctx: CommandContext, args: LockersRestore) -> dict[str, Any]:
        """Restore every listed ``unknown`` compartment; others are kept as they are and listed."""
        restored, kept = [], []
        for index, item in enumerate(args.compartments):
            row = self._row(ctx.tx, item.bank, item.compartment, f"compartments[{index}]")
            if row["state"] != State.UNKNOWN.value:
                kept.append({"bank": item.bank, "compartment": item.compartment, "state": row["state"]})
                continue
            state = self._restore_one(ctx, item, f"compartments[{index}]")
            restored.append({"bank": item.bank, "compartment": item.compartment, "state": state})
        result = {"restored": restored, "kept": kept}
        ctx.tx.emit("locker.restored", {**result, "command": ctx.id})
        ctx.tx.after_commit(lambda: refresh_alert(self.svc.app, self.svc.store.conn, self.svc.banks))
        return result

    def _row(self, tx: Tx, bank: str, comp: str, where: str) -> dict[str, Any]:
        row = repo.compartment(tx, bank, comp) if bank in self.svc.banks else None
        if row is None:
            raise CommandError("unknown_compartment", f"{where}: bank {bank} has no compartment {comp!r}")
        return row

    def _restore_one(self, ctx: CommandContext, item: RestoredItem, where: str) -> str:
        tx, bank, comp = ctx.tx, item.bank, item.compartment
        fields: dict[str, str | None]
        if item.contents == "empty":
            target, fields = State.FREE, {"item_kind": None, "item_id": None}
        elif item.contents == "parcel":
            target = self._parcel(ctx, item, where)
            fields = {"item_kind": "parcel", "item_id": item.parcel}
        else:
            target = self._return(ctx, item, where)
            fields = {"item_kind": "return", "item_id": item.return_id}
        repo.update_compartment(tx, bank, comp, state=target.value, **fields)
        repo.audit(tx, "restored", bank=bank, compartment=comp, ref=fields["item_id"], source=ctx.source,
                   command=ctx.id, to=target.value)
        return target.value

    def _parcel(self, ctx: CommandContext, item: RestoredItem, where: str) -> State:
        tx = ctx.tx
        if item.parcel is None or item.size is None:
            raise CommandError("bad_args", f"{where}: a parcel needs parcel and size")
        if repo.parcel(tx, item.parcel) is not None:
            raise CommandError("duplicate_parcel", f"{where}: parcel {item.parcel} is already known")
        expires_at = repo.format_time(repo.parse_time(item.expires_at, f"{where}.expires_at")) \
            if item.expires_at else None
        now = repo.format_time(self.svc.wall())
        tx.execute("INSERT INTO locker_parcels(id, size, state, bank, compartment, expires_at, generate, "
                   "assigned_by, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, 0, ?, ?, ?)",
                   (item.parcel, item.size, item.state, item.bank, item.compartment, expires_at, ctx.id, now, now))
        if item.state == "stored":
            if item.pickup is None:
                raise CommandError("bad_args", f"{where}: a stored parcel needs pickup (code or code_hash)")
            code_hash = self.svc.new_code_hash(tx, "pickup", item.pickup.code, item.pickup.code_hash)
            if code_hash is None:
                raise CommandError("bad_args", f"{where}.pickup needs code or code_hash")
            repo.add_code(tx, code_hash, "pickup", item.parcel, expires_at)
            return State.OCCUPIED
        return State.EXPIRED

    def _return(self, ctx: CommandContext, item: RestoredItem, where: str) -> State:
        tx = ctx.tx
        if item.return_id is None or item.size is None:
            raise CommandError("bad_args", f"{where}: a return needs return and size")
        if repo.return_row(tx, item.return_id) is not None:
            raise CommandError("duplicate_return", f"{where}: return {item.return_id} is already known")
        now = repo.format_time(self.svc.wall())
        tx.execute("INSERT INTO locker_returns(id, size, state, bank, compartment, created_at, updated_at) "
                   "VALUES (?, ?, 'dropped', ?, ?, ?, ?)",
                   (item.return_id, item.size, item.bank, item.compartment, now, now))
        return State.RETURNED

    def clear_unknown(self, ctx: CommandContext, args: ClearUnknown) -> dict[str, Any]:
        """Staff looked inside an ``unknown`` compartment and found it empty: it is free again."""
        row = self._row(ctx.tx, args.bank, args.compartment, "compartment")
        if row["state"] != State.UNKNOWN.value:
            raise CommandError("wrong_state", f"{args.bank}/{args.compartment} is {row['state']}, not unknown")
        repo.update_compartment(ctx.tx, args.bank, args.compartment, state=State.FREE.value,
                                item_kind=None, item_id=None)
        repo.audit(ctx.tx, "unknown_cleared", bank=args.bank, compartment=args.compartment, ref=args.staff,
                   source=ctx.source, command=ctx.id, staff=args.staff, note=args.note)
        result = {"bank": args.bank, "compartment": args.compartment, "state": State.FREE.value,
                  "staff": args.staff}
        ctx.tx.emit("locker.unknown_cleared", {**result, "command": ctx.id})
        ctx.tx.after_commit(lambda: refresh_alert(self.svc.app, self.svc.store.conn, self.svc.banks))
        return result
