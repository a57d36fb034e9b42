"""Label printing end to end: the real daemon, a real broker, sim printers, decoded previews."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

import pytest
import zxingcpp
from PIL import Image

from central import Central
from fixtures_mqtt import MosquittoBroker
from hubagent.bench.labels import SAMPLE_FIELDS
from hubagent.printing.templates import load_templates
from labelcheck import check_glyphs, text_boxes
from hubproc import Daemon, mqtt_table, wait_until, write_hub_config

PRINTERS = """
[printers.label]
driver = "sim"
language = "zpl"

[printers.receipt]
driver = "sim"
language = "escpos"
width_mm = 72.0

[printing]
default_printer = "label"
templates = { pickup = "receipt", picklist = "receipt" }
retry_min_s = 0.2
retry_max_s = 1.0
"""


@pytest.fixture
def central(central_factory: Callable[..., Central]) -> Central:
    return central_factory(auto_ack=True)


@pytest.fixture
def hub_cfg(tmp_path: Path, mqtt_broker: MosquittoBroker) -> Path:
    return write_hub_config(tmp_path, mqtt_table(mqtt_broker.port, telemetry_s=60.0) + PRINTERS)[0]


def start(daemon_factory: Callable[..., Daemon], cfg: Path) -> Daemon:
    return daemon_factory("run", "--config", str(cfg), state_dir=cfg.parent / "hubstate")


def previews(hub: Daemon) -> list[Path]:
    d = hub.state_dir / "previews"
    return sorted(d.glob("*.png")) if d.exists() else []


def codes(path: Path) -> list[str]:
    with Image.open(path) as png:
        return sorted(r.text for r in zxingcpp.read_barcodes(png.convert("L")))


def done_jobs(central: Central) -> list[str]:
    return [e["data"]["job"] for e in sorted(central.events("print.done"), key=lambda e: e["seq"])]


def test_print_over_mqtt_and_the_cli_and_paper_out_raises_an_alert(
        central: Central, hub_cfg: Path, daemon_factory: Callable[..., Daemon]) -> None:
    hub = start(daemon_factory, hub_cfg)
    central.wait_for_state("online")
    # Cyrillic, Polish and Greek print as written, with the label font's real glyphs.
    parcel = {**SAMPLE_FIELDS["parcel"], "recipient": "Алексей Иванов, Łódź", "hub": "Ελλάδα 7"}
    r = central.command("print", {"template": "parcel", "fields": parcel}, id="m1")
    assert r["ok"] and r["result"]["printer"] == "label", r
    pickup = SAMPLE_FIELDS["pickup"]
    args = [a for k, v in pickup.items() for a in ("--field", f"{k}={v}")]
    out = hub.cli("print", "pickup", *args, "--job-id", "cli-1", "--socket", str(hub.socket_path))
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["result"]["printer"] == "receipt"
    out = hub.cli("print", "picklist", "--field", "title=Order 7", "--field", "lines=1 x tea",
                  "--field", "lines=2 x mug", "--job-id", "cli-2", "--socket", str(hub.socket_path))
    assert out.returncode == 0, out.stderr + out.stdout
    central.wait_for(lambda: len(central.events("print.done")) >= 3, timeout=30, what="3 print.done")
    done = {e["data"]["job"]: e["data"] for e in central.events("print.done")}
    assert done["m1"] == {"job": "m1", "printer": "label", "template": "parcel", "copies": 1, "attempts": 1}
    assert done["cli-1"]["printer"] == done["cli-2"]["printer"] == "receipt"
    assert [p.name for p in previews(hub)] == ["label-00001-parcel.png", "receipt-00001-pickup.png",
                                              "receipt-00002-picklist.png"]
    label, slip, _ = previews(hub)
    assert codes(label) == [f"HA:PCL:{parcel['parcel_id']}"]
    laid_out = load_templates()["parcel"].layout(parcel, 203, 812)
    with Image.open(label) as png:
        for word in ("Алексей", "Łódź", "Ελλάδα"):
            check_glyphs(png.convert("1"), text_boxes(laid_out, word), word)
    assert codes(slip) == [pickup["qr"]]

    hub.sim("printers", "paper-out", name="label")
    state = central.wait_for_state("alert")
    assert "device:printers/label" in state["alerts"]
    assert central.command("print", {"template": "bin", "fields": {"bin": "A-01"}}, id="m2")["ok"]
    st = wait_until(lambda: (s := hub.status())["printing"]["printers"]["label"]["last_error"] and s,
                    30.0, "retry", interval=0.05)
    assert st["state"] == "alert" and st["printing"]["printers"]["label"]["queued"] == 1
    assert len(previews(hub)) == 3
    out = hub.cli("sim", "--socket", str(hub.socket_path), "printer", "paper-in", "label")
    assert out.returncode == 0, out.stderr
    central.wait_for(lambda: "m2" in done_jobs(central), timeout=30, what="m2 printed")
    central.wait_for_state("online")
    assert codes(previews(hub)[1]) == ["HA:BIN:A-01"]  # label-00002-bin.png
    assert hub.terminate() == 0


def test_offline_burst_survives_a_restart_and_prints_each_job_once_in_order(
        central: Central, hub_cfg: Path, daemon_factory: Callable[..., Daemon]) -> None:
    hub = start(daemon_factory, hub_cfg)
    central.wait_for_state("online")
    out = hub.cli("sim", "--socket", str(hub.socket_path), "printer", "offline", "label")
    assert out.returncode == 0, out.stderr
    jobs = [f"burst-{i:02d}" for i in range(12)]
    for i, job in enumerate(jobs):
        r = hub.command("print", {"id": job, "template": "bin", "fields": {"bin": f"B-{i:02d}"}})
        assert r["ok"], r
    assert hub.command("print", {"id": jobs[3], "template": "bin", "fields": {"bin": "B-03"}})["duplicate"]
    assert hub.terminate() == 0
    assert previews(hub) == []

    hub2 = start(daemon_factory, hub_cfg)  # the printer is still switched off
    st = wait_until(lambda: (s := hub2.status())["state"] == "alert" and s, 30.0, "alert after restart",
                    interval=0.05)
    assert st["printing"]["printers"]["label"]["queued"] == 12
    assert st["printing"]["printers"]["label"]["health"] == "offline"
    assert previews(hub2) == []
    hub2.sim("printers", "online", name="label")
    central.wait_for(lambda: len(central.events("print.done")) >= 12, timeout=60, what="12 print.done")
    assert done_jobs(central) == jobs
    assert wait_until(lambda: hub2.status()["printing"]["queued"] == 0, 30.0, "queue empty", interval=0.05)
    printed = previews(hub)
    assert [p.name for p in printed] == [f"label-{n:05d}-bin.png" for n in range(1, 13)]
    assert [codes(p) for p in printed] == [[f"HA:BIN:B-{i:02d}"] for i in range(12)]
    assert [e["data"]["job"] for e in central.events("print.queued")] == jobs
    assert not central.events("print.failed")
    assert hub2.terminate() == 0


PICKLIST_TOO_LONG = {"title": "Pick list", "lines": ["W" * 200] * 32}

BAD = [
    # (case, payload without id, error code, words the message must contain)
    ("unknown template", {"template": "poster", "fields": {}}, "unknown_template", "poster"),
    ("unknown printer", {"template": "bin", "fields": {"bin": "A-1"}, "printer": "laser"},
     "unknown_printer", "laser"),
    ("missing field", {"template": "bin", "fields": {"zone": "Chilled"}}, "missing_field", "bin"),
    ("oversize field", {"template": "bin", "fields": {"bin": "A-1", "zone": "Z" * 17}}, "value_too_long", "zone"),
    ("unknown field", {"template": "bin", "fields": {"bin": "A-1", "colour": "red"}}, "unknown_field", "colour"),
    ("text does not fit", {"template": "picklist", "fields": PICKLIST_TOO_LONG}, "text_does_not_fit",
     "does not fit"),
    ("bad check digit", {"template": "shelf", "fields": {**SAMPLE_FIELDS["shelf"], "gtin": "4006381333932"}},
     "bad_barcode_data", "check digit"),
    # Refused at the command boundary, naming the field, before the label is looked at.
    ("control character", {"template": "bin", "fields": {"bin": "A\x071"}}, "bad_args", "fields.bin"),
    ("bidi override", {"template": "parcel", "fields": {**SAMPLE_FIELDS["parcel"], "recipient": "Anna \u202e"}},
     "bad_args", "fields.recipient"),
    ("code the hub refuses on scan", {"template": "bin", "fields": {"bin": "A_01"}}, "unscannable_code",
     "HA:BIN:A_01"),
    ("price rounded", {"template": "shelf", "fields": {**SAMPLE_FIELDS["shelf"], "price": "1.299"}},
     "too_many_decimals", "1.299"),
    ("too wide for the printer", {"template": "parcel", "fields": SAMPLE_FIELDS["parcel"], "printer": "receipt"},
     "label_too_wide", "parcel"),
    ("copies zero", {"template": "bin", "fields": {"bin": "A-1"}, "copies": 0}, "bad_args", "copies"),
    ("copies over the limit", {"template": "bin", "fields": {"bin": "A-1"}, "copies": 500}, "bad_copies", "20"),
    ("fields not an object", {"template": "bin", "fields": ["A-1"]}, "bad_args", "fields"),
    ("no template", {"fields": {"bin": "A-1"}}, "bad_args", "template"),
]


def test_bad_print_jobs_are_refused_with_a_clear_error_and_nothing_is_queued(
        daemon_factory: Callable[..., Daemon], tmp_path: Path) -> None:
    state = tmp_path / "simstate"
    state.mkdir()
    hub = daemon_factory("run", "--sim", "--state-dir", str(state), state_dir=state)
    for i, (case, payload, code, words) in enumerate(BAD):
        r = hub.command("print", {"id": f"bad-{i}", **payload})
        assert r["ok"] is False, (case, r)
        assert r["error"]["code"] == code, (case, r)
        assert words in r["error"]["message"], (case, r)
    st = hub.status()
    assert st["printing"]["queued"] == 0 and st["printing"]["recent"] == []
    assert previews(hub) == []
    ok = hub.command("print", {"id": "good", "template": "bin", "fields": {"bin": "A-1", "zone": "Chilled"}})
    assert ok["ok"], ok
    printed = wait_until(lambda: previews(hub), 30.0, "a preview", interval=0.05)
    assert codes(printed[0]) == ["HA:BIN:A-1"]
    assert hub.terminate() == 0
