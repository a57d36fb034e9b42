"""``hubctl`` for a person: commands, the stock directory, reconcile, config errors."""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from centralproc import IngestProc, hubctl, hubctl_json, query, upto
from fixtures_mqtt import MakeBroker, MosquittoBroker
from hubagent.central.fleet import Fleet
from hubproc import Daemon, wait_until

pytest_plugins = ["fixtures_pg"]

CATALOG = {"items": [
    {"sku": "TEA-1", "name": "Green tea", "gtins": ["4006381333931"], "bin": "A-01"},
    {"sku": "COF-2", "name": "Coffee", "gtins": ["5901234123457"], "bin": "B-02"},
]}


def run(d: Daemon, name: str, args: dict[str, Any]) -> dict[str, Any]:
    """A command through the hub's local API; the result of an ok reply."""
    reply = d.command(name, {"id": uuid.uuid4().hex, **args})
    assert reply["ok"] is True, reply
    return reply["result"]  # type: ignore[no-any-return]


@pytest.fixture
def hub(daemon_factory: Callable[..., Daemon], mqtt_broker: MosquittoBroker,
        tmp_path: Path) -> Daemon:
    """A real daemon "hub-r" on the broker with a catalog and some stock."""
    sd = tmp_path / "hub-r"
    sd.mkdir()
    d = daemon_factory("run", "--sim", "--hub-id", "hub-r", "--mqtt",
                       f"127.0.0.1:{mqtt_broker.port}", "--state-dir", str(sd), state_dir=sd)
    run(d, "catalog.upsert", CATALOG)
    run(d, "stock.adjust", {"sku": "TEA-1", "bin": "A-01", "delta": 30, "reason": "delivery"})
    run(d, "stock.adjust", {"sku": "TEA-1", "bin": "C-03", "delta": 4, "reason": "delivery"})
    run(d, "stock.adjust", {"sku": "COF-2", "bin": "B-02", "delta": 12, "reason": "delivery"})
    wait_until(lambda: d.status()["sync"]["subscribed"], 20, "hub-r subscribed")
    return d


@pytest.fixture
def fleet(mqtt_broker: MosquittoBroker) -> Iterator[Fleet]:
    """Three simulated hubs with events and retained stock summaries."""
    f = Fleet(mqtt_broker.host, mqtt_broker.port, 3).start()
    f.record(20)
    f.publish_stock()
    yield f
    f.close()


def test_reconcile_finds_and_fixes_a_drift_made_on_purpose(
        db_url: str, mqtt_broker: MosquittoBroker, hub: Daemon, tmp_path: Path) -> None:
    ingest = IngestProc(mqtt_broker.port, db_url, tmp_path / "ingest.log").start()
    try:
        last = hub.status()["sync"]["last_seq"]
        wait_until(lambda: upto(db_url, "hub-r") >= last, 20, lambda: ingest.log())
        clean = hubctl_json(mqtt_broker.port, "reconcile", "hub-r", "--db", db_url)
        assert clean["differences"] == [] and clean["caught_up"] is True
        assert clean["compared"] == 3
        # The drift: someone edits the hub's ledger by hand, bypassing movements and events.
        con = sqlite3.connect(hub.state_dir / "hubagent.db", timeout=10)
        with con:
            con.execute("UPDATE balances SET on_hand = on_hand + 7 "
                        "WHERE sku = 'TEA-1' AND bin = 'A-01'")
        con.close()
        assert run(hub, "stock.get", {"sku": "TEA-1"})["bins"]["A-01"] == 37
        report = hubctl(mqtt_broker.port, "reconcile", "hub-r", "--db", db_url)
        assert report.returncode == 0, report.stderr
        assert "TEA-1 @ A-01: central 30, hub 37 (hub +7)" in report.stdout
        fixed = hubctl_json(mqtt_broker.port, "reconcile", "hub-r", "--db", db_url, "--apply",
                            "--reason", "hand edit found in audit")
        [diff] = fixed["differences"]
        assert (diff["sku"], diff["bin"], diff["central"], diff["hub"], diff["fixed"]) == \
            ("TEA-1", "A-01", 30, 37, True)
        # The hub recorded a count movement with the correction's id as its ref ...
        assert run(hub, "stock.get", {"sku": "TEA-1"})["bins"]["A-01"] == 30
        assert query(db_url, "SELECT hub, sku, bin, central, hub_on_hand, reason, ok "
                     "FROM corrections") == [("hub-r", "TEA-1", "A-01", 30, 37,
                                              "hand edit found in audit", 1)]
        last = hub.status()["sync"]["last_seq"]
        wait_until(lambda: upto(db_url, "hub-r") >= last, 20, "the count event stored")
        [(kind, data)] = query(db_url, "SELECT kind, data FROM events WHERE hub = 'hub-r' "
                               "AND seq = ?", (last,))
        assert kind == "stock.moved" and '"type": "count"' in data and diff["command"] in data
        # ... and both books agree again.
        again = hubctl_json(mqtt_broker.port, "reconcile", "hub-r", "--db", db_url)
        assert again["differences"] == []
    finally:
        ingest.close()


