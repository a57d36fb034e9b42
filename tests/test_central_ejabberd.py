"""The hub and the ingest through ejabberd's ``mod_mqtt`` (no shared subscriptions):
partitioned ingests store every event once and ack it, commands are answered, and the
shared mode is refused with a clear error."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from collections.abc import Callable
from importlib import resources
from pathlib import Path

from centralproc import IngestProc, query, upto
from fixtures_ejabberd import Ejabberd
from hubagent.central.fleet import Fleet
from hubproc import Daemon, wait_until

pytest_plugins = ["fixtures_ejabberd"]


def _central_config(tmp_path: Path, node: Ejabberd) -> Path:
    cfg = tmp_path / "central.toml"
    cfg.write_text(f'[mqtt]\nhost = "127.0.0.1"\nport = {node.port}\nusername = "central"\n'
                   'password_env = "CENTRAL_MQTT_PASSWORD"\n')
    return cfg


def _hub_config(tmp_path: Path, node: Ejabberd, hub: str) -> Path:
    """The embedded sim config, as hub ``hub``, with credentials for the node."""
    text = resources.files("hubagent").joinpath("sim.toml").read_text()
    state = tmp_path / hub
    state.mkdir()
    text = text.replace('id = "sim-hub"', f'id = "{hub}"').replace(
        'state_dir = "state"', f'state_dir = "{state}"')
    text += (f'\n[mqtt]\nhost = "127.0.0.1"\nport = {node.port}\nusername = "{hub}"\n'
             'password_env = "HUB_MQTT_PASSWORD"\nack_timeout_s = 2.0\nreconnect_max_s = 2.0\n')
    cfg = tmp_path / f"{hub}.toml"
    cfg.write_text(text)
    return cfg


def test_partitioned_ingest_through_ejabberd(
        ejabberd: Ejabberd, daemon_factory: Callable[..., Daemon], tmp_path: Path,
        ) -> None:
    for user, password in (("central", "c-secret"), ("hub-e", "h-secret"), ("fleet", "f-secret")):
        ejabberd.register(user, password)
    env = {"CENTRAL_MQTT_PASSWORD": "c-secret"}
    central_cfg = _central_config(tmp_path, ejabberd)
    hub_cfg = _hub_config(tmp_path, ejabberd, "hub-e")
    hub = daemon_factory("run", "--config", str(hub_cfg), state_dir=tmp_path / "hub-e",
                         env={"HUB_MQTT_PASSWORD": "h-secret"})
    wait_until(lambda: hub.status()["sync"]["subscribed"], 30, lambda: hub.log())
    fleet = Fleet(ejabberd.host, ejabberd.port, 30, username="fleet", password="f-secret").start()
    try:
        fleet.record(5)
        db_url = f"sqlite:///{tmp_path}/central.db"
        ingests = []
        for k in range(2):
            p = IngestProc(0, db_url, tmp_path / f"ingest{k}.log", "--partition", f"{k}/2")
            p.cmd[p.cmd.index("--mqtt"):p.cmd.index("--mqtt") + 2] = ["--config", str(central_cfg)]
            p.env = env
            ingests.append(p.start())
        try:
            for n in range(3):
                reply = hub.command("stock.adjust", {"id": uuid.uuid4().hex, "sku": "TEA-1",
                                                     "bin": "A-01", "delta": 2 + n,
                                                     "reason": "delivery"})
                assert reply["ok"] is False  # no catalog yet: a business error, no event
            hub.command("catalog.upsert", {"id": "cat-1", "items": [
                {"sku": "TEA-1", "name": "Green tea", "gtins": ["4006381333931"], "bin": "A-01"}]})
            hub.command("stock.adjust", {"id": "adj-1", "sku": "TEA-1", "bin": "A-01", "delta": 9,
                                         "reason": "delivery"})
            fleet.record(5)
            assert fleet.wait_all_acked(60), ingests[0].log() + ingests[1].log()
            last = hub.status()["sync"]["last_seq"]
            wait_until(lambda: hub.status()["sync"]["acked_seq"] == last
                       and upto(db_url, "hub-e") == last, 30, lambda: ingests[0].log())
            rows = query(db_url, "SELECT hub, COUNT(*), COUNT(DISTINCT seq), MAX(seq) "
                         "FROM events GROUP BY hub")
            assert {h: (n, d, m) for h, n, d, m in rows} == {
                **{h.hub: (10, 10, 10) for h in fleet.hubs}, "hub-e": (last, last, last)}
            # A command answered on central's own response topic, through ejabberd.
            ping = subprocess.run(
                [sys.executable, "-m", "hubagent.central.cli", "--config", str(central_cfg),
                 "--json", "cmd", "hub-e", "ping"], capture_output=True, text=True, timeout=60,
                env={**hub.env, **env})
            assert ping.returncode == 0, ping.stderr
            assert json.loads(ping.stdout)["hub-e"]["result"]["hub"] == "hub-e"
        finally:
            for p in ingests:
                p.close()
        # ejabberd has no shared subscriptions: the shared mode says so and exits.
        shared = subprocess.run(
            [sys.executable, "-m", "hubagent.central.cli", "--config", str(central_cfg),
             "ingest", "--mode", "shared", "--db", db_url], capture_output=True, text=True,
            timeout=60, env={**hub.env, **env})
        assert shared.returncode == 1
        assert "SharedSubscriptionAvailable = 0" in shared.stderr
    finally:
        fleet.close()


def test_ingest_survives_ejabberds_in_node_restart_fault(
        ejabberd: Ejabberd, daemon_factory: Callable[..., Daemon], tmp_path: Path) -> None:
    """After ``ejabberdctl restart`` mod_mqtt refuses every subscription: the ingest says
    so and keeps asking; after a full stop and start of the node the hub and the ingest
    reconnect by themselves and everything is stored, including what the hub recorded
    while the node was down."""
    for user, password in (("central", "c-secret"), ("fleet", "f-secret"), ("hub-r", "h-secret")):
        ejabberd.register(user, password)
    central_cfg = _central_config(tmp_path, ejabberd)
    hub = daemon_factory("run", "--config", str(_hub_config(tmp_path, ejabberd, "hub-r")),
                         state_dir=tmp_path / "hub-r", env={"HUB_MQTT_PASSWORD": "h-secret"})
    fleet = Fleet(ejabberd.host, ejabberd.port, 5, username="fleet", password="f-secret").start()
    db_url = f"sqlite:///{tmp_path}/central.db"
    ingest = IngestProc(0, db_url, tmp_path / "ingest.log", "--partition", "0/1")
    ingest.cmd[ingest.cmd.index("--mqtt"):ingest.cmd.index("--mqtt") + 2] = \
        ["--config", str(central_cfg)]
    ingest.env = {"CENTRAL_MQTT_PASSWORD": "c-secret"}
    try:
        ingest.start()
        hub.command("catalog.upsert", {"id": "cat-1", "items": [
            {"sku": "TEA-1", "name": "Green tea", "gtins": ["4006381333931"], "bin": "A-01"}]})
        fleet.record(3)
        assert fleet.wait_all_acked(30), ingest.log()
        ejabberd.restart_in_node()
        wait_until(lambda: ingest.log().count("broker refused subscriptions") >= 2, 40,
                   lambda: ingest.log())
        fleet.record(3)
        ejabberd.halt()
        # Recorded while the node is down: kept in the hub's outbox.
        reply = hub.command("stock.adjust", {"id": "adj-down", "sku": "TEA-1", "bin": "A-01",
                                             "delta": 4, "reason": "delivery"})
        assert reply["ok"] is True, reply
        ejabberd.start()
        assert fleet.wait_all_acked(60), ingest.log()
        rows = query(db_url, "SELECT hub, COUNT(*), COUNT(DISTINCT seq) FROM events "
                     "WHERE hub != 'hub-r' GROUP BY hub")
        assert sorted(rows) == sorted((h.hub, 6, 6) for h in fleet.hubs)
        last = hub.status()["sync"]["last_seq"]
        wait_until(lambda: hub.status()["sync"]["subscribed"]
                   and hub.status()["sync"]["acked_seq"] >= last
                   and upto(db_url, "hub-r") >= last, 60, lambda: hub.log() + ingest.log())
        assert query(db_url, "SELECT on_hand FROM stock WHERE hub = 'hub-r' AND sku = 'TEA-1'") \
            == [(4,)]
    finally:
        ingest.close()
        fleet.close()
