"""``staff.set`` and ``staff.revoke``: central registers and revokes staff.

``staff.set`` replaces a member's whole record. Each secret arrives either
as plain text over the TLS link (``code``, ``pin``; hashed here at once and
never stored) or as its keyed hash (``code_hash``, ``pin_hash``:
``HMAC-SHA256(secret, purpose + "\\0" + digits)`` in hex with purposes
``staff`` and ``staff_pin``), for a central that holds the hub's secret. A
badge is the identifier printed in ``HA:STAFF:<badge>``. A ``staff.set``
with neither code nor badge revokes the member, as it always did.
"""

from __future__ import annotations

from typing import Annotated, Any, Callable

from msgspec import Meta

from hubagent.commands import CommandArgs, CommandContext, Commands
from hubagent.errors import CommandError, InputError
from hubagent.lockers import codes, repo
from hubagent.staff.registry import StaffRegistry
from hubagent.store.store import Tx

Id = Annotated[str, Meta(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,39}$")]
Badge = Annotated[str, Meta(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,39}$")]


class StaffSet(CommandArgs, frozen=True):
    """``staff.set``: register a staff member (keypad code, badge, PIN, expiry)."""

    staff: Id
    code: str | None = None
    code_hash: str | None = None
    badge: Badge | None = None
    pin: str | None = None
    pin_hash: str | None = None
    expires_at: str | None = None


class StaffRevoke(CommandArgs, frozen=True):
    """``staff.revoke``: the member is nobody from now on (code, badge and PIN)."""

    staff: Id


class StaffCommands:
    """Handlers of the staff registry commands."""

    def __init__(self, registry: StaffRegistry) -> None:
        """Register into ``registry``."""
        self.registry = registry

    def register(self, commands: Commands) -> None:
        """Add ``staff.set`` and ``staff.revoke`` to the dispatcher."""
        commands.register("staff.set", self.set, StaffSet)
        commands.register("staff.revoke", self.revoke, StaffRevoke)

    def _secret_hash(self, field: str, plain: str | None, hashed: str | None,
                     hasher: Callable[[str], str]) -> str | None:
        plain, hashed = codes.plain_or_hash(field, plain, hashed)
        if plain is None:
            return hashed
        try:
            return hasher(plain)
        except InputError as e:
            raise CommandError("bad_code", f"{field}: {e.message}") from None

    def _expiry(self, value: str | None) -> str | None:
        now = self.registry.wall()
        return repo.future_time(value, now if now.year >= self.registry.min_sane_year else None)

    def set(self, ctx: CommandContext, args: StaffSet) -> dict[str, Any]:
        """Register (or replace) one staff member; revoke with neither code nor badge."""
        tx, reg = ctx.tx, self.registry
        code_hash = self._secret_hash("code", args.code, args.code_hash, reg.hash_code)
        pin_hash = self._secret_hash("pin", args.pin, args.pin_hash, reg.hash_pin)
        expires_at = self._expiry(args.expires_at)
        if code_hash is None and args.badge is None:
            if pin_hash is not None:
                raise CommandError("bad_args", "a pin needs a code or a badge to go with")
            return self._revoke(ctx, args.staff)
        # Revoke the old record first, so replacing a member's own code is no clash.
        self._revoke_row(tx, args.staff)
        if args.code is not None:
            normal = codes.normalise_code(args.code)
            if reg.code_in_use(tx, normal) or any(check(tx, normal) for check in reg.clash_checks):
                raise CommandError("code_in_use", "that code is already in use; choose another")
        badge = reg.hash_badge(args.badge) if args.badge is not None else None
        if badge is not None and tx.execute("SELECT 1 FROM staff_members WHERE badge_hash=? "
                                            "AND revoked_at IS NULL", (badge,)).fetchone():
            raise CommandError("badge_in_use", "that badge belongs to another staff member")
        if code_hash is not None and args.code_hash is not None and tx.execute(
                "SELECT 1 FROM staff_members WHERE code_hash=? AND revoked_at IS NULL",
                (code_hash,)).fetchone():
            raise CommandError("code_in_use", "that code is already in use; choose another")
        now = repo.format_time(reg.wall())
        tx.execute("INSERT INTO staff_members(id, code_hash, badge_hash, pin_hash, expires_at, revoked_at, "
                   "updated_at, command) VALUES (?, ?, ?, ?, ?, NULL, ?, ?) ON CONFLICT(id) DO UPDATE SET "
                   "code_hash=excluded.code_hash, badge_hash=excluded.badge_hash, pin_hash=excluded.pin_hash, "
                   "expires_at=excluded.expires_at, revoked_at=NULL, updated_at=excluded.updated_at, "
                   "command=excluded.command",
                   (args.staff, code_hash, badge, pin_hash, expires_at, now, ctx.id))
        result = {"staff": args.staff, "active": True, "expires_at": expires_at,
                  "code": code_hash is not None, "badge": badge is not None, "pin": pin_hash is not None}
        tx.emit("staff.updated", {**result, "command": ctx.id})
        return result

    def revoke(self, ctx: CommandContext, args: StaffRevoke) -> dict[str, Any]:
        """Revoke one staff member (a member never registered is simply not active)."""
        return self._revoke(ctx, args.staff)

    def _revoke_row(self, tx: Tx, staff: str) -> None:
        tx.execute("UPDATE staff_members SET revoked_at=?, updated_at=? WHERE id=? AND revoked_at IS NULL",
                   (repo.format_time(self.registry.wall()), repo.format_time(self.registry.wall()), staff))

    def _revoke(self, ctx: CommandContext, staff: str) -> dict[str, Any]:
        self._revoke_row(ctx.tx, staff)
        result = {"staff": staff, "active": False, "expires_at": None,
                  "code": False, "badge": False, "pin": False}
        ctx.tx.emit("staff.updated", {**result, "command": ctx.id})
        return result
