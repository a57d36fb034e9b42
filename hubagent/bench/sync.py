"""Sync benchmarks: movement commit latency and outbox drain rate.

* Commit latency: a ``stock.adjust`` through the command dispatcher on a real
  database file in a temporary directory (validation, ledger, outbox row,
  inbox row, one ``BEGIN IMMEDIATE`` ... ``COMMIT`` with ``synchronous=FULL``).
* Drain rate: a database holding N unacknowledged events is handed to the real
  daemon (``python -m hubagent run``), which publishes them to a private
  Mosquitto on a free loopback port; a consumer in this process acknowledges
  them like central does. Measured at the consumer from the hub's ``online``
  state to the last event, and compared with a raw paho QoS 1 publish loop
  (same payload size and in-flight window, its own process) in the same run.
  The daemon's resident memory is sampled while it drains.
* Idle wake-ups: the daemon connected to the broker with nothing to do,
  counted as context switches of all its threads (``/proc``), beside an
  idle paho client (``loop_forever``) in its own process in the same run.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from hubagent.bench.rows import Row, percentile, python
from hubagent.bench.broker import broker, stop_process
from hubagent.sync.mqtt import HANDOFF_FACTOR

HUB = "bench"
INFLIGHT = 32  # the hub's default [mqtt] inflight, used for the raw loop too
# Publishes handed to paho without a PUBACK, as the hub's event stream does.
HANDOFF = INFLIGHT * HANDOFF_FACTOR
# The hub's send-ahead window here: the bench broker has no queue limit
# (max_queued_messages 0), so the window guarding Mosquitto's default queue
# of 1000 would only measure how late the consumer acks; the raw loop has
# no such window at all.
MAX_UNACKED = 10_000
# How often the consumer acknowledges (when something new arrived), as a
# central acking after each batch would.
ACK_EVERY_S = 0.02
MB = 1024 * 1024


# -- commit latency -------------------------------------------------------------------


def _offline_app(state: Path) -> Any:
    from hubagent.app import build_app
    from hubagent.config import from_dict

    app = build_app(from_dict({"hub": {"id": HUB, "state_dir": str(state)}}))
    app.store.open()
    reply = app.commands.handle("catalog.upsert", json.dumps(
        {"id": "bench-cat", "items": [{"sku": "BENCH-1", "name": "bench item"}]}).encode())
    assert reply["ok"], reply
    return app


def commit_latency(state: Path, n: int) -> list[float]:
    """Milliseconds per ``stock.adjust`` command, ``n`` samples."""
    app = _offline_app(state)
    samples = []
    try:
        for i in range(n):
            payload = json.dumps({"id": f"lat-{i}", "sku": "BENCH-1", "bin": "A-01",
                                  "delta": 1, "reason": "bench"}).encode()
            started = time.perf_counter()
            reply = app.commands.handle("stock.adjust", payload, source="local")
            samples.append((time.perf_counter() - started) * 1000)
            assert reply["ok"], reply
    finally:
        app.store.close()
    return samples


def prefill(state: Path, n: int) -> None:
    """Record ``n`` movements offline, 1,000 per transaction (setup, not measured)."""
    from hubagent.stock import ledger

    app = _offline_app(state)
    try:
        done = 0
        while done < n:
            with app.store.write() as tx:
                for _ in range(min(1000, n - done)):
                    ledger.record(tx, type="adjust", sku="BENCH-1", bin="A-01", delta=1,
                                  reason="bench backlog", actor="bench")
                    done += 1
    finally:
        app.store.close()


# -- the consumer (central) ----------------------------------------------------------


class Consumer:
    """Receives events, acks the highest gap-free seq every ``ACK_EVERY_S``, times the run."""

    def __init__(self, port: int, topic_base: str) -> None:
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion

        self.base = topic_base
        self.upto = 0
        self.received = 0
        self.online_at: float | None = None
        self.first_at: float | None = None
        self.last_at: float | None = None
        self._seen: set[int] = set()
        # wait_for's target: the receiving thread wakes it only then, since a
        # wake-up per event would cost this process (and so the measured run)
        # a thread switch per event.
        self._want = 0
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port)
        self.client.subscribe(f"{topic_base}/#", qos=1)
        self.client.loop_start()
        self._acker = threading.Thread(target=self._ack_loop, daemon=True)
        self._acker.start()

    def _on_message(self, client: Any, userdata: Any, msg: Any) -> None:
        try:
            now = time.perf_counter()
            if msg.topic.endswith("/state"):
                if json.loads(msg.payload).get("state") in ("online", "alert"):
                    with self._cond:
                        self.online_at = self.online_at or now
                return
            if "/events/" not in msg.topic:
                return
            seq = json.loads(msg.payload)["seq"]
            with self._cond:
                self.received += 1
                self.first_at = self.first_at or now
                self._seen.add(seq)
                while self.upto + 1 in self._seen:
                    self._seen.discard(self.upto + 1)
                    self.upto += 1
                    self.last_at = now
                if self.upto >= self._want:
                    self._cond.notify_all()
        except Exception:  # a callback must not kill paho's loop
            pass

    def _ack_loop(self) -> None:
        sent = 0
        while not self._stop.wait(ACK_EVERY_S):
            upto = self.upto
            if upto > sent:
                self.client.publish(f"{self.base}/ack", json.dumps({"upto_seq": upto}), qos=1)
                sent = upto

    def wait_for(self, n: int, timeout: float) -> None:
        """Until seqs 1..n all arrived (TimeoutError otherwise)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            self._want = n
            while self.upto < n:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"only {self.upto} of {n} events arrived in {timeout} s")
                self._cond.wait(min(left, 0.5))

    def close(self) -> None:
        """Disconnect."""
        self._stop.set()
        self._acker.join(2)
        self.client.disconnect()
        self.client.loop_stop()


