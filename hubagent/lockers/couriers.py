"""The courier registry and courier sign-in at the locker.

Central registers couriers with ``courier.set`` (courier id, carrier, a
badge and/or a keypad code, an expiry) and revokes them the same way. The
hub stores badge and code only as keyed hashes (the code secret of
:mod:`hubagent.lockers.codes`; the badge under its own purpose
``courier_badge``), never the values. A courier signs in by scanning the
badge ``HA:COURIER:<badge>`` or typing the code on a keypad; a sign-in
is checked like any code (constant-time compare, the same per-input
lock-out, every attempt audited) and lasts ``[locker_policy]
courier_session_s`` after the courier's last scan.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import sqlite3
from typing import TYPE_CHECKING, Annotated, Any

from msgspec import Meta

from hubagent.commands import CommandArgs, CommandContext
from hubagent.errors import CommandError, InputError
from hubagent.lockers import codes, repo
from hubagent.lockers.lockout import input_key
from hubagent.lockers.signins import CourierSessions
from hubagent.ports import FeedbackPattern
from hubagent.store.store import Tx

if TYPE_CHECKING:
    from hubagent.lockers.inputs import CodeDesk
    from hubagent.lockers.service import LockerService

log = logging.getLogger(__name__)

BADGE_PATTERN = r"^[A-Za-z0-9._-]{8,40}$"
"""A badge token: 8-40 letters, digits, ``. _ -`` (central makes it random)."""

Id = Annotated[str, Meta(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,39}$")]
Badge = Annotated[str, Meta(pattern=BADGE_PATTERN)]


class CourierSet(CommandArgs, frozen=True):
    """``courier.set``: register or update a courier, or revoke one (``"revoke": true``)."""

    courier: Id
    carrier: Id | None = None
    badge: Badge | None = None
    badge_hash: str | None = None
    code: str | None = None
    code_hash: str | None = None
    expires_at: str | None = None
    revoke: bool = False


def badge_hash(secret: bytes, badge: str) -> str:
    """Hex HMAC-SHA256 of a badge token (purpose ``courier_badge``, NUL-separated like codes)."""
    return hmac.new(secret, b"courier_badge\x00" + badge.encode("ascii"), hashlib.sha256).hexdigest()


def courier_row(db: repo.Reader, courier: str) -> dict[str, Any] | None:
    """One courier row."""
    return repo.one(db, "SELECT * FROM locker_couriers WHERE id=?", (courier,))


def code_is_live(db: repo.Reader, secret: bytes, code: str) -> bool:
    """Whether ``code`` (normalised) is a live courier code (any expiry)."""
    mac = codes.hash_code(secret, code, "courier")
    return repo.one(db, "SELECT 1 AS x FROM locker_couriers WHERE code_hash=? AND revoked_at IS NULL",
                    (mac,)) is not None


class CourierDesk:
    """The registry command, courier sign-in and the courier sessions."""

    def __init__(self, svc: "LockerService", desk: "CodeDesk") -> None:
        """Use ``svc`` for the secret, store and clocks, ``desk`` for failures and lock-outs."""
        self.svc = svc
        self.desk = desk
        self.sessions = CourierSessions(svc.policy.courier_session_s, svc.clock.monotonic, self.valid)

    # -- registry -------------------------------------------------------------
    def valid(self, courier: str) -> bool:
        """Whether ``courier`` is registered, not revoked and not past its expiry."""
        row = courier_row(self.svc.store.conn, courier)
        return row is not None and row["revoked_at"] is None and not self._expired(row)

    def _expired(self, row: dict[str, Any]) -> bool:
        return self.svc.wall_clock_sane() and repo.is_past(row["expires_at"], self.svc.wall())

    def set(self, ctx: CommandContext, args: CourierSet) -> dict[str, Any]:
        """``courier.set``: store the hashes (replacing the old ones), or revoke."""
        tx = ctx.tx
        now = tx.now
        old = courier_row(tx, args.courier)
        if args.revoke:
            if old is None:
                raise CommandError("unknown_courier", f"no courier {args.courier}")
            tx.execute("UPDATE locker_couriers SET revoked_at=?, updated_at=? WHERE id=?",
                       (now, now, args.courier))
            tx.after_commit(lambda: self._signed_out(args.courier))
            return self._announce(tx, ctx, args.courier, old["carrier"], active=False)
        carrier = args.carrier or (old["carrier"] if old else None)
        if carrier is None:
            raise CommandError("bad_args", "carrier is required for a new courier")
        badge = self._badge(args.badge, args.badge_hash)
        code = self.svc.new_code_hash(tx, "courier", args.code, args.code_hash)
        if badge is None and code is None:
            raise CommandError("bad_args", "courier.set needs a badge or a code (or \"revoke\": true)")
        expires_at = self.svc.expires_at(args.expires_at)
        # Revoke the old row's hashes first, so the unique indexes see the new ones only.
        tx.execute("DELETE FROM locker_couriers WHERE id=?", (args.courier,))
        try:
            tx.execute("INSERT INTO locker_couriers(id, carrier, badge_hash, code_hash, expires_at, "
                       "updated_at) VALUES (?, ?, ?, ?, ?, ?)",
                       (args.courier, carrier, badge, code, expires_at, now))
        except sqlite3.IntegrityError as e:  # a unique index: another courier's badge or code
            raise CommandError("code_in_use", "that badge or code belongs to another courier") from e
        return self._announce(tx, ctx, args.courier, carrier, active=True, badge=badge is not None,
                              code=code is not None, expires_at=expires_at)

    def _announce(self, tx: Tx, ctx: CommandContext, courier: str, carrier: str, **data: Any) -> dict[str, Any]:
        repo.audit(tx, "courier_set", ref=courier, source=ctx.source, command=ctx.id, carrier=carrier, **data)
        result = {"courier": courier, "carrier": carrier, **data}
        tx.emit("courier.updated", {**result, "command": ctx.id})
        return result

    def _signed_out(self, courier: str) -> None:
        for station in self.sessions.sign_out(courier):
            log.info("courier %s signed out at %s (revoked)", courier, station)

    def _badge(self, badge: str | None, given_hash: str | None) -> str | None:
        badge, given_hash = codes.plain_or_hash("badge", badge, given_hash)
        if badge is None:
            return given_hash
        assert self.svc.secret is not None
        return badge_hash(self.svc.secret, badge)

    # -- sign-in ----------------------------------------------------------------
    def scan_badge(self, scan: Any, scanner: str) -> FeedbackPattern:
        """``HA:COURIER:<badge>`` scanned: sign the courier in at this scanner."""
        assert self.svc.secret is not None
        outcome = self._sign_in(scanner, "badge_hash", badge_hash(self.svc.secret, scan.value))
        return FeedbackPattern.OK if outcome == "signed_in" else FeedbackPattern.ERROR

    def sign_in_code(self, source: str, raw: str) -> bool:
        """A keypad code that is a courier's: sign in at ``source``; whether the code was one.

        A courier's code past its expiry is refused here (``expired``, counted
        once); a code that is no courier's is left to the other keypad
        purposes (False, nothing counted), which count a wrong code once.
        """
        if self.svc.limiter.check(input_key("keypad", source), self.svc.clock.monotonic()) > 0:
            return False  # locked out: the normal path reports it
        try:
            code = codes.normalise_code(raw)
        except InputError:
            return False
        assert self.svc.secret is not None
        outcome = self._sign_in(source, "code_hash", codes.hash_code(self.svc.secret, code, "courier"),
                                count_failure=False)
        return outcome != "unknown_courier"

    def _sign_in(self, station: str, column: str, mac: str, *, count_failure: bool = True) -> str:
        """``signed_in``, or why not: ``locked_out``, ``unknown_courier``, ``expired``."""
        now = self.svc.clock.monotonic()
        # Lock-outs belong to the device: a badge is scanned, a code typed on a keypad.
        key = input_key("scanner" if column == "badge_hash" else "keypad", station)
        wait = self.svc.limiter.check(key, now)
        if wait > 0:
            self.desk._rejected(station, "locked_out", retry_in_s=round(wait, 1))
            return "locked_out"
        found = None
        for row in repo.rows(self.svc.store.conn, f"SELECT * FROM locker_couriers WHERE {column} IS NOT NULL "
                                                  "AND revoked_at IS NULL"):
            # No early exit: every live hash is compared, match or not.
            if hmac.compare_digest(mac, row[column]) and found is None:
                found = row
        if found is None:
            if count_failure:
                self.desk._failure(station, key, now, "unknown_courier")
            return "unknown_courier"
        if self._expired(found):
            self.desk._failure(station, key, now, "expired")
            return "expired"
        self.svc.limiter.success(key, now)
        self.sessions.sign_in(station, found["id"], found["carrier"])
        with self.svc.store.write() as tx:
            repo.audit(tx, "courier_sign_in", ref=found["id"], source=station, carrier=found["carrier"],
                       by="badge" if column == "badge_hash" else "code")
            tx.emit("courier.signed_in", {"courier": found["id"], "carrier": found["carrier"], "station": station,
                                          "by": "badge" if column == "badge_hash" else "code"})
        return "signed_in"
