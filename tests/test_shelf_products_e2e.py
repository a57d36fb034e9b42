"""Real products end to end: real daemon, real pty scanner, real broker.

Central sends the catalog with GTINs in every form it may hold; each form a
scanner may read is typed into the simulated scanner's pseudo-terminal and
read by the production serial loop; the committed movements arrive at a
real Mosquitto as events, and the retained stock summaries follow. Lots
carried by GS1-128, DataMatrix and Digital Link strings drive FEFO picks and
the expiry notices, which use the real wall clock (dates are relative to
today).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any, Callable

import pytest

from central import Central
from fixtures_mqtt import MosquittoBroker
from hubproc import Daemon, mqtt_table, wait_until, write_hub_config

GS = "\x1d"
EAN13 = "5901234123457"
CASE_14 = "15901234123454"   # 12 x EAN13
EAN13_B = "4006381333931"
UPC_A = "036000291452"
UPC_E = "04252614"           # expands to UPC-A 042100005264
EAN8 = "96385074"
MILK = "09506000134352"      # GS1's example GTIN
SE_CHEESE = "2312345600004"  # Swedish weight layout 23, value zeroed
DE_HAM = "2812340000002"     # German weight layout 28 with weight check digit

# Each GTIN in a form central may hold: 13 digits, 14 digits, UPC-A without its
# leading zero, a JSON number, an EAN-8, a case GTIN-14 with a pack quantity.
CATALOG = [
    {"sku": "MUG-2", "name": "Mug", "gtins": [EAN13, {"gtin": CASE_14, "qty": 12}], "bin": "B-02"},
    {"sku": "PEN-1", "name": "Pen", "gtins": ["0" + EAN13_B], "bin": "A-01"},
    {"sku": "TISSUE", "name": "Tissues", "gtins": [int(UPC_A)]},
    {"sku": "SODA", "name": "Soda", "gtins": ["042100005264"]},
    {"sku": "GUM", "name": "Gum", "gtins": [EAN8]},
    {"sku": "MILK", "name": "Milk", "gtins": [MILK[1:]], "bin": "C-01", "net_content": 1, "net_unit": "l"},
    {"sku": "CHEESE", "name": "Cheese", "gtins": [SE_CHEESE]},
    {"sku": "HAM", "name": "Ham", "gtins": ["0" + DE_HAM]},
]


def write_config(tmp_path: Path, broker: MosquittoBroker) -> tuple[Path, Path]:
    return write_hub_config(tmp_path, f"""\
{mqtt_table(broker.port, telemetry_s=2.0)}
[scanners.front]
driver = "sim"
feedback = "front"

[feedback.front]
driver = "sim"
history = 1000

[scanning]
dedupe_s = 5.0

[[scanning.variable_measure]]
prefix = "23"
item_digits = 6
kind = "weight"
decimals = 3

[[scanning.variable_measure]]
prefix = "28"
item_digits = 4
kind = "weight"
decimals = 3
value_check = true

[stock]
expiring_days = 7
unsellable_bins = ["QUARANTINE"]

[lockers.bank-a]
driver = "sim"

[lockers.bank-a.compartments.A1]
lock_pin = 5
door_pin = 17
size = "S"
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


def scan(hub: Daemon, code: str) -> str:
    """Type ``code`` (GS as the 0x1D byte) into the pty scanner; return the feedback."""
    before = _handled(hub)
    reply = hub.sim("scanners", "bytes", name="front", hex=(code + "\r").encode().hex())
    assert reply["ok"], reply
    wait_until(lambda: _handled(hub) > before, 15, lambda: f"the scan of {code!r}:\n{hub.log()}",
               interval=0.02)
    history = hub.sim("feedback", "history", name="front")["result"]["history"]
    return str(history[-1]["pattern"])


def moved(central: Central, n: int) -> list[dict[str, Any]]:
    return [e["data"] for e in central.wait_for_events(n, kind="stock.moved", timeout=20)]