# -- raw paho publish loop -------------------------------------------------------------


def _payload(seq: int) -> bytes:
    """An envelope the size of a real ``stock.moved`` event."""
    data = {"movement": "0" * 32, "type": "adjust", "sku": "BENCH-1", "bin": "A-01", "delta": 1,
            "on_hand": seq, "negative": False, "reason": "bench backlog", "ref": None,
            "actor": "bench", "device": None, "group": None}
    return json.dumps({"id": f"{seq:032x}", "seq": seq, "kind": "stock.moved",
                       "at": "2026-01-01T00:00:00.000Z", "replayed": False, "data": data},
                      separators=(",", ":")).encode()


def raw_publisher(port: int, n: int) -> float:
    """Publish ``n`` QoS 1 messages as fast as paho can; seconds to the last PUBACK.

    At most ``HANDOFF`` are handed to paho without a PUBACK, like the hub
    does: paho numbers messages with 16-bit ids, so more than 65,535
    outstanding would collide and be lost.
    """
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    cond = threading.Condition()
    count = [0]
    wake_at = [0]  # the PUBACK count the publishing thread waits for

    def on_publish(client: Any, userdata: Any, mid: int, rc: Any, props: Any) -> None:
        with cond:
            count[0] += 1
            if count[0] >= wake_at[0]:
                cond.notify()

    c = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    c.max_inflight_messages_set(INFLIGHT)
    c.on_publish = on_publish
    c.connect("127.0.0.1", port)
    c.loop_start()
    payloads = [_payload(i + 1) for i in range(n)]
    started = time.perf_counter()
    for i, p in enumerate(payloads):
        if i - count[0] >= HANDOFF:
            with cond:  # refill when half is free: one wake-up per batch, not per PUBACK
                wake_at[0] = i - HANDOFF // 2
                cond.wait_for(lambda: count[0] >= wake_at[0], 60)
        c.publish(f"rawbench/{HUB}/events/stock.moved", p, qos=1)
    with cond:
        wake_at[0] = n
        cond.wait_for(lambda: count[0] >= n, 600)
    elapsed = time.perf_counter() - started
    c.disconnect()
    c.loop_stop()
    return elapsed


def _raw_rate(port: int, n: int) -> float:
    """Events/s of the raw loop, measured at the consumer, publisher in its own process."""
    consumer = Consumer(port, f"rawbench/{HUB}")
    try:
        code = ("import sys; from hubagent.bench.sync import raw_publisher; "
                "print(raw_publisher(int(sys.argv[1]), int(sys.argv[2])))")
        subprocess.run(python("-c", code, str(port), str(n)), check=True,
                       capture_output=True, timeout=600)
        consumer.wait_for(n, 120)
        assert consumer.first_at is not None and consumer.last_at is not None
        return n / max(1e-9, consumer.last_at - consumer.first_at)
    finally:
        consumer.close()


# -- the hub draining its outbox -------------------------------------------------------


