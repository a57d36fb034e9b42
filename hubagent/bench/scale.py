"""Cost with a big ledger: 1,000,000 movements and 10,000 SKUs beside 1,000 and 100.

The ledgers are written straight into a database file with bulk
``INSERT ... SELECT`` (setup, not measured): every movement acknowledged
long ago, one in ten balances negative. On each the bench times, in this
process, the telemetry counts and ``status``; then it starts the daemon
(``run --sim --no-web``, MQTT) on the file and times start to READY and the
retained stock summaries it publishes once connected (what a reconnect
costs), seen by a subscriber on the same broker.
"""

from __future__ import annotations

import json
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Callable

from hubagent.bench.broker import broker
from hubagent.bench.procs import daemon
from hubagent.bench.rows import Row, percentile
from hubagent.clock import SYSTEM

BIG = (1_000_000, 10_000)
QUICK_BIG = (200_000, 10_000)  # --quick: the build of a million rows alone takes most of a minute
SMALL = (1_000, 100)
MIN_PINGS = 20


def _sim_app(state: Path, hub: str) -> Any:
    """The app ``run --sim --no-web`` builds, on ``state`` (offline)."""
    import tomllib
    from importlib import resources

    from hubagent.app import build_app
    from hubagent.config import from_dict

    doc = tomllib.loads(resources.files("hubagent").joinpath("sim.toml").read_text())
    doc["hub"].update(id=hub, state_dir=str(state))
    doc.pop("web", None)
    return build_app(from_dict(doc, "<embedded sim config>"), simulated=True)


def build_ledger(state: Path, hub: str, movements: int, skus: int) -> None:
    """A database in ``state`` holding ``movements`` movements over ``skus`` SKUs."""
    app = _sim_app(state, hub)
    app.store.open()
    at = "2026-01-01T00:00:00.000Z"
    try:
        with app.store.write() as tx:
            tx.execute("INSERT OR IGNORE INTO bins(code, kind, created_at) VALUES ('A-01', 'shelf', ?)", (at,))
            tx.execute("WITH RECURSIVE c(x) AS (SELECT 0 UNION ALL SELECT x + 1 FROM c WHERE x + 1 < ?) "
                       "INSERT INTO skus(sku, name, updated_at) "
                       "SELECT printf('SKU-%05d', x), 'item ' || x, ? FROM c", (skus, at))
            tx.execute(
                "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < ?) "
                "INSERT INTO movements(id, seq, type, sku, bin, delta, reason, ref, actor, device, grp, at) "
                "SELECT lower(hex(randomblob(16))), x, "
                "CASE x % 3 WHEN 0 THEN 'receive' WHEN 1 THEN 'pick' ELSE 'adjust' END, "
                "printf('SKU-%05d', x % ?), 'A-01', CASE x % 3 WHEN 1 THEN -1 ELSE 1 END, "
                "'bench', NULL, 'bench', NULL, NULL, ? FROM c", (movements, skus, at))
            tx.execute("INSERT INTO balances(sku, bin, on_hand) "
                       "SELECT sku, bin, SUM(delta) * CASE WHEN CAST(substr(sku, 5) AS INTEGER) % 10 = 0 "
                       "THEN -1 ELSE 1 END FROM movements GROUP BY sku, bin")
    finally:
        app.store.close()


def _median_ms(fn: Callable[[], Any], runs: int) -> float:
    samples = []
    for _ in range(runs):
        started = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples)


def in_process(state: Path, hub: str) -> dict[str, float]:
    """Milliseconds of the telemetry counts and of ``status``; the status size."""
    from hubagent import telemetry

    app = _sim_app(state, hub)
    app.store.open()
    try:
        size = len(json.dumps(app.status(), default=str))
        return {"telemetry": _median_ms(lambda: telemetry.counts(app), 5),
                "status": _median_ms(app.status, 5), "status_kb": size / 1024}
    finally:
        app.store.close()


