"""The lockers' side of clock trust: the alert, the persisted floor, ``clock.confirm``, and
undoing expiry decisions that a wrong clock took.

See :mod:`hubagent.lockers.trust` for the rule. When the clock is found to
have been wrong (central's time disagrees, or a suspect clock is corrected),
decisions taken on it are undone where the world still allows it:

* a parcel expired although its ``expires_at`` is still ahead on the
  corrected clock, and still in its compartment, goes back to ``stored``
  (the compartment to ``occupied``) and its pickup code is live again;
  likewise an expected return's code;
* a deadline the hub computed itself (no ``expires_at`` from central) that
  lies further ahead than its policy allows on the corrected clock is
  computed again.

Each undo is audited and sent as ``parcel.unexpired`` / ``return.unexpired``.
"""

from __future__ import annotations

import logging
import sqlite3
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from hubagent.commands import CommandArgs, CommandContext
from hubagent.lockers import repo
from hubagent.lockers.state import State
from hubagent.lockers.trust import FLOOR_KEY, ClockTrust, Trust, TrustLimits
from hubagent.store.store import Tx

if TYPE_CHECKING:
    from hubagent.app import App
    from hubagent.lockers.service import LockerService

log = logging.getLogger(__name__)

ALERT = "clock"


def build_trust(svc: "LockerService") -> ClockTrust:
    """The service's :class:`ClockTrust`, with the floor the database remembers."""
    p = svc.policy
    floor_text = svc.store.meta(FLOOR_KEY)
    floor = repo.parse_time(floor_text) if floor_text else None
    limits = TrustLimits(p.min_sane_year, p.clock_max_offline_s, p.clock_jump_tolerance_s)
    # Late-bound: the service's wall clock is looked up at each use.
    return ClockTrust(lambda: svc.wall(), svc.clock.monotonic, limits, floor=floor,
                      ntp_synced=lambda: svc.ntp_synced())


class Retimer:
    """Watches the trust state on each expiry tick and reacts to its changes (core thread)."""

    def __init__(self, svc: "LockerService", trust: ClockTrust) -> None:
        """Remember the service; raises the alert at once when the clock is not trusted."""
        self.svc, self.trust = svc, trust
        self._last = trust.state
        self._alert()
        self.trust.check()  # a trusted start raises the floor to now ...
        self._persist_floor()  # ... and keeps it (one small write per start)

    def tick(self) -> None:
        """Re-judge the clock; undo wrong decisions on a correction; persist the floor now and then."""
        before, state = self._last, self.trust.check()
        self._last = state
        if state is not before:
            self._alert()
            if state is Trust.TRUSTED:
                self.correct(self.svc.wall(), why=f"clock trusted again (was {before.value})")
        self._persist_floor()

    def _persist_floor(self) -> None:
        due = self.trust.floor_due()
        if due is not None:
            with self.svc.store.write() as tx:
                _write_floor(tx, due)

    def _alert(self) -> None:
        state = self.trust.state
        self.svc.app.set_alert(ALERT, None if state is Trust.TRUSTED else
                               f"wall clock not trusted ({state.value}): no expiry decisions until "
                               "NTP or central (clock.confirm) confirms it")

    def correct(self, now: datetime, why: str) -> int:
        """Undo expiry decisions that ``now`` (the corrected time) shows were wrong; how many."""
        with self.svc.store.write() as tx:
            count = undo_wrong_expiries(tx, now, why) + recompute_hub_deadlines(self.svc, tx, now)
        if count:
            log.warning("clock corrected (%s): %d expiry decision(s) undone", why, count)
        return count


def _write_floor(tx: Tx, value: str) -> None:
    tx.execute("INSERT INTO meta(key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value=excluded.value",
               (FLOOR_KEY, value))


def undo_wrong_expiries(tx: Tx, now: datetime, why: str) -> int:
    """Parcels and returns expired before their ``expires_at`` (on the corrected clock) come back."""
    count = 0
    for p in repo.rows(tx, "SELECT * FROM locker_parcels WHERE state='expired' AND expires_at IS NOT NULL"):
        row = repo.compartment(tx, p["bank"], p["compartment"]) if p["bank"] else None
        if repo.is_past(p["expires_at"], now) or row is None or row["item_id"] != p["id"] \
                or row["state"] != State.EXPIRED.value:
            continue  # really past, or taken out / reassigned meanwhile: nothing to undo
        repo.update_compartment(tx, p["bank"], p["compartment"], state=State.OCCUPIED.value)
        repo.set_item_state(tx, "parcel", p["id"], "stored")
        revived = _revive_codes(tx, "pickup", p["id"])
        repo.audit(tx, "unexpired", bank=p["bank"], compartment=p["compartment"], ref=p["id"],
                   item_kind="parcel", why=why, codes=revived)
        tx.emit("parcel.unexpired", {"parcel": p["id"], "bank": p["bank"], "compartment": p["compartment"],
                                     "expires_at": p["expires_at"], "reason": "clock_corrected"})
        count += 1
    for r in repo.rows(tx, "SELECT * FROM locker_returns WHERE state='expired' AND expires_at IS NOT NULL"):
        if repo.is_past(r["expires_at"], now):
            continue
        repo.set_item_state(tx, "return", r["id"], "expected")
        revived = _revive_codes(tx, "return", r["id"])
        repo.audit(tx, "unexpired", ref=r["id"], item_kind="return", why=why, codes=revived)
        tx.emit("return.unexpired", {"return": r["id"], "expires_at": r["expires_at"], "reason": "clock_corrected"})
        count += 1
    return count


