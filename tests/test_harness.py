"""Tests of the MQTT test harness itself, against a real Mosquitto broker."""

from __future__ import annotations

import json
import os
import pwd
import signal
import ssl
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import psutil
import pytest
from central import Central, ProtocolViolation
from fixtures_mqtt import BrokerError, MakeBroker, MosquittoBroker, free_port
from hypothesis import HealthCheck, given, settings
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from payload_corpus import (
    CORPUS,
    UNKNOWN_COMMAND,
    Malformed,
    command_problems,
    corpus,
    malformed_payloads,
    wrong_type_variants,
)

pytest_plugins = ["fixtures_mqtt", "pytester"]

HUB = "hub-1"
CONFIG_DIR = Path(__file__).resolve().parent.parent / "config" / "mosquitto"


# -- helpers ---------------------------------------------------------------------


class RawClient:
    """A bare paho client for playing the hub (or an intruder) in tests."""

    def __init__(self, broker: MosquittoBroker, *, v5: bool = True,
                 user: str | None = None, password: str | None = None,
                 client_id: str | None = None, persistent: bool = False) -> None:
        """``persistent``: keep the session (v5 clean start off with an expiry; 3.1.1 clean session off)."""
        self.messages: list[mqtt.MQTTMessage] = []
        self.puback: dict[int, Any] = {}
        self.subacks: dict[int, list[Any]] = {}
        self.cond = threading.Condition()
        self.connack: Any = None
        self.session_present: bool | None = None
        self.disconnects = 0
        proto = mqtt.MQTTv5 if v5 else mqtt.MQTTv311
        extra: dict[str, Any] = {} if v5 else {"clean_session": not persistent}
        # Inbound QoS 1 messages are acknowledged by paho after on_message.
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2,
                                  client_id=client_id or f"raw-{uuid.uuid4()}", protocol=proto,
                                  reconnect_on_failure=False, **extra)
        if user is not None:
            self.client.username_pw_set(user, password)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message
        self.client.on_publish = self._on_publish
        self.client.on_subscribe = self._on_subscribe
        kwargs: dict[str, Any] = {}
        if v5 and persistent:
            props = Properties(PacketTypes.CONNECT)
            props.SessionExpiryInterval = 3600
            kwargs = {"clean_start": False, "properties": props}
        self.client.connect(broker.host, broker.port, **kwargs)
        self.client.loop_start()
        self.wait(lambda: self.connack is not None)

    def _on_subscribe(self, client: mqtt.Client, userdata: Any, mid: int, rcs: Any,
                      props: Any) -> None:
        with self.cond:
            self.subacks[mid] = list(rcs)
            self.cond.notify_all()

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, rc: Any,
                    props: Any) -> None:
        with self.cond:
            self.connack = rc
            self.session_present = bool(flags.session_present)
            self.cond.notify_all()

    def _on_disconnect(self, client: mqtt.Client, userdata: Any, flags: Any, rc: Any,
                       props: Any) -> None:
        with self.cond:
            self.disconnects += 1
            self.cond.notify_all()

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        with self.cond:
            self.messages.append(msg)
            self.cond.notify_all()

    def _on_publish(self, client: mqtt.Client, userdata: Any, mid: int, rc: Any,
                    props: Any) -> None:
        with self.cond:
            self.puback[mid] = rc
            self.cond.notify_all()

    def wait(self, predicate: Any, timeout: float = 10.0) -> None:
        with self.cond:
            assert self.cond.wait_for(predicate, timeout), "timed out"

    def publish(self, topic: str, payload: bytes | str, *, retain: bool = False,
                props: Properties | None = None) -> Any:
        """Publish QoS 1 and return the PUBACK reason code."""
        info = self.client.publish(topic, payload, qos=1, retain=retain, properties=props)
        self.wait(lambda: info.mid in self.puback)
        return self.puback[info.mid]

    def subscribe(self, *topics: str) -> list[Any]:
        """Subscribe at QoS 1, wait for the SUBACK and return its reason codes."""
        _, mid = self.client.subscribe([(t, 1) for t in topics])
        self.wait(lambda: mid in self.subacks)
        return self.subacks[mid]

    def topics(self) -> list[str]:
        with self.cond:
            return [m.topic for m in self.messages]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def envelope(seq: int, kind: str = "scan", event_id: str | None = None,
             **data: Any) -> bytes:
    """A valid event envelope."""
    return json.dumps({"id": event_id or f"ev-{seq}", "seq": seq, "kind": kind,
                       "at": "2026-11-22T14:00:00.123Z", "replayed": False,
                       "data": data}).encode()


