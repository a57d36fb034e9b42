"""Codes and scans at the locker: who may open what.

Keypad codes may be pickup, return or staff codes; scanned ``HA:PICKUP:``
and ``HA:RET:`` codes one purpose each. A code is normalised, then its
keyed hash for each purpose is compared in constant time
(``hmac.compare_digest``) with every live code of that purpose - the loop
never stops early, so timing does not tell how close a guess was. Wrong
codes count against the input device's identity, its role and name
(:func:`~hubagent.lockers.lockout.input_key`: a keypad and a scanner both
named ``front`` are two devices); a locked out device is refused without
checking, while every other device goes on working. Every attempt is
audited and sent as an event naming the source, never with the code.

Staff are checked against the staff registry (``staff.set``) at the moment
they act: a keypad staff code is looked up there, and a scanner's signed-in
staff member must still be registered. With ``[staff] require_pin`` a badge
scanned on scanner ``X`` waits for the PIN on keypad ``X``: the next code
typed there is checked as that PIN (it counts against the keypad like a
wrong code when it is not), never as a pickup code.
"""

from __future__ import annotations

import enum
import hmac
import logging
from typing import TYPE_CHECKING, Any

import msgspec

from hubagent.errors import CommandError, InputError
from hubagent.events import CodeEntered
from hubagent.interfaces import BadgePins, StaffDirectory, StaffRecords
from hubagent.lockers import barcodes, codes, loading, repo
from hubagent.lockers.couriers import CourierDesk
from hubagent.lockers.loading import Loader
from hubagent.lockers.lockout import input_key
from hubagent.lockers.signins import WhoIsSignedIn
from hubagent.lockers.feedback import KeypadFeedback
from hubagent.lockers.state import Purpose, State
from hubagent.ports import FeedbackPattern

if TYPE_CHECKING:
    from hubagent.lockers.service import LockerService

log = logging.getLogger(__name__)

KEYPAD_PURPOSES = ("pickup", "return", "staff")
"""What a code typed on a keypad may be, in the order they are tried."""


class Outcome(enum.Enum):
    """What one code attempt led to."""

    OPENED = "opened"          # a release was committed (the pulse follows)
    REJECTED = "rejected"      # wrong, malformed or expired code
    LOCKED_OUT = "locked_out"  # the device is locked out; the code was not checked
    NOTHING = "nothing"        # a valid code with nothing to open right now


class Attempt(msgspec.Struct, frozen=True):
    """One code attempt's outcome, with what a screen can tell the person.

    ``reason`` is the purpose that opened (``pickup``, ``return``, ``staff``),
    or why nothing opened (``wrong``, ``expired``, ``malformed``,
    ``locked_out``, or the refusal code such as ``not_stored`` or
    ``no_free_compartment``). ``retry_in_s`` is the lock-out wait, if any.
    """

    outcome: Outcome
    reason: str
    bank: str | None = None
    compartment: str | None = None
    retry_in_s: float | None = None


