"""Wires the staff registry into the app: ``staff.set``/``staff.revoke`` and status.

Always installed (a shelf-only hub has staff too). Sets
``app.staff_registry`` to the :class:`~hubagent.staff.registry.StaffRegistry`,
which the scanning feature (badges), the lockers (codes, staff actions) and
the staff page (sign-in) check staff against.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from hubagent.lockers import codes
from hubagent.lockers.settings import LockerPolicySettings
from hubagent.staff.commands import StaffCommands
from hubagent.staff.registry import StaffRegistry
from hubagent.staff.settings import StaffSettings

if TYPE_CHECKING:
    from hubagent.app import App


def install(app: "App") -> None:
    """Add the staff registry and its commands."""
    policy: LockerPolicySettings = app.config.section("locker_policy")
    settings: StaffSettings = app.config.section("staff")

    def load_secret() -> bytes:
        # The same per-hub secret as locker codes: a staff code's hash is unchanged.
        return codes.load_secret(policy.secret_name, env_var=policy.secret_env or None,
                                 state_dir=app.config.state_dir, create=policy.create_secret)

    registry = StaffRegistry(load_secret, app.clock.now, policy.min_sane_year)
    StaffCommands(registry).register(app.commands)
    app.on_start(registry.start)
    app.add_status("staff", lambda: status(app, registry, settings))
    app.staff_registry = registry


def status(app: "App", registry: StaffRegistry, settings: StaffSettings) -> dict[str, Any]:
    """How many staff are registered, and whether badges need a PIN."""
    return {"registered": registry.count(app.store.conn), "require_pin": settings.require_pin}
