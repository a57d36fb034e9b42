"""Loading parcels: by any barcode on them, one after another, or refused.

A courier (or staff member) scans a parcel's ``HA:PCL:<id>`` label, its
carrier tracking number or its SSCC (:mod:`hubagent.lockers.barcodes`).
Each scan opens that parcel's own compartment: the one reserved at
``parcel.assign``, or one chosen now when the parcel has none yet
(``"allocate": "on_load"``) or its reserved one can no longer be used
(out of service, faulted). When no free compartment of the parcel's size
and temperature class is left, the load is refused: an error beep and a
``parcel.load_refused`` event (reason, parcel, size) so central can
re-route the parcel. With ``[locker_policy] load_requires_sign_in`` a load
opens nothing until a courier or staff member has signed in at that input
(:mod:`hubagent.lockers.signins`).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from hubagent.errors import CommandError
from hubagent.interfaces import LabelQueue
from hubagent.lockers import barcodes, repo
from hubagent.lockers import state as sm
from hubagent.lockers.service_state import is_out
from hubagent.lockers.signins import Role, SignInLookup
from hubagent.lockers.state import Purpose, State
from hubagent.ports import FeedbackPattern
from hubagent.store.store import Tx

if TYPE_CHECKING:
    from hubagent.lockers.service import LockerService

log = logging.getLogger(__name__)

_LIVE = ("p.state IN ('assigned', 'stored') OR (p.state = 'expired' AND EXISTS ("
         "SELECT 1 FROM locker_compartments c WHERE c.item_kind = 'parcel' AND c.item_id = p.id))")
"""A parcel's barcodes identify it while it is due at the hub or still in a compartment
(an expired parcel that was never loaded, or was taken out, frees its barcodes)."""


# -- parcel.assign extras ------------------------------------------------------

def record_barcodes(tx: Tx, parcel: str, found: list[barcodes.ParcelBarcode]) -> None:
    """Store a new parcel's barcodes; CommandError("duplicate_barcode") if a live parcel has one."""
    for b in found:
        other = parcel_by_barcode(tx, b.code)
        if other is not None:
            raise CommandError("duplicate_barcode", f"barcode {b.code} already belongs to parcel {other['id']}")
        tx.execute("INSERT INTO locker_parcel_barcodes(code, kind, parcel) VALUES (?, ?, ?)",
                   (b.code, b.kind.value, parcel))


def parcel_by_barcode(db: repo.Reader, code: str) -> dict[str, Any] | None:
    """The live parcel carrying barcode ``code`` (normalised), if any."""
    return repo.one(db, "SELECT p.* FROM locker_parcel_barcodes b JOIN locker_parcels p ON p.id = b.parcel "
                        f"WHERE b.code=? AND ({_LIVE}) ORDER BY p.created_at DESC", (code,))


def barcodes_of(db: repo.Reader, parcel: str) -> list[str]:
    """A parcel's stored barcodes."""
    return [r["code"] for r in repo.rows(db, "SELECT code FROM locker_parcel_barcodes WHERE parcel=? ORDER BY code",
                                         (parcel,))]


def queue_label(labels: LabelQueue | None, tx: Tx, parcel: str, compartment: str | None, hub: str) -> str:
    """Queue the parcel's ``HA:PCL`` label (template ``parcel``) in ``tx``; the job id.

    CommandError("no_printer") when the hub has no printing feature: central
    asked for a label, so the assign is refused rather than silently unlabelled.
    """
    if labels is None:
        raise CommandError("no_printer", "a parcel label was asked for but this hub has no printer configured")
    return labels.enqueue(tx, "parcel", {"parcel_id": parcel, "compartment": compartment or "-", "hub": hub},
                          job_id=f"parcel-{parcel}")


# -- load scans -------------------------------------------------------------------

class Loader:
    """Opens the right compartment for each parcel scanned at a locker input."""

    def __init__(self, svc: "LockerService", who: SignInLookup, touch: Any) -> None:
        """Use ``svc`` for allocation and releases, ``who`` for sign-ins; ``touch(station)`` after a load."""
        self.svc = svc
        self.who = who
        self.touch = touch

    def load(self, parcel: dict[str, Any], source: str) -> FeedbackPattern:
        """Release the compartment for one assigned parcel scanned at ``source``."""
        person = self.who.signed_in(source)
        if person is None and self.svc.policy.load_requires_sign_in:
            self.refuse(parcel, "not_signed_in", source, "sign in with a courier badge or code first")
            return FeedbackPattern.ERROR
        courier = person.person if person is not None and person.role is Role.COURIER else None
        staff = person.person if person is not None and person.role is Role.STAFF else None
        try:
            with self.svc.store.write() as tx:
                bank, comp = self._compartment_for(tx, parcel, source)
                self.svc.release(tx, bank, comp, Purpose.LOAD, source=source, reason="load",
                                 staff=staff, courier=courier)
        except CommandError as e:
            self.refuse(parcel, e.code, source, e.message, courier=courier)
            return FeedbackPattern.ERROR
        if courier is not None:
            self.touch(source)
        return FeedbackPattern.OK

    def _compartment_for(self, tx: Tx, parcel: dict[str, Any], source: str) -> tuple[str, str]:
        """The parcel's reserved compartment if usable, else a new one (moved in ``tx``)."""
        pid = parcel["id"]
        if parcel["bank"]:
            row = repo.compartment(tx, parcel["bank"], parcel["compartment"]) or {}
            mine = row.get("item_id") == pid and row.get("state") == State.RESERVED.value
            if mine and not row["fault"] and not is_out(tx, parcel["bank"], parcel["compartment"]):
                return parcel["bank"], parcel["compartment"]
            if mine:
                repo.update_compartment(tx, parcel["bank"], parcel["compartment"], state=State.FREE.value,
                                        item_kind=None, item_id=None)
        bank, comp = self.svc.allocate(tx, parcel["size"], temperature=parcel["temperature"])
        chosen = repo.compartment(tx, bank, comp)
        assert chosen is not None
        repo.update_compartment(tx, bank, comp, state=sm.assign(State(chosen["state"])).value,
                                item_kind="parcel", item_id=pid)
        tx.execute("UPDATE locker_parcels SET bank=?, compartment=? WHERE id=?", (bank, comp, pid))
        repo.audit(tx, "assigned", bank=bank, compartment=comp, ref=pid, source=source, at="load",
                   moved_from=parcel["compartment"], size=parcel["size"])
        tx.emit("parcel.assigned", {"parcel": pid, "bank": bank, "compartment": comp,
                                    "size": self.svc.layouts[bank][comp].size,
                                    "expires_at": parcel["expires_at"], "source": source})
        return bank, comp

    def refuse(self, parcel: dict[str, Any], reason: str, source: str, message: str,
               courier: str | None = None) -> None:
        """Audit and announce a refused load (``parcel.load_refused``)."""
        log.info("load of %s on %s refused: %s", parcel["id"], source, message)
        data: dict[str, Any] = {"parcel": parcel["id"], "reason": reason, "size": parcel["size"],
                                "temperature": parcel["temperature"], "source": source}
        if courier is not None:
            data["courier"] = courier
        with self.svc.store.write() as tx:
            repo.audit(tx, "load_refused", bank=parcel["bank"], compartment=parcel["compartment"],
                       ref=parcel["id"], source=source, reason=reason)
            tx.emit("parcel.load_refused", data)
