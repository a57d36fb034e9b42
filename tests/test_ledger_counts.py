"""Counts kept as movements are written; status lists stay bounded whatever the ledger holds.

A real hub (offline) on a real SQLite file, movements recorded through the
ledger; the kept counts are compared with a ``GROUP BY`` over the ledger.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from hubagent import telemetry
from hubagent.app import App, build_app
from hubagent.config import from_dict
from hubagent.stock import ledger
from hubagent.stock.counts import NEGATIVE_LIMIT


def _hub(tmp_path: Path) -> App:
    app = build_app(from_dict({"hub": {"id": "counts", "state_dir": str(tmp_path)}}))
    app.store.open()
    items = [{"sku": f"SKU-{i:03d}", "name": f"item {i}"} for i in range(40)]
    reply = app.commands.handle("catalog.upsert", json.dumps({"id": "cat", "items": items}).encode())
    assert reply["ok"], reply
    return app


def _truth(app: App) -> dict[str, int]:
    rows = app.store.query("SELECT type, COUNT(*) AS n FROM movements GROUP BY type")
    return {r["type"]: r["n"] for r in rows}


def test_telemetry_and_status_counts_follow_the_ledger(tmp_path: Path) -> None:
    app = _hub(tmp_path)
    try:
        with app.store.write() as tx:
            for i in range(25):
                ledger.record(tx, type="receive", sku="SKU-001", bin="A-01", delta=2, actor="t")
            for i in range(7):
                ledger.record(tx, type="pick", sku="SKU-001", bin="A-01", delta=-1, actor="t")
        reply = app.commands.handle("stock.adjust", json.dumps(
            {"id": "a1", "sku": "SKU-002", "bin": "A-02", "delta": 3, "reason": "found"}).encode())
        assert reply["ok"], reply
        counted: dict[str, Any] = telemetry.counts(app)
        assert counted["movements"] == _truth(app) == {"receive": 25, "pick": 7, "adjust": 1}
        assert app.status()["stock"]["movements"] == 33
    finally:
        app.store.close()


def test_a_rolled_back_movement_is_not_counted(tmp_path: Path) -> None:
    app = _hub(tmp_path)
    try:
        reply = app.commands.handle("stock.adjust", json.dumps(
            {"id": "a1", "sku": "NO-SUCH-SKU", "bin": "A-02", "delta": 3, "reason": "x"}).encode())
        assert not reply["ok"]
        assert telemetry.counts(app)["movements"] == _truth(app) == {}
    finally:
        app.store.close()


def test_status_lists_the_first_negative_balances_and_their_total(tmp_path: Path) -> None:
    app = _hub(tmp_path)
    try:
        with app.store.write() as tx:
            for i in range(35):
                ledger.record(tx, type="pick", sku=f"SKU-{i:03d}", bin="A-01", delta=-1, actor="t")
            ledger.record(tx, type="receive", sku="SKU-039", bin="A-01", delta=5, actor="t")
        stock = app.status()["stock"]
        assert stock["negative_total"] == 35
        assert len(stock["negative_balances"]) == NEGATIVE_LIMIT < 35
        assert stock["negative_balances"][0] == {"sku": "SKU-000", "bin": "A-01", "on_hand": -1}
        assert all(b["on_hand"] < 0 for b in stock["negative_balances"])
    finally:
        app.store.close()
