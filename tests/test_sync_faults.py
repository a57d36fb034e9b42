"""Sync under faults: broker restarts, a lossy broker, poison messages, duplicates.

Each test runs the real daemon against a real Mosquitto started here, with a
real SQLite file; the ``Central`` client plays central ops. The helpers at
the top (a persistent local-API client, a movement writer, config files)
are shared with the other ``test_sync_*`` fault test files.
"""

from __future__ import annotations

import json
import random
import socket
import sqlite3
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

from central import Central
from fixtures_mqtt import MakeBroker, MosquittoBroker
from hubproc import Daemon, mqtt_table, wait_until

HUB = "hub-1"
SKUS = ["TEA-1", "MUG-2", "PEN-3"]
CATALOG = [{"sku": s, "name": f"item {s}"} for s in SKUS]


# -- helpers shared by the sync fault tests -------------------------------------------


def write_config(path: Path, state: Path, broker: MosquittoBroker | None, **mqtt: Any) -> Path:
    """A hub config with short timeouts, so faults recover within a test."""
    lines = ["[hub]", f'id = "{HUB}"', f'state_dir = "{state}"', ""]
    if broker is not None:
        opts: dict[str, Any] = {"telemetry_s": 1.0, "reconnect_min_s": 1.0, **mqtt}
        lines.append(mqtt_table(broker.port, **opts))
    path.write_text("\n".join(lines) + "\n")
    return path


def start_hub(daemon_factory: Callable[..., Daemon], tmp_path: Path,
              broker: MosquittoBroker | None, **mqtt: Any) -> Daemon:
    """Write the config and start ``hubagent run --config`` (waits for READY=1)."""
    state = tmp_path / "hubstate"
    state.mkdir(exist_ok=True)
    cfg = write_config(tmp_path / "hub.toml", state, broker, **mqtt)
    return daemon_factory("run", "--config", str(cfg), state_dir=state)


def start_online(central_factory: Callable[..., Central], daemon_factory: Callable[..., Daemon],
                 tmp_path: Path, broker: MosquittoBroker, **central_kw: Any) -> tuple[Central, Daemon]:
    """An auto-acking central (``central_kw`` go to it), then the hub on ``broker``;
    returns once the hub is online and the catalog is loaded."""
    central = central_factory(auto_ack=True, **central_kw)
    hub = start_hub(daemon_factory, tmp_path, broker)
    central.wait_for_state("online")
    assert central.command("catalog.upsert", {"items": CATALOG}, id="cat")["ok"]
    return central, hub


def restart_hub(daemon_factory: Callable[..., Daemon], tmp_path: Path) -> Daemon:
    """Start the daemon again on the same config and state directory."""
    return daemon_factory("run", "--config", str(tmp_path / "hub.toml"),
                          state_dir=tmp_path / "hubstate")


class ApiClient:
    """One persistent connection to the local API (many requests per connection)."""

    def __init__(self, path: Path, timeout: float = 30.0) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        self.sock.connect(str(path))
        self.reader = self.sock.makefile("rb")

    def command(self, name: str, payload: dict[str, Any]) -> dict[str, Any]:
        """Run a command; returns the command reply (ConnectionError if the hub died)."""
        req = {"op": "command", "name": name, "payload": payload}
        self.sock.sendall(json.dumps(req).encode() + b"\n")
        line = self.reader.readline()
        if not line:
            raise ConnectionError("the hub closed the connection")
        reply = json.loads(line)
        assert reply["ok"], reply
        return reply["result"]  # type: ignore[no-any-return]

    def close(self) -> None:
        """Close the connection."""
        try:
            self.reader.close()
        finally:
            self.sock.close()


