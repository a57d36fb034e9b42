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
    cfg.write_text(text + '\n[feedback.door-panel]\ndriver = "sim"\n')
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
