"""What a customer at the locker is told, end to end: the real daemon, a sim bank on
MockFactory pins, a sim keypad with its own feedback device, a real broker."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import pytest

from central import Central
from fixtures_mqtt import MosquittoBroker
from hubproc import Daemon, wait_until
from test_lockers_e2e import compartment, in_seconds, load, locker_config, wait_state


@pytest.fixture
def central(central_factory: Callable[..., Central]) -> Central:
    return central_factory(auto_ack=True)


def start_with_keypad_feedback(daemon_factory: Callable[..., Daemon], tmp_path: Path,
                               broker: MosquittoBroker | None, **policy: Any) -> tuple[Daemon, Path]:
    state = tmp_path / "hubstate"
    state.mkdir(exist_ok=True)
    cfg = locker_config(tmp_path / "hub.toml", state, broker, **policy)
    text = cfg.read_text().replace('[keypads.front]\ndriver = "sim"\n',
                                   '[keypads.front]\ndriver = "sim"\nfeedback = "door-panel"\n')
    # dedupe off: a token shown twice in a second is refused as used, not as a double read
    cfg.write_text(text + '\n[feedback.door-panel]\ndriver = "sim"\n\n[scanning]\ndedupe_s = 0\n')
    return daemon_factory("run", "--config", str(cfg), state_dir=state), state


def played(hub: Daemon) -> list[dict[str, Any]]:
    """What the keypad's feedback device played, oldest first."""
    reply = hub.sim("feedback", "history", name="door-panel")
    assert reply["ok"], reply
    return reply["result"]["history"]  # type: ignore[no-any-return]


def type_code(hub: Daemon, code: str, count_before: int) -> dict[str, Any]:
    """Type ``code`` on the keypad; the feedback it got."""
    assert hub.sim("keypads", "code", code=code)["ok"]
    return wait_until(lambda: (h := played(hub))[count_before:] and h[-1], 10.0, "keypad feedback",
                      interval=0.05)


def test_keypad_feedback_for_each_outcome(central: Central, mqtt_broker: MosquittoBroker,
                                          daemon_factory: Callable[..., Daemon], tmp_path: Path) -> None:
    hub, _ = start_with_keypad_feedback(daemon_factory, tmp_path, mqtt_broker, max_failures=3,
                                        base_lockout_s=120.0)
    central.wait_for_state("online")
    comp, stored = load(hub, central, "P-300", "S", expires_at=in_seconds(3600))
    code = stored["data"]["pickup_code"]
    # Nothing to open: a live code whose parcel has not been loaded yet.
    r = central.command("parcel.assign", {"parcel": "P-301", "size": "S", "pickup": {"code": "482913"},
                                          "expires_at": in_seconds(3600)})
    assert r["ok"], r
    got = type_code(hub, "482913", 0)
    assert (got["pattern"], got["text"]) == ("nothing", "Nothing to open now")
    # The right code opens the door: "opened", naming the door.
    got = type_code(hub, code, 1)
    assert got["pattern"] == "opened" and comp in got["text"]
    wait_state(hub, comp, "picking", door="open")
    assert hub.sim("lockers", "close", name="bank-a", compartment=comp)["ok"]
    # Wrong codes: "wrong", then the third engages the lock-out: "locked_out" with the wait.
    wrong = "000000" if code != "000000" else "111111"
    assert type_code(hub, wrong, 2)["pattern"] == "wrong"
    assert type_code(hub, wrong, 3)["pattern"] == "wrong"
    engaged = type_code(hub, wrong, 4)
    assert (engaged["pattern"], engaged["repeat"], engaged["text"]) == ("locked_out", 2, "Locked: wait 120 s")
    # While locked out, even a valid code is refused unchecked, with the time left.
    still = type_code(hub, "482913", 5)
    assert still["pattern"] == "locked_out" and still["repeat"] == 2 and "wait 1" in still["text"]
    # Every signal shows in status too, and the rejections reached central with their reasons.
    recent = hub.status()["lockers"]["keypads"]["front"]
    assert recent["feedback"] == "door-panel"
    assert [s["pattern"] for s in recent["recent"]] == ["opened", "wrong", "wrong", "locked_out", "locked_out"]
    reasons = [e["data"]["reason"] for e in central.wait_for(
        lambda: len(central.events("locker.code_rejected")) >= 4 and central.events("locker.code_rejected"),
        what="rejections")]
    assert reasons == ["wrong", "wrong", "wrong", "locked_out"]
    assert compartment(hub, "A2")["state"] == "reserved"  # P-301's compartment never opened
    assert hub.terminate() == 0


