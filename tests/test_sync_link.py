"""The MQTT link: reconnecting after an outage, malformed command topics, paced replays.

Against a real Mosquitto and the real daemon, except where a test says it
runs the link in-process.
"""

from __future__ import annotations

import json
import random
import socket
import statistics
import time
from pathlib import Path
from typing import Any, Callable

import pytest

from central import Central
from fixtures_mqtt import MakeBroker, MosquittoBroker
from hubproc import Daemon, wait_until
from test_sync_faults import HUB, start_hub, write_config

# The promise: reconnected within this long after the broker is back.
RECONNECT_BOUND_S = 2.0


# -- reconnecting ---------------------------------------------------------------------


def _time_to_reconnect(hub: Daemon, broker: MosquittoBroker, outage_s: float) -> float:
    """Stop the broker for ``outage_s`` (real time: it is another process), start it,
    and return the seconds from starting it until the hub reports itself connected."""
    broker.stop()
    wait_until(lambda: not hub.status()["sync"]["connected"], 20, "the hub to notice")
    time.sleep(outage_s)  # the outage itself: an external process stays down
    # Timed from before the start: the broker's own start-up time counts
    # against the hub, so the figure is an upper bound.
    started = time.monotonic()
    broker.start()
    while not hub.status()["sync"]["connected"]:
        if time.monotonic() - started > 30:
            raise AssertionError("the hub did not reconnect within 30 s")
        time.sleep(0.01)
    return time.monotonic() - started


def test_reconnect_after_a_broker_restart_is_quick_whatever_the_outage(
        mqtt_broker: MosquittoBroker, daemon_factory: Callable[..., Daemon],
        tmp_path: Path) -> None:
    # The shipped reconnect defaults (reconnect_min_s / reconnect_max_s unset).
    state = tmp_path / "hubstate"
    state.mkdir()
    cfg = tmp_path / "hub.toml"
    cfg.write_text(f'[hub]\nid = "{HUB}"\nstate_dir = "{state}"\n\n'
                   f'[mqtt]\nhost = "127.0.0.1"\nport = {mqtt_broker.port}\n')
    hub = daemon_factory("run", "--config", str(cfg), state_dir=state)
    wait_until(lambda: hub.status()["sync"]["connected"], 20, "the first connect")
    figures = {outage: _time_to_reconnect(hub, mqtt_broker, outage) for outage in (0.5, 3.0, 10.0)}
    print("time to reconnect after a broker restart: " + ", ".join(
        f"{t:.2f} s after a {outage:g} s outage" for outage, t in figures.items()))
    assert all(t < RECONNECT_BOUND_S for t in figures.values()), figures
    assert hub.status()["sync"]["reconnects"] == 3
    assert hub.terminate() == 0


def test_backoff_is_capped_and_jittered() -> None:
    from hubagent.sync.netloop import Backoff

    b = Backoff(0.5, 1.5, random.Random(7))
    delays = [b.next() for _ in range(2000)]
    assert 0.25 <= delays[0] <= 0.5 and 0.5 <= delays[1] <= 1.0
    steady = delays[3:]
    assert max(steady) <= 1.5 and min(steady) >= 0.75
    assert len({round(d, 3) for d in steady}) > 500  # spread, not one synchronised instant
    # A broker back at a random instant waits, on average, E[X^2] / (2 E[X])
    # for the next attempt: 7/18 of the cap for delays uniform in [cap/2, cap].
    mean = statistics.fmean(steady)
    residual = statistics.fmean(d * d for d in steady) / (2 * mean)
    assert abs(residual - 7 / 18 * 1.5) < 0.02
    b.reset()
    assert b.next() <= 0.5


def test_the_hub_socket_has_nagle_off(mqtt_broker: MosquittoBroker) -> None:
    """In-process: the link's own socket, as paho opened it."""
    from hubagent.clock import LoopClock
    from hubagent.config import from_dict
    from hubagent.sync.mqtt import LinkListener, MqttLink

    cfg = from_dict({"hub": {"id": HUB, "state_dir": "/nonexistent"},
                     "mqtt": {"host": "127.0.0.1", "port": mqtt_broker.port}})
    assert cfg.mqtt is not None
    link = MqttLink(cfg.mqtt, "nodelay-test", None, ("t/state", b"lost"), lambda fn: None,
                    LinkListener(), event_topic=lambda kind: f"t/events/{kind}", clock=LoopClock())
    link.start()
    try:
        wait_until(lambda: link.connected, 10, "the link to connect")
        sock = link.client.socket()
        assert sock is not None
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1
    finally:
        link.stop()


# -- every command topic gets a reply -------------------------------------------------


