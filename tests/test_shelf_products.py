"""Real products at the shelf, in process: every GTIN form, cases, variable measure,
lots and FEFO, expiry notices, counts and returns.

Real app, real SQLite file, real sim feedback device, a ManualClock for dates.
The pty-to-broker path is covered by test_shelf_products_e2e.
"""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
from pathlib import Path
from typing import Any, Iterator

import pytest

from hubagent.app import App, build_app
from hubagent.clock import ManualClock
from hubagent.config import from_dict
from hubagent.errors import ConfigError
from hubagent.events import RawScan
from hubagent.scanning.service import ScanService
from hubagent.stock import ledger
from hubagent.stock.feature import StockService
from hubagent.stock.gtins import canonical_gtin
from hubagent.features import all_migrations
from hubagent.store import migrations

GS = "\x1d"
# Real, check-digit-valid codes (GS1's own examples and products on sale).
EAN13 = "5901234123457"      # GS1 Poland example EAN-13
EAN13_B = "4006381333931"    # Stabilo pen, EAN-13
UPC_A = "036000291452"       # Kleenex, UPC-A
UPC_E = "04252614"           # UPC-E of UPC-A 042100005264
UPC_E_AS_A = "042100005264"
EAN8 = "96385074"            # EAN-8
CASE_14 = "15901234123454"   # outer case of 12 x 5901234123457 (indicator 1)
GS1_EXAMPLE = "09506000134352"  # GS1's example GTIN-14 (EAN-13 9506000134352)

LAYOUTS = [
    # GS1 Sweden: 23 = weight, six item digits, four value digits in grams.
    {"prefix": "23", "item_digits": 6, "kind": "weight", "decimals": 3},
    # GS1 Germany: 28 = weight, four item digits, a weight check digit, five value digits.
    {"prefix": "28", "item_digits": 4, "kind": "weight", "decimals": 3, "value_check": True},
    # GS1 Germany: 22 = price, four item digits, a price check digit, five value digits.
    {"prefix": "22", "item_digits": 4, "kind": "price", "decimals": 2, "value_check": True},
]
SE_CHEESE = "2312345600004"   # catalog form: item 123456, weight zeroed
SE_CHEESE_1234G = "2312345612342"
DE_HAM = "2812340000002"      # catalog form: item 1234, check digit and weight zeroed
DE_HAM_1250G = "2812347012503"
DE_CAKE = "2212340000000"
DE_CAKE_899 = "2212344008996"

CATALOG = [
    {"sku": "MUG-2", "name": "Mug", "gtins": [EAN13, {"gtin": CASE_14, "qty": 12}], "bin": "B-02"},
    {"sku": "PEN-1", "name": "Pen", "gtins": [int(EAN13_B)], "bin": "A-01"},
    {"sku": "TISSUE", "name": "Tissues", "gtins": [UPC_A[1:]]},
    {"sku": "SODA", "name": "Soda", "gtins": [UPC_E_AS_A]},
    {"sku": "GUM", "name": "Gum", "gtins": [EAN8]},
    {"sku": "SNACK", "name": "Snack", "gtins": ["123000004561"]},  # UPC-A of UPC-E 12345601
    {"sku": "MILK", "name": "Milk 1 l", "gtins": [GS1_EXAMPLE], "bin": "C-01",
     "net_content": 1, "net_unit": "l"},
    {"sku": "CHEESE", "name": "Cheese", "gtins": [SE_CHEESE], "net_content": "0.5", "net_unit": "kg"},
    {"sku": "HAM", "name": "Ham", "gtins": [DE_HAM]},
    {"sku": "CAKE", "name": "Cake", "gtins": [DE_CAKE]},
]


def config(state: Path, **scanning: Any) -> dict[str, Any]:
    return {"hub": {"id": "t1", "state_dir": str(state)},
            "scanners": {"front": {"driver": "sim", "feedback": "front"}},
            "feedback": {"front": {"driver": "sim"}},
            "scanning": {"dedupe_s": 0.5, "variable_measure": LAYOUTS, **scanning},
            "stock": {"expiring_days": 7}}


def stock_of(app: App) -> StockService:
    """The app's StockService."""
    svc = app.service(StockService)
    assert svc is not None
    return svc


def scanning_of(app: App) -> ScanService:
    """The app's ScanService."""
    svc = app.service(ScanService)
    assert svc is not None
    return svc


