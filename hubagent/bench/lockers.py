"""Command-to-pulse latency: MQTT ``locker.open`` published until the lock pin is active.

Starts its own Mosquitto on a free loopback port, runs an in-process hub
with a simulated bank (MockFactory pins) on its own core-loop thread, and
publishes ``locker.open`` with paho as central would. Each sample is the
time from ``publish()`` until the bank reports the lock energised; the door
is closed (through the simulator) and the release completed before the
next command, so no sample waits for a busy bank.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import shutil
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any, Callable, cast

from hubagent.bench.broker import broker
from hubagent.bench.rows import Row, percentile
from hubagent.ports import LockerBank

_HUB = "bench-hub"
_COMPS = {"A1": (5, 17), "A2": (6, 27), "A3": (13, 22), "A4": (19, 23)}


def _wait(predicate: Callable[[], Any], timeout: float, what: str, step: float = 0.01) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := predicate()):
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        time.sleep(step)
    return value


class _Core:
    """The app on its own asyncio loop thread."""

    def __init__(self, state: Path, port: int) -> None:
        from hubagent.app import build_app
        from hubagent.config import from_dict

        comps = {n: {"lock_pin": lock, "door_pin": door, "size": "M", "pulse_s": 0.1}
                 for n, (lock, door) in _COMPS.items()}
        doc = {"hub": {"id": _HUB, "state_dir": str(state)},
               "mqtt": {"host": "127.0.0.1", "port": port, "reconnect_max_s": 1.0},
               "lockers": {"bank-a": {"driver": "sim", "compartments": comps}},
               "locker_policy": {"lock_confirm_s": 2.0}}
        self.app = build_app(from_dict(doc), simulated=True)
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self.app.start(), self.loop).result(30)

    def call(self, fn: Callable[[], Any]) -> Any:
        fut: concurrent.futures.Future[Any] = concurrent.futures.Future()

        def run() -> None:
            try:
                fut.set_result(fn())
            except BaseException as e:
                fut.set_exception(e)

        self.loop.call_soon_threadsafe(run)
        return fut.result(30)

    def close(self) -> None:
        asyncio.run_coroutine_threadsafe(self.app.stop(), self.loop).result(30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


def _state(core: _Core, comp: str) -> str:
    rows = core.call(lambda: core.app.store.query(
        "SELECT state FROM locker_compartments WHERE bank='bank-a' AND compartment=?", (comp,)))
    return str(rows[0]["state"])


def _one_open(core: _Core, client: Any, comp: str) -> float:
    # The registry built this device for the role "lockers": a LockerBank.
    bank = cast(LockerBank, core.app.device("lockers", "bank-a"))
    payload = json.dumps({"id": uuid.uuid4().hex, "bank": "bank-a", "compartment": comp,
                          "reason": "bench"}).encode()
    started = time.perf_counter()
    client.publish(f"hubs/{_HUB}/cmd/locker.open", payload, qos=1)
    _wait(lambda: bank.energised(comp), 10.0, "the lock pin", step=0.0002)
    latency = time.perf_counter() - started
    _wait(lambda: bank.door_open(comp) and not bank.energised(comp), 10.0, "the pulse to end")
    core.call(lambda: core.app.sim_command("lockers", "bank-a", "close", {"compartment": comp}))
    _wait(lambda: _state(core, comp) == "free", 10.0, "the release to complete")
    return latency


def bench(quick: bool) -> list[Row]:
    """p50/p99 of MQTT ``locker.open`` publish -> lock pin active."""
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    opens = 20 if quick else 100
    tmp = Path(tempfile.mkdtemp(prefix="hubagent-bench-lockers-"))
    core: _Core | None = None
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bench-central", protocol=mqtt.MQTTv5)
    try:
        with broker(tmp) as port:
            try:
                core = _Core(tmp / "state", port)
                uplink = core.app.interfaces.uplink
                assert uplink is not None
                _wait(uplink.is_connected, 20.0, "the hub to connect")
                client.connect("127.0.0.1", port)
                client.loop_start()
                samples = [_one_open(core, client, list(_COMPS)[i % len(_COMPS)]) for i in range(opens)]
            finally:
                client.loop_stop()
                if core is not None:
                    core.close()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    p50, p99 = percentile(samples, 50) * 1000, percentile(samples, 99) * 1000
    note = f"{opens} opens over a local broker, sim bank"
    return [Row(name="locker.open -> lock pin active, p50", value=p50, unit="ms", target="< 100 ms",
                met=p50 < 100, note=note),
            Row(name="locker.open -> lock pin active, p99", value=p99, unit="ms", target="< 300 ms",
                met=p99 < 300)]