class Writer:
    """Staff at work: records movements through the local API from one thread.

    ``acked`` maps each movement id whose ``ok`` reply arrived (the beep) to
    its seq and delta; a request cut off by a crash is not in it.
    """

    def __init__(self, socket_path: Path, prefix: str, seed: int = 0,
                 pause: float = 0.0) -> None:
        self.socket_path = socket_path
        self.prefix = prefix
        self.pause = pause
        self.rng = random.Random(seed)
        self.acked: dict[str, tuple[int, str, str, int]] = {}
        self.errors: list[str] = []
        self.count = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"writer-{prefix}", daemon=True)

    def start(self) -> "Writer":
        """Begin writing."""
        self._thread.start()
        return self

    def _run(self) -> None:
        try:
            api = ApiClient(self.socket_path)
        except OSError as e:
            self.errors.append(f"connect: {e}")
            return
        try:
            while not self._stop.is_set():
                self.record(api)
                if self.pause:
                    self._stop.wait(self.pause)
        except (OSError, ValueError) as e:
            self.errors.append(repr(e))  # the hub died under us: expected when killed
        finally:
            api.close()

    def record(self, api: ApiClient) -> None:
        """One stock.adjust; remembered only once the hub has answered ok."""
        sku = self.rng.choice(SKUS)
        bin_ = self.rng.choice(["A-01", "B-02"])
        delta = self.rng.choice([-2, -1, 1, 2, 3])
        cid = f"{self.prefix}-{self.count}"
        self.count += 1
        reply = api.command("stock.adjust", {"id": cid, "sku": sku, "bin": bin_,
                                             "delta": delta, "reason": "fault test"})
        assert reply["ok"], reply
        res = reply["result"]
        self.acked[res["movement"]] = (res["seq"], sku, bin_, delta)

    def stop(self, timeout: float = 30.0) -> None:
        """Stop and wait for the thread."""
        self._stop.set()
        self._thread.join(timeout)