class Hub:
    """An in-process app on a manual clock; scans go through app.dispatch."""

    def __init__(self, state: Path, clock: ManualClock | None = None, **scanning: Any) -> None:
        self.clock = clock or ManualClock(wall=dt.datetime(2026, 12, 5, 9, tzinfo=dt.timezone.utc))
        self.app: App = build_app(from_dict(config(state, **scanning)), clock=self.clock)
        self.app.store.open()
        scanning_of(self.app).load()
        self.t = 1000.0

    def close(self) -> None:
        self.app.store.close()

    def cmd(self, name: str, **payload: Any) -> dict[str, Any]:
        return self.app.commands.handle(name, json.dumps(payload).encode())

    def scan(self, code: str, gap: float = 2.0, symbology: str | None = None) -> str:
        self.t += gap
        self.app.dispatch(RawScan("front", code.encode(), at=self.t, symbology=symbology))
        history = self.app.device("feedback", "front").history()  # type: ignore[attr-defined]
        return str(history[-1][1].value)

    def events(self, kind: str | None = None) -> list[dict[str, Any]]:
        rows = self.app.store.query("SELECT kind, data FROM outbox ORDER BY seq")
        return [{"kind": r["kind"], **json.loads(r["data"])} for r in rows if kind in (None, r["kind"])]

    def rejected(self) -> str:
        return str(self.events("scan.rejected")[-1]["reason"])

    def on_hand(self, sku: str, bin: str) -> int:
        return ledger.on_hand(self.app.store, sku, bin)

    def get(self, sku: str) -> dict[str, Any]:
        r = self.cmd("stock.get", id=f"get-{self.t}-{sku}", sku=sku)
        assert r["ok"], r
        return dict(r["result"])


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[Hub]:
    h = Hub(tmp_path)
    r = h.cmd("catalog.upsert", id="cat", items=CATALOG)
    assert r["ok"], r
    yield h
    h.close()


# --- the catalog -------------------------------------------------------------


@pytest.mark.parametrize("given,canonical", [
    (EAN13, "0" + EAN13), ("0" + EAN13, "0" + EAN13), (UPC_A, "00" + UPC_A), (UPC_A[1:], "00" + UPC_A),
    (EAN8, "000000" + EAN8), (CASE_14, CASE_14), (int(EAN13_B), "0" + EAN13_B),
])
def test_every_form_central_holds_is_stored_as_gtin_14(given: str | int, canonical: str) -> None:
    assert canonical_gtin(given) == canonical


def test_catalog_stores_one_canonical_form_with_packs_and_net_content(hub: Hub) -> None:
    rows = {r["gtin"]: (r["sku"], r["qty"]) for r in hub.app.store.query("SELECT * FROM gtins")}
    assert rows["0" + EAN13] == ("MUG-2", 1) and rows[CASE_14] == ("MUG-2", 12)
    assert rows["0" + EAN13_B] == ("PEN-1", 1) and rows["00" + UPC_A] == ("TISSUE", 1)
    assert rows["000000" + EAN8] == ("GUM", 1) and all(len(g) == 14 for g in rows)
    milk = hub.get("MILK")
    assert (milk["net_content"], milk["net_unit"]) == ("1", "l")
    assert hub.get("CHEESE")["net_content"] == "0.5"


@pytest.mark.parametrize("gtins,needle", [
    (["5901234123458"], "5901234123458"),                      # EAN-13, wrong check digit
    (["036000291453"], "036000291453"),                        # UPC-A
    ([{"gtin": "15901234123455", "qty": 6}], "15901234123455"),  # case GTIN-14
    (["96385075"], "96385075"),                                # EAN-8
    ([EAN13, "0" + EAN13], EAN13),                             # the same number twice
    (["12ab"], "12ab"),
    (["000000000000000"], None),                               # 15 digits: the type refuses it
])
def test_a_bad_gtin_is_refused_naming_it_and_nothing_is_stored(hub: Hub, gtins: list[Any],
                                                               needle: str | None) -> None:
    before = hub.app.store.last_seq()
    r = hub.cmd("catalog.upsert", id=f"bad-{gtins}", items=[
        {"sku": "NEW-1", "name": "New", "gtins": [EAN8]},  # valid, must not be stored either
        {"sku": "NEW-2", "name": "Newer", "gtins": gtins}])
    assert r["ok"] is False and r["error"]["code"] == "bad_args", r
    if needle is not None:
        assert needle in r["error"]["message"]
    assert hub.app.store.last_seq() == before
    assert hub.app.store.query("SELECT COUNT(*) AS n FROM skus WHERE sku LIKE 'NEW-%'")[0]["n"] == 0
    assert ledger.sku_for_gtin(hub.app.store, EAN8) == "GUM"


