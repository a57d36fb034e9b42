"""Stock commands through the real dispatcher on a real SQLite file."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest

from hubagent.app import build_app
from hubagent.config import from_dict
from hubagent.stock import ledger


@pytest.fixture
def app(tmp_path: Path) -> Any:
    cfg = from_dict({"hub": {"id": "t1", "state_dir": str(tmp_path)}})
    a = build_app(cfg)
    a.store.open()
    yield a
    a.store.close()


def cmd(app: Any, name: str, **payload: Any) -> dict[str, Any]:
    return app.commands.handle(name, json.dumps(payload).encode())


CATALOG = [
    {"sku": "TEA-1", "name": "Green tea 100g", "gtins": ["04006381333931"], "price": 3.5, "bin": "A-01"},
    {"sku": "MUG-2", "name": "Mug", "gtins": ["5901234123457"], "price": "7.90", "bin": "B-02"},
]


def test_catalog_adjust_count_get(app: Any) -> None:
    r = cmd(app, "catalog.upsert", id="c1", items=CATALOG)
    assert r["ok"] and r["result"]["upserted"] == 2
    assert ledger.sku_for_gtin(app.store, "04006381333931") == "TEA-1"
    r = cmd(app, "stock.adjust", id="a1", sku="TEA-1", bin="A-01", delta=10, reason="opening")
    assert r["ok"] and r["result"]["on_hand"] == 10
    r = cmd(app, "stock.count", id="k1", sku="TEA-1", bin="A-01", counted=7)
    assert r["ok"] and r["result"]["delta"] == -3 and r["result"]["on_hand"] == 7
    got = cmd(app, "stock.get", id="g1", sku="TEA-1")["result"]
    assert got["on_hand"] == 7 and got["bins"] == {"A-01": 7} and got["price"] == "3.50"
    kinds = [r["kind"] for r in app.store.query("SELECT kind FROM outbox ORDER BY seq")]
    assert kinds == ["catalog.updated", "stock.moved", "stock.moved"]


def test_negative_stock_is_flagged_not_refused(app: Any) -> None:
    cmd(app, "catalog.upsert", id="c1", items=CATALOG)
    r = cmd(app, "stock.adjust", id="a1", sku="MUG-2", bin="B-02", delta=-2, reason="picked offline")
    assert r["ok"] and r["result"]["on_hand"] == -2 and r["result"]["negative"] is True
    ev = json.loads(app.store.query("SELECT data FROM outbox ORDER BY seq DESC LIMIT 1")[0]["data"])
    assert ev["negative"] is True


@pytest.mark.parametrize("name,payload,code", [
    ("stock.adjust", {"sku": "NOPE", "bin": "A", "delta": 1, "reason": "x"}, "unknown_sku"),
    ("stock.adjust", {"sku": "TEA-1", "bin": "A", "delta": "1", "reason": "x"}, "bad_args"),
    ("stock.adjust", {"sku": "TEA-1", "bin": "A", "delta": 0, "reason": "x"}, "bad_args"),
    ("stock.adjust", {"sku": "TEA-1", "bin": "A", "delta": 1}, "bad_args"),
    ("stock.count", {"sku": "TEA-1", "bin": "A", "counted": -1}, "bad_args"),
    ("stock.get", {"sku": "TEA-1", "extra": 1}, "bad_args"),
    ("catalog.upsert", {"items": [{"sku": "X", "name": "x", "gtins": ["12ab"]}]}, "bad_args"),
    ("catalog.upsert", {"items": [{"sku": "X", "name": "x", "price": "free"}]}, "bad_args"),
    ("no.such", {}, "unknown_command"),
])
def test_bad_commands_change_nothing(app: Any, name: str, payload: dict[str, Any], code: str) -> None:
    cmd(app, "catalog.upsert", id="c0", items=CATALOG)
    before = app.store.last_seq()
    r = cmd(app, name, id="bad-1", **payload)
    assert r["ok"] is False and r["error"]["code"] == code, r
    assert r["error"]["message"]
    assert app.store.last_seq() == before
    assert app.store.query("SELECT COUNT(*) AS n FROM movements")[0]["n"] == 0


def test_duplicates_and_reordering_apply_once(app: Any) -> None:
    cmd(app, "catalog.upsert", id="c0", items=CATALOG)
    commands = [("stock.adjust", {"id": f"adj-{i}", "sku": "TEA-1", "bin": "A-01",
                                  "delta": i + 1, "reason": "delivery"}) for i in range(20)]
    commands += [("stock.count", {"id": "count-1", "sku": "MUG-2", "bin": "B-02", "counted": 4})]
    deliveries = [c for c in commands for _ in range(random.Random(7).randint(2, 3))]
    random.Random(42).shuffle(deliveries)
    replies: dict[str, list[dict[str, Any]]] = {}
    for name, payload in deliveries:
        replies.setdefault(payload["id"], []).append(
            app.commands.handle(name, json.dumps(payload).encode()))
    for cid, rs in replies.items():
        assert all(r["ok"] for r in rs)
        assert [r.get("duplicate", False) for r in rs] == [False] + [True] * (len(rs) - 1)
        assert all(r["result"] == rs[0]["result"] for r in rs)
    assert ledger.summary(app.store, "TEA-1")["on_hand"] == sum(range(1, 21))
    assert ledger.summary(app.store, "MUG-2")["on_hand"] == 4
    assert ledger.balances(app.store) == ledger.recompute(app.store)


def test_snapshot_matches_ledger(app: Any) -> None:
    cmd(app, "catalog.upsert", id="c0", items=CATALOG)
    cmd(app, "stock.adjust", id="a", sku="TEA-1", bin="A-01", delta=5, reason="r")
    snap = cmd(app, "state.snapshot", id="s")["result"]
    assert snap["last_seq"] == app.store.last_seq() == 2
    assert snap["balances"] == [{"sku": "TEA-1", "bin": "A-01", "on_hand": 5}]