def test_keypad_naming_a_missing_feedback_device_is_refused(tmp_path: Path) -> None:
    from hubagent.config import from_dict
    from hubagent.errors import ConfigError
    from test_lockers_flows import config_doc

    doc = config_doc(tmp_path)
    doc["keypads"]["front"]["feedback"] = "nope"
    with pytest.raises(ConfigError, match=r"keypads\.front\.feedback"):
        from_dict(doc)
    doc["feedback"] = {"nope": {"driver": "sim"}}
    assert from_dict(doc).devices_of("keypads")


def test_signed_pickup_token_opens_once_offline_and_each_bad_token_is_refused(
        central: Central, mqtt_broker: MosquittoBroker, daemon_factory: Callable[..., Daemon],
        tmp_path: Path) -> None:
    import base64
    import time

    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from hubagent.lockers.tokens import sign

    central_key, forger = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    public = base64.b64encode(central_key.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw)).decode()
    hub, state = start_with_keypad_feedback(daemon_factory, tmp_path, mqtt_broker, token_public_key=public)
    central.wait_for_state("online")
    comp, _ = load(hub, central, "P-400", "M", expires_at=in_seconds(3600))
    later = int(time.time()) + 3600
    good = sign(central_key, token_id="T-1", parcel="P-400", hub="hub-1", expires=later)
    mqtt_broker.stop()  # offline from here: the hub checks tokens with the key alone

    def scan(code: str) -> None:
        assert hub.sim("scanners", "scan", code=code)["ok"]

    def rejected(n: int) -> list[tuple[str, str | None]]:
        rows = wait_until(lambda: len(r := audit_rows(state, "code_rejected")) >= n and r, 10.0,
                          f"{n} rejections", interval=0.05)
        return [(d["reason"], d.get("token")) for d in rows]

    scan(good)
    wait_state(hub, comp, "picking", door="open")
    assert hub.sim("lockers", "close", name="bank-a", compartment=comp)["ok"]
    wait_state(hub, comp, "free", door="closed")
    # Used once: refused after that. And every other bad token, each with its own reason.
    scan(good)
    scan(sign(central_key, token_id="T-2", parcel="P-400", hub="hub-1", expires=int(time.time()) - 60))
    scan(sign(central_key, token_id="T-3", parcel="P-400", hub="hub-2", expires=later))
    scan(sign(forger, token_id="T-4", parcel="P-400", hub="hub-1", expires=later))
    scan(sign(central_key, token_id="T-5", parcel="P-999", hub="hub-1", expires=later))
    assert rejected(5) == [("token_used", "T-1"), ("token_expired", "T-2"), ("other_hub", "T-3"),
                           ("bad_signature", None), ("unknown_parcel", "T-5")]
    # A token with its payload tampered with (another parcel) fails its signature too.
    payload, sig = good[len("HA:TOK:"):].split(".")
    doc = base64.urlsafe_b64decode(payload + "==").replace(b"P-400", b"P-401")
    scan("HA:TOK:" + base64.urlsafe_b64encode(doc).rstrip(b"=").decode() + "." + sig)
    assert rejected(6)[-1] == ("bad_signature", None)
    assert [a["ref"] for a in audit_rows_raw(state, "token_accepted")] == ["P-400"]
    assert compartment(hub, "A4")["state"] == "free"  # nothing else opened
    # Back online, central hears of the pickup and of every refusal.
    mqtt_broker.start()
    picked = central.wait_for_events(1, timeout=30, kind="parcel.picked_up")[0]["data"]
    assert picked["parcel"] == "P-400" and picked["source"] == "front"
    central.wait_for(lambda: len(central.events("locker.code_rejected")) == 6, timeout=30, what="refusals")
    assert hub.terminate() == 0


def audit_rows_raw(state: Path, kind: str) -> list[dict[str, Any]]:
    from test_lockers_e2e import audit

    return audit(state, kind)


def audit_rows(state: Path, kind: str) -> list[dict[str, Any]]:
    import json

    return [json.loads(r["detail"]) for r in audit_rows_raw(state, kind)]