def test_bad_net_content_is_refused(hub: Hub) -> None:
    for extra in ({"net_content": 1}, {"net_content": -1, "net_unit": "g"}, {"net_content": 1, "net_unit": "oz"}):
        r = hub.cmd("catalog.upsert", id=f"n-{extra}", items=[{"sku": "X-1", "name": "x", **extra}])
        assert r["ok"] is False and r["error"]["code"] == "bad_args", r


def test_existing_catalogs_are_migrated_to_gtin_14(tmp_path: Path) -> None:
    db = tmp_path / "hubagent.db"
    conn = sqlite3.connect(db, isolation_level=None)
    old = [m for m in all_migrations() if m[0] in ("core-0001-outbox-inbox", "stock-0001-ledger")]
    migrations.apply(conn, old, dt.datetime(2026, 11, 1, tzinfo=dt.timezone.utc))
    conn.execute("INSERT INTO skus(sku, name, default_bin, updated_at) "
                 "VALUES ('MUG-2', 'Mug', 'B-02', 'x'), ('PEN-1', 'Pen', NULL, 'x')")
    conn.execute("INSERT INTO gtins(gtin, sku) VALUES (?, 'MUG-2'), (?, 'PEN-1'), (?, 'PEN-1')",
                 (EAN13, "0" + EAN13_B, EAN13_B))  # PEN-1 stored in both forms
    conn.execute("INSERT INTO bins(code, created_at) VALUES ('B-02', 'x')")
    conn.execute("INSERT INTO balances(sku, bin, on_hand) VALUES ('MUG-2', 'B-02', 4)")
    conn.close()
    h = Hub(tmp_path)
    try:
        assert sorted(r["gtin"] for r in h.app.store.query("SELECT gtin FROM gtins")) == [
            "0" + EAN13_B, "0" + EAN13]
        h.scan("HA:MODE:PICK")
        assert h.cmd("pick.request", id="p", pick="PK-1", lines=[{"sku": "MUG-2", "qty": 1}])["ok"]
        assert h.scan(EAN13) == "ok"  # the 13-digit EAN stored as sent is found again
        assert h.on_hand("MUG-2", "B-02") == 3
        assert h.get("MUG-2")["lots"] == [{"bin": "B-02", "lot": None, "expiry": None,
                                          "best_before": None, "on_hand": 3}]
    finally:
        h.close()


# --- every scanned form finds the product --------------------------------------


SCANNED = [
    ("EAN-13", EAN13, None, "MUG-2", 1),
    ("EAN-13 with AIM ]E0", "]E0" + EAN13, None, "MUG-2", 1),
    ("EAN-13 from a camera", EAN13, "EAN13", "MUG-2", 1),
    ("GTIN-14 of the unit", "0" + EAN13, None, "MUG-2", 1),
    ("ITF-14 outer case", "]I1" + CASE_14, None, "MUG-2", 12),
    ("GS1-128 case", "]C101" + CASE_14, None, "MUG-2", 12),
    ("EAN-13 of integer catalog GTIN", EAN13_B, None, "PEN-1", 1),
    ("UPC-A", UPC_A, None, "TISSUE", 1),
    ("UPC-A with AIM", "]E0" + UPC_A, None, "TISSUE", 1),
    ("UPC-E", UPC_E, None, "SODA", 1),
    ("UPC-E with AIM ]E0", "]E0" + UPC_E, None, "SODA", 1),
    ("EAN-8", EAN8, None, "GUM", 1),
    ("EAN-8 with AIM ]E4", "]E4" + EAN8, None, "GUM", 1),
    ("8 digits valid as EAN-8 and UPC-E", "12345601", None, "SNACK", 1),
    ("GS1-128 with lot", "]C101" + GS1_EXAMPLE + "10LOT-7" + GS + "17261231", None, "MILK", 1),
    ("GS1 DataMatrix", "]d201" + GS1_EXAMPLE + "17270630" + "10B42" + GS + "21SN1", None, "MILK", 1),
    ("GS1 DataMatrix, symbology from decoder", "01" + GS1_EXAMPLE + "10L1", "]d2", "MILK", 1),
    ("Digital Link", f"https://id.gs1.org/01/{GS1_EXAMPLE}/10/ABC?17=280101", None, "MILK", 1),
    ("Digital Link, EAN-13 path", f"https://shop.example.com/01/{EAN13}", None, "MUG-2", 1),
]