class Responder(RawClient):
    """A tiny hub answering commands via the Response Topic, else on hubs/{hub}/reply.

    ``echo`` returns the args and payload size, ``fail`` an error reply,
    ``bad`` a reply that breaks the contract; anything else is unknown.
    """

    def __init__(self, broker: MosquittoBroker, *, v5: bool = True) -> None:
        super().__init__(broker, v5=v5)
        self.v5 = v5
        self.client.on_message = self._answer
        self.subscribe(f"hubs/{HUB}/cmd/#")

    def _answer(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        name = msg.topic.rsplit("/", 1)[1]
        try:
            cmd = json.loads(msg.payload)
            cid = cmd.get("id")
        except ValueError:
            cmd, cid = {}, None
        expiry = getattr(msg.properties, "MessageExpiryInterval", None)
        if name == "echo":
            reply: dict[str, Any] = {"id": cid, "ok": True, "result": {
                "args": {k: v for k, v in cmd.items() if k != "id"},
                "size": len(msg.payload), "expiry": expiry}}
        elif name == "bad":
            reply = {"id": cid, "ok": "yes"}
        elif name == "garbage":
            reply = None
        elif name == "fail":
            reply = {"id": cid, "ok": False, "error": {"code": "E_FAIL", "message": "no"}}
        else:
            reply = {"id": cid, "ok": False,
                     "error": {"code": "unknown_command", "message": name}}
        data = json.dumps(reply).encode() if reply is not None else b"\xff{"
        if self.v5 and hasattr(msg.properties, "ResponseTopic"):
            props = Properties(PacketTypes.PUBLISH)
            props.CorrelationData = msg.properties.CorrelationData
            client.publish(msg.properties.ResponseTopic, data, qos=1, properties=props)
        else:
            client.publish(f"hubs/{HUB}/reply", data, qos=1)


@pytest.fixture
def central(mqtt_broker: MosquittoBroker) -> Iterator[Central]:
    with Central(mqtt_broker.host, mqtt_broker.port, HUB) as c:
        yield c


# -- broker lifecycle ---------------------------------------------------------------


def test_stop_kill_restart_keep_port_and_central_reconnects(mqtt_broker: MosquittoBroker) -> None:
    port = mqtt_broker.port
    with Central(mqtt_broker.host, port, HUB) as c:
        assert c.connect_count == 1
        mqtt_broker.restart()
        assert mqtt_broker.port == port
        c.wait_for(lambda: c.connect_count >= 2 and c.connected, 15, "reconnect after restart")
        old_pid = mqtt_broker.pid
        mqtt_broker.kill()
        assert not mqtt_broker.running and not psutil.pid_exists(old_pid or -1)
        mqtt_broker.start()
        assert mqtt_broker.port == port
        c.wait_for(lambda: c.connect_count >= 3 and c.connected, 15, "reconnect after kill")
        hub = RawClient(mqtt_broker)
        hub.publish(f"hubs/{HUB}/events/scan", envelope(1))
        assert c.wait_for_events(1)[0]["seq"] == 1
        hub.close()
    assert mqtt_broker.url == f"mqtt://127.0.0.1:{port}"


def test_close_leaves_no_process_and_is_idempotent(make_broker: MakeBroker) -> None:
    broker = make_broker()
    pid = broker.pid
    assert pid is not None and psutil.Process(pid).name() == "mosquitto"
    broker.close()
    broker.close()
    assert not psutil.pid_exists(pid)
    with pytest.raises(BrokerError):
        broker.start()


def test_broker_that_dies_on_its_own_is_noticed_and_restartable(
        mqtt_broker: MosquittoBroker) -> None:
    port, pid = mqtt_broker.port, mqtt_broker.pid
    assert pid is not None
    os.kill(pid, signal.SIGKILL)  # as the OOM killer would
    deadline = time.monotonic() + 10
    while mqtt_broker.running and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not mqtt_broker.running and mqtt_broker.pid is None
    mqtt_broker.start()
    assert mqtt_broker.running and mqtt_broker.port == port and mqtt_broker.pid != pid


def test_bad_config_fails_with_the_broker_log(make_broker: MakeBroker) -> None:
    broker = make_broker(start=False, extra_conf=["no_such_option 1"])
    with pytest.raises(BrokerError, match="no_such_option"):
        broker.start(timeout=5)
    assert not broker.running


def test_failing_test_report_shows_the_broker_log(pytester: pytest.Pytester) -> None:
    pytester.makeconftest('pytest_plugins = ["fixtures_mqtt"]')
    pytester.makepyfile("def test_fails(mqtt_broker):\n    assert mqtt_broker.port < 0\n")
    result = pytester.runpytest_inprocess("-p", "no:cacheprovider")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*mosquitto log (*)*", "*mosquitto version * running*"])
    assert not [p for p in psutil.process_iter(["name", "ppid"])
                if p.info["name"] == "mosquitto" and p.info["ppid"] == os.getpid()]


@pytest.mark.parametrize("persistence", [False, True])
def test_retained_messages_survive_restart_only_with_persistence(
        make_broker: MakeBroker, persistence: bool) -> None:
    broker = make_broker(persistence=persistence)
    hub = RawClient(broker)
    hub.publish(f"hubs/{HUB}/state", b'{"state": "online", "session": 1}', retain=True)
    hub.close()
    broker.restart()
    with Central(broker.host, broker.port, HUB) as c:
        if persistence:
            assert c.wait_for_state("online")["session"] == 1
        else:
            # Retained messages arrive on subscribing, so before this one.
            c.send_raw(f"hubs/{HUB}/telemetry", b'{"cpu": 1}')
            c.wait_for(c.telemetry)
            assert c.state() is None


def test_tiny_queue_and_slow_subscriber_really_drop_messages(make_broker: MakeBroker) -> None:
    """The broker behaviour hubs must survive: QoS 1 messages to a slow client are dropped."""
    broker = make_broker(max_queued_messages=5)
    with Central(broker.host, broker.port, HUB, slow=0.05, receive_maximum=1) as c:
        hub = RawClient(broker)
        for seq in range(1, 101):
            hub.publish(f"hubs/{HUB}/events/scan", envelope(seq))
        c.slow = 0
        # A sentinel, repeated until it gets through the (by now draining) queue.
        for attempt in range(20):
            hub.publish(f"hubs/{HUB}/events/scan", envelope(1000 + attempt))
            try:
                c.wait_for(lambda: any(s >= 1000 for s in c.seqs()), 1.0)
                break
            except TimeoutError:
                continue
        received = [s for s in c.seqs() if s < 1000]
        hub.close()
    assert 1 <= len(received) < 100
    assert received == list(range(1, len(received) + 1))  # the queue drops the newest
    assert "Outgoing messages are being dropped" in broker.log_text()


# -- authentication and the example ACL ---------------------------------------------------


@pytest.fixture
def secured(make_broker: MakeBroker) -> MosquittoBroker:
    users = {"hub-7": "pw7", "hub-8": "pw8", "central": "pwc"}
    return make_broker(users=users, acl=(CONFIG_DIR / "acl").read_text())


def test_anonymous_and_wrong_password_are_refused(secured: MosquittoBroker) -> None:
    assert RawClient(secured).connack.is_failure
    assert RawClient(secured, user="hub-7", password="pw8").connack.is_failure


def test_acl_confines_a_hub_to_its_own_subtree(secured: MosquittoBroker) -> None:
    central = RawClient(secured, user="central", password="pwc")
    central.subscribe("#")
    hub = RawClient(secured, user="hub-7", password="pw7")
    hub.subscribe("hubs/hub-7/cmd/#", "hubs/hub-7/ack", "hubs/hub-8/#", "hubs/hub-7/state")
    other = RawClient(secured, user="hub-8", password="pw8")
    other.subscribe("hubs/hub-8/cmd/#")
    for topic in ("hubs/hub-7/state", "hubs/hub-7/events/scan", "hubs/hub-7/stock/A1",
                  "hubs/hub-7/telemetry", "hubs/hub-7/reply", "central/replies/hub-7/c1"):
        assert not hub.publish(topic, b"{}").is_failure, topic
    for topic in ("hubs/hub-7/cmd/reboot", "hubs/hub-7/ack", "hubs/hub-8/events/scan",
                  "hubs/hub-7/other", "central/replies/hub-8"):
        assert hub.publish(topic, b"{}").is_failure, topic
    for topic in ("hubs/hub-7/cmd/ping", "hubs/hub-7/ack", "hubs/hub-8/cmd/ping",
                  "hubs/hub-7/state"):
        assert not central.publish(topic, b"{}").is_failure
    hub.wait(lambda: {"hubs/hub-7/cmd/ping", "hubs/hub-7/ack"} <= set(hub.topics()))
    other.wait(lambda: "hubs/hub-8/cmd/ping" in other.topics())
    central.wait(lambda: "central/replies/hub-7/c1" in central.topics())
    # The hub can read neither the other hub's commands nor its own state.
    assert {"hubs/hub-8/cmd/ping", "hubs/hub-7/state"}.isdisjoint(hub.topics())
    assert "hubs/hub-8/events/scan" not in central.topics()
    with Central.on(secured, "hub-7", username="central", password="pwc") as c:
        hub.publish("hubs/hub-7/events/scan", envelope(1))
        assert c.wait_for_events(1)[0]["id"] == "ev-1"


def production_broker(make_broker: MakeBroker, tmp_path: Path,
                      users: dict[str, str]) -> tuple[MosquittoBroker, Path, int]:
    """Mosquitto running the shipped config/mosquitto/ as is, but for host paths and ports.

    Returns the broker (its ``port`` is the plain loopback listener the
    harness probes for readiness), the certificate folder and the TLS port.
    """
    certs = tmp_path / "certs"
    certs.mkdir()
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(certs / "server.key"), "-out", str(certs / "server.crt")],
                   check=True, capture_output=True, timeout=30)
    (certs / "ca.crt").write_bytes((certs / "server.crt").read_bytes())
    tls_port = free_port()
    conf = (CONFIG_DIR / "hubagent.conf").read_text()
    conf = (conf.replace("listener 8883", f"listener {tls_port}")
            .replace("listener 1883 127.0.0.1", "listener {port} 127.0.0.1")
            .replace("/etc/mosquitto/certs/", f"{certs}/")
            .replace("/etc/mosquitto/", "{workdir}/")
            .replace("/var/lib/mosquitto/", "{workdir}/")
            .replace("log_dest syslog", "log_dest file {workdir}/mosquitto.log"))
    conf += f"user {pwd.getpwuid(os.getuid()).pw_name}\n"  # see MosquittoBroker
    broker = make_broker(start=False, users=users, acl=(CONFIG_DIR / "acl").read_text(),
                         config=conf)
    return broker.start(), certs, tls_port