@pytest.mark.parametrize("protocol", ["5", "3.1.1"])
def test_malformed_command_topics_get_an_error_reply(
        protocol: str, mqtt_broker: MosquittoBroker, central_factory: Callable[..., Central],
        daemon_factory: Callable[..., Daemon], tmp_path: Path) -> None:
    central = central_factory(protocol=protocol)
    hub = start_hub(daemon_factory, tmp_path, mqtt_broker, protocol=protocol)
    central.wait_for_state("online")
    wait_until(lambda: hub.status()["sync"]["subscribed"], 20, "the hub's subscriptions")
    base = f"hubs/{HUB}/cmd"
    # No response topic: the reply goes to hubs/{hub}/reply.
    for i, topic in enumerate([base, base + "/", base + "/a/b"]):
        cid = f"bad-topic-{i}"
        central.send_raw(topic, json.dumps({"id": cid}).encode())
        reply = central.wait_for(lambda: next((r for r in central.replies()
                                               if isinstance(r, dict) and r.get("id") == cid), None),
                                 timeout=10, what=f"a reply to {topic!r}")
        assert reply["ok"] is False and reply["error"]["code"] == "bad_topic", reply
        assert topic in reply["error"]["message"]
    # A payload without a usable id still gets its reply (id null).
    central.send_raw(base + "/x/y", b"not json")
    central.wait_for(lambda: any(isinstance(r, dict) and r.get("id") is None
                                 and r.get("error", {}).get("code") == "bad_topic"
                                 for r in central.replies()), timeout=10, what="the id-less reply")
    if protocol == "5":
        # With a response topic, the reply goes there with the correlation data.
        for name in ("", "a/b"):
            r = central.command_raw(name, b'{"id": "with-response-topic"}', timeout=10)
            assert r["ok"] is False and r["error"]["code"] == "bad_topic"
    assert central.command("ping", id="still-fine")["ok"]
    assert central.violations() == []
    assert hub.terminate() == 0


# -- events.replay through a broker with default queue limits ---------------------------


def _prefill(state: Path, n: int) -> None:
    """Record ``n`` movements offline, 1,000 per transaction, before the daemon starts."""
    from hubagent.app import build_app
    from hubagent.config import from_dict
    from hubagent.stock import ledger

    app = build_app(from_dict({"hub": {"id": HUB, "state_dir": str(state)}}))
    app.store.open()
    try:
        reply = app.commands.handle("catalog.upsert", json.dumps(
            {"id": "cat", "items": [{"sku": "TEA-1", "name": "tea"}]}).encode())
        assert reply["ok"], reply
        done = 0
        while done < n:
            with app.store.write() as tx:
                for _ in range(min(1000, n - done)):
                    ledger.record(tx, type="adjust", sku="TEA-1", bin="A-01", delta=1,
                                  reason="replay test", actor="test")
                    done += 1
    finally:
        app.store.close()


def test_replay_of_10000_events_to_a_slow_central_loses_nothing(
        make_broker: MakeBroker, central_factory: Callable[..., Central],
        daemon_factory: Callable[..., Daemon], tmp_path: Path) -> None:
    n = 10_000
    broker = make_broker()  # Mosquitto's defaults: max_queued_messages 1000, inflight 20
    assert broker.max_queued_messages == 1000
    state = tmp_path / "hubstate"
    state.mkdir()
    _prefill(state, n)
    last = n + 1  # and the catalog event
    live = central_factory(broker, auto_ack=True)
    cfg = write_config(tmp_path / "hub.toml", state, broker, telemetry_s=3600.0)
    hub = daemon_factory("run", "--config", str(cfg), state_dir=state)
    wait_until(lambda: hub.status()["sync"]["acked_seq"] == last, 120, "the live stream acked")
    live.close()

    # Central lost its copy: a new, slow client pages through the replay.
    slow = central_factory(broker, slow=0.001)
    slow.wait_for_state("online")
    replies: list[dict[str, Any]] = []
    from_seq: int | None = 1
    while from_seq is not None:
        r = slow.command("events.replay", {"from_seq": from_seq}, id=f"replay-{from_seq}",
                         timeout=60)
        assert r["ok"], r
        res = r["result"]
        assert res["from_seq"] == from_seq and res["count"] >= 1 and res["last_seq"] == last
        # The reply comes after the page: every event of it has arrived.
        got = {e["seq"] for e in slow.raw_events() if e["replayed"]}
        assert set(range(from_seq, res["to_seq"] + 1)) <= got
        replies.append(res)
        from_seq = res["next_seq"]
    replayed = [e for e in slow.raw_events() if e["replayed"]]
    assert sorted({e["seq"] for e in replayed}) == list(range(1, last + 1))
    assert len(replies) > 1 and sum(r["count"] for r in replies) == last
    # Each page fits the broker's queue for central: nothing was dropped.
    assert "dropped" not in broker.log_text().lower()
    assert slow.violations() == []
    # The same command again sends its page again (a replay cut off by a
    # disconnect is resumed that way).
    before = len(slow.raw_events())
    again = slow.command("events.replay", {"from_seq": 1}, id="replay-1", timeout=60)
    assert again["result"] == replies[0]
    wait_until(lambda: len(slow.raw_events()) >= before + replies[0]["count"], 30,
               "the repeated page")
    assert hub.terminate() == 0


def test_replay_without_pacing_would_overflow_the_same_broker(
        make_broker: MakeBroker, central_factory: Callable[..., Central]) -> None:
    """The fault the pacing prevents is real: 10,000 QoS 1 publishes handed over at once
    (as the hub did before) to the same slow central through the same broker lose some."""
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    broker = make_broker()
    central_factory(broker, slow=0.001)
    pub = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    pub.connect(broker.host, broker.port)
    pub.loop_start()
    try:
        for seq in range(1, 10_001):
            body = {"id": f"{seq:032x}", "seq": seq, "kind": "stock.moved",
                    "at": "2026-01-01T00:00:00.000Z", "replayed": True, "data": {}}
            pub.publish(f"hubs/{HUB}/events/stock.moved", json.dumps(body), qos=1)
        wait_until(lambda: "dropped" in broker.log_text().lower(), 60,
                   "the broker to drop messages for the slow client")
    finally:
        pub.disconnect()
        pub.loop_stop()
