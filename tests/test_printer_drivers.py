"""The real printer drivers against real files and real TCP servers on 127.0.0.1."""

from __future__ import annotations

import time
from pathlib import Path

import msgspec
import pytest
from hubagent.drivers.escpos_printer import EscposPrinter
from hubagent.drivers.zpl_printer import ZplPrinter, parse_host_status
from hubagent.sim import escpos_decode, zpl_decode
from PIL import ImageChops

from hubagent.errors import DeviceUnavailable, InputError
from hubagent.events import DeviceStatus, Health
from hubagent.ports import DeviceEnv, Printer, PrinterState
from hubagent.bench.labels import SAMPLE_FIELDS
from hubagent.printing.render import render
from hubagent.printing.settings import EscposPrinterSettings, ZplPrinterSettings
from hubagent.printing.templates import load_templates

from fixtures_printer import FakePrinter, hs_reply

@pytest.fixture
def fake():
    server = FakePrinter()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def label():
    return load_templates()["shelf"].layout(SAMPLE_FIELDS["shelf"], 203, 575)


def same(a, b) -> bool:
    return ImageChops.difference(a.convert("L"), b.convert("L")).getbbox() is None


def escpos(tmp_path: Path, **table) -> EscposPrinter:
    return EscposPrinter("esc", msgspec.convert(table, EscposPrinterSettings, strict=True), DeviceEnv("h", tmp_path))


def zebra(tmp_path: Path, **table) -> ZplPrinter:
    return ZplPrinter("zebra", msgspec.convert(table, ZplPrinterSettings, strict=True), DeviceEnv("h", tmp_path))


# -- ESC/POS ------------------------------------------------------------
@pytest.mark.parametrize("cutter", [True, False])
def test_escpos_file_connection_writes_the_raster_label(tmp_path, label, cutter) -> None:
    out = tmp_path / "lp0"
    out.touch()
    printer = escpos(tmp_path, connection="file", device=str(out), cutter=cutter)
    events: list = []
    printer.start(events.append)
    assert printer.status().health is Health.OK
    printer.print_label(label, copies=2)
    printer.close()
    job = escpos_decode.decode(out.read_bytes(), printer.width_dots)
    assert job.cuts == (2 if cutter else 0)
    img = render(label)
    assert same(job.pages[0].crop((0, 0, img.width, img.height)), img)
    assert printer.printer_state() is PrinterState.UNKNOWN
    with pytest.raises(DeviceUnavailable):
        printer.print_label(label)


def test_escpos_missing_device_is_offline_not_a_crash(tmp_path, label) -> None:
    printer = escpos(tmp_path, connection="file", device=str(tmp_path / "lp0"))
    events: list = []
    printer.start(events.append)
    assert printer.status().health is Health.OFFLINE
    assert events and events[-1].status.health is Health.OFFLINE
    with pytest.raises(DeviceUnavailable):
        printer.print_label(label)
    assert not (tmp_path / "lp0").exists()
    (tmp_path / "lp0").touch()  # the printer is plugged in: the next job goes through
    printer.print_label(label)
    assert printer.status().health is Health.OK
    assert (tmp_path / "lp0").stat().st_size > 0


def test_escpos_network_prints_and_reads_real_time_status(tmp_path, label, fake) -> None:
    printer = escpos(tmp_path, connection="network", host="127.0.0.1", port=fake.port, timeout=2.0)
    printer.start(lambda e: None)
    printer.print_label(label)
    [data] = fake.wait_jobs(1)
    assert same(escpos_decode.decode(data).pages[0].crop((0, 0, label.width, label.height)), render(label))
    assert printer.printer_state() is PrinterState.ONLINE
    fake.escpos_status[4] = 0x72  # paper end sensor
    assert printer.printer_state() is PrinterState.PAPER_OUT
    fake.escpos_status.update({1: 0x1A, 2: 0x16, 4: 0x12})  # offline because the cover is open
    assert printer.printer_state() is PrinterState.COVER_OPEN
    assert printer.status().health is Health.FAULTED
    printer.close()


def test_escpos_network_unreachable_is_offline(tmp_path, label, fake) -> None:
    port = fake.port
    fake.shutdown()
    fake.server_close()
    printer = escpos(tmp_path, connection="network", host="127.0.0.1", port=port, timeout=1.0)
    assert printer.printer_state() is PrinterState.OFFLINE
    with pytest.raises(DeviceUnavailable):
        printer.print_label(label)


def test_escpos_label_wider_than_paper_is_an_input_error(tmp_path) -> None:
    out = tmp_path / "lp0"
    out.touch()
    printer = escpos(tmp_path, connection="file", device=str(out), paper_width_mm=48.0)
    wide = load_templates()["parcel"].layout(SAMPLE_FIELDS["parcel"], 203, 2000)
    with pytest.raises(InputError) as err:
        printer.print_label(wide)
    assert err.value.code == "label_too_big"