@pytest.mark.parametrize("name,code,symbology,sku,units", SCANNED, ids=[s[0] for s in SCANNED])
def test_every_scanned_form_finds_the_product(hub: Hub, name: str, code: str, symbology: str | None,
                                             sku: str, units: int) -> None:
    hub.scan("HA:MODE:RECEIVE")
    hub.scan("HA:BIN:R-01")
    assert hub.scan(code, symbology=symbology) == "ok", hub.events("scan.rejected")
    assert hub.on_hand(sku, "R-01") == units


def test_case_gtin_moves_n_units_at_receive_and_pick(hub: Hub) -> None:
    hub.scan("HA:MODE:RECEIVE")
    hub.scan("HA:BIN:B-02")
    hub.scan("HA:QTY:2")
    assert hub.scan(CASE_14) == "ok"
    assert hub.on_hand("MUG-2", "B-02") == 24
    assert hub.cmd("pick.request", id="p", pick="PK-1", lines=[{"sku": "MUG-2", "qty": 20}])["ok"]
    hub.scan("HA:MODE:PICK")
    assert hub.scan("]I1" + CASE_14) == "ok"
    assert hub.scan(EAN13) == "ok"
    assert hub.on_hand("MUG-2", "B-02") == 11
    assert hub.scan(CASE_14) == "error" and hub.rejected() == "over_pick"
    assert [m["delta"] for m in hub.events("stock.moved")] == [24, -12, -1]


# --- variable measure ------------------------------------------------------------


def test_variable_measure_codes_record_weight_and_price(hub: Hub) -> None:
    hub.scan("HA:MODE:RECEIVE")
    hub.scan("HA:BIN:D-01")
    assert hub.scan(SE_CHEESE_1234G) == "ok"
    assert hub.scan(DE_HAM_1250G) == "ok"
    assert hub.scan("]E0" + DE_CAKE_899) == "ok"
    moved = hub.events("stock.moved")
    assert [(m["sku"], m["delta"], m["weight"], m["price"]) for m in moved] == [
        ("CHEESE", 1, "1.234", None), ("HAM", 1, "1.250", None), ("CAKE", 1, None, "8.99")]
    row = hub.app.store.query("SELECT weight, price FROM movements WHERE sku='HAM'")[0]
    assert (row["weight"], row["price"]) == ("1.250", None)
    # the German weight check digit guards the value: 7 -> 6 is refused
    assert hub.scan("2812346012506") == "error" and hub.rejected() == "bad_check_digit"
    # an in-store code under a prefix the hub has no layout for is a plain GTIN
    assert hub.scan("2112345678900") == "error" and hub.rejected() == "unknown_item"
    assert hub.on_hand("HAM", "D-01") == 1


def test_variable_measure_layouts_are_checked(tmp_path: Path) -> None:
    bad = [({"prefix": "30", "item_digits": 5, "kind": "weight"}, "scanning.variable_measure[0].prefix"),
           ({"prefix": "20", "item_digits": 9, "kind": "price"}, "scanning.variable_measure[0].item_digits"),
           ({"prefix": "20", "item_digits": 2, "kind": "price", "value_check": True}, "scanning.variable_measure[0]"),
           ({"prefix": "20", "item_digits": 5, "kind": "volume"}, "scanning.variable_measure[0].kind")]
    for layout, key in bad:
        doc = config(tmp_path)
        doc["scanning"]["variable_measure"] = [layout]
        with pytest.raises(ConfigError) as exc:
            from_dict(doc)
        assert exc.value.key.startswith(key), (layout, exc.value)


# --- lots, FEFO and expiry ---------------------------------------------------------


def dm(lot: str, expiry: str) -> str:
    """A GS1 DataMatrix read: GTIN, expiry, lot."""
    return f"]d201{GS1_EXAMPLE}17{expiry}10{lot}"