def test_production_config_starts_with_tls_and_refuses_anonymous(
        make_broker: MakeBroker, tmp_path: Path) -> None:
    broker, certs, tls_port = production_broker(make_broker, tmp_path, {"central": "pwc"})
    assert RawClient(broker).connack.is_failure  # anonymous, plain loopback
    assert "set_tcp_nodelay true" in broker.config_text()
    c = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    c.tls_set(ca_certs=str(certs / "ca.crt"), cert_reqs=ssl.CERT_REQUIRED)
    c.username_pw_set("central", "pwc")
    connected = threading.Event()
    c.on_connect = lambda cl, u, f, rc, p: connected.set() if not rc.is_failure else None
    c.connect("127.0.0.1", tls_port)
    c.loop_start()
    try:
        assert connected.wait(10), broker.log_tail()
    finally:
        c.disconnect()
        c.loop_stop()


HUB_A, HUB_B = "hub-7", "hub-8"
A_ID = f"hubagent-{HUB_A}"  # hub A's client id, as hubagent makes it
TAKEOVER_USERS = {HUB_A: "pw7", HUB_B: "pw8", "central": "pwc"}


@pytest.mark.parametrize("v5", [True, False], ids=["v5", "v311"])
def test_one_hubs_credentials_cannot_take_over_another_hubs_session(
        make_broker: MakeBroker, tmp_path: Path, v5: bool) -> None:
    broker, _, _ = production_broker(make_broker, tmp_path, TAKEOVER_USERS)
    central = RawClient(broker, v5=v5, user="central", password="pwc")
    central.subscribe("hubs/#")
    # Hub A makes its persistent session, subscribes and goes offline.
    hub_a = RawClient(broker, v5=v5, user=HUB_A, password="pw7", client_id=A_ID, persistent=True)
    hub_a.subscribe(f"hubs/{HUB_A}/cmd/#")
    hub_a.close()
    for n in range(3):
        assert not central.publish(f"hubs/{HUB_A}/cmd/ping", f'{{"id": "c{n}"}}').is_failure
    # Hub B's credentials with hub A's client id: a session of B's own, never A's.
    intruder = RawClient(broker, v5=v5, user=HUB_B, password="pw8", client_id=A_ID,
                         persistent=True)
    assert not intruder.connack.is_failure and intruder.session_present is False
    # Mosquitto 2.0 grants any subscription and applies the ACL to each delivery.
    intruder.subscribe(f"hubs/{HUB_A}/cmd/#", f"hubs/{HUB_A}/ack")
    rc = intruder.publish(f"hubs/{HUB_A}/events/scan", envelope(1))
    assert rc.is_failure if v5 else True  # 3.1.1 PUBACKs a denied publish: central must not see it
    assert not central.publish(f"hubs/{HUB_A}/cmd/ping", b'{"id": "c3"}').is_failure
    # Hub A comes back: its session and all four queued commands are still there.
    hub_a = RawClient(broker, v5=v5, user=HUB_A, password="pw7", client_id=A_ID, persistent=True)
    assert hub_a.session_present is True
    hub_a.wait(lambda: len(hub_a.topics()) == 4)
    assert sorted(json.loads(m.payload)["id"] for m in hub_a.messages) == ["c0", "c1", "c2", "c3"]
    # While hub A is online, the intruder connecting again does not knock it off.
    intruder.close()
    again = RawClient(broker, v5=v5, user=HUB_B, password="pw8", client_id=A_ID)
    central.publish(f"hubs/{HUB_A}/cmd/ping", b'{"id": "c4"}')
    hub_a.wait(lambda: len(hub_a.topics()) == 5)
    assert hub_a.disconnects == 0 and intruder.topics() == [] and again.topics() == []
    assert f"hubs/{HUB_A}/events/scan" not in central.topics()
    for client in (again, hub_a, central):
        client.close()