@pytest.mark.parametrize(
    "table",
    [
        {"connection": "network"},
        {"connection": "usb", "usb_vendor_id": 0x04B8},
        {"connection": "serial"},
        {"connection": "file"},
        {"connection": "bluetooth"},
        {"connection": "network", "host": "p", "port": 70000},
        {"connection": "network", "host": "p", "native_codes": True},
    ],
)
def test_bad_escpos_settings_are_rejected(table) -> None:
    with pytest.raises(msgspec.ValidationError):
        msgspec.convert(table, EscposPrinterSettings, strict=True)


# -- ZPL ----------------------------------------------------------------
def test_zpl_tcp_prints_the_label_and_reports_states(tmp_path, label, fake) -> None:
    printer = zebra(tmp_path, host="127.0.0.1", port=fake.port, timeout=0.5)
    assert isinstance(printer, Printer)
    events: list = []
    printer.start(events.append)
    assert printer.status().health is Health.OK
    printer.print_label(label, copies=3)
    [data] = fake.wait_jobs(1)
    [decoded] = zpl_decode.decode(data)
    assert decoded.copies == 3
    assert same(decoded.image, render(label))
    fake.hs = hs_reply(paper_out=True)
    assert printer.printer_state() is PrinterState.PAPER_OUT
    assert printer.status().detail == "paper_out"
    fake.hs = hs_reply(head_open=True)
    assert printer.printer_state() is PrinterState.COVER_OPEN
    fake.hs = hs_reply(paused=True)
    assert printer.printer_state() is PrinterState.OFFLINE
    fake.hs = b"garbage"
    assert printer.printer_state() is PrinterState.UNKNOWN
    fake.hs = hs_reply()
    assert printer.printer_state() is PrinterState.ONLINE
    assert [(e.status.health, e.status.detail) for e in events] == [
        (Health.OK, ""),
        (Health.FAULTED, "paper_out"),
        (Health.FAULTED, "cover_open"),
        (Health.FAULTED, "offline"),
        (Health.UNKNOWN, "unreadable status reply"),
        (Health.OK, ""),
    ]
    printer.close()


def test_zpl_status_poll_reports_paper_out_without_a_print(tmp_path, fake) -> None:
    printer = zebra(tmp_path, host="127.0.0.1", port=fake.port, timeout=1.0, status_interval=0.05)
    events: list = []
    printer.start(events.append)
    try:
        fake.hs = hs_reply(paper_out=True)
        deadline = time.monotonic() + 5.0
        while not any(e.status.detail == "paper_out" for e in list(events)) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert printer.status() == DeviceStatus(Health.FAULTED, "paper_out")
    finally:
        printer.close()
    printer.close()


def test_zpl_silent_printer_is_unknown_after_the_timeout(tmp_path, fake) -> None:
    fake.answer = False
    printer = zebra(tmp_path, host="127.0.0.1", port=fake.port, timeout=0.3)
    assert printer.printer_state() is PrinterState.UNKNOWN


def test_zpl_unreachable_printer(tmp_path, label, fake) -> None:
    port = fake.port
    fake.shutdown()
    fake.server_close()
    printer = zebra(tmp_path, host="127.0.0.1", port=port, timeout=1.0)
    printer.start(lambda e: None)
    assert printer.status().health is Health.OFFLINE
    with pytest.raises(DeviceUnavailable):
        printer.print_label(label)
    printer.close()


def test_zpl_device_file(tmp_path, label) -> None:
    out = tmp_path / "lp0"
    out.touch()
    printer = zebra(tmp_path, device=str(out), compress=False)
    printer.print_label(label)
    assert same(zpl_decode.decode(out.read_bytes())[0].image, render(label))
    assert printer.printer_state() is PrinterState.UNKNOWN
    printer.start(lambda e: None)
    assert printer.status().health is Health.OK
    missing = zebra(tmp_path, device=str(tmp_path / "lp1"))
    missing.start(lambda e: None)
    assert missing.status().health is Health.OFFLINE
    with pytest.raises(DeviceUnavailable):
        missing.print_label(label)
    assert not (tmp_path / "lp1").exists()


def test_zpl_refuses_a_label_longer_than_the_media(tmp_path, label) -> None:
    printer = zebra(tmp_path, device=str(tmp_path / "lp0"), height_mm=30.0)
    with pytest.raises(InputError) as err:
        printer.print_label(label)
    assert err.value.code == "label_too_big"


def test_host_status_parsing_rejects_short_replies() -> None:
    assert parse_host_status(hs_reply(paper_out=True)).paper_out
    with pytest.raises(ValueError):
        parse_host_status(b"\x02030,0\x03")


@pytest.mark.parametrize("table", [{}, {"host": "p", "device": "/dev/x"}, {"host": "p", "dpi": 250}])
def test_bad_zpl_settings_are_rejected(table) -> None:
    with pytest.raises(msgspec.ValidationError):
        msgspec.convert(table, ZplPrinterSettings, strict=True)