def test_lost_database_leaves_lockers_unknown_until_central_restores_them(
        central_factory: Callable[..., Central], mqtt_broker: MosquittoBroker,
        daemon_factory: Callable[..., Daemon], tmp_path: Path) -> None:
    import json
    import subprocess
    import sys

    central = central_factory(auto_ack=True)
    hub, state = start_with_keypad_feedback(daemon_factory, tmp_path, mqtt_broker)
    central.wait_for_state("online")
    comp, stored = load(hub, central, "P-500", "M", expires_at=in_seconds(3600))
    code = stored["data"]["pickup_code"]
    snap = central.command("state.snapshot", {})["result"]["lockers"]["compartments"]
    held = [c for c in snap if c["compartment"] == comp][0]
    assert held["state"] == "occupied" and held["parcel"]["id"] == "P-500"
    assert code not in json.dumps(snap) and "hash" not in json.dumps(snap)  # never codes or hashes
    assert hub.terminate() == 0
    # The SD card damages the database: the next start quarantines it (exit 3), the one after starts afresh.
    for side in state.glob("hubagent.db*"):
        side.unlink()
    (state / "hubagent.db").write_bytes(b"PK\x03\x04 not sqlite any more" * 64)
    cfg = tmp_path / "hub.toml"
    assert subprocess.run([sys.executable, "-m", "hubagent", "run", "--config", str(cfg)],
                          capture_output=True, timeout=60).returncode == 3
    central.close()
    central = central_factory(auto_ack=True)  # central sees a new db id: its seq numbers start again
    hub = daemon_factory("run", "--config", str(cfg), state_dir=state)
    # Every compartment is unknown (the sim bank has no occupancy sensors to say "empty").
    wait_until(lambda: all(c["state"] == "unknown" for c in
                           hub.status()["lockers"]["banks"]["bank-a"]["compartments"].values()), 10.0,
               "all compartments unknown")
    assert "lockers:unknown" in hub.status()["alerts"]
    unknown = central.wait_for(lambda: len(central.events("locker.unknown")) == 6 and
                               central.events("locker.unknown"), timeout=30, what="locker.unknown x6")
    assert sorted(e["data"]["compartment"] for e in unknown) == ["A1", "A2", "A3", "A4", "A5", "A6"]
    # Nothing is assigned to them and the customer's code opens nothing.
    r = central.command("parcel.assign", {"parcel": "P-501", "size": "S"})
    assert r["error"]["code"] == "no_compartment", r
    assert hub.sim("keypads", "code", code=code)["ok"]
    wait_until(lambda: played(hub), 10.0, "feedback")
    assert played(hub)[-1]["pattern"] == "wrong"
    assert compartment(hub, comp)["state"] == "unknown" and not compartment(hub, comp)["energised"]
    # Staff look into A1 and find it empty; central restores the rest from its record.
    r = central.command("locker.clear_unknown", {"bank": "bank-a", "compartment": "A1", "staff": "S-7",
                                                 "note": "looked inside: empty"})
    assert r["ok"] and r["result"]["state"] == "free", r
    items: list[dict[str, Any]] = [{"bank": "bank-a", "compartment": c, "contents": "empty"}
                                   for c in ("A1", "A2", "A4", "A5", "A6")]
    items.append({"bank": "bank-a", "compartment": comp, "contents": "parcel", "parcel": "P-500", "size": "M",
                  "expires_at": in_seconds(3600), "pickup": {"code": code}})
    r = central.command("lockers.restore", {"compartments": items})
    assert r["ok"], r
    assert r["result"]["kept"] == [{"bank": "bank-a", "compartment": "A1", "state": "free"}]
    assert {x["compartment"]: x["state"] for x in r["result"]["restored"]} == {
        "A2": "free", "A4": "free", "A5": "free", "A6": "free", comp: "occupied"}
    assert "lockers:unknown" not in hub.status()["alerts"]
    # The customer's code works again, once.
    assert hub.sim("keypads", "code", code=code)["ok"]
    wait_state(hub, comp, "picking", door="open")
    assert hub.sim("lockers", "close", name="bank-a", compartment=comp)["ok"]
    wait_state(hub, comp, "free", door="closed")
    picked = central.wait_for_events(1, timeout=30, kind="parcel.picked_up")[0]["data"]
    assert picked["parcel"] == "P-500"
    assert hub.terminate() == 0
