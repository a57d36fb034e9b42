"""KPIs from a month of the hub's own commands and scans, on the manual clock.

Thirty simulated days at a hub in Berlin: receipts and picks scanned on a
real pseudo-terminal, returns and a write-off reported to central, a pick
at 00:30 local time (still the previous day in UTC), refused scans, and
parcels stored and picked up after known waits. Every figure is worked out
in the test from the scenario with plain arithmetic, then compared with
``kpi.get``; a rebuild from the ledger gives the same numbers.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

from corethread import CoreThread
from hubagent.app import build_app
from hubagent.clock import ManualClock
from hubagent.config import from_dict
from hubproc import wait_until

GTIN = "5901234123457"
# 1 November 2026 00:00 in Berlin is 31 October 23:00 UTC (CET, UTC+1).
START = datetime(2026, 10, 31, 23, 0, tzinfo=timezone.utc)


class Hub(CoreThread):
    """An in-process hub on a manual clock: a sim scanner, keypad and locker bank."""

    def __init__(self, state: Path) -> None:
        comps = {n: {"lock_pin": lock, "door_pin": door, "size": "M", "pulse_s": 0.3}
                 for n, lock, door in (("A1", 5, 17), ("A2", 6, 27), ("A3", 13, 22), ("A4", 19, 23))}
        doc = {"hub": {"id": "kpi-hub", "state_dir": str(state), "timezone": "Europe/Berlin"},
               "scanners": {"front": {"driver": "sim"}},
               "keypads": {"door": {"driver": "sim"}},
               "scanning": {"default_mode": "receive"},
               "lockers": {"bank-a": {"driver": "sim", "compartments": comps}},
               "locker_policy": {"expiry_check_s": 3600.0, "pickup_expiry_s": 30 * 86400}}
        self.clock = ManualClock(wall=START)
        super().__init__(build_app(from_dict(doc, "<kpi test>"), clock=self.clock))

    def at(self, when: datetime) -> None:
        """Move the hub's clocks forward to ``when``."""
        self.clock.advance((when - self.clock.now()).total_seconds())

    def scan(self, *codes: str, refused: bool = False) -> None:
        """Scan codes one by one, each accepted (or, with ``refused``, refused) before the next."""
        for code in codes:
            before = self.counts()
            self.call(lambda: self.app.sim_command("scanners", "front", "scan", {"code": code}))
            after = wait_until(lambda: (c := self.counts()) != before and c, 10, f"scan {code} handled",
                               interval=0.01)
            assert after == ((before[0], before[1] + 1) if refused else (before[0] + 1, before[1])), code
            self.clock.advance(2)  # past the double-scan window

    def counts(self) -> tuple[int, int]:
        st = self.call(self.app.status)["scanning"]["scanners"]["front"]
        return int(st["accepted"]), int(st["rejected"])

    def compartment(self, name: str) -> dict[str, Any]:
        return self.call(lambda: self.app.status())["lockers"]["banks"]["bank-a"]["compartments"][name]  # type: ignore[no-any-return]

    def settle(self, predicate: Callable[[], Any], what: str) -> Any:
        def step() -> Any:
            self.clock.advance(0.05)
            return predicate()
        return wait_until(step, 15, what, interval=0.02)


@pytest.fixture
def hub(tmp_path: Path, mock_pins: Any) -> Iterator[Hub]:
    h = Hub(tmp_path / "state")
    try:
        yield h
    finally:
        h.close()


def local(day: int, hour: int, minute: int = 0) -> datetime:
    """``hour:minute`` Berlin time on November ``day`` (CET, UTC+1, all month)."""
    return datetime(2026, 11, day, hour, minute, tzinfo=timezone.utc) - timedelta(hours=1)