def receive_lots(hub: Hub) -> None:
    hub.scan("HA:MODE:RECEIVE")
    hub.scan("HA:BIN:C-01")
    hub.scan("HA:QTY:3")
    assert hub.scan(dm("LATE", "270131")) == "ok"
    hub.scan("HA:QTY:2")
    assert hub.scan(dm("EARLY", "261210")) == "ok"
    assert hub.scan(f"]C101{GS1_EXAMPLE}15261201" + "10BB" + GS + "21SER-9") == "ok"  # best before


def test_lots_and_dates_are_recorded_and_balanced_per_lot(hub: Hub) -> None:
    receive_lots(hub)
    moved = hub.events("stock.moved")
    assert [(m["lot"], m["expiry"], m["best_before"], m["serial"]) for m in moved] == [
        ("LATE", "2027-01-31", None, None), ("EARLY", "2026-12-10", None, None),
        ("BB", None, "2026-12-01", "SER-9")]
    got = hub.get("MILK")
    assert got["on_hand"] == 6 and got["bins"] == {"C-01": 6}
    assert got["lots"] == [
        {"bin": "C-01", "lot": "BB", "expiry": None, "best_before": "2026-12-01", "on_hand": 1},
        {"bin": "C-01", "lot": "EARLY", "expiry": "2026-12-10", "best_before": None, "on_hand": 2},
        {"bin": "C-01", "lot": "LATE", "expiry": "2027-01-31", "best_before": None, "on_hand": 3}]
    snap = hub.cmd("state.snapshot", id="s")["result"]
    assert [(x["lot"], x["on_hand"]) for x in snap["lots"]] == [("BB", 1), ("EARLY", 2), ("LATE", 3)]


def test_pick_names_the_first_lot_and_a_later_lot_beeps_attention(hub: Hub) -> None:
    receive_lots(hub)
    assert hub.cmd("pick.request", id="p", pick="PK-7", scanner="front",
                   lines=[{"sku": "MILK", "qty": 5}])["ok"]
    hub.scan("HA:MODE:PICK")
    assert hub.scan(f"]C101{GS1_EXAMPLE}10LATE") == "attention"  # lot only; its date is known
    pick = hub.app.status()["scanning"]["scanners"]["front"]["pick"]
    assert pick["lines"][0]["first"] == {"bin": "C-01", "lot": "BB", "expiry": None,
                                         "best_before": "2026-12-01"}
    last = hub.events("stock.moved")[-1]
    assert (last["lot"], last["expiry"], last["delta"], last["reason"]) == ("LATE", "2027-01-31", -1, "fefo_skipped")
    assert last["fefo_first"] == {"lot": "BB", "expiry": None, "best_before": "2026-12-01"}
    assert hub.app.store.query("SELECT reason FROM movements WHERE lot='LATE' AND delta < 0")[0]["reason"] \
        == "fefo_skipped"
    # The first lot itself is fine.
    assert hub.scan(f"]C101{GS1_EXAMPLE}15261201" + "10BB") == "ok"
    # A plain EAN takes the lots earliest first: EARLY (2) then LATE.
    hub.scan("HA:QTY:3")
    assert hub.scan("9506000134352") == "ok"
    split = hub.events("stock.moved")[-2:]
    assert [(m["lot"], m["delta"]) for m in split] == [("EARLY", -2), ("LATE", -1)]
    assert split[0]["group"] == split[1]["group"] is not None
    assert hub.events("pick.done")[0]["status"] == "complete"
    assert hub.get("MILK")["lots"] == [
        {"bin": "C-01", "lot": "LATE", "expiry": "2027-01-31", "best_before": None, "on_hand": 1}]
    assert ledger.balances(hub.app.store) == ledger.recompute(hub.app.store)


def test_moves_carry_lots_to_the_new_bin(hub: Hub) -> None:
    receive_lots(hub)
    hub.scan("HA:MODE:MOVE")
    hub.scan("HA:BIN:C-01")
    hub.scan("HA:BIN:C-02")
    hub.scan("HA:QTY:2")
    assert hub.scan("9506000134352") == "ok"
    lots = [(x["bin"], x["lot"], x["on_hand"]) for x in hub.get("MILK")["lots"]]
    assert lots == [("C-01", "EARLY", 1), ("C-01", "LATE", 3), ("C-02", "BB", 1), ("C-02", "EARLY", 1)]


