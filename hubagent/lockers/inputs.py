"""Codes and scans at the locker: who may open what.

Keypad codes may be pickup, return or staff codes; scanned ``HA:PICKUP:``
and ``HA:RET:`` codes one purpose each. A code is normalised, then its
keyed hash for each purpose is compared in constant time
(``hmac.compare_digest``) with every live code of that purpose - the loop
never stops early, so timing does not tell how close a guess was. Wrong
codes count against the input device (:class:`AttemptLimiter`); a locked
out device is refused without checking, while every other device goes on
working. Every attempt is audited and sent as an event, never with the code.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
import hmac
import logging
from typing import TYPE_CHECKING, Any

from hubagent.errors import CommandError, InputError
from hubagent.events import CodeEntered
from hubagent.interfaces import StaffDirectory
from hubagent.lockers import codes, repo
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


@dataclass(frozen=True)
class Attempt:
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

    def __init__(self, svc: "LockerService", staff: StaffDirectory | None = None) -> None:
        """Use ``svc`` for releases, its limiter, secret and clock; ``staff`` for who is signed in."""
        self.svc = svc
        self.staff = staff
        self.app = svc.app
        self.store = svc.store
        self._failed_sources: set[str] = set()
        self.feedback = KeypadFeedback(svc.app)

    # -- input sources ------------------------------------------------------------
    def on_code(self, ev: CodeEntered) -> None:
        """A code typed on a keypad (core thread); its outcome is played on the keypad's feedback."""
        attempt = self.attempt(ev.source, ev.code, KEYPAD_PURPOSES)
        log.info("keypad %s: code %s (%s)", ev.source, attempt.outcome.value,
                 attempt.reason)  # the code itself is never logged
        self.feedback.play(ev.source, attempt)

    def scan_parcel(self, scan: Any, scanner: str) -> FeedbackPattern:
        """``HA:PCL:<id>``: load a reserved parcel, or staff retrieve a stored one."""
        parcel = repo.parcel(self.store.conn, scan.value)
        if parcel is None or not parcel["bank"]:
            return FeedbackPattern.ERROR
        try:
            with self.store.write() as tx:
                if parcel["state"] == "assigned":
                    self.svc.release(tx, parcel["bank"], parcel["compartment"], Purpose.LOAD,
                                     source=scanner, reason="load")
                    return FeedbackPattern.OK
                staff = self._staff_on(scanner)
                allowed = ("expired",) if self.svc.policy.staff_retrieval == "expired" else ("expired", "stored")
                if staff is None or parcel["state"] not in allowed:
                    return FeedbackPattern.ERROR
                self.svc.release(tx, parcel["bank"], parcel["compartment"], Purpose.RETRIEVE,
                                 source=scanner, reason="retrieve", staff=staff)
                return FeedbackPattern.OK
        except CommandError as e:
            log.info("parcel scan on %s refused: %s", scanner, e.message)
            return FeedbackPattern.ERROR

    def scan_pickup(self, scan: Any, scanner: str) -> FeedbackPattern:
        """``HA:PICKUP:<code>`` shown to the locker camera or a scanner."""
        return _feedback(self.submit(scanner, scan.value, ("pickup",)))

    def scan_return(self, scan: Any, scanner: str) -> FeedbackPattern:
        """``HA:RET:<code>``: a return label's code."""
        return _feedback(self.submit(scanner, scan.value, ("return",)))

    def _staff_on(self, scanner: str) -> str | None:
        return self.staff.staff_for(scanner) if self.staff is not None else None

    # -- checking -------------------------------------------------------------------
    def submit(self, source: str, raw: str, purposes: tuple[str, ...]) -> Outcome:
        """Check one attempt from ``source`` and open what it entitles to."""
        return self.attempt(source, raw, purposes).outcome

    def attempt(self, source: str, raw: str, purposes: tuple[str, ...]) -> "Attempt":
        """Like :meth:`submit`, with what a screen tells the person: door, reason, wait."""
        now = self.svc.clock.monotonic()
        wait = self.svc.limiter.check(source, now)
        if wait > 0:
            self._rejected(source, "locked_out", retry_in_s=round(wait, 1))
            return Attempt(Outcome.LOCKED_OUT, "locked_out", retry_in_s=round(wait, 1))
        self.app.set_alert(f"locker-input:{source}", None)
        found, reason = self._find(raw, purposes)
        if found is None and reason == "expired":
            # Not counted towards a lock-out: only someone who once held the
            # code can type it, and a customer retrying an expired code must
            # not lock a shared keypad for everyone (docs/operations.md).
            self._rejected(source, reason)
            return Attempt(Outcome.REJECTED, reason)
        if found is None:
            self._failure(source, now, reason)
            left = self.svc.limiter.check(source, self.svc.clock.monotonic())
            return Attempt(Outcome.REJECTED, reason, retry_in_s=round(left, 1) if left > 0 else None)
        purpose, row = found
        try:
            with self.store.write() as tx:
                opened = self._act(tx, purpose, row, source)
                repo.audit(tx, "code_accepted", bank=opened[0], compartment=opened[1], ref=row["ref"],
                           source=source, purpose=purpose)
            # Only an opening forgives earlier failures: a live code that opens
            # nothing now (a parcel not loaded yet) neither counts nor resets.
            self.svc.limiter.success(source, now)
            return Attempt(Outcome.OPENED, purpose, bank=opened[0], compartment=opened[1])
        except CommandError as e:
            with self.store.write() as tx:
                repo.audit(tx, "code_no_action", ref=row["ref"], source=source, purpose=purpose,
                           why=e.code)
                tx.emit("locker.code_no_action", {"source": source, "purpose": purpose, "reason": e.code})
            return Attempt(Outcome.NOTHING, e.code)

    def lockout_left(self, source: str) -> float:
        """Seconds ``source`` stays locked out (0 when it may try)."""
        return float(self.svc.limiter.check(source, self.svc.clock.monotonic()))

    def identify_staff(self, source: str, raw: str) -> str | None:
        """The staff member a typed staff code belongs to (a sign-in), opening nothing.

        Checked like any code: the same hashes, the same lock-out for ``source``,
        and every attempt audited.
        """
        now = self.svc.clock.monotonic()
        wait = self.svc.limiter.check(source, now)
        if wait > 0:
            self._rejected(source, "locked_out", retry_in_s=round(wait, 1))
            return None
        found, reason = self._find(raw, ("staff",))
        if found is None:
            self._failure(source, now, reason)
            return None
        self.svc.limiter.success(source, now)
        staff = str(found[1]["ref"])
        with self.store.write() as tx:
            repo.audit(tx, "staff_sign_in", ref=staff, source=source)
        return staff

    def _find(self, raw: str, purposes: tuple[str, ...]) -> tuple[tuple[str, dict[str, Any]] | None, str]:
        assert self.svc.secret is not None, "the locker service has not started"
        try:
            code = codes.normalise_code(raw)
        except InputError:
            return None, "malformed"
        found: tuple[str, dict[str, Any]] | None = None
        for purpose in purposes:
            mac = codes.hash_code(self.svc.secret, code, purpose)
            for row in repo.live_codes(self.store.conn, purpose):
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

    def _failure(self, source: str, now: float, reason: str) -> None:
        lockout = self.svc.limiter.failure(source, now)
        self._failed_sources.add(source)
        with self.store.write() as tx:
            repo.audit(tx, "code_rejected", source=source, reason=reason)
            tx.emit("locker.code_rejected", {"source": source, "reason": reason})
            if lockout is not None:
                repo.audit(tx, "lockout", source=source, level=lockout.level, duration_s=lockout.duration_s,
                           failures=lockout.failures)
                tx.emit("locker.lockout", {"source": source, "level": lockout.level,
                                           "duration_s": lockout.duration_s, "failures": lockout.failures})
        if lockout is not None:
            log.warning("input %s locked out for %.0f s after %d wrong codes", source,
                        lockout.duration_s, lockout.failures)
            key = f"locker-input:{source}"
            self.app.set_alert(key, f"locked out for {lockout.duration_s:.0f} s after "
                                    f"{lockout.failures} wrong codes")
            self.svc.later(lockout.duration_s + 0.05, lambda: self._lockout_over(source))

    def _lockout_over(self, source: str) -> None:
        if self.svc.limiter.check(source, self.svc.clock.monotonic()) <= 0:
            self.app.set_alert(f"locker-input:{source}", None)

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
        """Input devices locked out right now, with the seconds left."""
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