def store_parcel(hub: Hub, parcel: str, at: datetime) -> str:
    """Assign, load by scan, and close the door at exactly ``at``; the compartment."""
    comp = hub.command("parcel.assign", parcel=parcel, size="M")["compartment"]
    hub.scan(f"HA:PCL:{parcel}")
    hub.settle(lambda: hub.compartment(comp)["door"] == "open", f"{comp} open for loading")
    hub.at(at)
    hub.call(lambda: hub.app.sim_command("lockers", "bank-a", "close", {"compartment": comp}))
    # The door's change reaches the core from the bank's thread; the hub's clock stands still.
    wait_until(lambda: hub.compartment(comp)["state"] == "occupied", 15, f"{parcel} stored")
    return str(comp)


def pick_up(hub: Hub, parcel: str, comp: str, at: datetime) -> None:
    """The customer types the pickup code, takes the parcel and closes the door at exactly ``at``."""
    stored = hub.call(lambda: [json.loads(r["data"]) for r in hub.app.store.query(
        "SELECT data FROM outbox WHERE kind='parcel.stored'")])
    code = next(d["pickup_code"] for d in stored if d["parcel"] == parcel)
    hub.call(lambda: hub.app.sim_command("keypads", "door", "code", {"code": code}))
    hub.settle(lambda: hub.compartment(comp)["door"] == "open", f"{comp} open")
    hub.at(at)
    hub.call(lambda: hub.app.sim_command("lockers", "bank-a", "close", {"compartment": comp}))
    wait_until(lambda: hub.compartment(comp)["state"] == "free", 15, f"{comp} free again")


RECEIPTS = {1: 12, 10: 20, 20: 25}          # units received (scanned) on these days at 09:00
PICK = 2                                     # units picked (scanned) every day from the 2nd
RETURNS = {25: ("A-01", 2, "wrong size"), 28: ("QUARANTINE", 1, "damaged")}
WRITE_OFF = {29: 1}                          # units written off as damaged in A-01
PARCEL_WAITS = {27: 40, 28: 120, 29: 10}     # minutes between stored and picked up