class _Summaries:
    """Counts retained stock summaries, notes when the hub went online, and
    times ``ping`` round trips sent while the summaries are coming in."""

    def __init__(self, port: int, hub: str) -> None:
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion

        self.hub = hub
        self.count = 0
        self.online_at: float | None = None
        self.last_at: float | None = None
        self.pings: list[float] = []  # seconds, command published -> reply received
        self._sent: dict[str, float] = {}
        self._n = 0
        self._lock = threading.Lock()
        self._subscribed = threading.Event()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        self.client.on_message = self._on_message
        self.client.on_subscribe = lambda *a: self._subscribed.set()
        self.client.on_connect = lambda c, u, f, rc, p: c.subscribe(
            [(f"hubs/{hub}/stock/+", 1), (f"hubs/{hub}/state", 1), (f"bench/{hub}/replies", 1)])
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        self._subscribed.wait(20)

    def _on_message(self, client: Any, userdata: Any, msg: Any) -> None:
        now = SYSTEM.monotonic()
        with self._lock:
            if msg.topic.endswith("/state"):
                if json.loads(msg.payload).get("state") in ("online", "alert"):
                    self.online_at = self.online_at or now
            elif msg.topic.endswith("/replies"):
                sent = self._sent.pop(str(json.loads(msg.payload).get("id")), None)
                if sent is not None:
                    self.pings.append(now - sent)
            else:
                self.count += 1
                self.last_at = now

    def ping(self) -> None:
        """Send one ``ping`` (answered on our own response topic)."""
        from paho.mqtt.packettypes import PacketTypes
        from paho.mqtt.properties import Properties

        props = Properties(PacketTypes.PUBLISH)
        props.ResponseTopic = f"bench/{self.hub}/replies"
        with self._lock:
            self._n += 1
            cid = f"ping-{self._n}"
            self._sent[cid] = SYSTEM.monotonic()
        self.client.publish(f"hubs/{self.hub}/cmd/ping", json.dumps({"id": cid}).encode(), qos=1,
                            properties=props)

    def settle(self, want: int, timeout: float) -> None:
        """Until ``want`` summaries arrived, or none for 2 s; a ``ping`` every 50 ms meanwhile
        (and at least :data:`MIN_PINGS` of them, so a short republish has a p99 too)."""
        deadline = SYSTEM.monotonic() + timeout
        while SYSTEM.monotonic() < deadline:
            with self._lock:
                done = (self.count >= want or (self.last_at is not None
                                               and SYSTEM.monotonic() - self.last_at > 2)) \
                    and len(self.pings) >= MIN_PINGS
            if done:
                return
            self.ping()
            time.sleep(0.05)

    def close(self) -> None:
        """Disconnect."""
        self.client.disconnect()
        self.client.loop_stop()


def with_daemon(port: int, state: Path, hub: str, skus: int) -> dict[str, float]:
    """Start to READY, and the summaries published after connecting and how long they took."""
    watcher = _Summaries(port, hub)
    try:
        started = SYSTEM.monotonic()
        with daemon(["--sim", "--no-web", "--hub-id", hub, "--mqtt", f"127.0.0.1:{port}",
                     "--state-dir", str(state)], state.parent) as (_, ready):
            watcher.settle(skus, 120)
            online = (watcher.online_at or started) - started
            last = (watcher.last_at or started) - started
        return {"ready": ready, "summaries": watcher.count,
                "republish": max(0.0, last - online) if watcher.count else 0.0,
                "ping_p99": percentile(watcher.pings, 99) * 1000, "pings": len(watcher.pings)}
    finally:
        watcher.close()


def bench(quick: bool) -> list[Row]:
    """Telemetry, status, start and reconnect at 1,000,000 movements beside 1,000."""
    big_size = QUICK_BIG if quick else BIG
    figures: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="hubagent-bench-scale-") as tmp:
        root = Path(tmp)
        with broker(root) as port:
            for label, (moves, skus) in (("small", SMALL), ("big", big_size)):
                state = root / label
                hub = f"scale-{label}"
                build_ledger(state, hub, moves, skus)
                figures[label] = {**in_process(state, hub), **with_daemon(port, state, hub, skus)}
    small, big = figures["small"], figures["big"]
    size = f"{big_size[0]:,} movements / {big_size[1]:,} SKUs beside {SMALL[0]:,} / {SMALL[1]:,}"

    def ratio_row(name: str, key: str, unit: str, same_within: float, limit: float = 1.1) -> Row:
        # ``same_within``: a difference too small to matter (timer noise on
        # figures of microseconds) counts as the same cost.
        r = big[key] / small[key] if small[key] else float("inf")
        return Row(name=name, value=big[key], unit=unit, target=f"<= {limit} x small",
                   met=r <= limit or big[key] - small[key] <= same_within,
                   note=f"{r:.1f} x ({small[key]:.3g} {unit} at the small ledger); "
                        f"differences under {same_within:g} {unit} count as the same")
    rows = [
        Row(name="ledger", value=float(big_size[0]), unit="moves", target="1,000,000", met=None, note=size),
        ratio_row("telemetry counts at the big ledger", "telemetry", "ms", 1.0),
        ratio_row("status at the big ledger", "status", "ms", 1.0),
        ratio_row("status size at the big ledger", "status_kb", "KB", 2.0),
        ratio_row("start to READY=1 at the big ledger", "ready", "s", 0.05),
        Row(name="republish after connect, 10k SKUs", value=big["republish"], unit="s",
            target="-", met=None,
            note=f"{big['summaries']:.0f} retained summaries, paced (small: "
                 f"{small['summaries']:.0f} in {small['republish']:.2f} s)"),
        Row(name="ping round trip during that republish, p99", value=big["ping_p99"], unit="ms",
            target="<= 1.1 x small + 20 ms",
            met=big["ping_p99"] <= 1.1 * small["ping_p99"] + 20,
            note=f"{big['pings']:.0f} pings, one every 50 ms (small: {small['ping_p99']:.1f} ms "
                 f"over {small['pings']:.0f})"),
    ]
    return rows


if __name__ == "__main__":  # pragma: no cover - a manual entry for one figure
    import sys

    for row in bench("--quick" in sys.argv):
        print(row)
