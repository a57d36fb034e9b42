"""Shelf workflows in process: real app, real SQLite file, real sim feedback device.

Scans enter exactly where a scanner thread's events do (``app.dispatch`` of
a ``RawScan``). The app runs on a manual clock that each scan advances, so
dedupe, session timeouts and the rejection token bucket are deterministic.
The pty path is covered by test_scanning_e2e.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterator

import pytest

from hubagent import cli
from hubagent.app import App, build_app
from hubagent.clock import ManualClock
from hubagent.config import from_dict
from hubagent.errors import ConfigError
from hubagent.events import RawScan, ScanRejectedAtDevice
from hubagent.ports import FeedbackPattern
from hubagent.scanning.service import ScanService
from hubagent.scanning.service import excerpt
from hubagent.stock import ledger

TEA_GTIN = "4006381333931"  # GTIN-14 04006381333931
CATALOG = [
    {"sku": "TEA-1", "name": "Green tea", "gtins": ["0" + TEA_GTIN], "price": 3.5, "bin": "A-01"},
    {"sku": "MUG-2", "name": "Mug", "gtins": ["5901234123457"], "price": "7.90", "bin": "B-02"},
    {"sku": "PEN-3", "name": "Pen", "gtins": []},
]


def scanning_of(app: App) -> ScanService:
    """The app's ScanService (the test's config has one)."""
    svc = app.service(ScanService)
    assert svc is not None
    return svc


def config(state: Path, **scanning: Any) -> dict[str, Any]:
    return {"hub": {"id": "t1", "state_dir": str(state)},
            "scanners": {"front": {"driver": "sim", "feedback": "front"}, "back": {"driver": "sim"}},
            "feedback": {"front": {"driver": "sim"}},
            "scanning": {"dedupe_s": 0.5, **scanning}}


class Hub:
    """An in-process app with its store open; scans go through app.dispatch."""

    def __init__(self, state: Path, **scanning: Any) -> None:
        self.clock = ManualClock()
        self.app: App = build_app(from_dict(config(state, **scanning)), clock=self.clock)
        self.app.store.open()
        scanning_of(self.app).load()

    def close(self) -> None:
        self.app.store.close()

    def cmd(self, name: str, **payload: Any) -> dict[str, Any]:
        return self.app.commands.handle(name, json.dumps(payload).encode())

    def scan(self, code: str | bytes, scanner: str = "front", gap: float = 2.0) -> str:
        """Scan and return the feedback pattern the scanner got."""
        self.clock.advance(gap)
        data = code.encode() if isinstance(code, str) else code
        self.app.post(RawScan(scanner, data))  # stamped with the clock's time, as from a scanner thread
        self.clock.run_pending()
        return self.feedback(scanner)

    def feedback(self, scanner: str = "front") -> str:
        if scanner == "front":
            history = self.app.device("feedback", "front").history()  # type: ignore[attr-defined]
            return history[-1][1].value if history else ""
        return scanning_of(self.app).last_feedback[scanner]["pattern"]

    def events(self, kind: str | None = None) -> list[dict[str, Any]]:
        rows = self.app.store.query("SELECT kind, data FROM outbox ORDER BY seq")
        return [{"kind": r["kind"], **json.loads(r["data"])} for r in rows if kind in (None, r["kind"])]

    def on_hand(self, sku: str, bin: str) -> int:
        return ledger.on_hand(self.app.store, sku, bin)

    def movements(self) -> int:
        return int(self.app.store.query("SELECT COUNT(*) AS n FROM movements")[0]["n"])


STAFF = ("anna", "bob", "cy", "dee")


def register_staff(h: Hub) -> None:
    """Central registers the staff the tests sign in with (badge = staff id here)."""
    for who in STAFF:
        assert h.cmd("staff.set", id=f"st-{who}", staff=who, badge=who)["ok"]


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[Hub]:
    h = Hub(tmp_path)
    assert h.cmd("catalog.upsert", id="cat", items=CATALOG)["ok"]
    register_staff(h)
    yield h
    h.close()


def test_receive_needs_a_bin_then_books_each_item_with_staff_and_scanner(hub: Hub) -> None:
    assert hub.scan("HA:MODE:RECEIVE") == "ok"
    assert hub.scan("HA:STAFF:anna") == "ok"
    assert hub.scan(TEA_GTIN) == "attention"  # no bin yet: nothing booked
    assert hub.movements() == 0
    assert hub.events("scan.rejected")[-1]["reason"] == "no_bin"
    assert hub.scan("HA:BIN:a-07") == "ok"
    assert hub.scan(TEA_GTIN) == "ok"
    assert hub.scan("HA:QTY:4") == "ok"
    assert hub.scan("MUG-2") == "ok"
    assert hub.on_hand("TEA-1", "A-07") == 1 and hub.on_hand("MUG-2", "A-07") == 4
    moved = hub.events("stock.moved")
    assert [(m["type"], m["sku"], m["delta"], m["actor"], m["device"]) for m in moved] == [
        ("receive", "TEA-1", 1, "anna", "front"), ("receive", "MUG-2", 4, "anna", "front")]
    assert hub.scan("HA:QTY:9999") == "ok"  # above max_receive_qty (999): refused at the item
    assert hub.scan("PEN-3") == "error"
    assert hub.events("scan.rejected")[-1]["reason"] == "qty_too_large"
    assert hub.on_hand("PEN-3", "A-07") == 0


def test_receive_against_expected_delivery_reports_over_and_short(hub: Hub) -> None:
    r = hub.cmd("delivery.expect", id="d1", delivery="DLV-1", bin="R-01",
                lines=[{"sku": "TEA-1", "qty": 2}, {"sku": "MUG-2", "qty": 3}])
    assert r["ok"] and r["result"]["expected"] == 5, r
    hub.scan("HA:MODE:RECEIVE")
    assert hub.scan("HA:QTY:2") == "ok"
    assert hub.scan(TEA_GTIN) == "ok"  # into the delivery's bin: no bin scan needed
    assert hub.scan("MUG-2") == "ok"
    assert hub.scan(TEA_GTIN) == "attention"  # one more than expected: booked, flagged
    assert hub.scan("PEN-3") == "attention"  # not on the delivery at all
    st = hub.app.status()["scanning"]
    assert st["scanners"]["front"]["delivery"]["id"] == "DLV-1"
    assert st["open_deliveries"] == ["DLV-1"]
    assert hub.scan("HA:DONE") == "attention"  # closed with differences
    [done] = hub.events("delivery.received")
    assert done["delivery"] == "DLV-1" and done["complete"] is False and done["scanner"] == "front"
    assert done["lines"] == [
        {"sku": "TEA-1", "expected": 2, "received": 3, "over": 1, "short": 0},
        {"sku": "MUG-2", "expected": 3, "received": 1, "over": 0, "short": 2},
        {"sku": "PEN-3", "expected": 0, "received": 1, "over": 1, "short": 0},
    ]
    assert hub.on_hand("TEA-1", "R-01") == 3
    assert all(m["ref"] == "DLV-1" for m in hub.events("stock.moved"))
    assert hub.app.status()["scanning"]["open_deliveries"] == []
    # A later receive is plain again (the delivery is closed).
    hub.scan("HA:BIN:R-02")
    assert hub.scan("MUG-2") == "ok"
    assert hub.events("stock.moved")[-1]["ref"] is None


def test_pick_refuses_wrong_item_and_over_pick_and_emits_pick_done(hub: Hub) -> None:
    hub.cmd("stock.adjust", id="a1", sku="TEA-1", bin="A-01", delta=5, reason="opening")
    hub.cmd("stock.adjust", id="a2", sku="MUG-2", bin="B-02", delta=5, reason="opening")
    hub.scan("HA:MODE:PICK")
    assert hub.scan(TEA_GTIN) == "error"  # no pick list yet
    assert hub.events("scan.rejected")[-1]["reason"] == "no_pick"
    r = hub.cmd("pick.request", id="p1", pick="PK-1", scanner="front",
                lines=[{"sku": "TEA-1", "qty": 2}, {"sku": "MUG-2", "qty": 1, "bin": "B-02"}])
    assert r["ok"], r
    before = hub.app.store.last_seq()
    assert hub.scan("PEN-3") == "error"
    assert hub.events("scan.rejected")[-1]["reason"] == "wrong_item"
    assert hub.scan("HA:QTY:3") == "ok"
    assert hub.scan(TEA_GTIN) == "error"
    assert hub.events("scan.rejected")[-1]["reason"] == "over_pick"
    assert hub.on_hand("TEA-1", "A-01") == 5 and hub.movements() == 2
    assert [e["kind"] for e in hub.events()][before:] == ["scan.rejected", "scan.rejected"]
    assert hub.scan(TEA_GTIN) == "ok"  # from the SKU's default bin
    assert hub.scan("MUG-2") == "ok"
    assert hub.scan(TEA_GTIN) == "ok"  # completes the list
    [done] = hub.events("pick.done")
    assert done["pick"] == "PK-1" and done["status"] == "complete"
    assert done["lines"] == [{"sku": "TEA-1", "bin": None, "qty": 2, "picked": 2},
                             {"sku": "MUG-2", "bin": "B-02", "qty": 1, "picked": 1}]
    assert hub.on_hand("TEA-1", "A-01") == 3 and hub.on_hand("MUG-2", "B-02") == 4
    assert hub.scan(TEA_GTIN) == "error"  # nothing left to pick


def test_pick_done_early_closes_short(hub: Hub) -> None:
    hub.cmd("pick.request", id="p1", pick="PK-2", lines=[{"sku": "MUG-2", "qty": 2}])
    hub.scan("HA:MODE:PICK")
    assert hub.scan("MUG-2") == "ok"
    assert hub.scan("HA:DONE") == "attention"
    [done] = hub.events("pick.done")
    assert done["status"] == "short" and done["lines"][0]["picked"] == 1


def test_count_books_differences_and_unscanned_skus_as_zero(hub: Hub) -> None:
    hub.cmd("stock.adjust", id="a1", sku="TEA-1", bin="C-01", delta=5, reason="opening")
    hub.cmd("stock.adjust", id="a2", sku="MUG-2", bin="C-01", delta=2, reason="opening")
    hub.scan("HA:MODE:COUNT")
    assert hub.scan(TEA_GTIN) == "attention"  # which bin?
    hub.scan("HA:BIN:C-01")
    assert hub.scan("HA:QTY:2") == "ok"
    assert hub.scan(TEA_GTIN) == "ok"
    assert hub.scan("PEN-3") == "ok"
    assert hub.scan(TEA_GTIN) == "ok"
    assert hub.app.status()["scanning"]["scanners"]["front"]["counted"] == {"TEA-1": 3, "PEN-3": 1}
    assert hub.scan("HA:BIN:C-02") == "attention"  # a count is open
    assert hub.movements() == 2  # tallies are not movements until HA:DONE
    assert hub.scan("HA:DONE") == "ok"
    counts = [(m["sku"], m["delta"], m["on_hand"]) for m in hub.events("stock.moved") if m["type"] == "count"]
    assert counts == [("MUG-2", -2, 0), ("PEN-3", 1, 1), ("TEA-1", -2, 3)]


def test_move_from_bin_to_bin(hub: Hub) -> None:
    hub.cmd("stock.adjust", id="a1", sku="TEA-1", bin="A-01", delta=5, reason="opening")
    hub.scan("HA:MODE:MOVE")
    hub.scan("HA:BIN:A-01")
    assert hub.scan(TEA_GTIN) == "attention"  # no destination yet
    assert hub.scan("HA:BIN:A-01") == "error"  # same bin
    hub.scan("HA:BIN:D-09")
    hub.scan("HA:QTY:2")
    assert hub.scan(TEA_GTIN) == "ok"
    out, into = hub.events("stock.moved")[-2:]
    assert (out["bin"], out["delta"], into["bin"], into["delta"]) == ("A-01", -2, "D-09", 2)
    assert out["group"] == into["group"] and out["type"] == "move"
    assert hub.on_hand("TEA-1", "A-01") == 3 and hub.on_hand("TEA-1", "D-09") == 2


def test_returns_resellable_to_bin_damaged_to_quarantine(hub: Hub) -> None:
    hub.scan("HA:MODE:RETURN")
    assert hub.scan(TEA_GTIN) == "attention"  # condition first
    assert hub.scan("HA:RET:RMA-77") == "ok"
    hub.scan("HA:COND:resellable")
    assert hub.scan(TEA_GTIN) == "ok"  # the SKU's default bin
    assert hub.scan("PEN-3") == "attention"  # no default bin and none scanned
    hub.scan("HA:COND:DAMAGED")
    assert hub.scan("MUG-2") == "ok"
    assert hub.on_hand("TEA-1", "A-01") == 1 and hub.on_hand("MUG-2", "QUARANTINE") == 1
    moved = hub.events("stock.moved")
    assert [(m["type"], m["reason"], m["ref"]) for m in moved] == [
        ("return", "resellable", "RMA-77"), ("return", "damaged", "RMA-77")]
    assert hub.app.store.query("SELECT kind FROM bins WHERE code='QUARANTINE'")[0]["kind"] == "quarantine"
    assert hub.scan("HA:MODE:LOOKUP") == "ok"
    assert hub.scan("HA:COND:DAMAGED") == "error"  # grading means nothing outside returns


def test_lookup_changes_nothing(hub: Hub) -> None:
    before = hub.app.store.last_seq()
    assert scanning_of(hub.app).mode_of("front") == "lookup"  # the default mode
    assert hub.scan(TEA_GTIN) == "ok"
    assert hub.scan("HA:BIN:A-01") == "ok"
    assert hub.scan("MUG-2") == "ok"
    assert hub.app.store.last_seq() == before and hub.movements() == 0


BAD = [
    ("unknown code", b"!!not a code!!", "unknown_code"),
    ("unknown item", b"NOPE-404", "unknown_item"),
    ("unknown GTIN", b"5901234123471", "unknown_item"),
    ("bad check digit", b"4006381333932", "bad_check_digit"),
    ("bad GS1", b"]C1" + b"0104006381333931" + b"99", "gs1_parse_error"),
    ("non-UTF-8", b"\xff\xfeTEA\x80", "not_utf8"),
    ("control characters", b"TEA\x07-1", "bad_characters"),
    ("bad internal code", b"HA:QTY:0", "bad_internal_code"),
    ("unsupported kind", b"(10)LOT42", "unsupported_code"),
]


@pytest.mark.parametrize("name,data,reason", BAD, ids=[b[0] for b in BAD])
def test_bad_scans_change_nothing_and_are_reported(hub: Hub, name: str, data: bytes, reason: str) -> None:
    hub.scan("HA:MODE:RECEIVE")
    hub.scan("HA:BIN:A-01")
    before = hub.app.store.last_seq()
    assert hub.scan(data) == "error"
    [ev] = [e for e in hub.events()][before:]
    assert ev["kind"] == "scan.rejected" and ev["reason"] == reason and ev["scanner"] == "front"
    assert ev["message"] and ev["mode"] == "receive"
    assert len(ev["raw"]) <= 64 and ev["raw"].isprintable() and ev["raw"].isascii()
    assert hub.movements() == 0
    assert hub.scan(TEA_GTIN) == "ok" and hub.on_hand("TEA-1", "A-01") == 1  # still working


def test_double_scan_within_window_is_refused_but_not_after_it(hub: Hub) -> None:
    hub.scan("HA:MODE:RECEIVE")
    hub.scan("HA:BIN:A-01")
    assert hub.scan(TEA_GTIN) == "ok"
    assert hub.scan(TEA_GTIN, gap=0.2) == "error"
    assert hub.events("scan.rejected")[-1]["reason"] == "double_scan"
    assert hub.scan(TEA_GTIN, gap=0.2) == "error"  # still the same trigger burst
    assert hub.scan(TEA_GTIN, gap=0.6) == "ok"  # a deliberate second scan
    assert hub.scan("MUG-2", gap=0.1) == "ok"  # a different code at once is fine
    assert hub.scan(TEA_GTIN, "back", gap=0.1) == "ok"  # other scanners are independent
    assert hub.on_hand("TEA-1", "A-01") == 2


def test_device_rejection_and_long_garbage_are_reported_with_safe_excerpt(hub: Hub) -> None:
    hub.app.dispatch(ScanRejectedAtDevice("front", "too_long", "more than 512 bytes"))
    assert hub.feedback() == "error"
    assert hub.events("scan.rejected")[-1]["reason"] == "too_long"
    assert hub.scan(bytes(range(128, 256)) * 4) == "error"
    raw = hub.events("scan.rejected")[-1]["raw"]
    assert raw.startswith("\\x80\\x81") and len(raw) <= 64
    assert excerpt(b"A\\B\nC") == "A\\x5cB\\x0aC"


def test_mode_staff_and_open_pick_survive_a_restart_but_the_bin_does_not(tmp_path: Path) -> None:
    h = Hub(tmp_path)
    h.cmd("catalog.upsert", id="cat", items=CATALOG)
    register_staff(h)
    h.cmd("pick.request", id="p1", pick="PK-9", lines=[{"sku": "MUG-2", "qty": 3}])
    h.scan("HA:MODE:PICK")
    h.scan("HA:STAFF:bob")
    h.scan("HA:BIN:B-05")
    h.scan("MUG-2")
    h.scan("HA:MODE:COUNT", scanner="back")
    h.close()
    h2 = Hub(tmp_path)
    try:
        front = h2.app.status()["scanning"]["scanners"]["front"]
        assert (front["mode"], front["staff"], front["bin"]) == ("pick", "bob", None)
        assert front["pick"]["id"] == "PK-9" and front["pick"]["lines"][0]["picked"] == 1
        assert scanning_of(h2.app).mode_of("back") == "count"
        assert scanning_of(h2.app).staff_for("front") == "bob"
        h2.scan("HA:QTY:2")
        assert h2.scan("MUG-2") == "ok"  # default bin now, pick completes
        assert h2.events("pick.done")[0]["status"] == "complete"
    finally:
        h2.close()


def test_idle_selection_is_forgotten_and_cancel_then_signs_out(hub: Hub) -> None:
    hub.scan("HA:MODE:RECEIVE")
    hub.scan("HA:STAFF:cy")
    hub.scan("HA:BIN:A-01")
    assert hub.scan(TEA_GTIN, gap=301.0) == "attention"  # session_timeout_s 300 passed
    hub.scan("HA:BIN:A-01")
    assert hub.scan("HA:CANCEL") == "ok"
    assert scanning_of(hub.app).staff_for("front") == "cy"  # first cancel drops the bin
    assert hub.scan(TEA_GTIN) == "attention"
    assert hub.scan("HA:CANCEL") == "ok"
    assert scanning_of(hub.app).staff_for("front") is None  # nothing in hand: signs out


def test_claimed_kinds_are_routed_to_their_feature(hub: Hub) -> None:
    seen: list[tuple[str, str]] = []

    def lockers(scan: Any, scanner: str) -> FeedbackPattern:
        seen.append((scan.value, scanner))
        return FeedbackPattern.ATTENTION

    for kind in ("parcel", "staff"):  # the lockers feature may have claimed them already
        hub.app.scan_handlers.pop(kind, None)
        hub.app.claim_scans(kind, lockers)
    feedback = hub.app.device("feedback", "front")
    assert hub.scan("HA:PCL:P-123") == "attention"
    assert hub.scan("HA:STAFF:dee") == "attention"
    assert len(feedback.history()) == 2  # one beep per scan, the claimant's
    assert seen == [("P-123", "front"), ("dee", "front")]
    assert scanning_of(hub.app).staff_for("front") == "dee"  # sign-in is still recorded
    assert hub.events("scan.rejected") == []


def test_commands_validate_and_scanner_mode_switches(hub: Hub) -> None:
    bad = [
        ("delivery.expect", {"delivery": "D", "lines": [{"sku": "TEA-1", "qty": 1}] * 2}, "bad_args"),
        ("delivery.expect", {"delivery": "D", "lines": [{"sku": "NOPE", "qty": 1}]}, "unknown_sku"),
        ("delivery.expect", {"delivery": "D", "lines": [{"sku": "TEA-1", "qty": 0}]}, "bad_args"),
        ("delivery.expect", {"delivery": "D", "lines": []}, "bad_args"),
        ("delivery.expect", {"delivery": "D", "bin": "lower", "lines": [{"sku": "TEA-1", "qty": 1}]},
         "bad_args"),
        ("pick.request", {"pick": "P", "scanner": "nope", "lines": [{"sku": "TEA-1", "qty": 1}]}, "bad_args"),
        ("scanner.mode", {"scanner": "front", "mode": "dance"}, "bad_args"),
        ("scanner.mode", {"scanner": "nope", "mode": "pick"}, "bad_args"),
    ]
    for n, (name, payload, code) in enumerate(bad):
        r = hub.cmd(name, id=f"bad-{n}", **payload)
        assert r["ok"] is False and r["error"]["code"] == code, (name, payload, r)
    assert hub.cmd("delivery.expect", id="d1", delivery="D", lines=[{"sku": "TEA-1", "qty": 1}])["ok"]
    r = hub.cmd("delivery.expect", id="d2", delivery="D", lines=[{"sku": "TEA-1", "qty": 1}])
    assert r["error"]["code"] == "exists"
    assert hub.cmd("scanner.mode", id="m1", scanner="back", mode="move")["ok"]
    assert scanning_of(hub.app).mode_of("back") == "move"


def test_scanner_feedback_must_name_a_configured_device(tmp_path: Path) -> None:
    doc = config(tmp_path)
    doc["scanners"]["back"]["feedback"] = "missing"
    with pytest.raises(ConfigError) as exc:
        from_dict(doc)
    assert exc.value.key == "scanners.back.feedback" and "missing" in exc.value.reason
    path = tmp_path / "hub.toml"
    path.write_text(f'[hub]\nid = "h"\nstate_dir = "{tmp_path}"\n'
                    '[scanners.front]\ndriver = "sim"\nfeedback = "nope"\n')
    assert cli.main(["check-config", str(path)]) == 2
    doc = config(tmp_path, dedupe_s=-1)
    with pytest.raises(ConfigError) as exc:
        from_dict(doc)
    assert exc.value.key == "scanning.dedupe_s"


def test_latency_bench_measures_through_a_real_pty() -> None:
    from hubagent.bench.scanning import scan_latency

    samples = scan_latency(10)
    assert len(samples) == 10 and all(0 < s < 5 for s in samples)


def test_a_scanner_spewing_noise_records_a_bounded_number_of_rejections(tmp_path: Path) -> None:
    h = Hub(tmp_path, rejected_events_per_min=120)  # a burst of 120, then 2 a second
    try:
        patterns = [h.scan(b"\x07noise%d" % i, gap=0.01) for i in range(150)]
        assert patterns == ["error"] * 150  # every read still gets its beep
        recorded = len(h.events("scan.rejected"))
        assert recorded == 122  # the burst, plus what refilled in the 1.49 s to the last read (2 a second)
        front = scanning_of(h.app).status()["scanners"]["front"]
        assert front["rejected"] == 150 and front["rejected_unrecorded"] == 150 - recorded
        h.clock.advance(0.6)  # a token comes back
        assert h.scan(b"\x07noise again", gap=0.0) == "error"
        last = h.events("scan.rejected")[-1]
        assert last["unrecorded"] == 150 - recorded  # central learns what it missed
        assert scanning_of(h.app).status()["scanners"]["front"]["rejected_unrecorded"] == 0
        assert h.movements() == 0
    finally:
        h.close()
