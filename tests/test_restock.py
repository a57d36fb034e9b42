"""Restock windows end to end over a real broker: claim, a full slot, release,
receipt against a claim, a no-show, the retained windows.

The hub runs in-process on a manual clock (slots are half an hour long; the
test moves the hub's time instead of waiting), with a real Mosquitto, a real
SQLite file and a simulated scanner on a pseudo-terminal.
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Iterator

import pytest

from central import Central
from fixtures_mqtt import MosquittoBroker
from corethread import CoreThread
from hubagent.app import build_app
from hubagent.clock import ManualClock
from hubagent.config import from_dict
from hubproc import wait_until

# Monday 30 November 2026, 07:00 in Berlin (CET, UTC+1).
MONDAY_0700 = datetime(2026, 11, 30, 6, 0, tzinfo=timezone.utc)
TEA = {"sku": "TEA-1", "name": "Green tea", "gtins": ["05901234123457"]}


class Hub(CoreThread):
    """The hub in-process on a manual clock, connected to the test's broker."""

    def __init__(self, state: Path, broker: MosquittoBroker) -> None:
        doc = {
            "hub": {"id": "hub-1", "state_dir": str(state), "timezone": "Europe/Berlin"},
            "mqtt": {"host": broker.host, "port": broker.port, "ack_timeout_s": 2.0},
            "scanners": {"front": {"driver": "sim"}},
            "scanning": {"default_mode": "receive"},
            "restock": {"hours": [{"days": ["mon", "tue", "wed", "thu", "fri", "sat"],
                                   "start": "08:00", "end": "12:00"}],
                        "slot_minutes": 30, "capacity": 2, "grace_minutes": 30,
                        "holidays": ["2026-12-25"], "publish_days": 2},
        }
        self.clock = ManualClock(wall=MONDAY_0700)
        super().__init__(build_app(from_dict(doc, "<restock test>"), clock=self.clock))

    def scan(self, code: str) -> None:
        self.call(lambda: self.app.sim_command("scanners", "front", "scan", {"code": code}))


@pytest.fixture
def hub(tmp_path: Path, mqtt_broker: MosquittoBroker) -> Iterator[Hub]:
    h = Hub(tmp_path / "state", mqtt_broker)
    try:
        yield h
    finally:
        h.close()


def windows(central: Central) -> dict[str, int]:
    doc = central.restock() or {"windows": []}
    return {w["slot"]: w["free"] for w in doc["windows"]}


def test_claim_full_release_receipt_and_no_show(hub: Hub, central_factory: Callable[..., Central]) -> None:
    central = central_factory(auto_ack=True)
    central.wait_for_state("online")
    assert central.command("catalog.upsert", {"items": [TEA]})["ok"]
    lines = [{"sku": "TEA-1", "qty": 6}]

    a = central.command("restock.claim", {"claim": "R-A", "slot": "2026-11-30T09:00",
                                          "claimant": "maker:tea-co", "lines": lines})
    assert a["ok"] and a["result"]["free"] == 1, a
    b = central.command("restock.claim", {"claim": "R-B", "slot": "2026-11-30T09:00",
                                          "claimant": "store:corner", "lines": lines})
    assert b["ok"] and b["result"]["free"] == 0
    full = central.command("restock.claim", {"claim": "R-C", "slot": "2026-11-30T09:00",
                                             "claimant": "store:other", "lines": lines})
    assert full["error"]["code"] == "full", full
    for slot, code in (("2026-11-30T07:30", "outside_hours"), ("2026-11-29T09:00", "outside_hours"),
                       ("2026-12-25T09:00", "outside_hours"), ("30.11.2026 09:00", "bad_args")):
        r = central.command("restock.claim", {"claim": f"R-{code}", "slot": slot, "claimant": "x",
                                              "lines": lines})
        assert r["error"]["code"] in (code, "bad_slot"), (slot, r)
    unknown = central.command("restock.claim", {"claim": "R-U", "slot": "2026-11-30T10:00",
                                                "claimant": "x", "lines": [{"sku": "NOPE", "qty": 1}]})
    assert unknown["error"]["code"] == "unknown_sku"
    wait_until(lambda: windows(central).get("2026-11-30T09:00") == 0, 10, "the full slot published")

    # Releasing B frees the place; C gets it.
    assert central.command("restock.release", {"claim": "R-B"})["ok"]
    c = central.command("restock.claim", {"claim": "R-C", "slot": "2026-11-30T09:00",
                                          "claimant": "store:other", "lines": lines})
    assert c["ok"], c

    # 09:10 Berlin: A's delivery arrives and is received against its claim.
    hub.clock.advance(2 * 3600 + 600)
    hub.scan("HA:MODE:RECEIVE")
    hub.scan("HA:BIN:A-01")
    hub.scan("5901234123457")
    wait_until(lambda: hub.call(lambda: hub.app.store.query(
        "SELECT received FROM delivery_lines WHERE delivery='R-A'"))[0]["received"] == 1, 10,
        "the receipt counted against R-A")
    # 09:30 + 30 min grace: A arrived; C never came and is a no-show.
    hub.clock.advance(3600)
    arrived = central.wait_for(lambda: central.events("restock.arrived"), what="restock.arrived")
    no_show = central.wait_for(lambda: central.events("restock.no_show"), what="restock.no_show")
    assert [e["data"]["claim"] for e in arrived] == ["R-A"]
    assert [e["data"]["claim"] for e in no_show] == ["R-C"]
    kinds = [e["kind"] for e in central.events()]
    assert kinds.count("restock.claimed") == 3 and kinds.count("restock.released") == 1
    states = {r["id"]: r["state"] for r in hub.call(lambda: hub.app.store.query(
        "SELECT id, state FROM restock_claims"))}
    assert states == {"R-A": "arrived", "R-B": "released", "R-C": "no_show"}
    # A no-show's expectation is withdrawn: a later receipt of the SKU is not counted against it.
    assert hub.call(lambda: hub.app.store.query(
        "SELECT status FROM deliveries WHERE id='R-C'"))[0]["status"] == "cancelled"
    # The KPIs count the outcomes.
    kpi = central.command("kpi.get", {})["result"]
    assert (kpi["restock_claims"], kpi["restock_arrived"], kpi["restock_no_shows"]) == (3, 1, 1)
