"""The durable print queue in-process: a real app on an asyncio loop, a real SQLite file, sim printers.

The app runs on a manual clock attached to its loop: retry back-offs pass
only when a test advances it. Printers print on their own threads, so
``until`` still waits for them.
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any, Awaitable, Callable

import msgspec
import pytest
import zxingcpp
from PIL import Image

from hubagent.app import App, build_app
from hubagent.clock import ManualClock
from hubagent.config import from_dict
from hubagent.errors import CommandError, ConfigError
from hubagent.features import all_migrations
from hubagent.printing import queue
from hubagent.bench.labels import SAMPLE_FIELDS
from hubagent.printing.service import PrintService
from hubagent.printing.settings import PrintingSettings
from hubagent.store.store import Store


def printing_of(app: App) -> PrintService:
    """The app's PrintService (the test's config has one)."""
    svc = app.service(PrintService)
    assert svc is not None
    return svc


def config(state: Path, **printing: Any) -> Any:
    return from_dict({
        "hub": {"id": "t1", "state_dir": str(state)},
        "printers": {"label": {"driver": "sim", "language": "zpl"},
                     "receipt": {"driver": "sim", "language": "escpos", "width_mm": 72.0}},
        "printing": {"templates": {"pickup": "receipt", "picklist": "receipt"}, "retry_min_s": 0.05,
                     "retry_max_s": 0.2, **printing},
    })


def run(state: Path, body: Callable[[App], Awaitable[None]], **printing: Any) -> None:
    """Start a real app on a fresh loop, run ``body``, stop it."""
    async def main() -> None:
        app = build_app(config(state, **printing), simulated=True, clock=ManualClock())
        await app.start()
        try:
            await body(app)
        finally:
            await app.stop()

    asyncio.run(main())


async def until(predicate: Callable[[], Any], timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        await asyncio.sleep(0.02)
    raise AssertionError(f"timed out waiting for {predicate}")


def advance(app: App, seconds: float) -> None:
    """Let ``seconds`` of core time pass (on the core thread: the test body runs on the loop)."""
    clock = app.clock
    assert isinstance(clock, ManualClock)
    clock.advance(seconds)


def idle(app: App) -> bool:
    """No printer has a job in hand and none waits: nothing more can print."""
    lanes = printing_of(app).lanes.values()
    return all(lane.current is None for lane in lanes) and queue.waiting_count(app.store.conn) == 0


def cmd(app: App, name: str, **payload: Any) -> dict[str, Any]:
    return app.commands.handle(name, json.dumps(payload).encode(), source="local")


def events(app: App, kind: str) -> list[dict[str, Any]]:
    rows = app.store.query("SELECT data FROM outbox WHERE kind=? ORDER BY seq", (kind,))
    return [json.loads(r["data"]) for r in rows]


def previews(state: Path) -> list[Path]:
    d = state / "previews"
    return sorted(d.glob("*.png")) if d.exists() else []


def codes(path: Path) -> list[str]:
    with Image.open(path) as png:
        return sorted(r.text for r in zxingcpp.read_barcodes(png.convert("L")))


def bin_fields(i: int) -> dict[str, str]:
    return {"bin": f"B-{i:02d}", "zone": "Chilled"}


def test_a_job_left_sending_becomes_interrupted_and_prints_only_by_reprint(tmp_path: Path) -> None:
    # A crash during a send: the row says "sending", nobody knows whether it printed.
    store = Store(tmp_path / "hubagent.db", all_migrations())
    store.open()
    with store.write() as tx:
        queue.insert(tx, job_id="crashed", printer="label", template="bin", fields=bin_fields(1), copies=1,
                     origin="test")
        assert queue.mark_sending(tx, "crashed")
    store.close()

    async def body(app: App) -> None:
        job = queue.get(app.store.conn, "crashed")
        assert job is not None and job.state == "interrupted" and job.reason == "interrupted"
        [failed] = events(app, "print.failed")
        assert failed["job"] == "crashed" and failed["reason"] == "interrupted"
        advance(app, 60.0)  # past every retry back-off: the printer is online, still nothing is printed
        assert idle(app) and previews(tmp_path) == []
        r = cmd(app, "print.reprint", id="rp-1", job="crashed")
        assert r["ok"] and r["result"]["job"] == "crashed~r1" and r["result"]["reprint_of"] == "crashed", r
        again = cmd(app, "print.reprint", id="rp-1", job="crashed")
        assert again["duplicate"] is True
        done = await until(lambda: events(app, "print.done"))
        assert done == [{"job": "crashed~r1", "printer": "label", "template": "bin", "copies": 1,
                         "attempts": 1, "reprint_of": "crashed"}]

    run(tmp_path, body)
    [png] = previews(tmp_path)
    assert codes(png) == ["HA:BIN:B-01"]


def test_paused_refuses_new_jobs_but_waiting_jobs_still_print(tmp_path: Path) -> None:
    async def body(app: App) -> None:
        app.sim_command("printers", "label", "offline", {})
        assert cmd(app, "print", id="before", template="bin", fields=bin_fields(1))["ok"]
        printing_of(app).pause_new("battery low")
        r = cmd(app, "print", id="during", template="bin", fields=bin_fields(2))
        assert r["ok"] is False and r["error"]["code"] == "paused" and "battery low" in r["error"]["message"]
        with app.store.write() as tx, pytest.raises(CommandError) as err:
            printing_of(app).enqueue(tx, "bin", bin_fields(3))
        assert err.value.code == "paused"
        assert app.status()["printing"]["paused"] is True
        app.sim_command("printers", "label", "online", {})
        await until(lambda: [e["job"] for e in events(app, "print.done")] == ["before"])
        printing_of(app).resume_new()
        assert cmd(app, "print", id="after", template="bin", fields=bin_fields(4))["ok"]
        await until(lambda: [e["job"] for e in events(app, "print.done")] == ["before", "after"])
        assert app.status()["printing"]["paused"] is False

    run(tmp_path, body)
    assert [codes(p) for p in previews(tmp_path)] == [["HA:BIN:B-01"], ["HA:BIN:B-04"]]


def test_enqueue_api_is_part_of_the_callers_transaction_and_ids_print_once(tmp_path: Path) -> None:
    async def body(app: App) -> None:
        svc = printing_of(app)
        with pytest.raises(RuntimeError):  # the caller's work fails after queuing: no job, no label
            with app.store.write() as tx:
                svc.enqueue(tx, "bin", bin_fields(1), job_id="rolled-back")
                raise RuntimeError("the caller's own step failed")
        assert queue.get(app.store.conn, "rolled-back") is None
        with app.store.write() as tx:
            assert svc.enqueue(tx, "parcel", SAMPLE_FIELDS["parcel"], job_id="parcel-1") == "parcel-1"
        with app.store.write() as tx:  # a retry of the caller's step: same job id, not queued again
            assert svc.enqueue(tx, "parcel", SAMPLE_FIELDS["parcel"], job_id="parcel-1") == "parcel-1"
        r = cmd(app, "print", id="parcel-1", template="parcel", fields=SAMPLE_FIELDS["parcel"])
        assert r["ok"] and r["result"]["existing"] is True
        with app.store.write() as tx:
            auto = svc.enqueue(tx, "pickup", SAMPLE_FIELDS["pickup"])
        await until(lambda: len(events(app, "print.done")) == 2)
        advance(app, 60.0)
        assert idle(app)  # nothing else was queued or handed to a printer
        assert sorted(e["job"] for e in events(app, "print.done")) == sorted(["parcel-1", auto])
        assert {e["job"]: e["printer"] for e in events(app, "print.done")} == {"parcel-1": "label", auto: "receipt"}

    run(tmp_path, body)
    assert [p.name for p in previews(tmp_path)] == ["label-00001-parcel.png", "receipt-00001-pickup.png"]


def test_cancel_withdraws_a_waiting_job_and_reprint_needs_a_finished_one(tmp_path: Path) -> None:
    async def body(app: App) -> None:
        app.sim_command("printers", "label", "paper-out", {})
        assert cmd(app, "print", id="one", template="bin", fields=bin_fields(1))["ok"]
        assert cmd(app, "print", id="two", template="bin", fields=bin_fields(2))["ok"]
        r = cmd(app, "print.reprint", id="rp", job="two")
        assert r["error"]["code"] == "not_finished"
        assert cmd(app, "print.cancel", id="c1", job="one")["result"] == {"job": "one", "state": "cancelled"}
        assert cmd(app, "print.cancel", id="c2", job="one")["error"]["code"] == "not_queued"
        assert cmd(app, "print.cancel", id="c3", job="nope")["error"]["code"] == "unknown_job"
        status = await until(lambda: (s := app.status()["printing"]["printers"]["label"])["last_error"] and s)
        assert status["queued"] == 1 and status["health"] == "faulted" and "paper_out" in status["last_error"]
        assert app.status()["state"] == "alert"
        app.sim_command("printers", "label", "paper-in", {})
        await until(lambda: events(app, "print.done"))
        assert [e["job"] for e in events(app, "print.done")] == ["two"]
        assert [(e["job"], e["reason"]) for e in events(app, "print.failed")] == [("one", "cancelled")]
        assert app.status()["state"] == "ok"

    run(tmp_path, body)
    assert [codes(p) for p in previews(tmp_path)] == [["HA:BIN:B-02"]]


def test_command_line_strings_are_typed_for_number_and_list_fields(tmp_path: Path) -> None:
    async def body(app: App) -> None:
        shelf = {**{k: str(v) for k, v in SAMPLE_FIELDS["shelf"].items()}, "price": "1.29"}
        assert cmd(app, "print", id="s", template="shelf", fields=shelf)["ok"]
        assert cmd(app, "print", id="p", template="picklist", fields={"title": "T", "lines": "1 x tea"})["ok"]
        r = cmd(app, "print", id="bad", template="shelf", fields={**shelf, "price": "cheap"})
        assert r["error"]["code"] == "bad_value" and "price" in r["error"]["message"]
        await until(lambda: len(events(app, "print.done")) == 2)
        stored = queue.get(app.store.conn, "s")
        # A price stays the exact decimal that was typed; a plain number field is typed.
        assert stored is not None and stored.fields["price"] == "1.29" and stored.fields["net_content"] == 1

    run(tmp_path, body)


def test_printing_settings_name_only_configured_printers(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        build_app(config(tmp_path, default_printer="nope"))
    assert err.value.key == "printing.default_printer" and "label, receipt" in err.value.reason
    with pytest.raises(ConfigError) as err:
        build_app(config(tmp_path, templates={"parcel": "laser"}))
    assert err.value.key == "printing.templates.parcel"
    with pytest.raises(msgspec.ValidationError):
        msgspec.convert({"retry_min_s": 10.0, "retry_max_s": 1.0}, PrintingSettings, strict=True)
    with pytest.raises(ConfigError) as err:
        build_app(config(tmp_path, templates_dir="no-such-dir"))
    assert "does not exist" in err.value.reason


def test_a_hub_without_printers_answers_no_printer(tmp_path: Path) -> None:
    app = build_app(from_dict({"hub": {"id": "t1", "state_dir": str(tmp_path)}}))
    app.store.open()
    try:
        assert app.service(PrintService) is None
        r = cmd(app, "print", id="x", template="bin", fields=bin_fields(1))
        assert r["ok"] is False and r["error"]["code"] == "no_printer"
    finally:
        app.store.close()


def test_a_job_that_no_longer_lays_out_fails_with_its_reason_and_the_next_one_prints(tmp_path: Path) -> None:
    from hubagent.printing.templates import builtin_dir

    overrides = tmp_path / "templates"
    overrides.mkdir()
    text = (builtin_dir() / "bin.toml").read_text()
    assert "max_length = 16" in text
    (overrides / "bin.toml").write_text(text.replace("max_length = 16", "max_length = 24"))

    async def first(app: App) -> None:
        app.sim_command("printers", "label", "offline", {})
        assert cmd(app, "print", id="long", template="bin", fields={"bin": "B-01", "zone": "Z" * 20})["ok"]
        assert cmd(app, "print", id="short", template="bin", fields=bin_fields(2))["ok"]

    run(tmp_path, first, templates_dir="templates")  # relative to the state dir
    (overrides / "bin.toml").unlink()  # back to the built-in: zone is at most 16 characters

    async def second(app: App) -> None:
        assert app.status()["printing"]["printers"]["label"]["health"] == "offline"  # still switched off
        app.sim_command("printers", "label", "online", {})
        await until(lambda: events(app, "print.done"))
        assert [e["job"] for e in events(app, "print.done")] == ["short"]
        [failed] = events(app, "print.failed")
        assert failed["job"] == "long" and failed["reason"] == "value_too_long" and "zone" in failed["message"]

    run(tmp_path, second, templates_dir="templates")
    assert [codes(p) for p in previews(tmp_path)] == [["HA:BIN:B-02"]]


def test_sim_printer_keeps_its_fault_and_counter_across_restarts(tmp_path: Path) -> None:
    from hubagent.events import Health
    from hubagent.ports import DeviceEnv
    from hubagent.printing.settings import SimPrinterSettings
    from hubagent.printing.templates import load_templates
    from hubagent.sim.printer import SimPrinter

    settings = SimPrinterSettings()
    label = load_templates()["bin"].layout(bin_fields(1), 203, settings.width_dots)

    def boot() -> tuple[SimPrinter, list[Any]]:
        seen: list[Any] = []
        p = SimPrinter("label", settings, DeviceEnv("t1", tmp_path))
        p.start(seen.append)
        return p, seen

    first, _ = boot()
    first.print_label(label)
    first.sim_command("offline", {})
    first.close()
    second, seen = boot()
    assert second.status().health is Health.OFFLINE and seen[-1].status.health is Health.OFFLINE
    second.sim_command("online", {})
    second.print_label(label)
    second.close()
    (tmp_path / "sim-printer-label.json").write_text("{not json")  # a damaged state file
    third, _ = boot()
    assert third.status().health is Health.OK
    third.print_label(label)
    assert [p.name for p in previews(tmp_path)] == [f"label-0000{n}-bin.png" for n in (1, 2, 3)]


def test_a_failed_send_is_retried_exactly_after_its_back_off(tmp_path: Path) -> None:
    async def body(app: App) -> None:
        app.sim_command("printers", "label", "paper-out", {})
        assert cmd(app, "print", id="one", template="bin", fields=bin_fields(1))["ok"]
        label = lambda: app.status()["printing"]["printers"]["label"]  # noqa: E731
        await until(lambda: label()["state"] == "waiting")
        assert label()["retry_in_s"] == 1.0  # retry_min_s after the first failure
        advance(app, 0.99)
        assert label()["state"] == "waiting" and label()["retry_in_s"] == 0.0  # not yet retried
        advance(app, 0.02)  # the back-off is over: tried again, failed again, waits twice as long
        await until(lambda: label()["retry_in_s"] == 2.0)
        advance(app, 1.99)
        assert label()["state"] == "waiting" and not events(app, "print.done")
        app.sim_command("printers", "label", "paper-in", {})  # back: sent at once, no waiting
        await until(lambda: events(app, "print.done"))
        assert label()["state"] == "idle" and label()["retry_in_s"] is None

    run(tmp_path, body, retry_min_s=1.0, retry_max_s=4.0)


def catalog_config(state: Path) -> Any:
    return from_dict({
        "hub": {"id": "t1", "state_dir": str(state)},
        "printers": {"label": {"driver": "sim", "language": "zpl"}},
        "printing": {"currency": "PLN", "retry_min_s": 0.05, "retry_max_s": 0.2},
        "scanners": {"front": {"driver": "sim"}},
        "scanning": {"lookup_prints_label": "label"},
    })


def shelf_texts(app: App, job: str) -> list[str]:
    from hubagent.printing.model import Text

    stored = queue.get(app.store.conn, job)
    assert stored is not None
    label = printing_of(app).templates["shelf"].layout(stored.fields, 203, 812)
    return [" ".join(el.lines) for el in label.elements if isinstance(el, Text)]


def test_a_shelf_label_from_only_a_sku_or_a_lookup_scan_is_filled_from_the_catalog(tmp_path: Path) -> None:
    from hubagent.stock import ledger

    async def main() -> None:
        app = build_app(catalog_config(tmp_path), simulated=True)
        await app.start()
        try:
            await body(app)
        finally:
            await app.stop()

    async def body(app: App) -> None:
        items = [{"sku": "SER-1", "name": "Ser Łódzki Müller", "gtins": ["5901234123457"], "price": "12.99",
                  "bin": "A-01", "unit": "kg"},
                 {"sku": "NOPRICE-1", "name": "Tea", "gtins": []}]
        assert cmd(app, "catalog.upsert", id="c1", items=items)["ok"]
        with app.store.write() as tx:  # net content (per-item extra data of the catalog)
            ledger.upsert_sku(tx, "OIL-1", "Oliwa Ελλάδα", ["04006381333931"], "4.99", "B-02",
                              extra={"net_content": 750, "net_unit": "ml"})
        assert cmd(app, "print", id="s1", template="shelf", fields={"sku": "SER-1"})["ok"]
        assert cmd(app, "print", id="s2", template="shelf", fields={"sku": "OIL-1"})["ok"]
        assert cmd(app, "print", id="s3", template="shelf", fields={"sku": "SER-1", "price": "9.99"})["ok"]
        stored = queue.get(app.store.conn, "s1")
        assert stored is not None and stored.fields == {
            "sku": "SER-1", "name": "Ser Łódzki Müller", "price": "12.99", "gtin": "5901234123457",
            "bin": "A-01", "unit": "kg", "currency": "PLN"}
        assert {"Ser Łódzki Müller", "12.99 zł", "SKU SER-1", "Bin A-01", "per kg"} <= set(shelf_texts(app, "s1"))
        assert {"4.99 zł", "6.65 zł / l"} <= set(shelf_texts(app, "s2"))  # 4.99 / 0.75 l = 6.653
        assert "9.99 zł" in shelf_texts(app, "s3")  # a field the job gives wins over the catalog
        r = cmd(app, "print", id="x1", template="shelf", fields={"sku": "NOPE-1"})
        assert r["error"]["code"] == "unknown_sku" and "NOPE-1" in r["error"]["message"]
        r = cmd(app, "print", id="x2", template="shelf", fields={"sku": "NOPRICE-1"})
        assert r["error"]["code"] == "missing_field" and "price" in r["error"]["message"]
        full = {"sku": "NEW-1", "name": "Not in the catalog yet", "price": "1.00"}
        assert cmd(app, "print", id="s4", template="shelf", fields=full)["ok"]
        # A lookup scan (the scanner's default mode) prints the same label from the catalog.
        app.sim_command("scanners", "front", "scan", {"code": "SER-1"})
        await until(lambda: len(events(app, "print.done")) == 5)
        lookup = [j for j in events(app, "print.queued") if j["job"] not in ("s1", "s2", "s3", "s4")]
        assert len(lookup) == 1 and lookup[0]["template"] == "shelf"
        assert shelf_texts(app, lookup[0]["job"]) == shelf_texts(app, "s1")

    asyncio.run(main())
    printed = [codes(p) for p in previews(tmp_path)]
    assert printed == [["5901234123457"], ["4006381333931"], ["5901234123457"], ["NEW-1"], ["5901234123457"]]
