"""KPI formulas over the daily rollups, checked against figures worked out by hand.

A real SQLite store with the KPI tables; movements folded in directly with
their times, so day boundaries in the hub's time zone are exact.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Iterator

import pytest

from hubagent.features import all_migrations
from hubagent.kpi import compute, rollup
from hubagent.kpi.days import local_day, window, zone
from hubagent.store.migrations import apply
from hubagent.store.store import Store

BERLIN = zone("Europe/Berlin")
UNSELLABLE = frozenset({"QUARANTINE"})


@pytest.fixture
def store() -> Iterator[Store]:
    with tempfile.TemporaryDirectory() as d:
        s = Store(Path(d) / "kpi.db", all_migrations())
        s.open()
        apply(s.conn, rollup.MIGRATIONS, s.clock.now())
        yield s
        s.close()


def fold(store: Store, moves: list[rollup.Move]) -> None:
    with store.write() as tx:
        rollup.rebuild_stock(tx, moves, BERLIN, UNSELLABLE)


def mv(type: str, delta: int, at: str, bin: str = "A-01", reason: str | None = None,
       lot: str | None = None, sku: str = "TEA-1") -> rollup.Move:
    return rollup.Move(type, sku, bin, delta, reason, lot, at)


def test_local_day_follows_the_hub_time_zone() -> None:
    assert local_day("2026-11-02T22:59:59.000Z", BERLIN) == "2026-11-02"
    assert local_day("2026-11-02T23:00:00.000Z", BERLIN) == "2026-11-03"  # CET is UTC+1
    assert local_day("2026-07-01T22:00:00.000Z", BERLIN) == "2026-07-02"  # CEST is UTC+2
    assert local_day("2026-03-29T00:59:00.000Z", BERLIN) == "2026-03-29"  # the DST switch day
    assert window("2026-03-01", 3) == ["2026-02-27", "2026-02-28", "2026-03-01"]
    with pytest.raises(ValueError, match="unknown time zone"):
        zone("Mars/Olympus")


def test_sell_through_days_of_supply_stock_outs_and_returns(store: Store) -> None:
    # Day 1 (Nov 1): receive 20. Days 2-8: pick 2 a day. Nov 5 23:30 UTC is Nov 6 in Berlin.
    moves = [mv("receive", 20, "2026-11-01T08:00:00.000Z")]
    moves += [mv("pick", -2, f"2026-11-0{d}T10:00:00.000Z") for d in range(2, 10)]
    moves.append(mv("pick", -1, "2026-11-05T23:30:00.000Z"))            # local Nov 6
    moves.append(mv("return", 1, "2026-11-07T12:00:00.000Z", reason="wrong size", lot="L1"))
    moves.append(mv("return", 2, "2026-11-08T12:00:00.000Z", bin="QUARANTINE", reason="damaged"))
    moves.append(mv("damage", -1, "2026-11-08T13:00:00.000Z"))
    fold(store, moves)
    with store.read() as tx:
        sold_7, st_7 = compute.sell_through(tx, "TEA-1", "2026-11-09", 7)
        # Nov 3..9: picks of 2 on Nov 3-9 (7 days) = 14, plus 1 on local Nov 6 = 15.
        # Opening sellable (end of Nov 2) = 20 - 2 = 18; nothing received in the window.
        assert sold_7 == 15 and st_7 == round(15 / 18, 4)
        sold_14, st_14 = compute.sell_through(tx, "TEA-1", "2026-11-09", 14)
        assert sold_14 == 17 and st_14 == round(17 / 20, 4)  # opening 0, received 20
        k = compute.sku_kpis(tx, "TEA-1", "2026-11-09", 14, sellable_now=20 - 17 + 1 - 1)
    assert k["returns"] == 3 and k["return_rate"] == round(3 / 17, 4)
    assert k["returns_by_reason"] == {"damaged": 2, "wrong size": 1}
    assert k["returns_by_condition"] == {"damaged": 2, "resellable": 1}
    assert k["damaged"] == 2 + 1
    assert k["days_of_supply"] == round(3 / (17 / 14), 1)
    assert k["lots"] == {"L1": {"sold": 0, "returned": 1, "return_rate": None}}
    assert k["stock_out_days"] == 0


def test_stock_out_days_carry_levels_across_quiet_days(store: Store) -> None:
    fold(store, [
        mv("receive", 3, "2026-11-01T08:00:00.000Z"),
        mv("pick", -3, "2026-11-02T08:00:00.000Z"),      # out from Nov 2 ...
        mv("receive", 5, "2026-11-05T08:00:00.000Z"),    # ... to Nov 4: 3 days
        mv("pick", -5, "2026-11-08T08:00:00.000Z"),      # out again Nov 8, 9, 10
    ])
    with store.read() as tx:
        assert compute.stock_out_days(tx, "TEA-1", "2026-11-10", 10) == 6
        # Before the first movement the SKU was not stocked: those days do not count.
        assert compute.stock_out_days(tx, "TEA-1", "2026-11-10", 30) == 6
        k = compute.sku_kpis(tx, "TEA-1", "2026-11-10", 10, sellable_now=0)
    assert k["days_of_supply"] == 0.0 and k["days_of_supply_rule"].startswith("sellable_on_hand")


def test_no_sales_has_no_days_of_supply(store: Store) -> None:
    fold(store, [mv("receive", 4, "2026-11-01T08:00:00.000Z")])
    with store.read() as tx:
        k = compute.sku_kpis(tx, "TEA-1", "2026-11-03", 14, sellable_now=4)
    assert k["days_of_supply"] is None and k["days_of_supply_rule"] == "no_sales_14d"
    assert k["sell_through_14d"] == 0.0 and k["return_rate"] is None


def test_return_rate_per_lot(store: Store) -> None:
    fold(store, [
        mv("receive", 10, "2026-11-01T08:00:00.000Z", lot="A"),
        mv("receive", 10, "2026-11-01T08:00:00.000Z", lot="B"),
        mv("pick", -4, "2026-11-02T08:00:00.000Z", lot="A"),
        mv("pick", -5, "2026-11-02T09:00:00.000Z", lot="B"),
        mv("return", 2, "2026-11-03T08:00:00.000Z", lot="A", reason="leaking"),
    ])
    with store.read() as tx:
        lots = compute.sku_kpis(tx, "TEA-1", "2026-11-03", 14, sellable_now=13)["lots"]
    assert lots == {"A": {"sold": 4, "returned": 2, "return_rate": 0.5},
                    "B": {"sold": 5, "returned": 0, "return_rate": 0.0}}


def test_pickup_dwell_percentiles_and_hub_counters(store: Store) -> None:
    with store.write() as tx:
        for n, minutes in enumerate([10, 20, 30, 40, 50, 60, 70, 80, 90, 600]):
            rollup.parcel_stored(tx, f"P-{n}", "2026-11-02T08:00:00.000Z", BERLIN)
            h, m = divmod(8 * 60 + minutes, 60)
            rollup.parcel_left(tx, f"P-{n}", f"2026-11-02T{h:02d}:{m:02d}:00.000Z", BERLIN, picked_up=True)
        rollup.parcel_stored(tx, "P-x", "2026-11-02T08:00:00.000Z", BERLIN)
        rollup.parcel_left(tx, "P-x", "2026-11-04T08:00:00.000Z", BERLIN, picked_up=False)
        rollup.count_hub(tx, "2026-11-02", "scans_accepted", 400)
        rollup.count_hub(tx, "2026-11-03", "scans_refused", 6)
        rollup.count_hub(tx, "2026-11-03", "returns_dropped", 2)
    with store.read() as tx:
        h = compute.hub_kpis(tx, "2026-11-04", 7)
    assert h["pickup_dwell_p50_s"] == 50 * 60 and h["pickup_dwell_p90_s"] == 90 * 60
    assert h["parcels_picked_up"] == 10 and h["parcels_expired_uncollected"] == 1
    assert h["scans_refused_per_100"] == 1.5 and h["return_drop_offs"] == 2
    assert h["locker_occupancy"] is None  # this store has no lockers