def test_a_month_of_movements_gives_the_hand_worked_figures(hub: Hub) -> None:
    hub.command("catalog.upsert", items=[{"sku": "TEA-1", "name": "Green tea", "gtins": ["0" + GTIN]}])
    accepted = refused = 0
    for day in range(1, 31):
        if day in RECEIPTS:
            hub.at(local(day, 9))
            hub.scan("HA:MODE:RECEIVE", "HA:BIN:A-01", f"HA:QTY:{RECEIPTS[day]}", GTIN, "HA:DONE")
            accepted += 5
            # HA:MODE, HA:BIN, HA:QTY, the item and HA:DONE
        if day >= 2:
            # The 17th's pick is at 00:30 in Berlin: 23:30 UTC on the 16th.
            hub.at(local(day, 0, 30) if day == 17 else local(day, 11))
            hub.command("pick.request", pick=f"PK-{day}", scanner="front",
                        lines=[{"sku": "TEA-1", "qty": PICK, "bin": "A-01"}])
            hub.scan("HA:MODE:PICK", f"HA:QTY:{PICK}", GTIN)
            accepted += 3
        if day in (5, 12):
            hub.scan("HA:BIN:A_01", refused=True)  # an underscore: not a bin code the hub accepts
            refused += 1
        if day in PARCEL_WAITS:
            hub.at(local(day, 12))
            comp = store_parcel(hub, f"P-{day}", local(day, 12, 5))
            accepted += 1  # the HA:PCL load scan
            hub.at(local(day, 12, 5) + timedelta(minutes=PARCEL_WAITS[day] - 2))
            pick_up(hub, f"P-{day}", comp, local(day, 12, 5) + timedelta(minutes=PARCEL_WAITS[day]))
        if day in RETURNS:
            hub.at(local(day, 15))
            bin_, qty, reason = RETURNS[day]
            hub.command("stock.adjust", sku="TEA-1", bin=bin_, delta=qty, reason=reason, type="return")
        if day in WRITE_OFF:
            hub.at(local(day, 16))
            hub.command("stock.adjust", sku="TEA-1", bin="A-01", delta=-WRITE_OFF[day], reason="broken",
                        type="damage")
    hub.at(local(30, 18))

    # --- worked out by hand ------------------------------------------------------------
    level: dict[int, int] = {}  # sellable on hand at the end of each local day
    on_hand = 0
    for day in range(1, 31):
        on_hand += RECEIPTS.get(day, 0) - (PICK if day >= 2 else 0) - WRITE_OFF.get(day, 0)
        if day in RETURNS and RETURNS[day][0] != "QUARANTINE":
            on_hand += RETURNS[day][1]
        level[day] = on_hand
    window = range(17, 31)  # the 14 local days ending on the 30th
    sold_14 = PICK * len(window)
    sold_7 = PICK * 7
    opening_14 = level[16]
    opening_7 = level[23]
    received_14 = sum(q for d, q in RECEIPTS.items() if d in window)
    returns = sum(q for d, (_, q, _) in RETURNS.items() if d in window)

    kpi = hub.command("kpi.get", sku="TEA-1", window_days=14)
    assert kpi["day"] == "2026-11-30"
    # The 00:30 pick of the 17th counts in the window: a UTC day would have put it on the 16th.
    assert kpi["units_sold_14d"] == sold_14 == 28 and kpi["units_sold_7d"] == sold_7 == 14
    assert kpi["sell_through_14d"] == round(sold_14 / (opening_14 + received_14), 4)
    assert kpi["sell_through_7d"] == round(sold_7 / (opening_7 + 0), 4)
    assert kpi["returns"] == returns == 3 and kpi["return_rate"] == round(returns / sold_14, 4)
    assert kpi["returns_by_reason"] == {"damaged": 1, "wrong size": 2}
    assert kpi["returns_by_condition"] == {"damaged": 1, "resellable": 2}
    assert kpi["damaged"] == 1 + 1  # the damaged return and the write-off
    assert kpi["sellable_on_hand"] == level[30]
    assert kpi["days_of_supply"] == round(max(level[30], 0) / (sold_14 / 14), 1)
    assert kpi["stock_out_days"] == sum(1 for d in window if level[d] <= 0)
    month = hub.command("kpi.get", sku="TEA-1", window_days=30)
    assert month["stock_out_days"] == sum(1 for d in range(1, 31) if level[d] <= 0) > 0

    waits = sorted(60 * m for m in PARCEL_WAITS.values())  # 600, 2400, 7200 s
    figures = hub.command("kpi.get", window_days=30)
    assert figures["parcels_stored"] == figures["parcels_picked_up"] == 3
    assert figures["pickup_dwell_p50_s"] == waits[1] and figures["pickup_dwell_p90_s"] == waits[2]
    assert figures["parcels_expired_uncollected"] == 0
    assert (figures["scans_accepted"], figures["scans_refused"]) == (accepted, refused) == (105, 2)
    assert figures["scans_refused_per_100"] == round(100 * refused / figures["scans_accepted"], 2)

    # A rebuild from the ledger gives the same figures.
    hub.command("kpi.rebuild")
    assert hub.command("kpi.get", sku="TEA-1", window_days=14) == kpi
    assert hub.command("kpi.get", sku="TEA-1", window_days=30) == month
    assert hub.command("kpi.get", window_days=30) == figures


def test_no_day_based_figures_while_the_clock_is_not_set(tmp_path: Path, mock_pins: Any) -> None:
    hub = Hub(tmp_path / "state")
    try:
        hub.clock.set_wall(datetime(1970, 1, 1, 0, 5, tzinfo=timezone.utc))
        reply = hub.call(lambda: hub.app.commands.handle("kpi.get", b'{"id": "k1"}'))
        assert reply["error"]["code"] == "clock_not_set"
    finally:
        hub.close()
