"""The KPI formulas, over the daily rollups. Definitions: ``docs/kpi.md``."""

from __future__ import annotations

import math
from typing import Any

from hubagent.kpi.days import window
from hubagent.store.store import Tx


def ratio(num: float, den: float, places: int = 4) -> float | None:
    """``num / den`` rounded, or None when there is nothing to divide by."""
    return round(num / den, places) if den > 0 else None


_ratio = ratio


def _opening(tx: Tx, sku: str, first_day: str) -> int:
    """Sellable on-hand at the start of ``first_day`` (the last end-of-day before it)."""
    row = tx.execute("SELECT end_sellable FROM kpi_sku_day WHERE sku=? AND day < ? "
                     "ORDER BY day DESC LIMIT 1", (sku, first_day)).fetchone()
    return int(row[0]) if row else 0


def _days(tx: Tx, sku: str, first: str, last: str) -> dict[str, tuple[int, int, int, int, int]]:
    rows = tx.execute("SELECT day, sold, received, returned, damaged, end_sellable FROM kpi_sku_day "
                      "WHERE sku=? AND day BETWEEN ? AND ?", (sku, first, last)).fetchall()
    return {r[0]: (int(r[1]), int(r[2]), int(r[3]), int(r[4]), int(r[5])) for r in rows}


def sell_through(tx: Tx, sku: str, today: str, days: int) -> tuple[int, float | None]:
    """(units sold, sold / (opening sellable + received)) over the ``days`` ending today."""
    span = window(today, days)
    rows = _days(tx, sku, span[0], span[-1])
    sold = sum(r[0] for r in rows.values())
    received = sum(r[1] for r in rows.values())
    return sold, _ratio(sold, _opening(tx, sku, span[0]) + received)


def stock_out_days(tx: Tx, sku: str, today: str, days: int) -> int:
    """Days of the window whose end-of-day sellable on-hand was zero or less.

    Days before the SKU's first movement do not count: it was not stocked yet.
    """
    span = window(today, days)
    rows = _days(tx, sku, span[0], span[-1])
    first = tx.execute("SELECT MIN(day) FROM kpi_sku_day WHERE sku=?", (sku,)).fetchone()[0]
    if first is None:
        return 0
    level, out = _opening(tx, sku, span[0]), 0
    for day in span:
        if day in rows:
            level = rows[day][4]
        if day >= first and level <= 0:
            out += 1
    return out


def sku_kpis(tx: Tx, sku: str, today: str, window_days: int, sellable_now: int) -> dict[str, Any]:
    """Every per-SKU figure, for ``kpi.get {"sku"}`` and the retained stock summary."""
    sold_7, st_7 = sell_through(tx, sku, today, 7)
    sold_14, st_14 = sell_through(tx, sku, today, 14)
    span = window(today, window_days)
    rows = _days(tx, sku, span[0], span[-1])
    sold_w = sum(r[0] for r in rows.values())
    returned_w = sum(r[2] for r in rows.values())
    by_reason: dict[str, int] = {}
    by_condition: dict[str, int] = {}
    lots: dict[str, dict[str, Any]] = {}
    for reason, condition, lot, units in tx.execute(
            "SELECT reason, condition, lot, SUM(units) FROM kpi_returns WHERE sku=? AND day BETWEEN ? AND ? "
            "GROUP BY reason, condition, lot", (sku, span[0], span[-1])):
        by_reason[reason] = by_reason.get(reason, 0) + int(units)
        by_condition[condition] = by_condition.get(condition, 0) + int(units)
        if lot:
            lots.setdefault(lot, {"sold": 0, "returned": 0})["returned"] += int(units)
    for lot, sold in tx.execute("SELECT lot, SUM(sold) FROM kpi_lot_sold WHERE sku=? AND day BETWEEN ? AND ? "
                                "GROUP BY lot", (sku, span[0], span[-1])):
        lots.setdefault(lot, {"sold": 0, "returned": 0})["sold"] += int(sold)
    for figures in lots.values():
        figures["return_rate"] = _ratio(figures["returned"], figures["sold"])
    daily = sold_14 / 14
    return {
        "sku": sku, "day": today, "window_days": window_days,
        "units_sold_7d": sold_7, "sell_through_7d": st_7,
        "units_sold_14d": sold_14, "sell_through_14d": st_14,
        "units_sold": sold_w, "returns": returned_w, "return_rate": _ratio(returned_w, sold_w),
        "returns_by_reason": dict(sorted(by_reason.items())),
        "returns_by_condition": dict(sorted(by_condition.items())),
        "damaged": sum(r[3] for r in rows.values()),
        "sellable_on_hand": sellable_now,
        # No sales in 14 days: supply is not a number of days; the rule is named.
        # None sellable (or less, while offline) is no supply: 0 days, not a negative number.
        "days_of_supply": round(max(sellable_now, 0) / daily, 1) if daily > 0 else None,
        "days_of_supply_rule": "sellable_on_hand / (units_sold_14d / 14)" if daily > 0 else "no_sales_14d",
        "stock_out_days": stock_out_days(tx, sku, today, window_days),
        "lots": dict(sorted(lots.items())),
    }


