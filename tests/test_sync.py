"""The hub and central ops over a real Mosquitto broker."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable

import pytest

from central import Central
from fixtures_mqtt import MosquittoBroker
from hubproc import Daemon, mqtt_table

CATALOG = [{"sku": "TEA-1", "name": "Green tea", "gtins": ["04006381333931"], "price": 3.5, "bin": "A-01"}]


def hub_config(path: Path, state: Path, broker: MosquittoBroker, **mqtt: Any) -> Path:
    lines = ["[hub]", 'id = "hub-1"', f'state_dir = "{state}"', "",
             mqtt_table(broker.port, telemetry_s=1.0, **mqtt)]
    path.write_text("\n".join(lines))
    return path


def start_hub(daemon_factory: Callable[..., Daemon], tmp_path: Path, broker: MosquittoBroker,
              **mqtt: Any) -> Daemon:
    state = tmp_path / "hubstate"
    state.mkdir(exist_ok=True)
    cfg = hub_config(tmp_path / "hub.toml", state, broker, **mqtt)
    return daemon_factory("run", "--config", str(cfg), state_dir=state)


@pytest.mark.parametrize("protocol", ["5", "3.1.1"])
def test_commands_events_acks_and_state(protocol: str, mqtt_broker: MosquittoBroker,
                                        central_factory: Callable[..., Central],
                                        daemon_factory: Callable[..., Daemon], tmp_path: Path) -> None:
    central = central_factory(protocol=protocol)
    hub = start_hub(daemon_factory, tmp_path, mqtt_broker, protocol=protocol)
    central.wait_for_state("online")
    pong = central.command("ping", id="p1")
    assert pong["ok"] and pong["result"]["pong"] is True
    assert central.command("catalog.upsert", {"items": CATALOG}, id="c1")["ok"]
    r = central.command("stock.adjust", {"sku": "TEA-1", "bin": "A-01", "delta": 5, "reason": "delivery"},
                        id="a1")
    assert r["ok"] and r["result"]["on_hand"] == 5
    again = central.command("stock.adjust", {"sku": "TEA-1", "bin": "A-01", "delta": 5, "reason": "delivery"},
                            id="a1")
    assert again["duplicate"] is True and again["result"] == r["result"]
    events = central.wait_for_events(2)
    assert [e["kind"] for e in events] == ["catalog.updated", "stock.moved"]
    assert central.seqs() == [1, 2]
    assert central.wait_for(lambda: central.stock("TEA-1"))["on_hand"] == 5
    central.ack(2)
    st = central.wait_for(lambda: (s := hub.status())["sync"]["acked_seq"] == 2 and s)
    assert st["sync"]["outbox_depth"] == 0
    latest = central.wait_for(
        lambda: [t for t in central.telemetry() if t["counts"]["movements"].get("adjust") == 1])[-1]
    assert latest["sync"]["connected"] is True and latest["sync"]["subscribed"] is True
    assert latest["sync"]["outbox_depth"] == 0
    assert latest["sync"]["oldest_unacked_age_s"] is None  # everything acknowledged
    assert latest["system"]["disk_free_mb"] > 0 and latest["system"]["rss_mb"] > 0
    assert "cpu_temp_c" in latest["system"]  # None where the kernel exposes no sensor
    assert hub.terminate() == 0
    assert central.wait_for_state("offline")["state"] == "offline"


def test_unacked_events_are_resent_and_replay_marks_them(mqtt_broker: MosquittoBroker,
                                                         central_factory: Callable[..., Central],
                                                         daemon_factory: Callable[..., Daemon],
                                                         tmp_path: Path) -> None:
    central = central_factory()
    start_hub(daemon_factory, tmp_path, mqtt_broker)
    central.wait_for_state("online")
    central.command("catalog.upsert", {"items": CATALOG}, id="c1")
    central.wait_for_events(1)
    # No ack: after ack_timeout_s the hub sends it again (central dedups by id).
    central.wait_for(lambda: central.duplicates() >= 1, timeout=15)
    central.ack(1)
    watcher = central_factory()  # a second central-side client sees the replay too
    r = central.command("events.replay", {"from_seq": 1}, id="r1")
    assert r["ok"] and r["result"]["count"] == 1 and r["result"]["to_seq"] == 1
    replayed = watcher.wait_for(lambda: [e for e in watcher.raw_events() if e["replayed"]], timeout=10)
    original = central.events()[0]
    assert replayed[0]["id"] == original["id"] and replayed[0]["at"] == original["at"]


def test_hub_killed_sets_lost_and_expired_commands_never_run(mqtt_broker: MosquittoBroker,
                                                             central_factory: Callable[..., Central],
                                                             daemon_factory: Callable[..., Daemon],
                                                             tmp_path: Path) -> None:
    central = central_factory()
    hub = start_hub(daemon_factory, tmp_path, mqtt_broker)
    central.wait_for_state("online")
    central.command("catalog.upsert", {"items": CATALOG}, id="c1")
    hub.kill()
    central.wait_for_state("lost", timeout=60)
    # Queued for the hub's persistent session, but expires before it returns.
    central.send_raw("hubs/hub-1/cmd/stock.adjust",
                     b'{"id": "late", "sku": "TEA-1", "bin": "A-01", "delta": 9, "reason": "x"}',
                     properties=_expiry(1))
    central.send_raw("hubs/hub-1/cmd/stock.adjust",
                     b'{"id": "queued", "sku": "TEA-1", "bin": "A-01", "delta": 1, "reason": "x"}')
    time.sleep(2.5)
    hub2 = daemon_factory("run", "--config", str(tmp_path / "hub.toml"), state_dir=hub.state_dir)
    central.wait_for_state("online")
    stock = central.wait_for(lambda: (s := central.stock("TEA-1")) and s["on_hand"] == 1 and s)
    assert stock["on_hand"] == 1  # the queued command ran once; the expired one never
    assert hub2.terminate() == 0


def _expiry(seconds: int) -> Any:
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties

    props = Properties(PacketTypes.PUBLISH)
    props.MessageExpiryInterval = seconds
    return props
