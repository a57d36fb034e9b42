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
from hubagent.lockers import repo, service_state
from hubagent.lockers.couriers import CourierSet
from hubagent.lockers.commands import LockerCommands
from hubagent.feature import Built, Feature, Interfaces
from hubagent.lockers.checks import check_gpio_pins, check_keypad_feedback, check_parcel_labels, check_token_key
from hubagent.lockers.restore import RestoreCommands, snapshot
from hubagent.lockers.retime import ClockCommands, ClockConfirm, TrustView
from hubagent.lockers.schema import MIGRATIONS
from hubagent.lockers.service import LockerService
from hubagent.lockers.settings import LOCKER_POLICY
from hubagent.lockers.tokens import TokenDesk
from hubagent.scanning.codes import interpret
from hubagent.scanning.roles import refusal
from hubagent.scanning.settings import ScannerSettings

if TYPE_CHECKING:
    from hubagent.app import App
    from hubagent.clock import Clock

log = logging.getLogger(__name__)

CLAIMED_SCANS = ("parcel", "pickup", "return", "courier", "token")
"""Scan kinds the lockers handle (``staff`` sign-in belongs to the scanning feature)."""


def build(*, app: "App", clock: "Clock", uses: Interfaces) -> Built:
    """The locker service when the config has locker banks; offers lock parking."""
    if not app.devices_of("lockers"):
        return Built()
    svc = LockerService(app, LOCKER_POLICY.of(app.config), clock=clock, staff=uses.staff,
                        records=uses.staff_records, pins=uses.badge_pins)
    desk = svc.desk
    token_desk = TokenDesk(svc, desk, svc.policy.token_public_key)
    commands = LockerCommands(svc, labels=uses.labels)
    commands.register(app)
    RestoreCommands(svc).register(app)
    app.commands.register("clock.confirm", lambda ctx, args: _clock(svc).confirm(ctx, args), ClockConfirm)
    app.commands.register("courier.set", desk.couriers.set, CourierSet)
    # A tracking number or SSCC on a live parcel is a load, whatever else it looks like.
    app.look_up_scans(desk.scan_barcode)
    if uses.staff_records is not None:
        # A staff code must differ from every live pickup and return code (one keypad takes all).
        uses.staff_records.add_clash_check(svc.locker_code_clashes)
    app.on(DoorChanged, svc.on_door)
    app.on(CodeEntered, desk.on_code)
    app.on(DeviceHealthChanged, svc.on_health)
    handlers = {"parcel": desk.scan_parcel, "pickup": desk.scan_pickup, "return": desk.scan_return,
                "courier": desk.couriers.scan_badge, "token": token_desk.scan_token}
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
    for lookup in app.scan_lookups:
        if lookup(ev.data, ev.symbology, ev.device) is not None:
            return
    try:
        scan = interpret(ev.data, ev.symbology)
    except InputError:
        return
    handler = app.scan_handlers.get(scan.kind.value)
    if refusal(_role_of(app, ev.device), scan.kind.value) is not None:
        log.info("%s: a %s code is not accepted by this scanner's role", ev.device, scan.kind.value)
        return
    if handler is not None and scan.kind.value in CLAIMED_SCANS:
        handler(scan, ev.device)


def _role_of(app: "App", scanner: str) -> str | None:
    for d in app.config.devices_of("scanners"):
        if d.name == scanner and isinstance(d.settings, ScannerSettings):
            return d.settings.role
    return None


def status(svc: LockerService) -> dict[str, Any]:
    """Every compartment's state, door, lock output, contents (never codes) and faults."""
    rows = {(r["bank"], r["compartment"]): r for r in repo.compartments(svc.store.conn, svc.banks)}
    out = service_state.out_of_service(svc.store.conn)
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
                "chilled": info.chilled,
                "in_service": (name, comp) not in out,
                "out_of_service": _out_detail(out.get((name, comp))),
            }
        comps_faulted = sorted(c for c, v in comps.items() if v["fault"])
        banks[name] = {"health": bank.status().health.value, "compartments": comps,
                       "faulted": comps_faulted, "pulses_waiting": svc.pulses.pending(name),
                       "out_of_service": sorted(c for c, v in comps.items() if not v["in_service"])}
    return {"banks": banks, "lockouts": svc.desk.lockouts(),
            "clock_sane": svc.wall_clock_sane(), "parked": svc.parked,
            "couriers": svc.desk.couriers.sessions.stations(), "keypads": svc.desk.feedback.status(),
            "clock": svc.trust.status() if svc.trust is not None else None}


def _out_detail(row: dict[str, Any] | None) -> dict[str, Any] | None:
    """Why and since when a compartment is out of service (None while in service)."""
    return None if row is None else {"reason": row["reason"], "since": row["since"], "by": row["by"]}


def _energised(bank: Any, comp: str) -> bool | None:
    try:
        return bool(bank.energised(comp))
    except Exception:
        return None


FEATURE = Feature(
    "lockers", build,
    sections=(LOCKER_POLICY,),
    migrations=tuple(MIGRATIONS),
    checks=(check_gpio_pins,  # no GPIO pin used twice (lockers, feedback, power)
            check_parcel_labels,
            check_keypad_feedback,  # a keypad's feedback device exists
            check_token_key),  # central's token key loads (only when configured)
)