def test_without_username_as_clientid_the_takeover_works(make_broker: MakeBroker,
                                                          tmp_path: Path) -> None:
    """What the shipped setting prevents (so the test above can fail)."""
    broker, _, _ = production_broker(make_broker, tmp_path, TAKEOVER_USERS)
    broker.config = (broker.config or "").replace("use_username_as_clientid true", "")
    broker.restart()
    hub_a = RawClient(broker, user=HUB_A, password="pw7", client_id=A_ID, persistent=True)
    hub_a.subscribe(f"hubs/{HUB_A}/cmd/#")
    intruder = RawClient(broker, user=HUB_B, password="pw8", client_id=A_ID, persistent=True)
    assert intruder.session_present is True  # hub A's session, now the intruder's
    hub_a.wait(lambda: hub_a.disconnects > 0)
    intruder.close()


# -- Central ---------------------------------------------------------------------


@pytest.mark.parametrize("v5", [True, False], ids=["v5", "v311"])
def test_command_round_trip(mqtt_broker: MosquittoBroker, v5: bool) -> None:
    responder = Responder(mqtt_broker, v5=v5)
    with Central.on(mqtt_broker, HUB, protocol="5" if v5 else "3.1.1") as c:
        reply = c.command("echo", {"sku": "A1", "qty": 2}, id="cmd-1")
        assert reply["id"] == "cmd-1" and reply["ok"] is True
        assert reply["result"]["args"] == {"sku": "A1", "qty": 2}
        failed = c.command("fail")
        assert failed["ok"] is False and failed["error"]["code"] == "E_FAIL"
        with pytest.raises(ProtocolViolation, match="ok must be true or false"):
            c.command("bad")
        if v5:  # (an unparsable 3.1.1 reply has no id to match: just a timeout)
            with pytest.raises(ProtocolViolation, match="not UTF-8 JSON"):
                c.command("garbage")
        assert [w for w, _ in c.violations()] == ["reply"] * (2 if v5 else 1)
        if v5:
            expiring = c.command("echo", expiry=30)
            assert 0 < expiring["result"]["expiry"] <= 30
            # Without a Response Topic a hub may fall back to the 3.1.1 reply topic.
            c.send_raw(f"hubs/{HUB}/cmd/fail", b'{"id": "raw-1"}')
            c.wait_for(lambda: any(r and r.get("id") == "raw-1" for r in c.replies()))
        else:
            with pytest.raises(ValueError):
                c.command("echo", expiry=30)
        assert len(c.violations()) == (2 if v5 else 1)
    responder.close()