def record_many(socket_path: Path, prefix: str, n: int, threads: int = 4) -> int:
    """Record ``n`` movements as fast as the hub takes them; returns the count."""
    def work(k: int) -> None:
        api = ApiClient(socket_path)
        w = Writer(socket_path, f"{prefix}{k}", seed=k)
        try:
            for _ in range(n // threads):
                w.record(api)
        finally:
            api.close()

    pool = [threading.Thread(target=work, args=(k,)) for k in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    return (n // threads) * threads


def fold(events: list[dict[str, Any]]) -> dict[tuple[str, str], int]:
    """On-hand per (sku, bin) from stock.moved events: what central computes."""
    out: Counter[tuple[str, str]] = Counter()
    for e in events:
        if e["kind"] == "stock.moved":
            out[(e["data"]["sku"], e["data"]["bin"])] += e["data"]["delta"]
    return {k: v for k, v in out.items() if v}


def hub_balances(hub: Daemon) -> dict[tuple[str, str], int]:
    """The hub's balances through ``state.snapshot``."""
    snap = hub.command("state.snapshot", {"id": f"snap-{time.monotonic_ns()}"})
    assert snap["ok"], snap
    return {(b["sku"], b["bin"]): b["on_hand"] for b in snap["result"]["balances"]}


def db_rows(path: Path, sql: str) -> list[tuple[Any, ...]]:
    """Rows from the hub's database file (read after the daemon stopped)."""
    conn = sqlite3.connect(path)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


def wait_all_delivered(central: Central, last_seq: int, timeout: float) -> list[dict[str, Any]]:
    """Wait until central holds every seq 1..last_seq; return the events."""
    central.wait_for(lambda: central.gap_free_upto() >= last_seq, timeout,
                     what=f"every seq up to {last_seq}")
    return central.events()


def assert_central_equals_hub(central: Central, hub: Daemon) -> None:
    """Exactly once after dedup, gap-free, and the same on-hand as the hub."""
    last = hub.status()["last_seq"]
    events = wait_all_delivered(central, last, timeout=60)
    assert central.seqs() == list(range(1, last + 1))
    assert len({e["id"] for e in events}) == last
    assert central.violations() == []
    assert fold(events) == hub_balances(hub)


# -- broker restarts --------------------------------------------------------------------


def test_broker_stopped_then_killed_while_movements_are_recorded(
        mqtt_broker: MosquittoBroker, central_factory: Callable[..., Central],
        daemon_factory: Callable[..., Daemon], tmp_path: Path) -> None:
    central, hub = start_online(central_factory, daemon_factory, tmp_path, mqtt_broker)
    writer = Writer(hub.socket_path, "w", pause=0.002).start()
    wait_until(lambda: len(writer.acked) >= 50, 20, "movements before the outage")

    mqtt_broker.stop()  # graceful
    wait_until(lambda: not hub.status()["sync"]["connected"], 20, "the hub to notice")
    during = len(writer.acked)
    wait_until(lambda: len(writer.acked) >= during + 50, 20, "movements while offline")
    mqtt_broker.start()
    central.wait_connected(20)
    # Reconnect within the backoff bound (reconnect_max_s = 2 s), with margin for load.
    wait_until(lambda: hub.status()["sync"]["subscribed"], 15, "reconnect after a graceful stop")
    assert central.command("ping", id="ping-1")["ok"]  # subscriptions restored

    mqtt_broker.kill()  # SIGKILL: no clean disconnect, nothing persisted
    during = len(writer.acked)
    wait_until(lambda: len(writer.acked) >= during + 50, 20, "movements after the kill")
    mqtt_broker.start()
    central.wait_connected(20)
    wait_until(lambda: hub.status()["sync"]["subscribed"], 15, "reconnect after SIGKILL")
    assert central.command("ping", id="ping-2")["ok"]
    writer.stop()
    assert writer.errors == []

    assert_central_equals_hub(central, hub)
    acked = hub.status()["sync"]
    assert acked["reconnects"] >= 2
    central.wait_for(lambda: hub.status()["sync"]["outbox_depth"] == 0, 30, what="depth 0")
    assert hub.terminate() == 0


# -- a broker that drops queued messages ------------------------------------------------


def test_broker_dropping_queued_messages_is_recovered_by_app_ack_and_resend(
        make_broker: MakeBroker, central_factory: Callable[..., Central],
        daemon_factory: Callable[..., Daemon], tmp_path: Path) -> None:
    broker = make_broker(max_queued_messages=2, max_inflight_messages=2)
    # A slow consumer with a receive window of one: the broker's queue for it
    # overflows at once and Mosquitto drops what does not fit.
    central = central_factory(broker, auto_ack=True, slow=0.005, receive_maximum=1)
    hub = start_hub(daemon_factory, tmp_path, broker)
    central.wait_for_state("online", timeout=20)
    assert central.command("catalog.upsert", {"items": CATALOG}, id="cat", timeout=20)["ok"]
    record_many(hub.socket_path, "d", 120, threads=2)
    last = hub.status()["last_seq"]
    wait_all_delivered(central, last, timeout=90)
    # The fault really happened: the broker dropped messages meant for central.
    assert "dropped" in broker.log_text().lower()
    central.slow = 0
    assert_central_equals_hub(central, hub)
    assert hub.terminate() == 0


# -- messages the hub's handlers choke on -----------------------------------------------


POISON_ACKS = [
    b"[" * 100_000 + b"]" * 100_000,  # deeper than Python's recursion limit
    b"\xff\xfe not utf-8",
    b'{"upto_seq": "7"}',
    b'{"upto_seq": -1}',
    b'{"upto_seq": true}',
    b"[1, 2]",
    b'"upto_seq"',
    b"",
]


@pytest.mark.parametrize("protocol", ["5", "3.1.1"])
def test_poison_messages_leave_the_link_working(
        protocol: str, mqtt_broker: MosquittoBroker, central_factory: Callable[..., Central],
        daemon_factory: Callable[..., Daemon], tmp_path: Path) -> None:
    central = central_factory(protocol=protocol)
    hub = start_hub(daemon_factory, tmp_path, mqtt_broker, protocol=protocol)
    central.wait_for_state("online")
    assert central.command("catalog.upsert", {"items": CATALOG}, id="cat")["ok"]
    central.wait_for_events(1)
    # More poison than Mosquitto's in-flight window towards the hub (20 for
    # 3.1.1): a handler that raised before acknowledging would leave the hub
    # deaf to acks and commands.
    for payload in POISON_ACKS:
        central.send_raw(f"hubs/{HUB}/ack", payload)
    for _ in range(25):
        central.send_raw(f"hubs/{HUB}/ack", POISON_ACKS[0])
    deep = b'{"id": "deep", "x": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    for i in range(5):
        # Expired on arrival (v5): the expiry path reads the id from the payload.
        central.send_raw(f"hubs/{HUB}/cmd/ping", deep,
                         properties=_expiry(1) if protocol == "5" else None)
        central.send_raw(f"hubs/{HUB}/cmd/no/such/topic/{i}", b'{"id": "x"}')
    # The hub still answers commands and still applies central's acks.
    assert central.command("ping", id="after-poison", timeout=20)["ok"]
    central.ack(1)
    wait_until(lambda: hub.status()["sync"]["acked_seq"] == 1, 20, "the ack after the poison")
    r = central.command("stock.adjust", {"sku": "TEA-1", "bin": "A-01", "delta": 2,
                                         "reason": "after poison"}, id="adj-after", timeout=20)
    assert r["ok"] and r["result"]["seq"] == 2
    central.wait_for_events(2)
    assert hub.proc is not None and hub.proc.poll() is None
    assert central.violations() == []
    assert hub.terminate() == 0


def _expiry(seconds: int) -> Any:
    from paho.mqtt.packettypes import PacketTypes
    from paho.mqtt.properties import Properties

    props = Properties(PacketTypes.PUBLISH)
    props.MessageExpiryInterval = seconds
    return props


# -- duplicate and reordered commands over MQTT -----------------------------------------


def test_duplicate_and_reordered_commands_over_mqtt_apply_once(
        mqtt_broker: MosquittoBroker, central_factory: Callable[..., Central],
        daemon_factory: Callable[..., Daemon], tmp_path: Path) -> None:
    central, hub = start_online(central_factory, daemon_factory, tmp_path, mqtt_broker)
    rng = random.Random(11)
    commands: list[tuple[str, dict[str, Any]]] = [
        ("stock.adjust", {"id": f"adj-{i}", "sku": SKUS[i % 3], "bin": "A-01",
                          "delta": i + 1, "reason": "delivery"}) for i in range(15)]
    commands += [("stock.count", {"id": "count-1", "sku": "MUG-2", "bin": "B-02", "counted": 4}),
                 ("stock.adjust", {"id": "bad-1", "sku": "NOPE", "bin": "A-01", "delta": 1,
                                   "reason": "unknown sku"})]
    deliveries = [c for c in commands for _ in range(rng.randint(2, 3))]
    rng.shuffle(deliveries)
    replies: dict[str, list[dict[str, Any]]] = {}
    # Half sent one at a time, half fired at once (a burst of duplicates in flight).
    half = len(deliveries) // 2
    for name, payload in deliveries[:half]:
        replies.setdefault(payload["id"], []).append(central.command(
            name, {k: v for k, v in payload.items() if k != "id"}, id=payload["id"]))
    # The rest in two bursts fired from threads: first one delivery of each id
    # at once (Central refuses two pending commands with one id), then the
    # repeats at once, so duplicates race with each other in flight.
    burst: list[tuple[str, dict[str, Any]]] = []
    lock = threading.Lock()

    def send(name: str, payload: dict[str, Any]) -> None:
        args = {k: v for k, v in payload.items() if k != "id"}
        reply = central.command(name, args, id=payload["id"], timeout=30)
        with lock:
            burst.append((payload["id"], reply))

    firsts: list[tuple[str, dict[str, Any]]] = []
    repeats: list[tuple[str, dict[str, Any]]] = []
    seen: set[str] = set()
    for name, payload in deliveries[half:]:
        (repeats if payload["id"] in seen else firsts).append((name, payload))
        seen.add(payload["id"])
    for group in (firsts, repeats):
        while group:
            ids: set[str] = set()
            wave = []
            for item in list(group):
                if item[1]["id"] not in ids:
                    ids.add(item[1]["id"])
                    wave.append(item)
                    group.remove(item)
            pool = [threading.Thread(target=send, args=item) for item in wave]
            for t in pool:
                t.start()
            for t in pool:
                t.join()
    for cid, reply in burst:
        replies.setdefault(cid, []).append(reply)

    for cid, rs in replies.items():
        assert sum(not r.get("duplicate", False) for r in rs) == 1, (cid, rs)
        first = next(r for r in rs if not r.get("duplicate", False))
        assert all(r.get("result") == first.get("result") and r["ok"] == first["ok"]
                   and r.get("error") == first.get("error") for r in rs), rs
    assert all(not r["ok"] and r["error"]["code"] == "unknown_sku" for r in replies["bad-1"])

    expected = Counter()
    for i in range(15):
        expected[(SKUS[i % 3], "A-01")] += i + 1
    expected[("MUG-2", "B-02")] = 4
    assert hub_balances(hub) == dict(expected)
    assert hub.status()["last_seq"] == 1 + 15 + 1  # catalog, 15 adjusts, 1 count
    assert_central_equals_hub(central, hub)
    assert hub.terminate() == 0


# -- the pump's decisions, in-process on a real database ---------------------------------


class FakeFeed:
    """The far side of the pump: takes events like one connection's stream.

    (Not a stand-in for our code: it is the broker end of the link.)
    """

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.queued: list[int] = []  # taken, not PUBACKed yet
        self.sent: list[int] = []  # every seq taken, in order

    def room(self) -> int:
        return self.capacity - len(self.queued)

    def send(self, events: Any) -> bool:
        for ev in events:
            doc = json.loads(ev.payload)  # every payload is a complete envelope
            assert doc["seq"] == ev.seq and doc["replayed"] is False and "data" in doc
        self.queued.extend(ev.seq for ev in events)
        self.sent.extend(ev.seq for ev in events)
        return True

    def clear(self) -> None:
        self.queued.clear()

    def pending(self) -> int:
        return len(self.queued)

    def puback_all(self) -> None:
        self.queued.clear()


@pytest.fixture
def outbox_store(tmp_path: Path) -> Iterator[Any]:
    """A real store whose outbox holds 3,000 events (seq 1..3000)."""
    from hubagent.features import all_migrations
    from hubagent.store.store import Store

    store = Store(tmp_path / "hub.db", all_migrations())
    store.open()
    try:
        with store.write() as tx:
            for i in range(3000):
                tx.emit("test.event", {"i": i, "text": "é\"\\"})
        yield store
    finally:
        store.close()


def test_pump_windows_duplicate_acks_and_refusals(outbox_store: Any) -> None:
    from hubagent.clock import ManualClock
    from hubagent.sync import pump as pump_mod

    store = outbox_store
    clock = ManualClock()
    p = pump_mod.Pump(store, ack_timeout_s=30.0, max_window=pump_mod.MAX_WINDOW, clock=clock)
    feed = FakeFeed(capacity=64)
    p.reset(feed)
    assert p.run() == 64
    assert feed.sent == list(range(1, 65))
    assert p.unpublished(3000) == 3000
    assert p.run() == 0  # the feed is full
    # PUBACKs free the feed; the send-ahead window stops the pump
    # MAX_WINDOW events beyond central's ack.
    while True:
        feed.puback_all()
        if p.run() == 0:
            break
    assert feed.sent == list(range(1, pump_mod.MAX_WINDOW + 1))
    p.note_refused(7)
    assert p.refused == 1
    # Central acks 600: the window opens by as much, then more.
    assert p.ack(600, keep=100) is False
    feed.puback_all()
    p.run()
    assert max(feed.sent) > pump_mod.MAX_WINDOW
    # Central repeats 600 (it got something after a gap, e.g. after the
    # refused seq 7 in real life): resend from 601, in order, dropping
    # what the feed had not handed over yet.
    assert feed.queued
    clock.advance(pump_mod.MIN_RTO)  # a resend needs a round trip since the last one
    assert p.ack(600, keep=100) is False
    assert p.ack(600, keep=100) is True
    assert p.resends == 1 and feed.queued == []
    feed.sent.clear()
    p.run()
    assert feed.sent[:3] == [601, 602, 603]
    # Acks are clamped to the last seq and written (pruned beyond keep) at once
    # when central has caught up.
    p.ack(10_000, keep=100)
    p.flush(force=True)
    assert store.meta("acked_seq") == "3000"
    assert store.query("SELECT MIN(seq) AS s FROM outbox")[0]["s"] == 2901


def test_event_stream_refuses_what_was_meant_for_an_earlier_connection() -> None:
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    from hubagent.sync.outbox import Outgoing, envelope_bytes
    from hubagent.sync.stream import ConnectionFeed, EventStream

    client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    stream = EventStream(client, lambda kind: f"hubs/t/events/{kind}", handoff=4, ahead=8)
    events = [Outgoing(i, "test.event", envelope_bytes(i, f"e{i}", "test.event",
                                                       "2026-01-01T00:00:00.000Z", "{}"))
              for i in range(1, 6)]
    first = ConnectionFeed(stream, stream.new_epoch())
    assert first.send(events)
    # Not connected: paho is handed nothing and the feed keeps them.
    assert stream.depth() == (5, 0) and first.pending() == 5 and first.room() == 3
    second = ConnectionFeed(stream, stream.new_epoch())  # a reconnect
    assert stream.depth() == (0, 0)
    assert first.send(events) is False  # meant for the old connection
    assert stream.depth() == (0, 0)
    assert second.send(events[:2]) and stream.depth() == (2, 0)
    first.clear()  # a rewind of the old connection leaves the new feed alone
    assert stream.depth() == (2, 0)
    second.clear()
    assert stream.depth() == (0, 0)


def test_a_prune_deletes_at_most_the_rows_it_is_given(outbox_store: Any) -> None:
    from hubagent.sync import outbox

    store = outbox_store

    def oldest() -> int:
        return int(store.query("SELECT MIN(seq) AS s FROM outbox")[0]["s"])

    assert outbox.acknowledge(store, 2000, keep=0, prune_rows=500) == 2000
    assert oldest() == 501  # capped, although 2,000 are acknowledged
    assert outbox.acknowledge(store, 2500, keep=0, prune_rows=0) == 2500
    assert oldest() == 501 and store.meta("acked_seq") == "2500"
    # The next prune goes on from there, never past retention.
    assert outbox.acknowledge(store, 2600, keep=300, prune_rows=10_000) == 2600
    assert oldest() == 2301


def test_the_resend_timer_is_due_only_while_events_wait_for_central(outbox_store: Any) -> None:
    """In-process on a manual clock: nothing unacknowledged, nothing to time."""
    from hubagent.clock import ManualClock
    from hubagent.sync import pump as pump_mod

    clock = ManualClock()
    p = pump_mod.Pump(outbox_store, ack_timeout_s=5.0, max_window=100, clock=clock)
    feed = FakeFeed(capacity=10)
    p.reset(feed)
    assert p.run() == 10
    due = p.deadline()
    assert due == clock.monotonic() + 5.0  # no round trip measured yet: ack_timeout_s
    clock.advance(4.9)
    assert p.check_timeout() is False and feed.queued
    clock.advance(0.1)
    assert p.check_timeout() is True and p.resends == 1 and feed.queued == []
    feed.sent.clear()
    p.run()
    assert feed.sent[0] == 1  # resent from the first unacknowledged seq
    p.ack(3000, keep=0)
    assert p.deadline() is None  # caught up: an idle hub has no timer
    clock.advance(3600)
    assert p.check_timeout() is False and p.resends == 1
