"""The power feature end to end: a real upsd + dummy-ups, the real daemon, a real
Mosquitto broker and ``Central``. The UPS is driven by rewriting the dummy
driver's data file (``nut_server.set_status``)."""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path
from typing import Any, Callable

from central import Central
from fixtures_mqtt import MosquittoBroker
from fixtures_nut import NutServer
from hubproc import Daemon, mqtt_table, write_hub_config

EVENT_TIMEOUT = 25.0
CATALOG = [{"sku": "TEA-1", "name": "Green tea", "bin": "A-01"}]


def write_config(tmp_path: Path, broker: MosquittoBroker, power: str, policy: str = "") -> tuple[Path, Path]:
    return write_hub_config(tmp_path, f"""\
{mqtt_table(broker.port, telemetry_s=1.0, reconnect_min_s=0.2, reconnect_max_s=1.0)}
{power}

[power_policy]
confirm_s = 0.5
shutdown_grace_s = 20.0
{policy}
""")


def nut_power(nut: NutServer) -> str:
    return f"""[power.ups]
driver = "nut"
host = "{nut.host}"
port = {nut.port}
ups = "{nut.ups}"
poll_s = 0.3
timeout_s = 1.0
reconnect_max_s = 0.5
report_every_polls = 1000
"""


def changes(central: Central) -> list[tuple[str, str]]:
    return [(e["data"]["from"], e["data"]["to"]) for e in central.events("power.changed")]


def phases(central: Central) -> list[str]:
    return [e["data"]["phase"] for e in central.events("power.shutdown")]


def wait_change(central: Central, change: tuple[str, str]) -> None:
    central.wait_for(lambda: change in changes(central), EVENT_TIMEOUT, what=f"power.changed {change}")


def start_on_nut(nut: NutServer, broker: MosquittoBroker, central_factory: Callable[..., Central],
                 daemon_factory: Callable[..., Daemon], tmp_path: Path) -> tuple[Path, Central, Daemon]:
    """The hub on the NUT server with a harmless power-off command (it appends to the
    returned log file), and an auto-acking central; returns once the mains reading arrived."""
    poweroff_log = tmp_path / "poweroff.log"
    policy = f'shutdown_command = ["/bin/sh", "-c", "echo poweroff >> {poweroff_log}"]'
    cfg, state = write_config(tmp_path, broker, nut_power(nut), policy)
    central = central_factory(auto_ack=True)
    hub = daemon_factory("run", "--config", str(cfg), state_dir=state)
    wait_change(central, ("unknown", "mains"))
    return poweroff_log, central, hub


def test_outage_low_battery_and_shutdown_exactly_once(nut_server: NutServer, mqtt_broker: MosquittoBroker,
                                                      central_factory: Callable[..., Central],
                                                      daemon_factory: Callable[..., Daemon],
                                                      tmp_path: Path) -> None:
    poweroff_log, central, hub = start_on_nut(nut_server, mqtt_broker, central_factory,
                                              daemon_factory, tmp_path)
    central.wait_for_state("online")

    nut_server.set_status("OB")
    wait_change(central, ("mains", "on_battery"))
    st = central.wait_for_state("alert")
    assert st["alerts"] == ["power"]
    assert hub.status()["alerts"]["power"] == "on battery"
    telemetry = central.wait_for(lambda: [t for t in central.telemetry()
                                          if t.get("power", {}).get("state") == "on_battery"], 10)
    assert telemetry[-1]["power"]["flags"] == ["OB"] and telemetry[-1]["power"]["charge"] == 100

    nut_server.set_status("OB LB")
    wait_change(central, ("on_battery", "low_battery"))
    central.wait_for(lambda: phases(central) == ["begin", "command"], EVENT_TIMEOUT, what="shutdown events")
    central.wait_for(lambda: poweroff_log.exists(), EVENT_TIMEOUT, what="power-off command")
    # The daemon survives the harmless command: more readings decide nothing more.
    nut_server.set_vars(runtime=30, charge=5)
    nut_server.set_status("OB LB")
    time.sleep(2.0)
    assert poweroff_log.read_text() == "poweroff\n"
    assert changes(central) == [("unknown", "mains"), ("mains", "on_battery"), ("on_battery", "low_battery")]
    assert phases(central) == ["begin", "command"]
    command = central.events("power.shutdown")[1]["data"]
    assert command["ran"] is True and command["recorded"] is False
    assert command["command"][0] == "/bin/sh"
    assert hub.status()["power"]["shutdown"]["phase"] == "done"
    assert "offline" in central.states()  # published before the command ran
    assert central.violations() == []