def _rss(pid: int) -> int:
    """Resident set size in bytes (Linux /proc); 0 if unknown."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _switches(pid: int) -> int:
    """Context switches of every thread of ``pid`` so far (Linux /proc); 0 if unknown."""
    total = 0
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            for line in Path(f"/proc/{pid}/task/{tid}/status").read_text().splitlines():
                if "ctxt_switches" in line:
                    total += int(line.split()[1])
    except OSError:
        pass
    return total


def _wakeups(proc: subprocess.Popen[bytes], seconds: float) -> float:
    """Wake-ups per second of a running process over ``seconds``."""
    before, started = _switches(proc.pid), time.monotonic()
    time.sleep(seconds)  # measuring only: the process is left alone meanwhile
    return (_switches(proc.pid) - before) / (time.monotonic() - started)


def idle_wakeups(port: int, state: Path, seconds: float) -> tuple[float, float]:
    """(daemon, idle paho client) wake-ups per second, connected with nothing to do."""
    state.mkdir(parents=True, exist_ok=True)
    cfg = state / "idle.toml"
    cfg.write_text(f'[hub]\nid = "{HUB}-idle"\nstate_dir = "{state}"\nlog_level = "warning"\n\n'
                   f'[mqtt]\nhost = "127.0.0.1"\nport = {port}\n')
    consumer = Consumer(port, f"hubs/{HUB}-idle")
    env = {k: v for k, v in os.environ.items() if k not in ("NOTIFY_SOCKET", "WATCHDOG_USEC")}
    code = ("import sys, paho.mqtt.client as m; from paho.mqtt.enums import CallbackAPIVersion as V; "
            "c = m.Client(V.VERSION2); c.connect('127.0.0.1', int(sys.argv[1])); c.loop_forever()")
    hub = subprocess.Popen([sys.executable, "-m", "hubagent", "run", "--config", str(cfg)],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    raw = subprocess.Popen([sys.executable, "-c", code, str(port)],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while consumer.online_at is None and time.monotonic() < deadline:
            time.sleep(0.05)  # waiting for the daemon's retained "online"
        time.sleep(1.0)  # let start-up work (telemetry, summaries) settle
        return _wakeups(hub, seconds), _wakeups(raw, seconds)
    finally:
        stop_process(hub, grace=10)
        stop_process(raw, grace=5)
        consumer.close()


def drain(port: int, state: Path, n: int) -> tuple[float, float]:
    """Start the daemon on a backlog of ``n`` events; (events/s, RSS growth in MB)."""
    cfg = state / "bench.toml"
    cfg.write_text(f'[hub]\nid = "{HUB}"\nstate_dir = "{state}"\nlog_level = "warning"\n\n'
                   f'[mqtt]\nhost = "127.0.0.1"\nport = {port}\ntelemetry_s = 3600.0\n'
                   f'max_unacked = {MAX_UNACKED}\n')
    consumer = Consumer(port, f"hubs/{HUB}")
    env = {k: v for k, v in os.environ.items() if k not in ("NOTIFY_SOCKET", "WATCHDOG_USEC")}
    proc = subprocess.Popen(python("-m", "hubagent", "run", "--config", str(cfg)),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    peak, base = 0, 0
    stop = threading.Event()

    def sample() -> None:
        nonlocal peak, base
        while not stop.wait(0.02):
            rss = _rss(proc.pid)
            peak = max(peak, rss)
            if not base and consumer.online_at is not None:
                base = rss
    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        consumer.wait_for(n + 1, 600)  # + the catalog event
        stop.set()
        sampler.join(2)
        assert consumer.first_at is not None and consumer.last_at is not None
        # Timed like the raw loop: first event to last, at the consumer.
        return (n + 1) / max(1e-9, consumer.last_at - consumer.first_at), (peak - base) / MB
    finally:
        stop.set()
        stop_process(proc, grace=30)
        consumer.close()


def bench(quick: bool) -> list[Row]:
    """Commit latency p50/p99, drain rate beside raw paho, drain memory."""
    n_commit = 300 if quick else 2000
    n_drain = 20_000 if quick else 100_000
    with tempfile.TemporaryDirectory(prefix="hubagent-bench-sync-") as tmp:
        root = Path(tmp)
        samples = commit_latency(root / "commit", n_commit)
        (root / "broker").mkdir()
        prefill(root / "drain", n_drain)
        with broker(root / "broker") as port:
            # Raw loop before and after the drain: this machine's load drifts.
            raw_before = _raw_rate(port, n_drain)
            rate, growth = drain(port, root / "drain", n_drain)
            raw = (raw_before + _raw_rate(port, n_drain)) / 2
            idle, idle_raw = idle_wakeups(port, root / "idle", 5.0 if quick else 20.0)
    p50, p99 = percentile(samples, 50), percentile(samples, 99)
    ratio = rate / raw if raw else 0.0
    return [
        Row(name="movement commit latency p50", value=p50, unit="ms", target="-", met=None,
            note=f"{n_commit} stock.adjust commands, synchronous=FULL"),
        Row(name="movement commit latency p99", value=p99, unit="ms", target="< 5 ms",
            met=p99 < 5.0),
        Row(name="raw paho QoS 1 publish rate", value=raw, unit="msg/s", target="-", met=None,
            note=f"{n_drain} messages, in-flight window {INFLIGHT}, at the consumer, "
                 "mean of a run before and one after the drain"),
        Row(name="outbox drain rate (published and acked)", value=rate, unit="ev/s",
            target=">= 0.8 x raw", met=ratio >= 0.8,
            note=f"{ratio:.2f} x raw; hub [mqtt] max_unacked = {MAX_UNACKED} (broker without a queue limit)"),
        Row(name=f"daemon RSS growth draining {n_drain} events", value=growth, unit="MB",
            target="< 20 MB", met=growth < 20.0),
        Row(name="idle wake-ups, daemon with MQTT connected", value=idle, unit="/s",
            target="<= 2 /s", met=idle <= 2.0,
            note=f"all threads' context switches; an idle paho client: {idle_raw:.1f} /s"),
    ]
