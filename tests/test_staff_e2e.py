"""Staff at the locker end to end: the real daemon, a sim scanner on a pty, a sim keypad,
a sim bank on MockFactory pins and a real broker.

Only staff whom central registered (``staff.set``) act as staff: a home-printed
badge signs nobody in and opens nothing, a badge without its PIN signs nobody
in where the hub requires one, and a keypad's lock-out is the keypad's own.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

from central import Central
from fixtures_mqtt import MosquittoBroker
from hubproc import Daemon, wait_until
from test_lockers_e2e import audit, central, compartment, hub_state, in_seconds, load, locker_config
from test_lockers_e2e import open_and_close, wait_state

__all__ = ["central", "hub_state"]  # fixtures used by name

BADGE = "b7-Qx93"


def start(daemon_factory: Callable[..., Daemon], tmp_path: Path, state: Path, broker: MosquittoBroker,
          *extra: str, **policy: Any) -> Daemon:
    cfg = locker_config(tmp_path / "hub.toml", state, broker, extra=extra, **policy)
    return daemon_factory("run", "--config", str(cfg), state_dir=state)


def pulses(state: Path) -> int:
    """Lock pulses the hub has driven (one audit row per pulse on the MockFactory pin)."""
    return len(audit(state, "pulse"))


def rejected(central: Central, reason: str) -> list[dict[str, Any]]:
    return [e["data"] for e in central.events("scan.rejected") if e["data"]["reason"] == reason]


def expired_parcel(hub: Daemon, central: Central, parcel: str) -> str:
    """Load ``parcel`` and let it expire; its compartment."""
    comp, _ = load(hub, central, parcel, "M", expires_at=in_seconds(2.0))
    central.wait_for(lambda: [e for e in central.events("parcel.expired") if e["data"]["parcel"] == parcel],
                     timeout=20, what=f"{parcel} expired")
    wait_state(hub, comp, "expired")
    return comp


def test_a_home_printed_badge_signs_nobody_in_and_opens_nothing(
        central: Central, mqtt_broker: MosquittoBroker, daemon_factory: Callable[..., Daemon],
        tmp_path: Path, hub_state: Path) -> None:
    hub = start(daemon_factory, tmp_path, hub_state, mqtt_broker, 'role = "locker"')
    central.wait_for_state("online")
    assert central.command("staff.set", {"staff": "S-7", "badge": BADGE})["ok"]
    comp = expired_parcel(hub, central, "P-300")
    before = pulses(hub_state)
    # Mallory prints HA:STAFF:mallory at home, and tries the staff id as a badge too.
    for forged in ("HA:STAFF:mallory", "HA:STAFF:S-7"):
        hub.sim("scanners", "scan", code=forged)
        hub.sim("scanners", "scan", code="HA:PCL:P-300")
    central.wait_for(lambda: len(rejected(central, "unknown_staff")) == 2, what="two unknown_staff")
    wait_until(lambda: hub.status()["scanning"]["scanners"]["front"]["rejected"] >= 4, 10.0, "4 refusals")
    assert hub.status()["scanning"]["scanners"]["front"]["staff"] is None
    assert pulses(hub_state) == before  # zero pulses
    assert compartment(hub, comp)["state"] == "expired" and compartment(hub, comp)["energised"] is False
    # The MockFactory lock pin never went high: the simulated door never sprang open.
    world = hub.sim("lockers", "state", name="bank-a", compartment=comp)["result"]
    assert world["door_open"] is False and world["energised"] is False
    assert central.events("parcel.retrieved") == []
    # The registered badge works, and the audit trail names who took the parcel out.
    hub.sim("scanners", "scan", code=f"HA:STAFF:{BADGE}")
    hub.sim("scanners", "scan", code="HA:PCL:P-300")
    open_and_close(hub, comp, "retrieving")
    assert central.wait_for_events(1, kind="parcel.retrieved")[0]["data"]["staff"] == "S-7"
    assert json.loads(audit(hub_state, "release")[-1]["detail"])["staff"] == "S-7"
    # Revoked: the sign-in left on the scanner no longer acts for anyone.
    expired_parcel(hub, central, "P-301")
    assert central.command("staff.revoke", {"staff": "S-7"})["ok"]
    before = pulses(hub_state)
    hub.sim("scanners", "scan", code="HA:PCL:P-301")
    hub.sim("scanners", "scan", code=f"HA:STAFF:{BADGE}")
    central.wait_for(lambda: len(rejected(central, "unknown_staff")) == 3, what="revoked badge refused")
    assert pulses(hub_state) == before
    assert central.violations() == []


def test_a_keypad_lockout_leaves_the_scanner_of_the_same_name_working(
        central: Central, mqtt_broker: MosquittoBroker, daemon_factory: Callable[..., Daemon],
        tmp_path: Path, hub_state: Path) -> None:
    hub = start(daemon_factory, tmp_path, hub_state, mqtt_broker, 'role = "locker"', max_failures=2)
    central.wait_for_state("online")
    comp, stored = load(hub, central, "P-400", "S", expires_at=in_seconds(3600))
    code = stored["data"]["pickup_code"]
    wrong = "000000" if code != "000000" else "111111"
    for _ in range(2):
        hub.sim("keypads", "code", code=wrong)
    lockout = central.wait_for_events(1, kind="locker.lockout")[0]["data"]
    assert lockout["source"] == "front" and lockout["input"] == "keypad:front"
    assert hub.status()["lockers"]["lockouts"].keys() == {"keypad:front"}
    # The keypad named "front" is locked out; the scanner named "front" still opens.
    hub.sim("keypads", "code", code=code)
    central.wait_for(lambda: [e for e in central.events("locker.code_rejected")
                              if e["data"]["reason"] == "locked_out"], what="keypad refused unchecked")
    assert compartment(hub, comp)["state"] == "occupied"
    hub.sim("scanners", "scan", code=f"HA:PICKUP:{code}")
    open_and_close(hub, comp, "picking")
    picked = central.wait_for_events(1, kind="parcel.picked_up")[0]["data"]
    assert picked["parcel"] == "P-400"
    assert central.violations() == []


def test_a_badge_needs_its_pin_on_the_keypad_of_the_same_name(
        central: Central, mqtt_broker: MosquittoBroker, daemon_factory: Callable[..., Daemon],
        tmp_path: Path, hub_state: Path) -> None:
    hub = start(daemon_factory, tmp_path, hub_state, mqtt_broker, 'role = "locker"', "",
                "[staff]", "require_pin = true")
    central.wait_for_state("online")
    assert central.command("staff.set", {"staff": "S-8", "badge": BADGE, "pin": "4711"})["ok"]
    comp = expired_parcel(hub, central, "P-500")
    before = pulses(hub_state)
    # The badge alone signs nobody in: the parcel label opens nothing.
    hub.sim("scanners", "scan", code=f"HA:STAFF:{BADGE}")
    wait_until(lambda: hub.status()["scanning"]["scanners"]["front"]["awaiting_pin"], 10.0, "PIN awaited")
    hub.sim("scanners", "scan", code="HA:PCL:P-500")
    wait_until(lambda: hub.status()["scanning"]["scanners"]["front"]["rejected"] >= 1, 10.0, "refused")
    assert pulses(hub_state) == before
    # A wrong PIN is refused, counts against the keypad and drops the badge.
    hub.sim("keypads", "code", code="1234")
    central.wait_for(lambda: rejected(central, "wrong_pin"), what="wrong_pin")
    assert [e["data"]["reason"] for e in central.events("locker.code_rejected")] == ["wrong_pin"]
    assert hub.status()["scanning"]["scanners"]["front"]["awaiting_pin"] is False
    hub.sim("keypads", "code", code="4711")  # no badge waiting now: a (wrong) locker code
    central.wait_for(lambda: len(central.events("locker.code_rejected")) == 2, what="plain code refused")
    assert hub.status()["scanning"]["scanners"]["front"]["staff"] is None
    assert pulses(hub_state) == before
    # Badge, then the right PIN: signed in, and the retrieval names the staff member.
    hub.sim("scanners", "scan", code=f"HA:STAFF:{BADGE}")
    wait_until(lambda: hub.status()["scanning"]["scanners"]["front"]["awaiting_pin"], 10.0, "PIN awaited")
    hub.sim("keypads", "code", code="4711")
    wait_until(lambda: hub.status()["scanning"]["scanners"]["front"]["staff"] == "S-8", 10.0, "signed in")
    hub.sim("scanners", "scan", code="HA:PCL:P-500")
    open_and_close(hub, comp, "retrieving")
    assert central.wait_for_events(1, kind="parcel.retrieved")[0]["data"]["staff"] == "S-8"
    sign_ins = audit(hub_state, "staff_sign_in")
    assert [(a["ref"], a["source"]) for a in sign_ins] == [("S-8", "front")]
    assert central.violations() == []