def test_command_raw_delivers_malformed_bytes_and_gets_the_reply(
        mqtt_broker: MosquittoBroker) -> None:
    responder = Responder(mqtt_broker)
    with Central(mqtt_broker.host, mqtt_broker.port, HUB) as c:
        big = corpus("too_large")[0]
        assert c.command_raw("echo", big)["result"]["size"] == len(big) > 1 << 20
        odd = corpus("not_utf8")[0]
        assert c.command_raw("echo", odd)["result"]["size"] == len(odd)
        unknown = corpus("unknown_command")[0]
        reply = c.command_raw(unknown.command or "", unknown)
        assert reply == {"id": unknown.id, "ok": False,
                         "error": {"code": "unknown_command", "message": UNKNOWN_COMMAND}}
    responder.close()


def test_command_without_responder_times_out(central: Central) -> None:
    with pytest.raises(TimeoutError, match="no reply to ping"):
        central.command("ping", timeout=0.3)


def test_events_dedup_order_and_violations(mqtt_broker: MosquittoBroker,
                                           central: Central) -> None:
    hub = RawClient(mqtt_broker)
    for seq in (3, 1, 2):
        hub.publish(f"hubs/{HUB}/events/scan", envelope(seq, code="0123"))
    hub.publish(f"hubs/{HUB}/events/scan", envelope(1, code="0123").replace(
        b'"replayed": false', b'"replayed": true'))  # a replay
    hub.publish(f"hubs/{HUB}/events/scan", envelope(2, code="9999"))  # same id, new data
    hub.publish(f"hubs/{HUB}/events/door", envelope(4, kind="door", locker=3))
    hub.publish(f"hubs/{HUB}/events/door", envelope(5, kind="scan"))  # kind mismatch
    hub.publish(f"hubs/{HUB}/events/door", b"\xffnot json")
    events = central.wait_for_events(5)
    assert [e["seq"] for e in events] == [1, 2, 3, 4, 5] == central.seqs()
    assert [e["seq"] for e in central.events("door")] == [4]
    central.wait_for(lambda: len(central.violations()) >= 3)
    assert central.duplicates() == 2
    assert [e["seq"] for e in central.replayed_events()] == [1]
    assert not central.events()[0]["replayed"]  # the first delivery is what counts
    assert len(central.raw_events()) == 7
    assert central.gap_free_upto() == 5
    wheres = [w for w, _ in central.violations()]
    assert wheres == ["events", "events/door", "events/door"]
    with pytest.raises(TimeoutError, match="9 events"):
        central.wait_for_events(9, timeout=0.2)
    hub.close()


