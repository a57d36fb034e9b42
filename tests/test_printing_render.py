"""Rendering and the printer-language encoders, checked with independent decoders."""

from __future__ import annotations

import itertools

import pytest
import zxingcpp
from escpos.printer import Dummy
from hubagent.sim import escpos_decode, zpl_decode
from PIL import Image, ImageChops
from pyzbar import pyzbar

from hubagent.errors import InputError
from hubagent.printing import model, symbols, zpl
from hubagent.bench.labels import bench_render
from hubagent.printing.render import render

ZXING_FORMAT = {
    "code128": zxingcpp.BarcodeFormat.Code128,
    "ean13": zxingcpp.BarcodeFormat.EAN13,
    "ean8": zxingcpp.BarcodeFormat.EAN8,
    "qr": zxingcpp.BarcodeFormat.QRCode,
    "datamatrix": zxingcpp.BarcodeFormat.DataMatrix,
}
PYZBAR_TYPE = {"code128": "CODE128", "ean13": "EAN13", "ean8": "EAN8", "qr": "QRCODE"}


def one_code_label(symbology: str, data: str, module: int, dpi: int = 203) -> model.Label:
    symbol = symbols.encode(symbology, data)
    quiet = symbols.QUIET_MODULES[symbology] * module
    linear = symbology in model.LINEAR
    bc = model.Barcode(
        quiet, quiet, symbology, data, symbol.rows, module,  # type: ignore[arg-type]
        height=80 if linear else len(symbol.rows) * module,
    )
    return model.Label("one", bc.width + 2 * quiet, bc.symbol_height + 2 * quiet, dpi, (bc,))


def same_pixels(a: Image.Image, b: Image.Image) -> bool:
    return ImageChops.difference(a.convert("L"), b.convert("L")).getbbox() is None


CODES = [
    ("code128", "SKU-0001", 2),
    ("code128", "HA:MODE:RECEIVE", 2),
    ("ean13", "4006381333931", 2),
    ("ean8", "96385074", 2),
    ("qr", "HA:PICKUP:482913", 3),
    ("qr", "https://example.invalid/p/482913?x=Ünïcode", 3),
    ("datamatrix", "BIN-A01-03", 3),
]


@pytest.mark.parametrize(("symbology", "data", "module"), CODES)
def test_rendered_codes_decode_with_zxing(symbology: str, data: str, module: int) -> None:
    img = render(one_code_label(symbology, data, module))
    found = zxingcpp.read_barcodes(img.convert("L"), formats=ZXING_FORMAT[symbology])
    assert [r.text for r in found] == [data]


@pytest.mark.parametrize(("symbology", "data", "module"), [c for c in CODES if c[0] in PYZBAR_TYPE])
def test_rendered_codes_decode_with_zbar(symbology: str, data: str, module: int) -> None:
    img = render(one_code_label(symbology, data, module))
    found = pyzbar.decode(img.convert("L"))
    assert [(r.type, r.data.decode("utf-8")) for r in found] == [(PYZBAR_TYPE[symbology], data)]


def test_bars_are_whole_dot_multiples_of_the_module() -> None:
    img = render(one_code_label("code128", "SKU-0001", 3))
    row = [img.getpixel((x, 40)) for x in range(img.width)]
    runs, count = [], 1
    for a, b in itertools.pairwise(row):
        if a == b:
            count += 1
        else:
            runs.append(count)
            count = 1
    # Every bar and space (not the quiet zones at both ends) is 1..4 modules of 3 dots.
    assert all(r % 3 == 0 and 3 <= r <= 12 for r in runs[1:])


def test_render_gives_a_white_1bit_image_of_the_label_size() -> None:
    label = model.Label("empty", 120, 64, 203, (model.Box(10, 10, 20, 20, fill=True),))
    img = render(label)
    assert (img.mode, img.size) == ("1", (120, 64))
    assert img.getpixel((0, 0)) and not img.getpixel((15, 15))


def test_text_has_no_grey_pixels() -> None:
    label = model.Label("t", 200, 40, 203, (model.Text(0, 0, 200, 40, ("Hello",), 24, 30),))
    img = render(label)
    assert set(img.convert("L").tobytes()) <= {0, 255}
    assert img.getbbox() is not None and ImageChops.invert(img.convert("L")).getbbox() is not None


def test_bad_image_bytes_are_an_input_error() -> None:
    label = model.Label("t", 100, 100, 203, (model.Image(0, 0, 50, 50, b"not a png"),))
    with pytest.raises(InputError) as err:
        render(label)
    assert err.value.code == "bad_image"


@pytest.mark.parametrize(
    ("row", "expected"),
    [
        ("0000", ","),
        ("FFFF", "!"),
        ("AAAB00", "IAB,"),
        ("A" * 45 + "1", "hKA1"),
        ("0F0F", "0F0!"),
        ("F" * 20 + "0", "gF,"),
        ("0F0E", "0F0E"),
    ],
)
def test_zpl_row_compression(row: str, expected: str) -> None:
    assert zpl.compress_row(row) == expected


def test_zpl_decoder_reads_hand_written_compressed_data() -> None:
    # Three rows of two bytes: "FF00", all white, then the first row again.
    assert zpl_decode.expand("HF,\n,\n:", 2) == bytes.fromhex("FF00" "0000" "0000")
    assert zpl_decode.expand("HF,,HF,", 2) == bytes.fromhex("FF00" "0000" "FF00")
    with pytest.raises(ValueError):
        zpl_decode.expand("FFF", 2)


@pytest.mark.parametrize("compress", [True, False])
@pytest.mark.parametrize("width", [64, 61])
def test_zpl_round_trip_is_pixel_exact(compress: bool, width: int) -> None:
    label = model.Label(
        "t", width, 50, 203,
        (model.Text(0, 0, width, 30, ("Zebra",), 20, 24), model.Line(0, 40, width, 40, 3)),
    )
    img = render(label)
    data = zpl.encode_image(img, copies=3, compress=compress)
    assert data.startswith(b"^XA") and data.rstrip().endswith(b"^XZ")
    [decoded] = zpl_decode.decode(data)
    assert decoded.copies == 3
    assert same_pixels(decoded.image, img)


def test_zpl_decoder_rejects_commands_the_hub_never_sends() -> None:
    with pytest.raises(ValueError):
        zpl_decode.decode(b"^XA^PW10^LL10^FO0,0^A0N,20,20^FDhi^FS^XZ")


def test_escpos_raster_round_trip_through_python_escpos() -> None:
    img = render(one_code_label("ean13", "4006381333931", 2))
    printer = Dummy()
    printer.image(img, impl="bitImageRaster", fragment_height=50)  # forces several GS v 0 blocks
    printer.cut()
    job = escpos_decode.decode(printer.output)
    assert job.cuts == 1
    page = job.pages[0]
    assert same_pixels(page.crop((0, 0, img.width, img.height)), img)


def test_escpos_decoder_previews_text_and_rejects_unknown_commands() -> None:
    printer = Dummy()
    printer.textln("hello")
    job = escpos_decode.decode(printer.output, width=200)
    assert job.pages[0].getbbox() is not None
    with pytest.raises(ValueError):
        escpos_decode.decode(b"\x1b\x45\x01")  # ESC E: bold, never emitted by the hub


def test_bench_render_reports_every_template_for_both_languages() -> None:
    result = bench_render(1)
    assert {k.split("/")[1] for k in result} == {"zpl", "escpos"}
    assert len(result) == 14
    assert all(v["p99"] >= v["p50"] > 0 for v in result.values())