def test_stock_answers_from_retained_summaries_of_several_hubs(
        mqtt_broker: MosquittoBroker, hub: Daemon, fleet: Fleet) -> None:
    def want(sku: str) -> list[tuple[str, str, int]]:
        rows = [(h.hub, b, q) for h in fleet.hubs for (s, b), q in sorted(h.ledger.items())
                if s == sku and q > 0]
        return sorted(rows)

    tea = hubctl_json(mqtt_broker.port, "stock", "TEA-1")
    got = sorted((r["hub"], r["bin"], r["on_hand"]) for r in tea)
    assert got == sorted(want("TEA-1") + [("hub-r", "A-01", 30), ("hub-r", "C-03", 4)])
    assert len({r["hub"] for r in tea}) == 4
    human = hubctl(mqtt_broker.port, "stock", "COF-2")
    assert human.returncode == 0
    assert "hub-r" in human.stdout and "B-02" in human.stdout
    total = 12 + sum(q for _, _, q in want("COF-2"))
    assert f"COF-2: {total} in " in human.stdout
    none = hubctl(mqtt_broker.port, "stock", "NOPE-9", "--wait", "1")
    assert none.returncode == 0 and "NOPE-9: no hub has it" in none.stdout


def test_cmd_with_reply_retry_and_fan_out(mqtt_broker: MosquittoBroker, hub: Daemon,
                                          fleet: Fleet) -> None:
    port = mqtt_broker.port
    pong = hubctl_json(port, "cmd", "hub-r", "ping")
    assert pong["hub-r"]["ok"] is True and pong["hub-r"]["result"]["hub"] == "hub-r"
    # A retry with the same id has no second effect: the hub answers with the first reply.
    args = '{"sku": "COF-2", "bin": "B-02", "delta": 3, "reason": "found"}'
    first = hubctl_json(port, "cmd", "hub-r", "stock.adjust", args, "--id", "adj-1")
    second = hubctl_json(port, "cmd", "hub-r", "stock.adjust", args, "--id", "adj-1")
    assert first["hub-r"]["result"]["on_hand"] == 15
    assert second["hub-r"]["duplicate"] is True and second["hub-r"]["result"]["on_hand"] == 15
    assert run(hub, "stock.get", {"sku": "COF-2"})["on_hand"] == 15
    # Fan-out, with a hub that does not exist: its timeout is reported, the others answer.
    hubs = ",".join(["hub-r", *(h.hub for h in fleet.hubs), "hub-gone"])
    out = hubctl(port, "--json", "cmd", "--hubs", hubs, "ping", "--timeout", "1",
                 "--retries", "1")
    assert out.returncode == 1
    import json
    replies = json.loads(out.stdout)
    assert [replies[h]["ok"] for h in hubs.split(",")] == [True, True, True, True, False]
    assert replies["hub-gone"]["error"]["code"] == "timeout"
    # An error reply: exit status 1, the code in the output.
    bad = hubctl(port, "cmd", "hub-r", "stock.adjust", '{"sku": "NOPE", "bin": "A", "delta": 1}')
    assert bad.returncode == 1 and "error" in bad.stdout


def test_bad_options_are_named(mqtt_broker: MosquittoBroker, tmp_path: Path) -> None:
    def fails(*args: str) -> str:
        proc = hubctl(mqtt_broker.port, *args)
        assert proc.returncode == 2, proc.stdout + proc.stderr
        return proc.stderr

    assert "JSON" in fails("cmd", "hub-1", "ping", "[1, 2]")
    assert "--partition" in fails("ingest", "--partition", "three")
    cfg = tmp_path / "central.toml"
    cfg.write_text('[mqtt]\nhost = "127.0.0.1"\nport = 70000\n')
    proc = hubctl(mqtt_broker.port, "--config", str(cfg), "hubs")
    # --mqtt overrides the file's port; the file alone names the bad field.
    assert proc.returncode == 0
    import subprocess
    import sys
    alone = subprocess.run([sys.executable, "-m", "hubagent.central.cli", "--config", str(cfg),
                            "hubs"], capture_output=True, text=True, timeout=30)
    assert alone.returncode == 2 and "mqtt.port" in alone.stderr
    none = subprocess.run([sys.executable, "-m", "hubagent.central.cli", "hubs"],
                          capture_output=True, text=True, timeout=30)
    assert none.returncode == 2 and "--mqtt HOST:PORT" in none.stderr