def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile (p50 = the median element, no interpolation)."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def hub_kpis(tx: Tx, today: str, window_days: int) -> dict[str, Any]:
    """The per-hub figures over the window (locker occupancy is now)."""
    span = window(today, window_days)
    sums = tx.execute(
        "SELECT COALESCE(SUM(stored),0), COALESCE(SUM(picked_up),0), COALESCE(SUM(expired),0), "
        "COALESCE(SUM(returns_dropped),0), COALESCE(SUM(scans_accepted),0), COALESCE(SUM(scans_refused),0) "
        "FROM kpi_hub_day WHERE day BETWEEN ? AND ?", (span[0], span[-1])).fetchone()
    dwell = [float(r[0]) for r in tx.execute(
        "SELECT seconds FROM kpi_dwell WHERE day BETWEEN ? AND ?", (span[0], span[-1]))]
    p50, p90 = percentile(dwell, 0.5), percentile(dwell, 0.9)
    return {
        "day": today, "window_days": window_days,
        **_occupancy(tx),
        "parcels_stored": int(sums[0]), "parcels_picked_up": int(sums[1]),
        "pickup_dwell_p50_s": p50, "pickup_dwell_p90_s": p90,
        "parcels_expired_uncollected": int(sums[2]), "return_drop_offs": int(sums[3]),
        "scans_accepted": int(sums[4]), "scans_refused": int(sums[5]),
        "scans_refused_per_100": _ratio(100 * int(sums[5]), int(sums[4]), 2),
        **_restock(tx, span[0], span[-1]),
    }


def _restock(tx: Tx, first_day: str, last_day: str) -> dict[str, Any]:
    """Restock claims whose slot is on a day of the window (slot names are local), by outcome."""
    if tx.execute("SELECT 1 FROM sqlite_master WHERE name='restock_claims'").fetchone() is None:
        return {}
    out = {"restock_claims": 0, "restock_arrived": 0, "restock_no_shows": 0, "restock_released": 0}
    key = {"arrived": "restock_arrived", "no_show": "restock_no_shows", "released": "restock_released"}
    for state, n in tx.execute("SELECT state, COUNT(*) FROM restock_claims "
                               "WHERE substr(slot, 1, 10) BETWEEN ? AND ? GROUP BY state", (first_day, last_day)):
        out["restock_claims"] += int(n)
        if state in key:
            out[key[state]] += int(n)
    return out


def _occupancy(tx: Tx) -> dict[str, Any]:
    if tx.execute("SELECT 1 FROM sqlite_master WHERE name='locker_compartments'").fetchone() is None:
        return {"locker_occupancy": None}
    total, used = tx.execute("SELECT COUNT(*), COALESCE(SUM(state != 'free'), 0) FROM locker_compartments").fetchone()
    return {"locker_occupancy": _ratio(int(used), int(total)), "compartments": int(total),
            "compartments_in_use": int(used)}