def test_state_stock_and_telemetry(mqtt_broker: MosquittoBroker) -> None:
    hub = RawClient(mqtt_broker)
    hub.publish(f"hubs/{HUB}/state", b'{"state": "online", "session": 4, "version": "1"}',
                retain=True)
    hub.publish(f"hubs/{HUB}/stock/SKU-1", b'{"on_hand": 7}', retain=True)
    with Central(mqtt_broker.host, mqtt_broker.port, HUB) as c:
        assert c.wait_for_state("online")["session"] == 4
        c.wait_for(lambda: c.stock("SKU-1"))
        assert c.stock("SKU-1") == {"on_hand": 7}
        hub.publish(f"hubs/{HUB}/stock/SKU-1", b"", retain=True)
        hub.publish(f"hubs/{HUB}/telemetry", b'{"cpu_pct": 12}')
        c.wait_for(c.telemetry)
        assert c.stock_all() == {} and c.telemetry() == [{"cpu_pct": 12}]
        hub.publish(f"hubs/{HUB}/state", b'{"state": "sleeping", "session": 4}')
        hub.publish(f"hubs/{HUB}/state", b'{"state": "lost", "session": 4}')
        c.wait_for_state("lost")
        assert c.states() == ["online", "lost"]
        assert [w for w, _ in c.violations()] == ["state"]
    hub.close()


