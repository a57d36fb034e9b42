"""Wires the locker feature into the app: events, scans, commands, status.

Built only when at least one locker bank is configured: a
:class:`~hubagent.lockers.service.LockerService` (its ``desk`` checks codes
and scans), offered to the power feature as lock parking.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from hubagent.errors import CommandError, InputError
from hubagent.events import CodeEntered, DeviceHealthChanged, DoorChanged, RawScan
from hubagent.lockers import repo
from hubagent.lockers.commands import LockerCommands
from hubagent.feature import Built, Feature, Interfaces
from hubagent.lockers.checks import check_gpio_pins, check_keypad_feedback, check_token_key
from hubagent.lockers.restore import RestoreCommands, snapshot
from hubagent.lockers.retime import ClockCommands, ClockConfirm, TrustView
from hubagent.lockers.schema import MIGRATIONS
from hubagent.lockers.service import LockerService
from hubagent.lockers.settings import LOCKER_POLICY
from hubagent.lockers.tokens import TokenDesk
from hubagent.scanning.codes import interpret

if TYPE_CHECKING:
    from hubagent.app import App
    from hubagent.clock import Clock

log = logging.getLogger(__name__)

CLAIMED_SCANS = ("parcel", "pickup", "return", "token")
"""Scan kinds the lockers handle (``staff`` sign-in belongs to the scanning feature)."""


def build(*, app: "App", clock: "Clock", uses: Interfaces) -> Built:
    """The locker service when the config has locker banks; offers lock parking."""
    if not app.devices_of("lockers"):
        return Built()
    svc = LockerService(app, LOCKER_POLICY.of(app.config), staff=uses.staff, clock=clock)
    desk = svc.desk
    token_desk = TokenDesk(svc, desk, svc.policy.token_public_key)
    commands = LockerCommands(svc)
    commands.register(app)
    RestoreCommands(svc, commands).register(app)
    app.commands.register("clock.confirm", lambda ctx, args: _clock(svc).confirm(ctx, args), ClockConfirm)
    app.on(DoorChanged, svc.on_door)
    app.on(CodeEntered, desk.on_code)
    app.on(DeviceHealthChanged, svc.on_health)
    handlers = {"parcel": desk.scan_parcel, "pickup": desk.scan_pickup, "return": desk.scan_return,
                "token": token_desk.scan_token}
    for kind in CLAIMED_SCANS:
        app.claim_scans(kind, handlers[kind])
    if uses.staff is None:
        # No scanning feature: interpret scans of the claimed kinds here,
        # so a locker-only hub still loads parcels and reads QR codes.
        app.on(RawScan, lambda ev: _route_scan(app, ev))
    app.on_start(svc.start)
    app.on_stop(svc.stop)
    app.add_status("lockers", lambda: status(svc))
    app.add_snapshot("lockers", lambda: snapshot(svc.store.conn, svc.banks))
    return Built(svc, Interfaces(lock_parking=svc, locker_desk=desk, clock_trust=TrustView(svc)))


def _clock(svc: LockerService) -> ClockCommands:
    """``clock.confirm``'s handler (the trust exists once the service started)."""
    if svc.retimer is None:
        raise CommandError("unavailable", "the lockers have not started yet")
    return ClockCommands(svc, svc.retimer)


def _route_scan(app: "App", ev: RawScan) -> None:
    try:
        scan = interpret(ev.data, ev.symbology)
    except InputError:
        return
    handler = app.scan_handlers.get(scan.kind.value)
    if handler is not None and scan.kind.value in CLAIMED_SCANS:
        handler(scan, ev.device)


def status(svc: LockerService) -> dict[str, Any]:
    """Every compartment's state, door, lock output, contents (never codes) and faults."""
    rows = {(r["bank"], r["compartment"]): r for r in repo.compartments(svc.store.conn, svc.banks)}
    banks: dict[str, Any] = {}
    for name, layout in svc.layouts.items():
        bank = svc.banks[name]
        comps = {}
        for comp, info in layout.items():
            row = rows.get((name, comp), {})
            is_open = svc.door_open(name, comp)
            comps[comp] = {
                "size": info.size,
                "state": row.get("state", "unknown"),
                "door": "unknown" if is_open is None else ("open" if is_open else "closed"),
                "energised": _energised(bank, comp),
                "parcel": row.get("item_id") if row.get("item_kind") == "parcel" else None,
                "return": row.get("item_id") if row.get("item_kind") == "return" else None,
                "fault": row.get("fault"),
            }
        comps_faulted = sorted(c for c, v in comps.items() if v["fault"])
        banks[name] = {"health": bank.status().health.value, "compartments": comps,
                       "faulted": comps_faulted, "pulses_waiting": svc.pulses.pending(name)}
    return {"banks": banks, "lockouts": svc.desk.lockouts(), "keypads": svc.desk.feedback.status(),
            "clock_sane": svc.wall_clock_sane(), "parked": svc.parked,
            "clock": svc.trust.status() if svc.trust is not None else None}


def _energised(bank: Any, comp: str) -> bool | None:
    try:
        return bool(bank.energised(comp))
    except Exception:
        return None


FEATURE = Feature(
    "lockers", build,
    sections=(LOCKER_POLICY,),
    migrations=tuple(MIGRATIONS),
    # no GPIO pin used twice (lockers, feedback, power); a keypad's feedback device exists;
    # central's token key loads (only when configured)
    checks=(check_gpio_pins, check_keypad_feedback, check_token_key),
)
