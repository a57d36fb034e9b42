"""Locker flows end to end: the real daemon, a sim bank on MockFactory pins, a real broker."""

from __future__ import annotations

import json
import sqlite3
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable

import pytest

from central import Central
from fixtures_mqtt import MosquittoBroker
from hubproc import Daemon, mqtt_table, wait_until

HUB = "hub-1"
# name, size, lock pin, door pin (as in the embedded sim config)
COMPARTMENTS = [("A1", "S", 5, 17), ("A2", "S", 6, 27), ("A3", "M", 13, 22),
                ("A4", "M", 19, 23), ("A5", "L", 26, 24), ("A6", "L", 16, 25)]


def locker_config(path: Path, state: Path, broker: MosquittoBroker | None, *, door_limit: float = 60.0,
                  pulse: dict[str, float] | None = None, extra: tuple[str, ...] = (), **policy: Any) -> Path:
    """A hub config with one sim bank, a sim keypad, a sim scanner and (optionally) a broker.

    ``extra`` lines go into the scanner's table first, then may open tables of their own.
    """
    lines = ["[hub]", f'id = "{HUB}"', f'state_dir = "{state}"', 'log_level = "debug"', ""]
    if broker is not None:
        lines.append(mqtt_table(broker.port, telemetry_s=60.0))
    lines += ["[scanners.front]", 'driver = "sim"', *extra, "", "[keypads.front]", 'driver = "sim"', "",
              "[lockers.bank-a]", 'driver = "sim"', f"door_open_limit_s = {door_limit}", ""]
    for name, size, lock, door in COMPARTMENTS:
        lines += [f"[lockers.bank-a.compartments.{name}]", f"lock_pin = {lock}", f"door_pin = {door}",
                  f'size = "{size}"']
        if pulse and name in pulse:
            lines.append(f"pulse_s = {pulse[name]}")
        lines.append("")
    lines += ["[locker_policy]", "expiry_check_s = 0.5", "lock_confirm_s = 1.5"]
    lines += [f"{k} = {json.dumps(v)}" for k, v in policy.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


def in_seconds(s: float) -> str:
    """An RFC 3339 UTC time ``s`` seconds from now."""
    return (datetime.now(timezone.utc) + timedelta(seconds=s)).isoformat().replace("+00:00", "Z")


def compartment(hub: Daemon, name: str) -> dict[str, Any]:
    """One compartment of bank-a as ``hubagent status`` shows it."""
    return hub.status()["lockers"]["banks"]["bank-a"]["compartments"][name]  # type: ignore[no-any-return]


def wait_state(hub: Daemon, name: str, state: str, door: str | None = None) -> dict[str, Any]:
    """Wait until a compartment reaches ``state`` (and door position)."""
    return wait_until(lambda: (c := compartment(hub, name))["state"] == state
                      and (door is None or c["door"] == door) and c, 15.0, f"{name} {state} {door or ''}",
                      interval=0.05)


def audit(state: Path, kind: str | None = None) -> list[dict[str, Any]]:
    """Rows of the audit trail, read from the live database."""
    db = sqlite3.connect(f"file:{state / 'hubagent.db'}?mode=ro", uri=True)
    try:
        db.row_factory = sqlite3.Row
        sql = "SELECT * FROM locker_audit" + (" WHERE kind=?" if kind else "") + " ORDER BY seq"
        return [dict(r) for r in db.execute(sql, (kind,) if kind else ())]
    finally:
        db.close()


@pytest.fixture
def central(central_factory: Callable[..., Central]) -> Central:
    return central_factory(auto_ack=True)


@pytest.fixture
def hub_state(tmp_path: Path) -> Path:
    d = tmp_path / "hubstate"
    d.mkdir()
    return d


def start(daemon_factory: Callable[..., Daemon], tmp_path: Path, state: Path,
          broker: MosquittoBroker | None, **kw: Any) -> Daemon:
    cfg = locker_config(tmp_path / "hub.toml", state, broker, **kw)
    return daemon_factory("run", "--config", str(cfg), state_dir=state)


def load(hub: Daemon, central: Central, parcel: str, size: str, **assign: Any) -> tuple[str, dict[str, Any]]:
    """Assign over MQTT, load by scan, close the door; the compartment and the stored event."""
    r = central.command("parcel.assign", {"parcel": parcel, "size": size, **assign})
    assert r["ok"], r
    comp = r["result"]["compartment"]
    assert hub.sim("scanners", "scan", code=f"HA:PCL:{parcel}")["ok"]
    wait_state(hub, comp, "loading", door="open")
    assert hub.sim("lockers", "close", name="bank-a", compartment=comp)["ok"]
    stored = central.wait_for(lambda: [e for e in central.events("parcel.stored")
                                       if e["data"]["parcel"] == parcel], what=f"{parcel} stored")[0]
    wait_state(hub, comp, "occupied", door="closed")
    return comp, stored


def open_and_close(hub: Daemon, comp: str, state_while_open: str) -> None:
    wait_state(hub, comp, state_while_open, door="open")
    assert hub.sim("lockers", "close", name="bank-a", compartment=comp)["ok"]


def test_assign_load_pickup_and_remote_open(central: Central, mqtt_broker: MosquittoBroker,
                                            daemon_factory: Callable[..., Daemon], tmp_path: Path,
                                            hub_state: Path) -> None:
    hub = start(daemon_factory, tmp_path, hub_state, mqtt_broker)
    central.wait_for_state("online")
    comp, stored = load(hub, central, "P-100", "M", expires_at=in_seconds(3600))
    assert comp == "A3"  # smallest free compartment of the size
    code = stored["data"]["pickup_code"]
    assert len(code) == 6 and code.isdigit()
    # A wrong code first: rejected, nothing opens.
    wrong = "000000" if code != "000000" else "111111"
    assert hub.sim("keypads", "code", code=wrong)["ok"]
    central.wait_for_events(1, kind="locker.code_rejected")
    assert compartment(hub, comp)["state"] == "occupied"
    # The customer types the code: the right door opens, closing it completes the pickup.
    assert hub.sim("keypads", "code", code=code)["ok"]
    open_and_close(hub, comp, "picking")
    picked = central.wait_for_events(1, kind="parcel.picked_up")[0]["data"]
    assert picked["parcel"] == "P-100" and picked["compartment"] == comp
    wait_state(hub, comp, "free", door="closed")
    # Central opens a compartment remotely, with a reason.
    r = central.command("locker.open", {"bank": "bank-a", "compartment": "A1", "reason": "courier stuck"},
                        id="open-1")
    assert r["ok"], r
    open_and_close(hub, "A1", "opening")
    central.wait_for(lambda: central.events("locker.closed"), what="locker.closed")
    opened = central.events("locker.opened")
    assert [e["data"]["purpose"] for e in opened] == ["load", "pickup", "remote"]
    remote = opened[-1]["data"]
    assert remote["command"] == "open-1" and remote["reason"] == "courier stuck"
    # The audit trail has every release and pulse; the code is in no log, status or audit row.
    assert [a["kind"] for a in audit(hub_state, "pulse")] == ["pulse"] * 3
    assert code not in json.dumps(audit(hub_state)) and code not in json.dumps(hub.status())
    assert code not in hub.log_path.read_text(errors="replace")  # the whole log, at debug level
    assert central.violations() == []
    assert hub.terminate() == 0


def test_expiry_staff_retrieval_and_return_dropoff(central: Central, mqtt_broker: MosquittoBroker,
                                                   daemon_factory: Callable[..., Daemon], tmp_path: Path,
                                                   hub_state: Path) -> None:
    hub = start(daemon_factory, tmp_path, hub_state, mqtt_broker)
    central.wait_for_state("online")
    assert central.command("staff.set", {"staff": "S-7", "code": "2468 0", "badge": "b7-Qx93"})["ok"]
    comp, stored = load(hub, central, "P-200", "S", expires_at=in_seconds(2.5))
    expired = central.wait_for_events(1, timeout=20, kind="parcel.expired")[0]["data"]
    assert expired["parcel"] == "P-200" and expired["stage"] == "stored"
    wait_state(hub, comp, "expired")
    # The customer's code no longer opens anything.
    hub.sim("keypads", "code", code=stored["data"]["pickup_code"])
    central.wait_for(lambda: central.events("locker.code_rejected"), what="rejected")
    # Staff take it out with their keypad code.
    hub.sim("keypads", "code", code="24680")
    open_and_close(hub, comp, "retrieving")
    retrieved = central.wait_for_events(1, kind="parcel.retrieved")[0]["data"]
    assert retrieved == {**retrieved, "parcel": "P-200", "staff": "S-7", "compartment": comp}
    wait_state(hub, comp, "free")
    # A return: its code opens an empty compartment of the right size.
    assert central.command("return.expect", {"return": "R-1", "size": "L", "code": "135790"})["ok"]
    hub.sim("keypads", "code", code="135790")
    open_and_close(hub, "A5", "returning")
    dropped = central.wait_for_events(1, kind="return.dropped")[0]["data"]
    assert dropped["return"] == "R-1" and dropped["compartment"] == "A5"
    wait_state(hub, "A5", "returned")
    # Staff sign in on the scanner and scan an expired parcel's label to retrieve it.
    load(hub, central, "P-201", "M", expires_at=in_seconds(2.0))
    central.wait_for(lambda: [e for e in central.events("parcel.expired") if e["data"]["parcel"] == "P-201"],
                     timeout=20, what="P-201 expired")
    hub.sim("scanners", "scan", code="HA:STAFF:b7-Qx93")
    hub.sim("scanners", "scan", code="HA:PCL:P-201")
    open_and_close(hub, "A3", "retrieving")
    assert central.wait_for_events(2, kind="parcel.retrieved")[-1]["data"]["parcel"] == "P-201"
    # The dropped return is collected with the staff code.
    hub.sim("keypads", "code", code="24680")
    open_and_close(hub, "A5", "retrieving")
    assert central.wait_for_events(1, kind="return.collected")[0]["data"]["return"] == "R-1"
    assert central.violations() == []


def test_alarms_raise_and_clear_the_hub_alert(central: Central, mqtt_broker: MosquittoBroker,
                                              daemon_factory: Callable[..., Daemon], tmp_path: Path,
                                              hub_state: Path) -> None:
    hub = start(daemon_factory, tmp_path, hub_state, mqtt_broker, door_limit=1.0)
    central.wait_for_state("online")

    def alarms(kind: str) -> list[dict[str, Any]]:
        return [e["data"] for e in central.events("locker.alarm") if e["data"]["kind"] == kind]

    # Door left open past the limit.
    assert central.command("locker.open", {"bank": "bank-a", "compartment": "A1", "reason": "audit"})["ok"]
    central.wait_for(lambda: alarms("door_open_too_long"), what="door_open_too_long")
    assert "locker:bank-a/A1" in central.wait_for_state("alert")["alerts"]
    hub.sim("lockers", "close", name="bank-a", compartment="A1")
    central.wait_for(lambda: central.events("locker.alarm_cleared"), what="alarm cleared")
    central.wait_for_state("online")
    # Forced open: faults the compartment until central clears it.
    assert hub.sim("lockers", "open", name="bank-a", compartment="A6")["result"]["forced"] is True
    central.wait_for(lambda: alarms("forced_open"), what="forced_open")
    central.wait_for_state("alert")
    hub.sim("lockers", "close", name="bank-a", compartment="A6")
    wait_until(lambda: compartment(hub, "A6")["door"] == "closed", 15.0, "A6 closed", interval=0.05)
    assert compartment(hub, "A6")["fault"] == "forced_open"
    assert central.command("locker.clear_fault", {"bank": "bank-a", "compartment": "A6"})["ok"]
    central.wait_for_state("online")
    # A jammed lock: the door never moves, lock_failed is raised and the release undone.
    hub.sim("lockers", "jam", name="bank-a", compartment="A2")
    assert central.command("locker.open", {"bank": "bank-a", "compartment": "A2", "reason": "test"})["ok"]
    failed = central.wait_for(lambda: alarms("lock_failed"), what="lock_failed")[0]
    assert failed["compartment"] == "A2"
    central.wait_for_state("alert")
    assert compartment(hub, "A2") == {**compartment(hub, "A2"), "state": "free", "fault": "lock_failed"}
    # The retained state is what a central connecting now sees.
    late = Central("127.0.0.1", mqtt_broker.port, HUB).connect()
    try:
        assert late.wait_for_state("alert")["alerts"] == ["locker:bank-a/A2"]
    finally:
        late.close()
    assert central.violations() == []


def test_pickup_with_the_broker_down(central: Central, mqtt_broker: MosquittoBroker,
                                     daemon_factory: Callable[..., Daemon], tmp_path: Path,
                                     hub_state: Path) -> None:
    hub = start(daemon_factory, tmp_path, hub_state, mqtt_broker)
    central.wait_for_state("online")
    comp, stored = load(hub, central, "P-300", "L")
    before = central.gap_free_upto()
    mqtt_broker.stop()
    hub.sim("keypads", "code", code=stored["data"]["pickup_code"])
    open_and_close(hub, comp, "picking")
    wait_state(hub, comp, "free", door="closed")  # the pickup completed offline
    mqtt_broker.start()
    picked = central.wait_for_events(1, timeout=30, kind="parcel.picked_up")[0]
    assert picked["data"]["parcel"] == "P-300" and picked["seq"] > before
    last = hub.status()["last_seq"]
    central.wait_for(lambda: central.gap_free_upto() >= last, timeout=30, what="every event")
    assert central.seqs()[:last] == list(range(1, last + 1))
    assert central.violations() == []


def test_locker_open_repeated_late_and_reordered(central: Central, mqtt_broker: MosquittoBroker,
                                                 daemon_factory: Callable[..., Daemon], tmp_path: Path,
                                                 hub_state: Path) -> None:
    hub = start(daemon_factory, tmp_path, hub_state, mqtt_broker)
    central.wait_for_state("online")
    args = {"bank": "bank-a", "compartment": "A1", "reason": "x"}
    first = central.command("locker.open", args, id="same")
    again = [central.command("locker.open", args, id="same") for _ in range(2)]
    assert first["ok"] and all(r["duplicate"] and r["result"] == first["result"] for r in again)
    open_and_close(hub, "A1", "opening")
    wait_state(hub, "A1", "free", door="closed")
    # Reordered: r2 before r1, then both again.
    for cid, comp in (("r2", "A4"), ("r1", "A3"), ("r2", "A4"), ("r1", "A3")):
        assert central.command("locker.open", {**args, "compartment": comp}, id=cid)["ok"]
    for comp in ("A3", "A4"):
        open_and_close(hub, comp, "opening")
        wait_state(hub, comp, "free", door="closed")
    # Late: sent while the hub is down with a 1 s expiry; it never runs.
    assert hub.terminate() == 0
    central.send_raw(f"hubs/{HUB}/cmd/locker.open",
                     json.dumps({"id": "late", **args, "compartment": "A2"}).encode(),
                     properties=_expiry(1))
    central.send_raw(f"hubs/{HUB}/cmd/locker.open",
                     json.dumps({"id": "queued", **args, "compartment": "A6"}).encode())
    time.sleep(2.5)
    hub2 = daemon_factory("run", "--config", str(tmp_path / "hub.toml"), state_dir=hub_state)
    open_and_close(hub2, "A6", "opening")
    wait_state(hub2, "A6", "free", door="closed")
    pulses = [a["ref"] for a in audit(hub_state, "pulse")]
    assert sorted(pulses) == ["queued", "r1", "r2", "same"]
    assert "late" not in {a["ref"] for a in audit(hub_state)}
    assert compartment(hub2, "A2")["state"] == "free"
    assert hub2.terminate() == 0


def test_killed_mid_pulse_restarts_de_energised_and_consistent(daemon_factory: Callable[..., Daemon],
                                                               tmp_path: Path, hub_state: Path) -> None:
    hub = start(daemon_factory, tmp_path, hub_state, None, pulse={"A1": 2.5})
    assert hub.command("locker.open", {"id": "k1", "bank": "bank-a", "compartment": "A1",
                                       "reason": "kill test"})["ok"]
    wait_until(lambda: compartment(hub, "A1")["energised"], 15.0, "lock energised", interval=0.05)
    hub.kill()
    hub2 = daemon_factory("run", "--config", str(tmp_path / "hub.toml"), state_dir=hub_state)
    comps = hub2.status()["lockers"]["banks"]["bank-a"]["compartments"]
    assert all(c["energised"] is False for c in comps.values())
    assert all(c["state"] == "free" and c["door"] == "closed" for c in comps.values())
    kinds = [a["kind"] for a in audit(hub_state)]
    assert kinds[:2] == ["release", "pulse"] and "reconciled" in kinds
    shown = hub2.cli("status", "--config", str(tmp_path / "hub.toml"))
    assert shown.returncode == 0 and "bank-a" in shown.stdout and "energised" in shown.stdout
    # Usable again: the same compartment opens for a new command.
    opened = hub2.cli("command", "--config", str(tmp_path / "hub.toml"), "locker.open",
                      '{"bank": "bank-a", "compartment": "A1", "reason": "after restart"}', "--id", "k2")
    assert opened.returncode == 0 and json.loads(opened.stdout)["ok"], opened
    wait_until(lambda: compartment(hub2, "A1")["energised"], 15.0, "lock energised again", interval=0.05)
    assert hub2.terminate() == 0


def _expiry(seconds: int) -> Any:
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties

    props = Properties(PacketTypes.PUBLISH)
    props.MessageExpiryInterval = seconds
    return props
