"""Commands per second with 200 outstanding, and what they cost the SD card.

A paho client in this process publishes ``stock.adjust`` commands to the
real daemon over a private Mosquitto, keeping ``OUTSTANDING`` unanswered,
and counts the replies. The baseline, in the same run, is a raw broker
echo: a paho client in its own process that answers every command at once
with a reply of the same size, and nothing else. While the hub runs, its
bytes sent towards storage (``write_bytes`` in ``/proc/<pid>/io``) are read before and after,
and its ``fsync``/``fdatasync`` calls are counted with ``strace`` when it is
installed (the count includes start-up, so it errs high).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from hubagent.bench.broker import broker, stop_process
from hubagent.bench.procs import daemon, io_bytes_written, traced_pid
from hubagent.bench.rows import Row, python

HUB = "bench"
OUTSTANDING = 200

_ECHO = (
    "import json, sys, paho.mqtt.client as m; from paho.mqtt.enums import CallbackAPIVersion as V\n"
    "c = m.Client(V.VERSION2, protocol=m.MQTTv5)\n"
    "c.max_inflight_messages_set(1000)\n"
    "def on_message(c, u, msg):\n"
    "    cid = json.loads(msg.payload)['id']\n"
    "    c.publish(sys.argv[2] + '/reply', json.dumps({'id': cid, 'ok': True, 'result': {\n"
    "        'movement': '0' * 32, 'seq': 1, 'on_hand': 1, 'negative': False}}), qos=1)\n"
    "c.on_message = on_message\n"
    "c.on_connect = lambda c, u, f, rc, p: c.subscribe(sys.argv[2] + '/cmd/#', qos=1)\n"
    "c.connect('127.0.0.1', int(sys.argv[1]))\n"
    "c.loop_forever()\n")


class Driver:
    """Publishes commands keeping ``OUTSTANDING`` unanswered; counts replies."""

    def __init__(self, port: int, base: str) -> None:
        import paho.mqtt.client as mqtt
        from paho.mqtt.enums import CallbackAPIVersion

        self.base = base
        self.replies = 0
        self.run_replies = 0  # replies to the measured run's commands only
        self._prefix = f"run-{time.monotonic_ns()}-"
        self.failed: list[Any] = []
        self._cond = threading.Condition()
        self._connected = threading.Event()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        self.client.max_inflight_messages_set(OUTSTANDING * 2)
        self.client.on_message = self._on_message
        self.client.on_connect = self._on_connect
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        if not self._connected.wait(20):
            raise TimeoutError("the bench client did not connect")

    def _on_connect(self, client: Any, userdata: Any, flags: Any, rc: Any, props: Any) -> None:
        client.subscribe(f"{self.base}/reply", qos=1)
        self._connected.set()

    def _on_message(self, client: Any, userdata: Any, msg: Any) -> None:
        reply = json.loads(msg.payload)
        with self._cond:
            self.replies += 1
            if str(reply.get("id")).startswith(self._prefix):
                self.run_replies += 1
            if not reply.get("ok"):
                self.failed.append(reply)
            self._cond.notify_all()

    def _send(self, name: str, doc: dict[str, Any]) -> None:
        self.client.publish(f"{self.base}/cmd/{name}", json.dumps(doc), qos=1)

    def one(self, name: str, doc: dict[str, Any], timeout: float = 30) -> None:
        """Send one command and wait for its reply."""
        want = self.replies + 1
        self._send(name, doc)
        with self._cond:
            if not self._cond.wait_for(lambda: self.replies >= want, timeout):
                raise TimeoutError(f"no reply to {name}")

    def first(self, name: str, doc: dict[str, Any], tries: int = 60) -> None:
        """Send one command until it is answered: the other side may not have subscribed yet."""
        for _ in range(tries):
            try:
                self.one(name, doc, timeout=0.5)
                return
            except TimeoutError:
                continue  # dropped by the broker: nobody had subscribed
        raise TimeoutError(f"no reply to {name}")

    def run(self, n: int, timeout: float = 600) -> float:
        """Send ``n`` ``stock.adjust`` commands; commands/s to the last reply."""
        started = time.perf_counter()
        for i in range(n):
            with self._cond:
                if not self._cond.wait_for(lambda: i - self.run_replies < OUTSTANDING,
                                           timeout):
                    raise TimeoutError(f"{self.run_replies} of {n} replies")
            self._send("stock.adjust", {"id": f"{self._prefix}{i}", "sku": "BENCH-1",
                                        "bin": "A-01", "delta": 1, "reason": "bench"})
        with self._cond:
            if not self._cond.wait_for(lambda: self.run_replies >= n, timeout):
                raise TimeoutError(f"{self.run_replies} of {n} replies")
        return n / (time.perf_counter() - started)

    def close(self) -> None:
        """Disconnect."""
        self.client.disconnect()
        self.client.loop_stop()


def _echo_rate(port: int, n: int) -> float:
    base = f"echo/{HUB}"
    proc = subprocess.Popen(python("-c", _ECHO, str(port), base), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    driver = Driver(port, base)
    try:
        driver.first("ping", {"id": "warm-up"})
        return driver.run(n)
    finally:
        driver.close()
        stop_process(proc)


def _hub_rate(port: int, root: Path, n: int) -> dict[str, float]:
    cfg = root / "hub.toml"
    cfg.write_text(f'[hub]\nid = "{HUB}"\nstate_dir = "{root / "state"}"\nlog_level = "warning"\n\n'
                   f'[mqtt]\nhost = "127.0.0.1"\nport = {port}\ntelemetry_s = 3600.0\n')
    strace = shutil.which("strace")
    trace = root / "strace.txt"
    prefix = [strace, "-f", "-qq", "--seccomp-bpf", "-e", "trace=fsync,fdatasync", "-o",
              str(trace)] if strace else None
    with daemon(["--config", str(cfg)], root, prefix=prefix) as (proc, _):
        driver = Driver(port, f"hubs/{HUB}")
        try:
            driver.first("catalog.upsert", {"id": "cat", "items": [{"sku": "BENCH-1", "name": "bench"}]})
            pid = traced_pid(proc)
            written = io_bytes_written(pid)
            rate = driver.run(n)
            written = io_bytes_written(pid) - written
            failed = len(driver.failed)
        finally:
            driver.close()
    out = {"rate": rate, "bytes": written / n, "failed": failed}
    if strace:
        out["fsyncs"] = sum(1 for line in trace.read_text().splitlines() if "sync(" in line) / n
    return out


def bench(quick: bool) -> list[Row]:
    """stock.adjust commands/s with 200 outstanding beside a raw broker echo."""
    n = 2000 if quick else 10_000
    with tempfile.TemporaryDirectory(prefix="hubagent-bench-commands-") as tmp:
        root = Path(tmp)
        (root / "hub").mkdir()
        with broker(root) as port:
            echo = _echo_rate(port, n)
            hub = _hub_rate(port, root / "hub", n)
    ratio = hub["rate"] / echo
    rows = [
        Row(name=f"stock.adjust commands/s, {OUTSTANDING} outstanding", value=hub["rate"], unit="cmd/s",
            target=">= 0.5 x echo", met=ratio >= 0.5,
            note=f"{ratio:.2f} x a raw broker echo ({echo:.0f} /s); {n} commands"
                 + (f", {hub['failed']:.0f} failed" if hub["failed"] else "")),
        Row(name="under load: bytes written per movement", value=hub["bytes"] / 1024, unit="KB",
            target="<= 5 KB", met=hub["bytes"] <= 5 * 1024, note="write_bytes of the daemon (storage only, not sockets)"),
    ]
    if "fsyncs" in hub:
        rows.append(Row(name="under load: fsyncs per movement", value=hub["fsyncs"], unit="fsync",
                        target="<= 0.05", met=hub["fsyncs"] <= 0.05,
                        note="every fsync/fdatasync of the daemon's life, start-up included"))
    return rows


if __name__ == "__main__":  # pragma: no cover - a manual entry for one figure
    import sys

    for row in bench("--quick" in sys.argv):
        print(row)