def test_every_gtin_form_from_pty_to_central(hub: Daemon, central: Central) -> None:
    bad = central.command("catalog.upsert", {"items": [{"sku": "X-1", "name": "x", "gtins": ["5901234123458"]}]})
    assert bad["ok"] is False and bad["error"]["code"] == "bad_args" and "5901234123458" in bad["error"]["message"]
    assert central.command("catalog.upsert", {"items": CATALOG}, id="cat")["ok"]
    assert scan(hub, "HA:MODE:RECEIVE") == "ok"
    assert scan(hub, "HA:BIN:R-01") == "ok"
    reads = [
        (EAN13, "MUG-2", 1), ("]E0" + EAN13_B, "PEN-1", 1), ("0" + EAN13_B, "PEN-1", 1),
        (UPC_A, "TISSUE", 1), ("]E0" + UPC_E, "SODA", 1), (UPC_E, "SODA", 1),
        (EAN8, "GUM", 1), ("]E4" + EAN8, "GUM", 1),
        ("]I1" + CASE_14, "MUG-2", 12), ("]C101" + CASE_14 + "10CASELOT", "MUG-2", 12),
        ("]C101" + MILK + "17271231" + "10L-128" + GS + "21S1", "MILK", 1),
        ("]d201" + MILK + "17280131" + "10L-DM", "MILK", 1),
        (f"https://id.gs1.org/01/{MILK}/10/L-DL?17=281130", "MILK", 1),
        (f"https://id.gs1.org/01/{EAN13}", "MUG-2", 1),
        ("2312345612342", "CHEESE", 1), ("]E02812347012503", "HAM", 1),
    ]
    for code, _, _ in reads:
        assert scan(hub, code) == "ok", (code, hub.status()["scanning"]["scanners"]["front"]["last_feedback"])
    got = moved(central, len(reads))
    assert [(m["sku"], m["delta"], m["bin"]) for m in got] == [(s, q, "R-01") for _, s, q in reads]
    lots = [(m["lot"], m["expiry"], m["serial"]) for m in got if m["sku"] == "MILK"]
    assert lots == [("L-128", "2027-12-31", "S1"), ("L-DM", "2028-01-31", None), ("L-DL", "2028-11-30", None)]
    assert got[9]["lot"] == "CASELOT"
    assert [m["weight"] for m in got if m["sku"] in ("CHEESE", "HAM")] == ["1.234", "1.250"]
    summary = central.wait_for(lambda: (s := central.stock("MUG-2")) and s["on_hand"] == 26 and s)
    assert summary["available"] == 26
    milk = central.wait_for(lambda: (s := central.stock("MILK")) and s["on_hand"] == 3 and s)
    assert [x["lot"] for x in milk["lots"]] == ["L-128", "L-DM", "L-DL"]
    assert central.violations() == []


def yymmdd(d: dt.date) -> str:
    return d.strftime("%y%m%d")


