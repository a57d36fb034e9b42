"""Command-to-pulse latency: MQTT ``locker.open`` published until the lock pin is active.

Starts its own Mosquitto on a free loopback port, runs an in-process hub
with a simulated bank (MockFactory pins) on its own core-loop thread, and
publishes ``locker.open`` with paho as central would. Each sample is the
time from ``publish()`` until the lock output pin went active, as stamped
by the MockPin itself (so the measuring thread need not poll hard); the door
is closed (through the simulator) and the release completed before the
next command, so no sample waits for a busy bank.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any, Callable, cast

from hubagent.bench.broker import broker, no_delay
from hubagent.bench.corethread import CoreThread
from hubagent.bench.rows import Row, percentile
from hubagent.clock import SYSTEM

_HUB = "bench-hub"
_COMPS = {"A1": (5, 17), "A2": (6, 27), "A3": (13, 22), "A4": (19, 23)}


def _wait(predicate: Callable[[], Any], timeout: float, what: str, step: float = 0.01) -> Any:
    deadline = SYSTEM.monotonic() + timeout
    while not (value := predicate()):
        if SYSTEM.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        time.sleep(step)
    return value


def _core(state: Path, port: int) -> CoreThread:
    """A hub with one simulated bank, on its own loop thread in this process."""
    from hubagent.app import build_app
    from hubagent.config import from_dict

    comps = {n: {"lock_pin": lock, "door_pin": door, "size": "M", "pulse_s": 0.1}
             for n, (lock, door) in _COMPS.items()}
    doc = {"hub": {"id": _HUB, "state_dir": str(state)},
           "mqtt": {"host": "127.0.0.1", "port": port, "reconnect_max_s": 1.0},
           "lockers": {"bank-a": {"driver": "sim", "compartments": comps}},
           "locker_policy": {"lock_confirm_s": 2.0}}
    return CoreThread(build_app(from_dict(doc), simulated=True))


def _state(core: CoreThread, comp: str) -> str:
    rows = core.call(lambda: core.app.store.query(
        "SELECT state FROM locker_compartments WHERE bank='bank-a' AND compartment=?", (comp,)))
    return str(rows[0]["state"])


def _one_open(core: CoreThread, client: Any, comp: str) -> float:
    from hubagent.lockers.settings import normalise_pin
    from hubagent.sim.lockers import SimLockerBank

    # The registry built this device for the role "lockers" with driver "sim".
    bank = cast(SimLockerBank, core.app.device("lockers", "bank-a"))
    # The lock output's MockPin stamps each change with time.monotonic(): the
    # moment the pin went active comes from the pin itself, so this thread can
    # wait with a coarse step instead of spinning against the hub for the GIL.
    pin = bank.mock_pins.pin(normalise_pin(_COMPS[comp][0]))
    pin.clear_states()
    cleared = time.monotonic()  # the stamp clear_states() just took, within microseconds
    payload = json.dumps({"id": uuid.uuid4().hex, "bank": "bank-a", "compartment": comp,
                          "reason": "bench"}).encode()
    started = time.monotonic()
    client.publish(f"hubs/{_HUB}/cmd/locker.open", payload, qos=1)
    _wait(lambda: len(pin.states) > 1, 10.0, "the lock pin", step=0.005)
    latency = cleared + pin.states[1].timestamp - started
    _wait(lambda: bank.door_open(comp) and not bank.energised(comp), 10.0, "the pulse to end")
    core.call(lambda: core.app.sim_command("lockers", "bank-a", "close", {"compartment": comp}))
    _wait(lambda: _state(core, comp) == "free", 10.0, "the release to complete")
    return latency


def _raw_round_trips(port: int, n: int) -> list[float]:
    """Seconds from ``publish()`` to a second paho client receiving it, ``n`` times.

    The baseline: what the broker and paho alone cost on the same path,
    as an MQTT-to-GPIO bridge that did nothing else would see.
    """
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    got = threading.Event()
    sub = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    subscribed = threading.Event()
    sub.on_subscribe = lambda *a: subscribed.set()
    sub.on_message = lambda *a: got.set()
    sub.on_connect = lambda c, u, f, rc, p: c.subscribe("rawbench/pin", qos=1)
    pub = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    samples = []
    try:
        for c in (sub, pub):
            c.connect("127.0.0.1", port)
            no_delay(c)
            c.loop_start()
        subscribed.wait(20)
        for _ in range(n):
            got.clear()
            started = time.perf_counter()
            pub.publish("rawbench/pin", b'{"on": true}', qos=1)
            if not got.wait(10):
                raise TimeoutError("the raw round trip did not arrive")
            samples.append(time.perf_counter() - started)
    finally:
        for c in (sub, pub):
            c.disconnect()
            c.loop_stop()
    return samples


def bench(quick: bool) -> list[Row]:
    """p50/p99 of MQTT ``locker.open`` publish -> lock pin active."""
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    opens = 20 if quick else 100
    tmp = Path(tempfile.mkdtemp(prefix="hubagent-bench-lockers-"))
    core: CoreThread | None = None
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bench-central", protocol=mqtt.MQTTv5)
    try:
        with broker(tmp) as port:
            try:
                core = _core(tmp / "state", port)
                uplink = core.app.interfaces.uplink
                assert uplink is not None
                _wait(uplink.is_connected, 20.0, "the hub to connect")
                client.connect("127.0.0.1", port)
                no_delay(client)
                client.loop_start()
                samples = [_one_open(core, client, list(_COMPS)[i % len(_COMPS)]) for i in range(opens)]
                raw = _raw_round_trips(port, opens)
            finally:
                client.loop_stop()
                if core is not None:
                    core.close()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    p50, p99 = percentile(samples, 50) * 1000, percentile(samples, 99) * 1000
    raw99 = percentile(raw, 99) * 1000
    note = f"{opens} opens over a local broker, sim bank"
    return [Row(name="locker.open -> lock pin active, p50", value=p50, unit="ms", target="< 100 ms",
                met=p50 < 100, note=note),
            Row(name="locker.open -> lock pin active, p99", value=p99, unit="ms", target="<= 5 ms",
                met=p99 <= 5, note=f"raw paho publish -> subscriber p99: {raw99:.2f} ms "
                                   f"({p99 / raw99:.1f} x)")]
