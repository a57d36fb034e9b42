"""Expiry of parcels, returns and staff codes by their stored ``expires_at``.

Expiry compares RFC 3339 times from central with the wall clock, which a
Raspberry Pi without a real-time clock gets wrong until NTP sets it (it may
boot in 1970, or jump). So nothing expires while the clock reads a year
before ``[locker_policy] min_sane_year``: codes then keep working (a
customer is not turned away) and expiry catches up once the clock is set.
In-process timers never use the wall clock (they run on the core clock's
monotonic time).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from hubagent.lockers import repo
from hubagent.lockers import state as sm
from hubagent.lockers.state import State
from hubagent.store.store import Tx

if TYPE_CHECKING:
    from hubagent.lockers.service import LockerService


def expire_due(svc: "LockerService") -> int:
    """Expire parcels, returns and codes past their ``expires_at``; how many items expired.

    Skipped while the wall clock is not sane (before ``min_sane_year``):
    a hub that booted without RTC must not expire everything.
    """
    if not svc.wall_clock_sane():
        return 0
    now = svc.wall()
    count = 0
    with svc.store.write() as tx:
        _late_deadlines(svc, tx, now)
        for p in repo.rows(tx, "SELECT * FROM locker_parcels WHERE state IN ('assigned', 'stored') "
                               "AND expires_at IS NOT NULL"):
            if repo.is_past(p["expires_at"], now) and _expire_parcel(tx, p):
                count += 1
        for r in repo.rows(tx, "SELECT * FROM locker_returns WHERE state='expected' AND expires_at IS NOT NULL"):
            if repo.is_past(r["expires_at"], now):
                repo.set_item_state(tx, "return", r["id"], "expired")
                repo.spend_codes_of(tx, "return", r["id"], "expired")
                repo.audit(tx, "expired", ref=r["id"], item_kind="return")
                tx.emit("return.expired", {"return": r["id"], "expires_at": r["expires_at"]})
                count += 1
        for c in repo.rows(tx, "SELECT id, expires_at FROM locker_codes WHERE purpose='staff' "
                               "AND spent_at IS NULL AND expires_at IS NOT NULL"):
            if repo.is_past(c["expires_at"], now):
                repo.spend_code(tx, c["id"], "expired")
    return count


def _expire_parcel(tx: Tx, p: dict[str, Any]) -> bool:
    row = repo.compartment(tx, p["bank"], p["compartment"]) if p["bank"] else None
    if row is not None and sm.is_releasing(State(row["state"])):
        return False  # someone is at the door right now: let that finish first
    stage = p["state"]
    if row is not None and row["item_id"] == p["id"]:
        target = sm.expire(State(row["state"]))
        fields: dict[str, Any] = {"state": target.value}
        if target is State.FREE:
            fields.update(item_kind=None, item_id=None)
        repo.update_compartment(tx, p["bank"], p["compartment"], **fields)
    repo.set_item_state(tx, "parcel", p["id"], "expired")
    repo.spend_codes_of(tx, "pickup", p["id"], "expired")
    repo.audit(tx, "expired", bank=p["bank"], compartment=p["compartment"], ref=p["id"],
               item_kind="parcel", stage=stage)
    tx.emit("parcel.expired", {"parcel": p["id"], "bank": p["bank"], "compartment": p["compartment"],
                               "stage": stage, "expires_at": p["expires_at"]})
    return True


def _late_deadlines(svc: "LockerService", tx: Tx, now: datetime) -> None:
    """Give a deadline to what was stored or expected while the clock was not sane."""
    for table, kind, state, seconds in (
            ("locker_parcels", "pickup", "stored", svc.policy.pickup_expiry_s),
            ("locker_returns", "return", "expected", svc.policy.return_expiry_s)):
        deadline = repo.format_time(now + timedelta(seconds=seconds))
        for row in repo.rows(tx, f"SELECT id FROM {table} WHERE state=? AND expires_at IS NULL", (state,)):
            tx.execute(f"UPDATE {table} SET expires_at=?, deadline_by_hub=1 WHERE id=?", (deadline, row["id"]))
            tx.execute("UPDATE locker_codes SET expires_at=? WHERE purpose=? AND ref=? AND spent_at IS NULL",
                       (deadline, kind, row["id"]))
            repo.audit(tx, "deadline_set", ref=row["id"], item_kind=kind, expires_at=deadline)