def test_fefo_counts_returns_and_expiry_reach_central(hub: Daemon, central: Central,
                                                      daemon_factory: Callable[..., Daemon]) -> None:
    today = dt.datetime.now(dt.timezone.utc).date()
    soon, late, past = today + dt.timedelta(days=3), today + dt.timedelta(days=60), today - dt.timedelta(days=10)
    assert central.command("catalog.upsert", {"items": CATALOG}, id="cat")["ok"]
    assert scan(hub, "HA:MODE:RECEIVE") == "ok"
    assert scan(hub, "HA:BIN:C-01") == "ok"
    assert scan(hub, "HA:QTY:4") == "ok"
    assert scan(hub, f"]d201{MILK}17{yymmdd(late)}10LATE") == "ok"
    assert scan(hub, "HA:QTY:3") == "ok"
    assert scan(hub, f"https://id.gs1.org/01/{MILK}/10/SOON?17={yymmdd(soon)}") == "ok"
    assert scan(hub, "HA:BIN:X-01") == "ok"
    assert scan(hub, f"]C101{MILK}17{yymmdd(past)}10OLD") == "ok"

    # FEFO: the pick list names SOON; picking LATE first beeps attention and is recorded
    r = central.command("pick.request", {"pick": "PK-1", "scanner": "front",
                                         "lines": [{"sku": "MILK", "qty": 3, "bin": "C-01"}]})
    assert r["ok"], r
    first = {"bin": "C-01", "lot": "SOON", "expiry": soon.isoformat(), "best_before": None}
    assert r["result"]["first"] == [{"sku": "MILK", **first}]
    assert scan(hub, "HA:MODE:PICK") == "ok"
    assert scan(hub, f"]d201{MILK}17{yymmdd(late)}10LATE") == "attention"
    assert hub.status()["scanning"]["scanners"]["front"]["pick"]["lines"][0]["first"] == first
    assert scan(hub, "HA:QTY:2") == "ok"
    assert scan(hub, MILK[1:]) == "ok"  # a plain EAN-13: the ledger takes SOON
    got = moved(central, 5)
    picks = [(m["lot"], m["delta"], m["reason"]) for m in got if m["type"] == "pick"]
    assert picks == [("LATE", -1, "fefo_skipped"), ("SOON", -2, None)]
    assert [m.get("fefo_first") for m in got if m["type"] == "pick"][0]["lot"] == "SOON"
    assert central.wait_for_events(1, kind="pick.done", timeout=20)[0]["data"]["status"] == "complete"

    # counting: an empty count is refused; repeated scans of one item count
    assert scan(hub, "HA:MODE:COUNT") == "ok"
    assert scan(hub, "HA:BIN:A-01") == "ok"
    assert scan(hub, "HA:DONE") == "error"
    for _ in range(3):
        assert scan(hub, EAN13_B) == "ok"  # within dedupe_s 5 s
    assert scan(hub, "HA:DONE") == "ok"
    assert scan(hub, "HA:BIN:B-02") == "ok"
    assert scan(hub, "HA:ZERO") == "ok"  # nothing there: deliberate zero, no movement needed

    # returns: the hub's own return label is the reference, even with lockers installed
    assert scan(hub, "HA:MODE:RETURN") == "ok"
    assert scan(hub, "HA:RET:RMA-2026-9") == "ok"
    assert scan(hub, "HA:COND:DAMAGED") == "ok"
    assert scan(hub, "]E0" + EAN13_B) == "ok"
    got = moved(central, 7)
    assert [(m["type"], m["sku"], m["delta"]) for m in got[5:]] == [("count", "PEN-1", 3), ("return", "PEN-1", 1)]
    assert (got[6]["ref"], got[6]["bin"]) == ("RMA-2026-9", "QUARANTINE")
    rejected = [e["data"] for e in central.events("scan.rejected")]
    assert [r["reason"] for r in rejected] == ["empty_count"]
    pen = central.wait_for(lambda: (s := central.stock("PEN-1")) and s["on_hand"] == 4 and s)
    assert (pen["available"], pen["bins"]) == (3, {"A-01": 3, "QUARANTINE": 1})

    # the expiry check runs at start and daily: restart to see it at central
    assert hub.terminate() == 0
    hub2 = daemon_factory("run", *hub.args[1:], state_dir=hub.state_dir)
    expiring = central.wait_for_events(1, kind="stock.expiring", timeout=20)
    expired = central.wait_for_events(1, kind="stock.expired", timeout=20)
    assert [(e["data"]["lot"], e["data"]["days_left"], e["data"]["on_hand"]) for e in expiring] == [("SOON", 3, 1)]
    assert [(e["data"]["lot"], e["data"]["bin"], e["data"]["on_hand"]) for e in expired] == [("OLD", "X-01", 1)]
    sample = central.wait_for(lambda: [t for t in central.telemetry() if t.get("stock", {}).get("expired_units")])
    assert sample[-1]["stock"]["expired_units"] == 1
    assert hub2.status()["stock"]["expired_units"] == 1
    assert central.violations() == []