def test_daily_check_reports_expiring_then_expired_once(hub: Hub) -> None:
    receive_lots(hub)  # BB best before 2026-12-01, EARLY 2026-12-10, LATE 2027-01-31; today 2026-12-05
    stock_of(hub.app).expiry.start()
    expiring = hub.events("stock.expiring")
    expired = hub.events("stock.expired")
    assert [(e["lot"], e["days_left"], e["on_hand"]) for e in expiring] == [("EARLY", 5, 2)]
    assert [(e["lot"], e["best_before"], e["on_hand"]) for e in expired] == [("BB", "2026-12-01", 1)]
    assert hub.app.status()["stock"]["expired_units"] == 1
    hub.clock.advance(24 * 3600)  # the next daily check: nothing new
    assert len(hub.events("stock.expiring")) == 1 and len(hub.events("stock.expired")) == 1
    hub.clock.advance(5 * 24 * 3600)  # 2026-12-11: EARLY has passed
    assert [e["lot"] for e in hub.events("stock.expired")] == ["BB", "EARLY"]
    assert hub.app.status()["stock"]["expired_units"] == 3
    stock_of(hub.app).expiry.stop()


def test_no_expiry_is_decided_on_an_insane_clock(tmp_path: Path) -> None:
    clock = ManualClock(wall=dt.datetime(1970, 1, 1, 0, 1, tzinfo=dt.timezone.utc))
    h = Hub(tmp_path, clock)
    try:
        h.cmd("catalog.upsert", id="cat", items=CATALOG)
        receive_lots(h)
        stock_of(h.app).expiry.start()
        assert h.events("stock.expired") == [] and h.events("stock.expiring") == []
        assert h.app.status()["stock"]["expired_units"] is None
        clock.set_wall(dt.datetime(2026, 12, 5, 9, tzinfo=dt.timezone.utc))  # NTP sets the time
        clock.advance(24 * 3600)
        assert [e["lot"] for e in h.events("stock.expired")] == ["BB"]
        stock_of(h.app).expiry.stop()
    finally:
        h.close()


# --- counting ---------------------------------------------------------------------


def test_an_empty_count_is_refused_and_zero_is_a_separate_code(hub: Hub) -> None:
    hub.cmd("stock.adjust", id="a", sku="PEN-1", bin="A-01", delta=3, reason="opening")
    before = hub.app.store.query("SELECT COUNT(*) AS n FROM movements")[0]["n"]
    hub.scan("HA:MODE:COUNT")
    hub.scan("HA:BIN:A-01")
    assert hub.scan("HA:DONE") == "error" and hub.rejected() == "empty_count"
    assert hub.on_hand("PEN-1", "A-01") == 3
    assert hub.app.store.query("SELECT COUNT(*) AS n FROM movements")[0]["n"] == before
    assert hub.scan(EAN13_B) == "ok"
    assert hub.scan("HA:ZERO") == "error" and hub.rejected() == "count_open"
    assert hub.scan("HA:CANCEL") == "ok"
    hub.scan("HA:BIN:A-01")
    assert hub.scan("HA:ZERO") == "ok"
    assert hub.on_hand("PEN-1", "A-01") == 0
    assert hub.events("stock.moved")[-1]["type"] == "count"
    hub.scan("HA:MODE:RECEIVE")
    assert hub.scan("HA:ZERO") == "error" and hub.rejected() == "wrong_mode"


def test_repeated_scans_count_and_big_differences_beep_attention(hub: Hub) -> None:
    hub.cmd("stock.adjust", id="a", sku="PEN-1", bin="A-01", delta=3, reason="opening")
    hub.cmd("stock.adjust", id="b", sku="GUM", bin="A-01", delta=1, reason="opening")
    hub.scan("HA:MODE:COUNT")
    hub.scan("HA:BIN:A-01")
    for _ in range(4):
        assert hub.scan(EAN13_B, gap=0.1) == "ok"  # inside dedupe_s: every scan still counts
    assert hub.app.status()["scanning"]["scanners"]["front"]["counted"] == {"PEN-1": 4}
    assert hub.scan("HA:DONE") == "ok"  # +1 and -1: within count_tolerance 5
    assert hub.on_hand("PEN-1", "A-01") == 4 and hub.on_hand("GUM", "A-01") == 0
    hub.scan("HA:BIN:A-01")
    hub.scan("HA:QTY:20")
    hub.scan(EAN13_B)
    assert hub.scan("HA:DONE") == "attention"  # 20 counted, 4 on the ledger
    assert hub.on_hand("PEN-1", "A-01") == 20
    hub.scan("HA:MODE:RECEIVE")
    hub.scan("HA:BIN:A-01")
    assert hub.scan(EAN13_B) == "ok"
    assert hub.scan(EAN13_B, gap=0.1) == "error"  # outside count mode the guard still holds
    assert hub.rejected() == "double_scan"


