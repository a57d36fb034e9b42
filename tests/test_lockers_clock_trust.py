"""Expiry decisions and an untrustworthy wall clock, in-process on the manual clock.

A hub that starts with its clock years ahead takes no expiry decision, and
once the clock is corrected its parcels and codes are as they should be. A
decision taken on a clock that was trusted but wrong is undone when central's
time shows it.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from hubagent.app import build_app
from hubagent.clock import ManualClock
from hubagent.config import from_dict
from hubagent.events import CodeEntered
from hubagent.lockers.trust import ClockTrust, Trust, TrustLimits
from hubagent.scanning.codes import interpret

from test_lockers_flows import Core, config_doc, lockers_of, wait
from test_lockers_security import P1_CODE, P2_CODE, load

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=timezone.utc)
DAY = 86400.0


def hub(state: Path, wall: datetime) -> tuple[Core, ManualClock]:
    """A hub on a manual clock reading ``wall``, whose kernel never reports NTP sync."""
    clock = ManualClock(wall=wall)
    app = build_app(from_dict(config_doc(state)), simulated=True, clock=clock)
    lockers_of(app).ntp_synced = lambda: False
    return Core(app), clock


def parcel(core: Core, pid: str) -> dict[str, Any]:
    return core.call(lambda: core.app.store.query("SELECT * FROM locker_parcels WHERE id=?", (pid,)))[0]


def live_codes(core: Core, ref: str) -> int:
    rows = core.call(lambda: core.app.store.query(
        "SELECT COUNT(*) AS n FROM locker_codes WHERE ref=? AND spent_at IS NULL", (ref,)))
    return int(rows[0]["n"])


def iso(t: datetime) -> str:
    return t.isoformat().replace("+00:00", "Z")


def test_a_start_years_ahead_decides_nothing_and_the_correction_leaves_everything_right(tmp_path: Path) -> None:
    core, clock = hub(tmp_path, NOW)
    try:
        load(core, "P1", pickup={"code": P1_CODE}, expires_at=iso(NOW + timedelta(days=1)))
        load(core, "P2", pickup={"code": P2_CODE})  # the hub sets the deadline: 3 days after storing
        p2_deadline = parcel(core, "P2")["expires_at"]
        assert p2_deadline == "2026-12-02T12:00:00.000Z"
    finally:
        core.close()
    # The next boot reads 2036: ten years past the last time the hub trusted.
    core, clock = hub(tmp_path, NOW + timedelta(days=3650))
    try:
        svc = lockers_of(core.app)
        assert core.call(svc.trust.check) is Trust.AHEAD
        assert "clock" in core.call(core.app.status)["alerts"]
        assert core.call(svc.expire_due) == 0  # nothing expires on a clock ahead
        # No KPI decision either: day-based figures wait for a trusted clock.
        assert core.command("kpi.get", id="k1")["error"]["code"] == "clock_not_set"
        # Central assigns a parcel due in two real days: not refused as "already past".
        r = core.command("parcel.assign", id="a3", parcel="P3", size="M", expires_at=iso(NOW + timedelta(days=2)))
        assert r["ok"], r
        # The customer's code still works (it is not "expired").
        core.call(core.app.dispatch, CodeEntered("front", P1_CODE))
        wait(lambda: core.compartment("A1")["state"] == "picking" and core.compartment("A1")["door"] == "open",
             what="P1 released")
        core.sim("close", "A1")
        wait(lambda: core.compartment("A1")["state"] == "free", what="P1 picked up")
        # NTP corrects the clock (a jump back to where the database says time is).
        core.call(clock.set_wall, NOW + timedelta(hours=1))
        assert core.call(svc.trust.check) is Trust.TRUSTED
        core.call(svc.retimer.tick)
        assert "clock" not in core.call(core.app.status)["alerts"]
        assert core.command("kpi.get", id="k2")["ok"]
        assert core.call(svc.expire_due) == 0
        assert parcel(core, "P2")["state"] == "stored" and parcel(core, "P2")["expires_at"] == p2_deadline
        assert live_codes(core, "P2") == 1
        assert parcel(core, "P3")["expires_at"] == iso(NOW + timedelta(days=2)).replace("00Z", "00.000Z")
        assert core.events("parcel.expired") == []
        # Real time passes: P2 expires on its real deadline, not before.
        core.call(clock.advance, 2 * DAY - 3600)  # P3's real deadline (the hourly expiry check runs)
        assert [e["parcel"] for e in core.events("parcel.expired")] == ["P3"]
        core.call(clock.advance, 1 * DAY)  # P2's
        assert [e["parcel"] for e in core.events("parcel.expired")] == ["P3", "P2"]
    finally:
        core.close()


def test_expiry_on_a_trusted_but_wrong_clock_is_undone_by_centrals_time(tmp_path: Path) -> None:
    core, clock = hub(tmp_path, NOW)
    try:
        core.call(lockers_of(core.app).retimer.tick)  # the floor: the hub trusted NOW
    finally:
        core.close()
    # Ten days ahead: within clock_max_offline_s, so it looks plausible and is trusted.
    core, clock = hub(tmp_path, NOW + timedelta(days=10))
    try:
        svc = lockers_of(core.app)
        assert core.call(svc.trust.check) is Trust.TRUSTED
        r = core.command("parcel.assign", id="a1", parcel="P1", size="S", pickup={"code": P1_CODE},
                         expires_at=iso(NOW + timedelta(days=12)))
        assert r["ok"], r
        assert core.call(core.app.scan_handlers["parcel"], interpret(b"HA:PCL:P1"), "front").value == "ok"
        wait(lambda: core.compartment("A1")["door"] == "open")
        wait(lambda: not core.compartment("A1")["energised"], what="the bank's pulse over")
        core.sim("close", "A1")
        wait(lambda: core.compartment("A1")["state"] == "occupied")
        load(core, "P2", pickup={"code": P2_CODE})  # deadline computed on the wrong clock: NOW + 13 days
        assert parcel(core, "P2")["expires_at"].startswith("2026-12-12")
        core.call(clock.advance, 3 * DAY - 3600)  # the wrong clock passes P1's deadline (not P2's)
        assert [e["parcel"] for e in core.events("parcel.expired")] == ["P1"]
        assert parcel(core, "P1")["state"] == "expired"
        assert live_codes(core, "P1") == 0
        # Central's time shows the clock 10 days ahead: the expiry is undone, the deadline recomputed.
        real = NOW + timedelta(days=3, hours=-1)
        reply = core.command("clock.confirm", id="c1", now=iso(real))
        assert reply["ok"], reply
        assert reply["result"]["trust"] == "ahead" and reply["result"]["offset_s"] == 10 * DAY
        assert reply["result"]["undone"] == 2
        assert parcel(core, "P1")["state"] == "stored" and core.compartment("A1")["state"] == "occupied"
        assert live_codes(core, "P1") == 1
        assert parcel(core, "P2")["expires_at"] == iso(real + timedelta(days=3)).replace("00Z", "00.000Z")
        assert [e["parcel"] for e in core.events("parcel.unexpired")] == ["P1"]
        assert core.call(svc.expire_due) == 0  # still ahead: no decisions
        # NTP corrects the clock: trusted again, and the customer's code opens P1's door.
        core.call(clock.set_wall, real + timedelta(minutes=1))
        core.call(svc.retimer.tick)
        assert svc.trust.state is Trust.TRUSTED
        core.call(core.app.dispatch, CodeEntered("front", P1_CODE))
        wait(lambda: core.compartment("A1")["state"] == "picking", what="P1 released")
        audit = json.dumps(core.call(lambda: core.app.store.query(
            "SELECT kind, detail FROM locker_audit WHERE kind IN ('unexpired', 'clock_confirmed')")))
        assert "unexpired" in audit and "clock_confirmed" in audit
    finally:
        core.close()


def test_trust_rule_in_each_direction() -> None:
    wall = [NOW]
    mono = [100.0]
    synced: list[bool | None] = [False]
    trust = ClockTrust(lambda: wall[0], lambda: mono[0], TrustLimits(), floor=NOW - timedelta(days=1),
                       ntp_synced=lambda: synced[0])
    assert trust.check() is Trust.TRUSTED
    mono[0] += 600
    wall[0] += timedelta(seconds=600)  # time passing is no jump
    assert trust.check() is Trust.TRUSTED
    wall[0] += timedelta(days=400)  # a jump forward: suspect
    assert trust.check() is Trust.AHEAD
    synced[0] = True  # the kernel says NTP set it
    assert trust.check() is Trust.TRUSTED
    synced[0] = False
    wall[0] = datetime(1970, 1, 1, tzinfo=timezone.utc)
    assert trust.check() is Trust.BEHIND
    behind_floor = ClockTrust(lambda: NOW - timedelta(days=2), lambda: 0.0, TrustLimits(), floor=NOW,
                              ntp_synced=lambda: None)
    assert behind_floor.state is Trust.BEHIND
    first_start = ClockTrust(lambda: NOW + timedelta(days=9999), lambda: 0.0, TrustLimits(), floor=None,
                             ntp_synced=lambda: None)
    assert first_start.state is Trust.TRUSTED  # nothing to compare with on a first start