class CodeDesk:
    """Checks codes and scans and asks the service for the matching release."""

    def __init__(self, svc: "LockerService", staff: StaffDirectory | None = None, *,
                 records: StaffRecords | None = None, pins: BadgePins | None = None) -> None:
        """Use ``svc`` for releases, its limiter, secret and clock; ``staff`` for who is signed in.

        ``records`` is the staff registry every staff action is checked
        against (None: nobody is staff); ``pins`` the badges waiting for a PIN.
        """
        self.svc = svc
        self.staff = staff
        self.records = records
        self.pins = pins
        self.app = svc.app
        self.store = svc.store
        self._failed_sources: set[str] = set()
        self.feedback = KeypadFeedback(svc.app)
        self.couriers = CourierDesk(svc, self)
        self.who = WhoIsSignedIn(self.couriers.sessions, self._staff_on)
        """Who is signed in at an input: couriers, then staff."""
        self.loader = Loader(svc, self.who, self.couriers.sessions.touch)

    # -- input sources ------------------------------------------------------------
    def on_code(self, ev: CodeEntered) -> None:
        """A code typed on a keypad (core thread): a PIN awaited there, a courier's code, or a locker code."""
        if self._pin_awaited(ev.source) is not None:
            self._pin(ev.source, ev.code)
            return
        if self.couriers.sign_in_code(ev.source, ev.code):
            log.info("keypad %s: courier signed in", ev.source)
            return
        attempt = self.attempt(ev.source, ev.code, KEYPAD_PURPOSES)
        log.info("keypad %s: code %s (%s)", ev.source, attempt.outcome.value,
                 attempt.reason)  # the code itself is never logged
        self.feedback.play(ev.source, attempt)

    def _pin_awaited(self, keypad: str) -> str | None:
        return self.pins.pin_awaited(keypad) if self.pins is not None else None

    def _pin(self, keypad: str, raw: str) -> None:
        """Check a PIN typed on ``keypad`` for the badge scanned on the scanner of that name."""
        key = input_key("keypad", keypad)
        now = self.svc.clock.monotonic()
        staff = self._pin_awaited(keypad)
        registry, pins = self.records, self.pins
        if staff is None or registry is None or pins is None:
            return
        if self._locked_out(keypad, key, now):
            pins.pin_result(keypad, None, "locked_out")
            return
        if not registry.pin_matches(self.store.conn, staff, raw):
            self._failure(keypad, key, now, "wrong_pin")
            pins.pin_result(keypad, None, "wrong_pin")
            return
        self.svc.limiter.success(key, now)
        with self.store.write() as tx:
            repo.audit(tx, "staff_sign_in", ref=staff, source=keypad, by="badge_and_pin")
        pins.pin_result(keypad, staff, "")

    def scan_parcel(self, scan: Any, scanner: str) -> FeedbackPattern:
        """``HA:PCL:<id>``: load a reserved parcel, or staff retrieve a stored one."""
        return self.parcel_scanned(scan.value, scanner)

    def parcel_scanned(self, parcel_id: str, scanner: str) -> FeedbackPattern:
        """A parcel identified by its label or a barcode on it: load it, or staff retrieve it."""
        parcel = repo.parcel(self.store.conn, parcel_id)
        if parcel is not None and parcel["state"] == "assigned":
            return self.loader.load(parcel, scanner)  # its own compartment, or one chosen now
        if parcel is None or not parcel["bank"]:
            return FeedbackPattern.ERROR
        try:
            staff = self._staff_on(scanner)
            with self.store.write() as tx:
                allowed = ("expired",) if self.svc.policy.staff_retrieval == "expired" else ("expired", "stored")
                if staff is None or parcel["state"] not in allowed:
                    return FeedbackPattern.ERROR
                self.svc.release(tx, parcel["bank"], parcel["compartment"], Purpose.RETRIEVE,
                                 source=scanner, reason="retrieve", staff=staff)
                return FeedbackPattern.OK
        except CommandError as e:
            log.info("parcel scan on %s refused: %s", scanner, e.message)
            return FeedbackPattern.ERROR

    def scan_barcode(self, data: bytes, symbology: str | None, scanner: str) -> FeedbackPattern | None:
        """A read that is a live parcel's tracking number or SSCC: as its label; None otherwise."""
        key = barcodes.scan_key(data, symbology)
        parcel = loading.parcel_by_barcode(self.store.conn, key) if key else None
        return None if parcel is None else self.parcel_scanned(parcel["id"], scanner)

    def scan_pickup(self, scan: Any, scanner: str) -> FeedbackPattern:
        """``HA:PICKUP:<code>`` shown to the locker camera or a scanner."""
        return _feedback(self.attempt(scanner, scan.value, ("pickup",), role="scanner").outcome)

    def scan_return(self, scan: Any, scanner: str) -> FeedbackPattern:
        """``HA:RET:<code>``: a return label's code."""
        return _feedback(self.attempt(scanner, scan.value, ("return",), role="scanner").outcome)

    def _staff_on(self, scanner: str) -> str | None:
        """The staff member signed in on ``scanner`` if the registry still has them."""
        staff = self.staff.staff_for(scanner) if self.staff is not None else None
        if staff is None or self.records is None:
            return None
        member = self.records.member(self.store.conn, staff)
        return member.id if member is not None else None

    # -- checking -------------------------------------------------------------------
    def submit(self, source: str, raw: str, purposes: tuple[str, ...], *, role: str = "keypad") -> Outcome:
        """Check one attempt from ``source`` and open what it entitles to."""
        return self.attempt(source, raw, purposes, role=role).outcome

    def attempt(self, source: str, raw: str, purposes: tuple[str, ...], *,
                role: str = "keypad") -> "Attempt":
        """Like :meth:`submit`, with what a screen tells the person: door, reason, wait.

        ``role`` is the kind of input device ``source`` is (``keypad``,
        ``scanner``, ``kiosk``, ``web``); with its name it keys the lock-out.
        """
        key = input_key(role, source)
        now = self.svc.clock.monotonic()
        wait = self._locked_out(source, key, now)
        if wait:
            return Attempt(Outcome.LOCKED_OUT, "locked_out", retry_in_s=round(wait, 1))
        self.app.set_alert(f"locker-input:{key}", None)
        found, reason = self._find(raw, purposes)
        if found is None and reason == "expired":
            # Not counted towards a lock-out: only someone who once held the
            # code can type it, and a customer retrying an expired code must
            # not lock a shared keypad for everyone (docs/operations.md).
            self._rejected(source, reason)
            return Attempt(Outcome.REJECTED, reason)
        if found is None:
            self._failure(source, key, now, reason)
            left = self.svc.limiter.check(key, self.svc.clock.monotonic())
            return Attempt(Outcome.REJECTED, reason, retry_in_s=round(left, 1) if left > 0 else None)
        purpose, row = found
        try:
            with self.store.write() as tx:
                opened = self._act(tx, purpose, row, source)
                repo.audit(tx, "code_accepted", bank=opened[0], compartment=opened[1], ref=row["ref"],
                           source=source, purpose=purpose)
            # Only an opening forgives earlier failures: a live code that opens
            # nothing now (a parcel not loaded yet) neither counts nor resets.
            self.svc.limiter.success(key, now)
            return Attempt(Outcome.OPENED, purpose, bank=opened[0], compartment=opened[1])
        except CommandError as e:
            with self.store.write() as tx:
                repo.audit(tx, "code_no_action", ref=row["ref"], source=source, purpose=purpose,
                           why=e.code)
                tx.emit("locker.code_no_action", {"source": source, "purpose": purpose, "reason": e.code})
                if purpose == "return" and e.code == "no_compartment":
                    ret = repo.return_row(tx, row["ref"]) or {}
                    tx.emit("return.refused", {"return": row["ref"], "reason": e.code, "size": ret.get("size"),
                                               "source": source})
            return Attempt(Outcome.NOTHING, e.code)

    def lockout_left(self, role: str, name: str) -> float:
        """Seconds input ``role``/``name`` stays locked out (0 when it may try)."""
        return float(self.svc.limiter.check(input_key(role, name), self.svc.clock.monotonic()))

    def identify_staff(self, source: str, raw: str, *, role: str = "web", name: str | None = None) -> str | None:
        """The staff member a typed staff code belongs to (a sign-in), opening nothing.

        Checked like any code: the same hashes, the same lock-out for the
        input (``role`` and ``name``, by default ``source``), and every attempt
        audited under ``source``.
        """
        key = input_key(role, name or source)
        now = self.svc.clock.monotonic()
        if self._locked_out(source, key, now):
            return None
        found, reason = self._find(raw, ("staff",))
        if found is None:
            self._failure(source, key, now, reason)
            return None
        self.svc.limiter.success(key, now)
        staff = str(found[1]["ref"])
        with self.store.write() as tx:
            repo.audit(tx, "staff_sign_in", ref=staff, source=source, by="code")
        return staff

    def identify_badge(self, source: str, badge: str, pin: str, *, role: str = "web", name: str | None = None) -> str | None:
        """The staff member holding ``badge`` whose PIN is ``pin`` (a sign-in), opening nothing.

        A badge alone is never enough here (its identifier is printed, not
        secret): a member without a PIN cannot sign in this way. Failures
        count against the input (``role`` and ``name``) like wrong codes.
        """
        key = input_key(role, name or source)
        now = self.svc.clock.monotonic()
        if self._locked_out(source, key, now):
            return None
        registry = self.records
        member = registry.by_badge(self.store.conn, badge) if registry is not None else None
        if registry is None or member is None or not registry.pin_matches(self.store.conn, member.id, pin):
            self._failure(source, key, now, "unknown_staff" if member is None else "wrong_pin")
            return None
        self.svc.limiter.success(key, now)
        with self.store.write() as tx:
            repo.audit(tx, "staff_sign_in", ref=member.id, source=source, by="badge_and_pin")
        return member.id

    def _find(self, raw: str, purposes: tuple[str, ...]) -> tuple[tuple[str, dict[str, Any]] | None, str]:
        assert self.svc.secret is not None, "the locker service has not started"
        try:
            code = codes.normalise_code(raw)
        except InputError:
            return None, "malformed"
        found: tuple[str, dict[str, Any]] | None = None
        for purpose in purposes:
            mac = codes.hash_code(self.svc.secret, code, purpose)
            for row in self._live_codes(purpose):
                # No early exit: every live code is compared, match or not.
                if hmac.compare_digest(mac, row["hash"]) and found is None:
                    found = (purpose, row)
        if found is not None and self.svc.wall_clock_sane() \
                and repo.is_past(found[1]["expires_at"], self.svc.wall()):
            return None, "expired"
        if found is None and self._was_expired(code, purposes):
            return None, "expired"
        return found, "wrong"

    def _was_expired(self, code: str, purposes: tuple[str, ...]) -> bool:
        """Whether ``code`` matches a code voided by expiry (compared like live ones, no early exit)."""
        assert self.svc.secret is not None
        hit = False
        for purpose in purposes:
            mac = codes.hash_code(self.svc.secret, code, purpose)
            for row in repo.expired_codes(self.store.conn, purpose):
                hit = hmac.compare_digest(mac, row["hash"]) or hit
        return hit

    def _live_codes(self, purpose: str) -> list[dict[str, Any]]:
        """Live codes of ``purpose``; staff codes come from the staff registry."""
        if purpose != "staff":
            return repo.live_codes(self.store.conn, purpose)
        return list(self.records.live_codes(self.store.conn)) if self.records is not None else []

    def _failure(self, source: str, key: str, now: float, reason: str) -> None:
        lockout = self.svc.limiter.failure(key, now)
        self._failed_sources.add(key)
        with self.store.write() as tx:
            repo.audit(tx, "code_rejected", source=source, reason=reason, input=key)
            tx.emit("locker.code_rejected", {"source": source, "reason": reason})
            if lockout is not None:
                data = {"level": lockout.level, "duration_s": lockout.duration_s,
                        "failures": lockout.failures}
                repo.audit(tx, "lockout", source=source, input=key, level=lockout.level,
                           duration_s=lockout.duration_s, failures=lockout.failures)
                tx.emit("locker.lockout", {"source": source, "input": key, **data})
        if lockout is not None:
            log.warning("input %s locked out for %.0f s after %d wrong codes", key,
                        lockout.duration_s, lockout.failures)
            self.app.set_alert(f"locker-input:{key}", f"locked out for {lockout.duration_s:.0f} s after "
                                                      f"{lockout.failures} wrong codes")
            self.svc.later(lockout.duration_s + 0.05, lambda: self._lockout_over(key))

    def _lockout_over(self, key: str) -> None:
        if self.svc.limiter.check(key, self.svc.clock.monotonic()) <= 0:
            self.app.set_alert(f"locker-input:{key}", None)

    def _locked_out(self, source: str, key: str, now: float) -> float:
        """Seconds input ``key`` stays locked out (0: it may try); a locked-out try is
        refused and audited under ``source``."""
        wait = self.svc.limiter.check(key, now)
        if wait <= 0:
            return 0.0
        self._rejected(source, "locked_out", retry_in_s=round(wait, 1))
        return wait

    def _rejected(self, source: str, reason: str, **detail: Any) -> None:
        with self.store.write() as tx:
            repo.audit(tx, "code_rejected", source=source, reason=reason, **detail)
            tx.emit("locker.code_rejected", {"source": source, "reason": reason, **detail})

    # -- what a valid code opens -------------------------------------------------------
    def _act(self, tx: Any, purpose: str, code: dict[str, Any], source: str) -> tuple[str, str]:
        if purpose == "pickup":
            return self._pickup(tx, code, source)
        if purpose == "return":
            return self._return(tx, code, source)
        return self._retrieve(tx, code, source)

    def _pickup(self, tx: Any, code: dict[str, Any], source: str) -> tuple[str, str]:
        parcel = repo.parcel(tx, code["ref"])
        if parcel is None or parcel["state"] != "stored":
            raise CommandError("not_stored", "the parcel is not waiting in a compartment")
        self.svc.release(tx, parcel["bank"], parcel["compartment"], Purpose.PICKUP, source=source,
                         reason="pickup", code_id=code["id"])
        repo.spend_code(tx, code["id"], "used")
        return parcel["bank"], parcel["compartment"]

    def _return(self, tx: Any, code: dict[str, Any], source: str) -> tuple[str, str]:
        ret = repo.return_row(tx, code["ref"])
        if ret is None or ret["state"] != "expected":
            raise CommandError("not_expected", "that return is not expected")
        bank, comp = self.svc.allocate(tx, ret["size"])
        repo.update_compartment(tx, bank, comp, item_kind="return", item_id=ret["id"])
        repo.set_item_state(tx, "return", ret["id"], "dropping", bank=bank, compartment=comp)
        self.svc.release(tx, bank, comp, Purpose.RETURN, source=source, reason="return",
                         code_id=code["id"])
        repo.spend_code(tx, code["id"], "used")
        return bank, comp

    def _retrieve(self, tx: Any, code: dict[str, Any], source: str) -> tuple[str, str]:
        staff = code["ref"]
        waiting = {(r["bank"], r["compartment"]) for r in repo.compartments(tx, self.svc.banks)
                   if r["state"] in (State.EXPIRED.value, State.RETURNED.value)}
        for bank, layout in self.svc.layouts.items():
            for comp in layout:
                if (bank, comp) in waiting:
                    self.svc.release(tx, bank, comp, Purpose.RETRIEVE, source=source,
                                     reason="retrieve", staff=staff)
                    return bank, comp
        raise CommandError("nothing_to_retrieve", "no expired parcel or dropped return is waiting")

    def lockouts(self) -> dict[str, float]:
        """Input devices locked out right now (``keypad:front``...), with the seconds left."""
        now = self.svc.clock.monotonic()
        out = {}
        for source in sorted(self._failed_sources):
            left = self.svc.limiter.check(source, now)
            if left > 0:
                out[source] = round(left, 1)
        return out


def _feedback(outcome: Outcome) -> FeedbackPattern:
    return {Outcome.OPENED: FeedbackPattern.OK, Outcome.LOCKED_OUT: FeedbackPattern.ATTENTION,
            Outcome.NOTHING: FeedbackPattern.ATTENTION}.get(outcome, FeedbackPattern.ERROR)