# --- returns and availability --------------------------------------------------------


def test_return_label_sets_the_reference_even_with_lockers_installed(tmp_path: Path, mock_pins: Any) -> None:
    doc = config(tmp_path)
    doc["lockers"] = {"bank-a": {"driver": "sim", "compartments": {"A1": {"lock_pin": 5, "door_pin": 17}}}}
    app = build_app(from_dict(doc), clock=ManualClock())
    assert "return" in app.scan_handlers  # lockers claim HA:RET at their kiosks
    app.store.open()
    try:
        app.commands.handle("catalog.upsert", json.dumps({"id": "c", "items": CATALOG}).encode())
        t = 1000.0
        for code in ("HA:MODE:RETURN", "HA:RET:RMA-2026-77", "HA:COND:DAMAGED", EAN13):
            t += 2
            app.dispatch(RawScan("front", code.encode(), at=t))
        patterns = [p.value for _, p in app.device("feedback", "front").history()]  # type: ignore[attr-defined]
        assert patterns == ["ok"] * 4
        rows = app.store.query("SELECT kind, data FROM outbox ORDER BY seq")
        moved = [json.loads(r["data"]) for r in rows if r["kind"] == "stock.moved"]
        assert [(m["ref"], m["bin"], m["reason"]) for m in moved] == [("RMA-2026-77", "QUARANTINE", "damaged")]
        assert [r["kind"] for r in rows if r["kind"] == "scan.rejected"] == []
        summary = ledger.summary(app.store, "MUG-2", stock_of(app).settings.unsellable_bins)
        assert summary is not None and (summary["on_hand"], summary["available"]) == (1, 0)
    finally:
        app.store.close()


def test_available_leaves_out_unsellable_bins(hub: Hub, tmp_path: Path) -> None:
    hub.cmd("stock.adjust", id="a", sku="PEN-1", bin="A-01", delta=5, reason="opening")
    hub.cmd("stock.adjust", id="b", sku="PEN-1", bin="QUARANTINE", delta=2, reason="damaged")
    got = hub.get("PEN-1")
    assert (got["on_hand"], got["available"]) == (7, 5)
    doc = config(tmp_path / "other")
    doc["stock"]["unsellable_bins"] = ["QUARANTINE", "a-01"]
    with pytest.raises(ConfigError) as exc:
        from_dict(doc)
    assert exc.value.key.startswith("stock.unsellable_bins")


def test_net_content_from_catalog_upsert_gives_the_shelf_label_a_unit_price(tmp_path: Path) -> None:
    import asyncio

    from test_printing_queue import catalog_config, cmd, shelf_texts

    async def main() -> list[list[str]]:
        app = build_app(catalog_config(tmp_path), simulated=True)
        await app.start()
        try:
            items = [{"sku": "OIL-1", "name": "Oliwa", "gtins": [int(EAN13_B)], "price": "4.99",
                      "net_content": 750, "net_unit": "ml"},
                     {"sku": "CHEESE", "name": "Ser", "gtins": [EAN13], "price": "4.99",
                      "net_content": "0.5", "net_unit": "kg"}]
            assert cmd(app, "catalog.upsert", id="c", items=items)["ok"]
            out = []
            for sku in ("OIL-1", "CHEESE"):
                assert cmd(app, "print", id=f"s-{sku}", template="shelf", fields={"sku": sku})["ok"]
                out.append(shelf_texts(app, f"s-{sku}"))
            return out
        finally:
            await app.stop()

    oil, cheese = asyncio.run(main())
    assert "6.65 zł / l" in oil and "9.98 zł / kg" in cheese  # 4.99 / 0.75 l, 4.99 / 0.5 kg
