"""Shelf scanning end to end: real daemon, real pty scanner, real broker.

Scans are typed into the simulated scanner's pseudo-terminal (``hubagent
sim scan``) and read by the production serial read loop; central ops is a
real MQTT client on a real Mosquitto. Each workflow must end in committed
movements, events in seq order at central, and feedback in ``status``.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

import pytest

from central import Central
from fixtures_mqtt import MosquittoBroker
from hubproc import Daemon, mqtt_table, wait_until, write_hub_config

TEA = "4006381333931"
CATALOG = [
    {"sku": "TEA-1", "name": "Green tea", "gtins": ["0" + TEA], "price": 3.5, "bin": "A-01"},
    {"sku": "MUG-2", "name": "Mug", "gtins": ["5901234123457"], "price": "7.90", "bin": "B-02"},
]


def write_config(tmp_path: Path, broker: MosquittoBroker) -> tuple[Path, Path]:
    return write_hub_config(tmp_path, f"""\
{mqtt_table(broker.port, telemetry_s=5.0)}
[scanners.front]
driver = "sim"
feedback = "front"

[feedback.front]
driver = "sim"
history = 1000

[scanning]
dedupe_s = 0.5
""")


@pytest.fixture
def central(central_factory: Callable[..., Central]) -> Central:
    return central_factory(auto_ack=True)


@pytest.fixture
def hub(daemon_factory: Callable[..., Daemon], mqtt_broker: MosquittoBroker, central: Central,
        tmp_path: Path) -> Daemon:
    cfg, state = write_config(tmp_path, mqtt_broker)
    d = daemon_factory("run", "--config", str(cfg), state_dir=state)
    central.wait_for_state("online", timeout=20)
    return d


def _handled(hub: Daemon) -> int:
    front = hub.status()["scanning"]["scanners"]["front"]
    return int(front["accepted"]) + int(front["rejected"])


def _wait_handled(hub: Daemon, before: int, timeout: float = 15.0) -> None:
    wait_until(lambda: _handled(hub) > before, timeout,
               lambda: f"the scan to be handled:\n{hub.log()}", interval=0.02)


def last_feedback(hub: Daemon) -> str:
    reply = hub.sim("feedback", "history", name="front")
    assert reply["ok"], reply
    return str(reply["result"]["history"][-1]["pattern"])


def scan(hub: Daemon, code: str) -> str:
    """Type ``code`` into the pty scanner, wait until handled, return the feedback."""
    before = _handled(hub)
    reply = hub.sim("scanners", "scan", name="front", code=code)
    assert reply["ok"], reply
    _wait_handled(hub, before)
    return last_feedback(hub)


def send_bytes(hub: Daemon, data: bytes) -> str:
    """Raw bytes into the pty (noise, bad UTF-8); wait until handled."""
    before = _handled(hub)
    reply = hub.sim("scanners", "bytes", name="front", hex=data.hex())
    assert reply["ok"], reply
    _wait_handled(hub, before)
    return last_feedback(hub)


def balance(hub: Daemon, sku: str) -> dict[str, int]:
    reply = hub.command("stock.get", {"id": f"get-{time.monotonic_ns()}", "sku": sku})
    assert reply["ok"], reply
    return dict(reply["result"]["bins"])


def test_every_workflow_from_pty_to_central(hub: Daemon, central: Central, tmp_path: Path) -> None:
    kinds: list[str] = []
    assert central.command("catalog.upsert", {"items": CATALOG}, id="cat")["ok"]
    kinds.append("catalog.updated")
    assert central.command("staff.set", {"staff": "anna", "badge": "anna"}, id="staff")["ok"]
    kinds.append("staff.updated")

    # receive without an expected delivery (the CLI path once, as staff would type it)
    done = hub.cli("sim", "--state-dir", str(hub.state_dir), "scan", "HA:MODE:RECEIVE")
    assert done.returncode == 0, done.stderr
    central.wait_for(lambda: hub.status()["scanning"]["scanners"]["front"]["mode"] == "receive")
    assert scan(hub, "HA:STAFF:anna") == "ok"
    assert scan(hub, TEA) == "attention"  # no bin yet
    kinds.append("scan.rejected")
    assert scan(hub, "HA:BIN:R-01") == "ok"
    assert scan(hub, TEA) == "ok"
    assert scan(hub, "HA:QTY:3") == "ok"
    assert scan(hub, "MUG-2") == "ok"
    kinds += ["stock.moved"] * 2
    assert scan(hub, "HA:DONE") == "ok"

    # receive against an expected delivery: over and short
    r = central.command("delivery.expect", {"delivery": "DLV-1", "bin": "R-02",
                                            "lines": [{"sku": "TEA-1", "qty": 2}, {"sku": "MUG-2", "qty": 1}]},
                        id="dlv")
    assert r["ok"], r
    assert scan(hub, "HA:QTY:3") == "ok"
    assert scan(hub, TEA) == "attention"  # 3 of 2: booked, flagged as over
    assert scan(hub, "HA:DONE") == "attention"  # MUG-2 short
    kinds += ["stock.moved", "delivery.received"]

    # pick: wrong item and over-pick refused, completion emits pick.done
    r = central.command("pick.request", {"pick": "PK-1", "scanner": "front",
                                         "lines": [{"sku": "TEA-1", "qty": 2, "bin": "R-02"}]}, id="pk")
    assert r["ok"], r
    assert scan(hub, "HA:MODE:PICK") == "ok"
    assert scan(hub, "MUG-2") == "error"
    assert scan(hub, "HA:QTY:3") == "ok"
    assert scan(hub, TEA) == "error"
    kinds += ["scan.rejected"] * 2
    assert scan(hub, "HA:QTY:2") == "ok"
    assert scan(hub, TEA) == "ok"
    kinds += ["stock.moved", "pick.done"]

    # count R-01 (1 TEA, 3 MUG on the ledger): 2 MUG counted, TEA absent
    assert scan(hub, "HA:MODE:COUNT") == "ok"
    assert scan(hub, "HA:BIN:R-01") == "ok"
    assert scan(hub, "HA:QTY:2") == "ok"
    assert scan(hub, "MUG-2") == "ok"
    assert scan(hub, "HA:DONE") == "ok"
    kinds += ["stock.moved"] * 2

    # move 1 MUG from R-01 to S-01
    assert scan(hub, "HA:MODE:MOVE") == "ok"
    assert scan(hub, "HA:BIN:R-01") == "ok"
    assert scan(hub, "HA:BIN:S-01") == "ok"
    assert scan(hub, "MUG-2") == "ok"
    kinds += ["stock.moved"] * 2

    # returns: resellable to the default bin, damaged to quarantine
    assert scan(hub, "HA:MODE:RETURN") == "ok"
    assert scan(hub, "HA:COND:RESELLABLE") == "ok"
    assert scan(hub, TEA) == "ok"
    assert scan(hub, "HA:COND:DAMAGED") == "ok"
    assert scan(hub, "MUG-2") == "ok"
    kinds += ["stock.moved"] * 2

    # lookup: feedback only
    assert scan(hub, "HA:MODE:LOOKUP") == "ok"
    assert scan(hub, TEA) == "ok"

    events = central.wait_for_events(len(kinds), timeout=20)
    assert [e["kind"] for e in events] == kinds
    assert central.seqs() == list(range(1, len(kinds) + 1))
    data = [e["data"] for e in events]
    moved = [d for e, d in zip(kinds, data) if e == "stock.moved"]
    assert [(m["type"], m["sku"], m["bin"], m["delta"]) for m in moved] == [
        ("receive", "TEA-1", "R-01", 1), ("receive", "MUG-2", "R-01", 3),
        ("receive", "TEA-1", "R-02", 3), ("pick", "TEA-1", "R-02", -2),
        ("count", "MUG-2", "R-01", -1), ("count", "TEA-1", "R-01", -1),
        ("move", "MUG-2", "R-01", -1), ("move", "MUG-2", "S-01", 1),
        ("return", "TEA-1", "A-01", 1), ("return", "MUG-2", "QUARANTINE", 1)]
    assert all(m["actor"] == "anna" and m["device"] == "front" for m in moved)
    [received] = [d for e, d in zip(kinds, data) if e == "delivery.received"]
    assert received["lines"] == [{"sku": "TEA-1", "expected": 2, "received": 3, "over": 1, "short": 0},
                                 {"sku": "MUG-2", "expected": 1, "received": 0, "over": 0, "short": 1}]
    [pick] = [d for e, d in zip(kinds, data) if e == "pick.done"]
    assert pick["status"] == "complete" and pick["lines"][0]["picked"] == 2
    assert [d["reason"] for e, d in zip(kinds, data) if e == "scan.rejected"] == [
        "no_bin", "wrong_item", "over_pick"]

    assert balance(hub, "TEA-1") == {"R-01": 0, "R-02": 1, "A-01": 1}
    assert balance(hub, "MUG-2") == {"R-01": 1, "S-01": 1, "QUARANTINE": 1}
    assert central.wait_for(lambda: (s := central.stock("MUG-2")) and s["on_hand"] == 3 and s)
    st = hub.status()
    front = st["scanning"]["scanners"]["front"]
    assert front["mode"] == "lookup" and front["staff"] == "anna"
    assert front["feedback_history"][-1] == "ok" and len(front["feedback_history"]) == 5
    assert front["last_feedback"]["pattern"] == "ok"
    [fb] = [d for d in st["devices"] if d["role"] == "feedback"]
    assert fb["detail"].startswith("last ok")
    assert central.violations() == []


def test_bad_input_is_rejected_and_the_scanner_keeps_reading_across_a_restart(
        hub: Daemon, central: Central, daemon_factory: Callable[..., Daemon], tmp_path: Path) -> None:
    assert central.command("catalog.upsert", {"items": CATALOG}, id="cat")["ok"]
    assert scan(hub, "HA:MODE:RECEIVE") == "ok"
    assert scan(hub, "HA:BIN:R-01") == "ok"
    bad: list[tuple[Callable[[], str], str]] = [
        (lambda: scan(hub, "~~ what ~~"), "unknown_code"),
        (lambda: scan(hub, "4006381333932"), "bad_check_digit"),
        (lambda: scan(hub, "]C1010400638133393199"), "gs1_parse_error"),
        (lambda: scan(hub, "NOPE-404"), "unknown_item"),
        (lambda: send_bytes(hub, b"\x00\x13\x9b\xff\xfe\x80junk\x07\r"), "not_utf8"),
        (lambda: send_bytes(hub, b"TEA\x80-1\r"), "not_utf8"),
        (lambda: scan(hub, "X" * 700), "too_long"),
    ]
    for do, reason in bad:
        assert do() == "error", reason
    # a double scan: the second read of the same code inside dedupe_s
    assert scan(hub, TEA) == "ok"
    assert send_bytes(hub, (TEA + "\r").encode()) == "error"
    reasons = ["unknown_code", "bad_check_digit", "gs1_parse_error", "unknown_item", "not_utf8",
               "not_utf8", "too_long", "double_scan"]
    events = central.wait_for_events(2 + len(reasons), timeout=20)
    rejected = [e["data"] for e in events if e["kind"] == "scan.rejected"]
    assert [d["reason"] for d in rejected] == reasons
    assert all(len(d["raw"]) <= 64 and d["raw"].isascii() for d in rejected)
    assert rejected[4]["raw"].startswith("\\x9b\\xff")  # noise stripped by the framer, rest escaped
    assert balance(hub, "TEA-1") == {"R-01": 1}
    assert hub.status()["scanning"]["scanners"]["front"]["rejected"] == len(reasons)

    # the mode survives a restart; the half-finished bin selection does not
    assert scan(hub, "HA:MODE:MOVE") == "ok"
    assert hub.terminate() == 0
    hub2 = daemon_factory("run", *hub.args[1:], state_dir=hub.state_dir)
    front = hub2.status()["scanning"]["scanners"]["front"]
    assert front["mode"] == "move" and front["bin"] is None
    assert scan(hub2, "HA:BIN:R-01") == "ok"
    assert scan(hub2, "HA:BIN:S-02") == "ok"
    assert scan(hub2, TEA) == "ok"
    assert balance(hub2, "TEA-1") == {"R-01": 0, "S-02": 1}