def test_upsd_outage_short_battery_and_cancelled_shutdown(nut_server: NutServer,
                                                          mqtt_broker: MosquittoBroker,
                                                          central_factory: Callable[..., Central],
                                                          daemon_factory: Callable[..., Daemon],
                                                          tmp_path: Path) -> None:
    poweroff_log, central, hub = start_on_nut(nut_server, mqtt_broker, central_factory,
                                              daemon_factory, tmp_path)

    # upsd stops: unknown (an alert); it comes back: mains again.
    nut_server.stop()
    wait_change(central, ("mains", "unknown"))
    st = hub.status()
    assert st["power"]["state"] == "unknown" and st["power"]["reachable"] is False
    assert st["alerts"]["power"] == "power state unknown"
    nut_server.start()
    wait_change(central, ("unknown", "mains"))
    central.wait_for(lambda: "power" not in hub.status()["alerts"], 10)

    # A short outage: on battery, back on mains, no shutdown.
    nut_server.set_status("OB")
    wait_change(central, ("mains", "on_battery"))
    nut_server.set_status("OL")
    central.wait_for(lambda: changes(central).count(("on_battery", "mains")) == 1, EVENT_TIMEOUT)
    assert phases(central) == []

    # The uplink dies with the mains, so the flush waits; mains returns within the grace period.
    mqtt_broker.stop()
    nut_server.set_status("OB LB")
    hub_power = lambda: hub.status()["power"]  # noqa: E731
    central.wait_for(lambda: hub_power()["shutdown"]["phase"] == "begin", EVENT_TIMEOUT)
    nut_server.set_status("OL")
    p = central.wait_for(lambda: (p := hub_power())["shutdown"]["phase"] == "cancelled" and p, EVENT_TIMEOUT)
    central.wait_for(lambda: "resume" in hub_power()["shutdown"].get("steps_run", []), EVENT_TIMEOUT)
    assert p["state"] == "mains"
    assert not poweroff_log.exists()

    # Back online: central gets every event, in order, the cancellation included.
    mqtt_broker.start()
    central.wait_connected(15)
    last = hub.status()["last_seq"]
    central.wait_for(lambda: central.gap_free_upto() >= last, EVENT_TIMEOUT, what="outbox resent")
    assert phases(central) == ["begin", "cancelled"]
    assert changes(central)[-2:] == [("mains", "low_battery"), ("low_battery", "mains")]
    assert central.violations() == []


def _keep_sending(hub: Daemon, name: str, payload: Callable[[int], dict[str, Any]],
                  acked: list[str], refused: list[str], stop: threading.Event) -> None:
    """Send command ``name`` until stopped or the daemon dies; keep the ids that got ``ok``
    and the error codes of the others."""
    i = 0
    while not stop.is_set():
        cid = f"{name}-{i}"
        i += 1
        try:
            reply = hub.api({"op": "command", "name": name, "payload": {"id": cid, **payload(i)}})
        except Exception:
            return  # the daemon was killed: this one was never acknowledged
        result = reply.get("result") or {}
        if reply.get("ok") and result.get("ok"):
            acked.append(cid)
        else:
            refused.append((result.get("error") or {}).get("code", "?"))
            if refused[-1] == "unknown_command":
                return
            stop.wait(0.05)


def _movement(i: int) -> dict[str, Any]:
    return {"sku": "TEA-1", "bin": "A-01", "delta": 1, "reason": "in flight"}


def _label(i: int) -> dict[str, Any]:
    return {"template": "shelf", "fields": {"name": f"Tea {i}", "price": "3.50", "sku": "TEA-1"}}


def test_low_battery_with_work_in_flight_loses_nothing(mqtt_broker: MosquittoBroker,
                                                       central_factory: Callable[..., Central],
                                                       daemon_factory: Callable[..., Daemon],
                                                       tmp_path: Path) -> None:
    power = '[power.ups]\ndriver = "sim"\n\n[printers.label]\ndriver = "sim"\n'
    cfg, state = write_config(tmp_path, mqtt_broker, power)
    central = central_factory(auto_ack=True)
    hub = daemon_factory("run", "--config", str(cfg), state_dir=state)
    assert hub.command("catalog.upsert", {"id": "cat-1", "items": CATALOG})["ok"]
    acked: list[str] = []
    jobs: list[str] = []
    refused: list[str] = []
    stop = threading.Event()
    workers = [threading.Thread(target=_keep_sending, args=(hub, "stock.adjust", _movement, acked, refused, stop),
                                daemon=True),
               threading.Thread(target=_keep_sending, args=(hub, "print", _label, jobs, refused, stop),
                                daemon=True)]
    for w in workers:
        w.start()
    printing = "printing" in hub.status()  # the printing feature is installed
    try:
        central.wait_for(lambda: len(acked) >= 20 and (len(jobs) >= 3 or not printing), 30,
                         what="movements and print jobs recorded")
        assert hub.sim("power", "low")["ok"]
        central.wait_for(lambda: hub.status()["power"]["shutdown"]["phase"] == "recorded", EVENT_TIMEOUT)
        if printing:  # new print jobs are refused from the first shutdown step on
            central.wait_for(lambda: "paused" in refused, 10, what="a print job refused as paused")
        hub.kill()  # the power goes, mid-stream
    finally:
        stop.set()
        for w in workers:
            w.join(10)
    assert len(acked) >= 20

    hub2 = daemon_factory("run", "--config", str(cfg), state_dir=state)
    st = hub2.status()
    assert st["power"]["previous_shutdown"]["phase"] == "command"
    assert st["power"]["previous_shutdown"]["recorded"] is True
    # The outbox resumes: everything up to the new run's last seq arrives, gap-free.
    central.wait_for(lambda: central.gap_free_upto() >= hub2.status()["last_seq"], EVENT_TIMEOUT,
                     what="outbox resumed after restart")
    assert phases(central) == ["begin", "command"]
    # The CLI's `sim power unreachable` reaches the daemon: state unknown.
    cli = hub2.cli("sim", "--config", str(cfg), "power", "unreachable")
    assert cli.returncode == 0, cli.stderr
    central.wait_for(lambda: hub2.status()["power"]["state"] == "unknown", EVENT_TIMEOUT)
    assert hub2.terminate() == 0
    db = sqlite3.connect(state / "hubagent.db")
    try:
        refs = {r[0] for r in db.execute("SELECT ref FROM movements")}
        queued = {r[0] for r in db.execute("SELECT id FROM print_jobs")} if printing else set()
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    finally:
        db.close()
    assert set(acked) <= refs, sorted(set(acked) - refs)[:5]
    assert set(jobs) <= queued, sorted(set(jobs) - queued)[:5]
    moved = {e["data"]["ref"] for e in central.events("stock.moved")}
    assert set(acked) <= moved
    assert central.violations() == []
