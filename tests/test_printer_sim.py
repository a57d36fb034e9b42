"""The simulated printer: real encoder bytes, decoded previews that scan, test verbs."""

from __future__ import annotations

from pathlib import Path

import msgspec
import pytest
import zxingcpp
from hubagent.sim import escpos_decode, zpl_decode
from hubagent.sim.printer import SimPrinter
from PIL import Image
from pyzbar import pyzbar

from hubagent.errors import DeviceError, DeviceUnavailable, InputError
from hubagent.events import DeviceHealthChanged, Health
from hubagent.ports import DeviceEnv, Printer, PrinterState, SimControl
from hubagent.bench.labels import SAMPLE_FIELDS
from hubagent.printing.settings import SimPrinterSettings
from hubagent.printing.templates import COMMAND_CODES, load_templates
from labelcheck import check_glyphs, text_boxes

EXPECTED_CODES = {
    "shelf": [SAMPLE_FIELDS["shelf"]["gtin"]],
    "parcel": [f"HA:PCL:{SAMPLE_FIELDS['parcel']['parcel_id']}"],
    "pickup": [SAMPLE_FIELDS["pickup"]["qr"]],
    "return": [f"HA:RET:{SAMPLE_FIELDS['return']['return_id']}"],
    "picklist": [],
    "bin": [f"HA:BIN:{SAMPLE_FIELDS['bin']['bin']}"],
    "command_sheet": list(COMMAND_CODES),
}


@pytest.fixture(scope="module")
def templates():
    return load_templates()


def make(tmp_path: Path, **kw) -> tuple[SimPrinter, list]:
    events: list = []
    settings = msgspec.convert(kw, SimPrinterSettings, strict=True)
    printer = SimPrinter("label1", settings, DeviceEnv("hub-1", tmp_path))
    printer.start(events.append)
    return printer, events


@pytest.mark.parametrize("language", ["zpl", "escpos"])
@pytest.mark.parametrize("name", sorted(EXPECTED_CODES))
def test_every_template_previews_with_codes_that_scan(tmp_path, templates, language, name) -> None:
    printer, _ = make(tmp_path, language=language)
    label = templates[name].layout(SAMPLE_FIELDS[name], printer.dpi, printer.width_dots)
    printer.print_label(label)
    [job] = printer.jobs()
    assert job.preview.parent == tmp_path / "previews"
    assert "00001" in job.preview.name and name in job.preview.name
    with Image.open(job.preview) as png:
        img = png.convert("L")
    assert sorted(r.text for r in zxingcpp.read_barcodes(img)) == sorted(EXPECTED_CODES[name])
    assert sorted(r.data.decode() for r in pyzbar.decode(img)) == sorted(EXPECTED_CODES[name])


@pytest.mark.parametrize("name", sorted(EXPECTED_CODES))
def test_every_template_scans_on_a_300_dpi_zpl_printer(tmp_path, templates, name) -> None:
    printer, _ = make(tmp_path, language="zpl", dpi=300)
    printer.print_label(templates[name].layout(SAMPLE_FIELDS[name], printer.dpi, printer.width_dots))
    with Image.open(printer.jobs()[0].preview) as png:
        img = png.convert("L")
    assert img.width == round(templates[name].spec.width_mm * 300 / 25.4)
    assert sorted(r.text for r in zxingcpp.read_barcodes(img)) == sorted(EXPECTED_CODES[name])


def test_pickup_qr_defaults_to_the_hub_pickup_code(tmp_path, templates) -> None:
    printer, _ = make(tmp_path, language="escpos", width_mm=72.0)
    fields = {k: v for k, v in SAMPLE_FIELDS["pickup"].items() if k != "qr"}
    printer.print_label(templates["pickup"].layout(fields, 203, printer.width_dots))
    with Image.open(printer.jobs()[0].preview) as png:
        found = [r.text for r in zxingcpp.read_barcodes(png.convert("L"))]
    assert found == [f"HA:PICKUP:{fields['code']}"]


def test_captured_bytes_are_the_real_encoders_output(tmp_path, templates) -> None:
    zpl_printer, _ = make(tmp_path / "z", language="zpl")
    esc_printer, _ = make(tmp_path / "e", language="escpos", width_mm=72.0)
    label = templates["bin"].layout(SAMPLE_FIELDS["bin"], 203, 575)
    zpl_printer.print_label(label, copies=2)
    esc_printer.print_label(label, copies=2)
    [zjob], [ejob] = zpl_printer.jobs(), esc_printer.jobs()
    assert zjob.data.startswith(b"^XA") and b"^GFA," in zjob.data
    assert zpl_decode.decode(zjob.data)[0].copies == 2
    assert ejob.data.startswith(b"\x1b@") and b"\x1dv0" in ejob.data
    assert escpos_decode.decode(ejob.data).cuts == 2


