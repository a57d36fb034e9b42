"""Wires the staff registry into the app: ``staff.set``/``staff.revoke`` and status.

Always built (a shelf-only hub has staff too). Offers the registry as
:class:`~hubagent.interfaces.StaffRecords`, which scanning (badges), the
lockers (codes, staff actions) and the staff page (sign-in) check staff
against.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from hubagent.feature import Built, Feature, Interfaces
from hubagent.lockers import codes
from hubagent.lockers.settings import LOCKER_POLICY
from hubagent.staff.checks import check_pin_keypads
from hubagent.staff.commands import StaffCommands
from hubagent.staff.registry import StaffRegistry
from hubagent.staff.schema import MIGRATIONS
from hubagent.staff.settings import STAFF, StaffSettings

if TYPE_CHECKING:
    from hubagent.app import App
    from hubagent.clock import Clock


def build(*, app: "App", clock: "Clock", uses: Interfaces) -> Built:
    """The staff registry and its commands; offers the registry."""
    policy = LOCKER_POLICY.of(app.config)
    settings = STAFF.of(app.config)

    def load_secret() -> bytes:
        # The same per-hub secret as locker codes: a staff code's hash is unchanged.
        return codes.load_secret(policy.secret_name, env_var=policy.secret_env or None,
                                 state_dir=app.config.state_dir, create=policy.create_secret)

    registry = StaffRegistry(load_secret, clock.now, policy.min_sane_year)
    StaffCommands(registry).register(app.commands)
    app.on_start(registry.start)
    app.add_status("staff", lambda: status(app, registry, settings))
    return Built(registry, Interfaces(staff_records=registry))


def status(app: "App", registry: StaffRegistry, settings: StaffSettings) -> dict[str, Any]:
    """How many staff are registered, and whether badges need a PIN."""
    return {"registered": registry.count(app.store.conn), "require_pin": settings.require_pin}


FEATURE = Feature(
    "staff", build,
    sections=(STAFF,),
    migrations=tuple(MIGRATIONS),
    # badges that need a PIN have a keypad to type it on
    checks=(check_pin_keypads,),
)