def test_ack_and_auto_ack_gap_free(mqtt_broker: MosquittoBroker) -> None:
    hub = RawClient(mqtt_broker)
    hub.subscribe(f"hubs/{HUB}/ack")

    def acks() -> list[int]:
        with hub.cond:
            return [json.loads(m.payload)["upto_seq"] for m in hub.messages]

    with Central(mqtt_broker.host, mqtt_broker.port, HUB, auto_ack=True, ack_delay=0.05) as c:
        for seq in (1, 2, 3, 5):
            hub.publish(f"hubs/{HUB}/events/scan", envelope(seq))
        hub.wait(lambda: 3 in acks())
        assert max(acks()) == 3 and c.acked() == 3
        hub.publish(f"hubs/{HUB}/events/scan", envelope(4))
        hub.wait(lambda: 5 in acks())
        before = len(acks())
        hub.publish(f"hubs/{HUB}/events/scan", envelope(2))  # a resend: re-ack
        hub.wait(lambda: len(acks()) > before)
        assert acks()[-1] == 5
        c.ack(9)
        hub.wait(lambda: 9 in acks())
    hub.close()


def test_central_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError):
        Central("127.0.0.1", 1, "hubs/+")
    with pytest.raises(ValueError):
        Central("127.0.0.1", 1, HUB, protocol="4")  # type: ignore[arg-type]


# -- payload corpus ----------------------------------------------------------------


@pytest.mark.parametrize("bad", CORPUS, ids=[m.problem for m in CORPUS])
def test_corpus_entry_is_malformed_as_tagged(bad: Malformed) -> None:
    problems = command_problems(bad, command=bad.command or "ping", known_commands={"ping"})
    assert bad.code in problems


def test_reference_checker_accepts_valid_commands() -> None:
    assert command_problems(b'{"id": "c-1"}') == []
    assert command_problems(b'{"id": "c-1", "qty": 2, "w": 1}',
                            fields={"qty": int, "w": float}) == []
    assert wrong_type_variants({"id": "c-1", "qty": 2, "ok": True})


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(malformed_payloads())
def test_generated_payloads_are_malformed_as_tagged(bad: Malformed) -> None:
    assert isinstance(bad, bytes)
    assert bad.code in command_problems(bad)


VALID = {"id": "c-1", "sku": "A1", "qty": 2, "weight": 0.5, "force": False}


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(malformed_payloads(VALID))
def test_generated_payloads_for_a_command_are_malformed_as_tagged(bad: Malformed) -> None:
    fields = {k: type(v) for k, v in VALID.items() if k != "id"}
    assert bad.code in command_problems(bad, fields=fields)