def _revive_codes(tx: Tx, purpose: str, ref: str) -> int:
    """Make codes voided by expiry live again; one whose digits went live meanwhile stays void."""
    revived = 0
    for c in repo.rows(tx, "SELECT id FROM locker_codes WHERE purpose=? AND ref=? AND spent_why='expired'",
                       (purpose, ref)):
        try:
            tx.execute("UPDATE locker_codes SET spent_at=NULL, spent_why=NULL WHERE id=?", (c["id"],))
            revived += 1
        except sqlite3.IntegrityError:
            continue
    return revived


def recompute_hub_deadlines(svc: "LockerService", tx: Tx, now: datetime) -> int:
    """Deadlines the hub computed on a clock that was ahead are computed again from ``now``."""
    count = 0
    for table, kind, state, seconds in (
            ("locker_parcels", "pickup", "stored", svc.policy.pickup_expiry_s),
            ("locker_returns", "return", "expected", svc.policy.return_expiry_s)):
        latest = now + timedelta(seconds=seconds)
        deadline = repo.format_time(latest)
        for row in repo.rows(tx, f"SELECT id, expires_at FROM {table} WHERE state=? AND deadline_by_hub=1 "
                                 "AND expires_at IS NOT NULL", (state,)):
            if not repo.is_past(row["expires_at"], latest + timedelta(seconds=svc.policy.clock_jump_tolerance_s)):
                tx.execute(f"UPDATE {table} SET expires_at=? WHERE id=?", (deadline, row["id"]))
                tx.execute("UPDATE locker_codes SET expires_at=? WHERE purpose=? AND ref=? AND spent_at IS NULL",
                           (deadline, kind, row["id"]))
                repo.audit(tx, "deadline_set", ref=row["id"], item_kind=kind, expires_at=deadline,
                           was=row["expires_at"], why="clock_corrected")
                count += 1
    return count


class TrustView:
    """The lockers' clock trust as other features see it (``Interfaces.clock_trust``)."""

    def __init__(self, svc: "LockerService") -> None:
        """Ask ``svc`` (its trust exists once it started; before, only the year is judged)."""
        self.svc = svc

    def trusted(self) -> bool:
        """Whether the wall clock may be used for decisions now."""
        return self.svc.wall_clock_sane()


class ClockConfirm(CommandArgs, frozen=True):
    """``clock.confirm``: central's current time, so the hub can trust (or distrust) its clock."""

    now: str


class ClockCommands:
    """Handler of ``clock.confirm``."""

    def __init__(self, svc: "LockerService", retimer: Retimer) -> None:
        """Use the service's trust and retimer."""
        self.svc, self.retimer = svc, retimer

    def register(self, app: "App") -> None:
        """Add ``clock.confirm`` to the dispatcher."""
        app.commands.register("clock.confirm", self.confirm, ClockConfirm)

    def confirm(self, ctx: CommandContext, args: ClockConfirm) -> dict[str, Any]:
        """Compare central's time with the wall clock; undo decisions a wrong clock took."""
        central_now = repo.parse_time(args.now, "now")
        trust = self.retimer.trust
        was_trusted = trust.state is Trust.TRUSTED
        offset = trust.confirm(central_now, by=ctx.id)
        undone = 0
        if abs(offset) > self.svc.policy.clock_jump_tolerance_s:
            # Decisions may have been taken on this clock: undo what central's time shows was wrong.
            undone = undo_wrong_expiries(ctx.tx, central_now, "central's time differs") \
                + recompute_hub_deadlines(self.svc, ctx.tx, central_now)
        elif not was_trusted:
            undone = undo_wrong_expiries(ctx.tx, central_now, "confirmed by central") \
                + recompute_hub_deadlines(self.svc, ctx.tx, central_now)
        if trust.floor is not None:
            _write_floor(ctx.tx, repo.format_time(trust.floor))
        repo.audit(ctx.tx, "clock_confirmed", source=ctx.source, ref=ctx.id, offset_s=round(offset, 3),
                   trust=trust.state.value, undone=undone)
        self.retimer._last = trust.state
        ctx.tx.after_commit(self.retimer._alert)
        if trust.state is not Trust.TRUSTED and abs(offset) > 0:
            log.warning("central's time differs from the wall clock by %+.0f s: the clock stays untrusted", offset)
        return {"offset_s": round(offset, 3), "trust": trust.state.value, "undone": undone}