def test_paper_out_refuses_jobs_and_paper_in_resumes(tmp_path, templates) -> None:
    printer, events = make(tmp_path)
    label = templates["bin"].layout(SAMPLE_FIELDS["bin"], 203, printer.width_dots)
    assert printer.sim_command("paper-out", {}) == {"state": "paper_out", "jobs": 0}
    assert printer.printer_state() is PrinterState.PAPER_OUT
    with pytest.raises(DeviceError, match="paper out"):
        printer.print_label(label)
    assert printer.jobs() == []
    assert not list((tmp_path / "previews").iterdir())
    printer.sim_command("paper-in", {})
    printer.print_label(label)
    assert len(printer.jobs()) == 1
    healths = [e.status.health for e in events if isinstance(e, DeviceHealthChanged)]
    assert healths == [Health.OK, Health.FAULTED, Health.OK]


def test_offline_raises_device_unavailable(tmp_path, templates) -> None:
    printer, _ = make(tmp_path)
    label = templates["bin"].layout(SAMPLE_FIELDS["bin"], 203, printer.width_dots)
    printer.sim_command("offline", {})
    assert printer.status().health is Health.OFFLINE
    with pytest.raises(DeviceUnavailable):
        printer.print_label(label)
    printer.sim_command("online", {})
    printer.print_label(label)
    assert [j.seq for j in printer.jobs()] == [1]


@pytest.mark.parametrize(("verb", "args"), [("jam", {}), ("paper-out", {"now": True})])
def test_unknown_verbs_and_arguments_are_input_errors(tmp_path, verb, args) -> None:
    printer, _ = make(tmp_path)
    with pytest.raises(InputError):
        printer.sim_command(verb, args)


def test_label_too_big_for_the_media_is_refused(tmp_path, templates) -> None:
    printer, _ = make(tmp_path, language="zpl", width_mm=101.6, height_mm=100.0)
    label = templates["parcel"].layout(SAMPLE_FIELDS["parcel"], 203, printer.width_dots)
    with pytest.raises(InputError) as err:
        printer.print_label(label)
    assert err.value.code == "label_too_big"
    narrow, _ = make(tmp_path, language="escpos", width_mm=48.0)
    with pytest.raises(InputError):
        narrow.print_label(label)


def test_sim_printer_satisfies_the_ports(tmp_path) -> None:
    printer, _ = make(tmp_path)
    assert isinstance(printer, Printer) and isinstance(printer, SimControl)
    assert (printer.language, printer.dpi, printer.width_dots) == ("zpl", 203, 812)
    printer.close()
    printer.close()


@pytest.mark.parametrize(
    "table",
    [{"language": "pcl"}, {"preview_dir": "../outside"}, {"dpi": 600}, {"colour": True}],
)
def test_bad_sim_settings_are_rejected(table) -> None:
    with pytest.raises(msgspec.ValidationError):
        msgspec.convert(table, SimPrinterSettings, strict=True)


# --- Unicode text on real labels, through both printer languages -------------------

WORDS = ["Müller", "Łódź", "Ελλάδα", "Москва", "€"]
UNICODE_FIELDS = {
    "shelf": lambda w: {**SAMPLE_FIELDS["shelf"], "name": f"Tee {w}"},
    "bin": lambda w: {**SAMPLE_FIELDS["bin"], "zone": w},
    "parcel": lambda w: {**SAMPLE_FIELDS["parcel"], "recipient": f"{w} Anna", "hub": w},
    "pickup": lambda w: {**SAMPLE_FIELDS["pickup"], "expiry": f"2026-12-01 {w}"},
}


@pytest.mark.parametrize("language", ["zpl", "escpos"])
@pytest.mark.parametrize("word", WORDS)
@pytest.mark.parametrize("name", sorted(UNICODE_FIELDS))
def test_unicode_text_prints_with_real_glyphs_and_every_code_scans(tmp_path, templates, language, word,
                                                                   name) -> None:
    from hubagent.printing.model import Barcode

    printer, _ = make(tmp_path, language=language)
    label = templates[name].layout(UNICODE_FIELDS[name](word), printer.dpi, printer.width_dots)
    printer.print_label(label)
    with Image.open(printer.jobs()[0].preview) as png:
        preview = png.convert("1")
    boxes = text_boxes(label, word)
    assert boxes, f"{word!r} is on no text element of {name}"
    check_glyphs(preview, boxes, word)
    expected_codes = sorted(el.data for el in label.elements if isinstance(el, Barcode))
    assert expected_codes and sorted(r.text for r in zxingcpp.read_barcodes(preview.convert("L"))) == expected_codes


def test_the_glyph_check_catches_a_transliterated_label(tmp_path, templates) -> None:
    """The check above can fail: the same label with "Łódź" printed as "Lodz" is caught."""
    import msgspec.structs
    from unidecode import unidecode

    from hubagent.printing.model import Text

    printer, _ = make(tmp_path, language="zpl")
    label = templates["parcel"].layout(UNICODE_FIELDS["parcel"]("Łódź"), printer.dpi, printer.width_dots)
    boxes = text_boxes(label, "Łódź")
    mangled = msgspec.structs.replace(label, elements=tuple(
        msgspec.structs.replace(el, lines=tuple(unidecode(ln) for ln in el.lines)) if isinstance(el, Text) else el
        for el in label.elements))
    printer.print_label(mangled)
    with Image.open(printer.jobs()[0].preview) as png:
        preview = png.convert("1")
    with pytest.raises(AssertionError, match="real glyphs"):
        check_glyphs(preview, boxes, "Łódź")
