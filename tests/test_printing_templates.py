"""Templates: loading, field validation, text fitting and layout errors."""

from __future__ import annotations

import io
import unicodedata
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from hubagent.errors import ConfigError, InputError
from hubagent.printing import fit
from hubagent.bench.labels import SAMPLE_FIELDS
from hubagent.printing.model import Barcode, Text
from hubagent.printing.render import render
from hubagent.printing.templates import COMMAND_CODES, get_template, load_templates

BUILTIN = {"shelf", "parcel", "pickup", "return", "picklist", "bin", "command_sheet"}
WIDE = 812  # a 4 inch head at 203 dpi


@pytest.fixture(scope="module")
def templates():
    return load_templates()


def texts(label) -> list[str]:
    return [" ".join(el.lines) for el in label.elements if isinstance(el, Text)]


def test_builtin_templates_all_load(templates) -> None:
    assert set(templates) >= BUILTIN


@pytest.mark.parametrize("name", sorted(BUILTIN))
@pytest.mark.parametrize("dpi", [203, 300])
def test_every_template_lays_out_at_both_resolutions(templates, name, dpi) -> None:
    label = templates[name].layout(SAMPLE_FIELDS[name], dpi, 2000)
    assert label.dpi == dpi
    for el in label.elements:
        if isinstance(el, Barcode):
            assert el.x >= 0 and el.x + el.width <= label.width
            assert el.y + el.symbol_height <= label.height


def test_command_sheet_prints_exactly_the_command_codes(templates) -> None:
    label = templates["command_sheet"].layout({}, 203, WIDE)
    assert sorted(el.data for el in label.elements if isinstance(el, Barcode)) == sorted(COMMAND_CODES)


def test_shelf_uses_ean13_for_a_gtin_and_code128_for_the_sku(templates) -> None:
    fields = dict(SAMPLE_FIELDS["shelf"])
    with_gtin = templates["shelf"].layout(fields, 203, WIDE)
    [bc] = [el for el in with_gtin.elements if isinstance(el, Barcode)]
    assert (bc.symbology, bc.hri) == ("ean13", "4006381333931")
    fields.pop("gtin")
    [bc] = [el for el in templates["shelf"].layout(fields, 203, WIDE).elements if isinstance(el, Barcode)]
    assert (bc.symbology, bc.data) == ("code128", "MILK-0001")


def test_upc_a_gtin_is_printed_as_ean13_with_leading_zero(templates) -> None:
    fields = dict(SAMPLE_FIELDS["shelf"], gtin="036000291452")
    [bc] = [el for el in templates["shelf"].layout(fields, 203, WIDE).elements if isinstance(el, Barcode)]
    assert (bc.symbology, bc.hri) == ("ean13", "0036000291452")


def test_optional_field_absent_drops_its_element(templates) -> None:
    fields = {k: v for k, v in SAMPLE_FIELDS["shelf"].items() if k != "bin"}
    assert not any(t.startswith("Bin") for t in texts(templates["shelf"].layout(fields, 203, WIDE)))
    assert any(t.startswith("Bin") for t in texts(templates["shelf"].layout(SAMPLE_FIELDS["shelf"], 203, WIDE)))


def _name_element(templates, name: str) -> Text:
    label = templates["shelf"].layout(dict(SAMPLE_FIELDS["shelf"], name=name), 203, WIDE)
    return next(el for el in label.elements if isinstance(el, Text))


def test_long_name_shrinks_first_then_wraps_and_is_never_cut(templates) -> None:
    full_size = round(4.5 * 203 / 25.4)
    short = _name_element(templates, "Milk")
    assert (short.lines, short.size) == (("Milk",), full_size)
    medium = _name_element(templates, "Organic whole milk 3.5% 1 L")
    assert medium.lines == ("Organic whole milk 3.5% 1 L",)
    assert round(2.5 * 203 / 25.4) <= medium.size < full_size
    longest = "Organic whole milk from alpine meadows, 3.5% fat, 1 litre"
    wrapped = _name_element(templates, longest)
    assert len(wrapped.lines) > 1
    assert " ".join(wrapped.lines) == longest
    assert len(wrapped.lines) * wrapped.line_height <= wrapped.height
    assert all(fit.text_width(line, wrapped.size) <= wrapped.width for line in wrapped.lines)


def test_european_text_prints_as_written_and_only_missing_glyphs_are_transliterated(templates) -> None:
    fields = dict(SAMPLE_FIELDS["shelf"], name="Молоко Łódź Ελλάδα 1 л", currency="EUR")
    shown = texts(templates["shelf"].layout(fields, 203, WIDE))
    assert "Молоко Łódź Ελλάδα 1 л" in shown
    assert "1.29 €" in shown
    assert fit.printable("Crème brûlée Müller") == "Crème brûlée Müller"
    # The default font (Noto Sans) has no CJK or emoji: transliterated, or "?", never a box.
    assert fit.printable("茶") == "Cha"
    assert fit.printable("😀") == "?"


SHELF = SAMPLE_FIELDS["shelf"]
BAD_INPUT = [
    ("shelf", {**SHELF, "sku": None}, "missing_field"),
    ("shelf", {k: v for k, v in SHELF.items() if k != "name"}, "missing_field"),
    ("shelf", {**SHELF, "colour": "red"}, "unknown_field"),
    ("shelf", {**SHELF, "sku": "X" * 65}, "value_too_long"),
    ("shelf", {**SHELF, "price": "1.29x"}, "bad_value"),
    ("shelf", {**SHELF, "price": True}, "wrong_type"),
    ("shelf", {**SHELF, "price": float("nan")}, "wrong_type"),
    ("shelf", {**SHELF, "price": 1.299}, "too_many_decimals"),
    ("shelf", {**SHELF, "price": "1.299"}, "too_many_decimals"),
    ("shelf", {**SHELF, "price": "12.5", "currency": "JPY"}, "too_many_decimals"),
    ("shelf", {**SHELF, "price": "1234567.891"}, "value_too_long"),
    ("shelf", {**SHELF, "currency": "XYZ"}, "unknown_currency"),
    ("shelf", {**SHELF, "currency": None}, "missing_field"),
    ("shelf", {**SHELF, "unit_price": "0.01 € / kg"}, "computed_field"),
    ("shelf", {**SHELF, "net_unit": None}, "missing_field"),
    ("shelf", {**SHELF, "net_unit": "lb"}, "bad_value"),
    ("shelf", {**SHELF, "net_content": 0}, "bad_value"),
    ("shelf", {**SHELF, "name": 42}, "wrong_type"),
    ("shelf", {**SHELF, "name": "Milk\x1b@"}, "bad_value"),
    ("shelf", {**SHELF, "name": "Milk\x85"}, "bad_value"),
    ("shelf", {**SHELF, "name": "Milk \u202eeulav"}, "bad_value"),
    ("shelf", {**SHELF, "name": "Milk \u2067x"}, "bad_value"),
    ("shelf", {**SHELF, "name": "Mi\u200blk"}, "bad_value"),
    ("shelf", {**SHELF, "name": "\ufeffMilk"}, "bad_value"),
    ("shelf", {**SHELF, "gtin": "4006381333932"}, "bad_barcode_data"),
    ("shelf", {**SHELF, "name": "W" * 61}, "value_too_long"),
    ("shelf", {**SHELF, "gtin": None, "sku": "Ünïcode"}, "bad_barcode_data"),
    # SKUs the scanner would read as something else, or refuse, are never printed as the fallback code.
    ("shelf", {**SHELF, "gtin": None, "sku": "12345670"}, "unscannable_code"),  # would print as EAN-8
    ("shelf", {**SHELF, "gtin": None, "sku": "12345678"}, "bad_barcode_data"),
    ("shelf", {**SHELF, "gtin": None, "sku": "AB"}, "unscannable_code"),
    ("bin", {"bin": "A_01"}, "unscannable_code"),
    ("bin", {"bin": "A 01"}, "unscannable_code"),
    ("bin", {"bin": "-A01"}, "unscannable_code"),
    ("bin", {"bin": "A" * 25}, "value_too_long"),
    ("parcel", {**SAMPLE_FIELDS["parcel"], "parcel_id": "PCL/1"}, "unscannable_code"),
    ("parcel", {**SAMPLE_FIELDS["parcel"], "parcel_id": "P" * 41}, "value_too_long"),
    ("parcel", {**SAMPLE_FIELDS["parcel"], "recipient": "Anna\u202e"}, "bad_value"),
    ("pickup", {**SAMPLE_FIELDS["pickup"], "qr": None, "code": "12"}, "unscannable_code"),
    ("return", {**SAMPLE_FIELDS["return"], "return_id": "RET 1"}, "unscannable_code"),
    ("picklist", {**SAMPLE_FIELDS["picklist"], "lines": "one line"}, "wrong_type"),
    ("picklist", {**SAMPLE_FIELDS["picklist"], "lines": ["ok", 3]}, "wrong_type"),
    ("picklist", {**SAMPLE_FIELDS["picklist"], "lines": ["ok", "b\u2060d"]}, "bad_value"),
    ("picklist", {**SAMPLE_FIELDS["picklist"], "lines": ["x"] * 33}, "value_too_long"),
    ("picklist", {**SAMPLE_FIELDS["picklist"], "lines": [f"line {i} " * 12 for i in range(32)]}, "text_does_not_fit"),
    ("shelf", {**SHELF, "gtin": "40063813"}, "bad_barcode_data"),
]


@pytest.mark.parametrize(("name", "fields", "code"), BAD_INPUT)
def test_bad_input_gives_a_clear_input_error(templates, name, fields, code) -> None:
    with pytest.raises(InputError) as err:
        templates[name].layout(fields, 203, WIDE)
    assert err.value.code == code, err.value
    assert err.value.message


def test_unknown_template_lists_the_known_ones(templates) -> None:
    with pytest.raises(InputError) as err:
        get_template(templates, "shelff")
    assert err.value.code == "unknown_template"
    assert "shelf" in err.value.message


def test_label_wider_than_the_printer_is_refused(templates) -> None:
    with pytest.raises(InputError) as err:
        templates["parcel"].layout(SAMPLE_FIELDS["parcel"], 203, 576)
    assert err.value.code == "label_too_wide"


SMALL = """
width_mm = 40.0
height_mm = 20.0
[fields.title]
kind = "text"
[[elements]]
type = "text"
x_mm = 1.0
y_mm = 1.0
w_mm = 38.0
h_mm = 8.0
text = "{title}"
size_mm = 6.0
min_size_mm = 3.0
[[elements]]
type = "image"
x_mm = 1.0
y_mm = 10.0
w_mm = 9.0
h_mm = 9.0
path = "logo.png"
"""


def _logo() -> bytes:
    buf = io.BytesIO()
    Image.new("L", (40, 40), 0).save(buf, format="PNG")
    return buf.getvalue()


def test_hub_directory_adds_and_overrides_templates(tmp_path: Path) -> None:
    (tmp_path / "logo.png").write_bytes(_logo())
    (tmp_path / "small.toml").write_text(SMALL)
    (tmp_path / "bin.toml").write_text(SMALL)
    loaded = load_templates(tmp_path)
    assert {"small", "shelf"} <= set(loaded)
    assert loaded["bin"].spec.width_mm == 40.0
    label = loaded["small"].layout({"title": "Hello"}, 203, WIDE)
    img = render(label)
    # The logo is a black square inside its 9 mm box at (1 mm, 10 mm).
    assert not img.getpixel((round(5.5 * 8), round(14.5 * 8)))
    assert img.getpixel(((30 * 8), (15 * 8)))


@pytest.mark.parametrize(
    ("text", "key"),
    [
        (SMALL.replace("{title}", "{nope}"), "elements[0]"),
        (SMALL.replace('type = "image"', 'type = "picture"'), ""),
        (SMALL.replace("w_mm = 38.0", "w_mm = 60.0"), "elements[0]"),
        (SMALL.replace('path = "logo.png"', 'path = "missing.png"'), "elements[1].path"),
        ("width_mm = [", ""),
        (SMALL.replace("min_size_mm = 3.0", "min_size_mm = 9.0"), "elements[0].min_size_mm"),
    ],
)
def test_invalid_template_file_is_a_config_error_naming_the_file(tmp_path: Path, text: str, key: str) -> None:
    (tmp_path / "logo.png").write_bytes(_logo())
    (tmp_path / "small.toml").write_text(text)
    with pytest.raises(ConfigError) as err:
        load_templates(tmp_path)
    assert err.value.path.endswith("small.toml")
    if key:
        assert err.value.key == key


def test_barcode_too_long_for_its_box_is_refused(tmp_path: Path) -> None:
    (tmp_path / "tiny.toml").write_text(
        'width_mm = 40.0\nheight_mm = 20.0\n[fields.code]\nkind = "barcode"\n'
        '[[elements]]\ntype = "barcode"\nx_mm = 0.0\ny_mm = 0.0\nw_mm = 40.0\nh_mm = 20.0\n'
        'symbology = "code128"\ndata = "{code}"\n'
    )
    tiny = load_templates(tmp_path)["tiny"]
    assert tiny.layout({"code": "AB12"}, 203, WIDE).elements
    with pytest.raises(InputError) as err:
        tiny.layout({"code": "ABCDEFGHIJKLMNOP"}, 203, WIDE)
    assert err.value.code == "barcode_does_not_fit"


def test_long_barcode_text_shrinks_instead_of_failing(tmp_path: Path) -> None:
    (tmp_path / "big.toml").write_text(
        'width_mm = 60.0\nheight_mm = 30.0\n[fields.code]\nkind = "barcode"\n'
        '[[elements]]\ntype = "barcode"\nx_mm = 0.0\ny_mm = 0.0\nw_mm = 60.0\nh_mm = 30.0\n'
        'symbology = "code128"\ndata = "{code}"\nhri_size_mm = 10.0\n'
    )
    label = load_templates(tmp_path)["big"].layout({"code": "ABCDEFGHIJKL"}, 203, WIDE)
    [bc] = [el for el in label.elements if isinstance(el, Barcode)]
    assert bc.hri == "ABCDEFGHIJKL"
    assert bc.hri_size < 80
    assert fit.text_width(bc.hri, bc.hri_size) <= label.width


def test_missing_hub_directory_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError):
        load_templates(tmp_path / "nope")


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=st.text(max_size=80))
def test_any_name_either_fits_completely_or_is_refused(templates, name: str) -> None:
    fields = dict(SAMPLE_FIELDS["shelf"], name=name)
    try:
        label = templates["shelf"].layout(fields, 203, WIDE)
    except InputError as e:
        # Transliteration can lengthen text ("中" -> "Zhong"), so it may still not fit.
        assert e.code in {"missing_field", "bad_value", "value_too_long", "text_does_not_fit"}
        if e.code == "bad_value":  # only for characters that have no business on a label
            assert any(unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp") for c in name), name
        return
    shown = next(el for el in label.elements if isinstance(el, Text))
    assert "".join("".join(shown.lines).split()) == "".join(fit.printable(name).split())


WIDEST_CODES = {"gtin": "04006381333931", "code": "W" * 16, "qr": "W" * 300}
"""Widest values of fields with rules of their own (the rest: as many "W" as allowed)."""


def _widest(name: str, spec) -> object:
    if name in WIDEST_CODES:
        return WIDEST_CODES[name]
    if spec.kind == "currency":
        return "EUR"
    if spec.kind in ("number", "money"):
        decimals = 2 if spec.kind == "money" else (spec.decimals or 0)
        whole = spec.max_length - decimals - (1 if decimals else 0)
        return "9" * whole + ("." + "9" * decimals if decimals else "")
    if spec.kind == "list":
        return ["12 x Widget assorted, bin A-01-03"] * spec.max_length
    if spec.choices:
        return max(spec.choices, key=len)
    return "W" * spec.max_length  # the widest glyph, as many as the template allows


@pytest.mark.parametrize("name", sorted(BUILTIN))
@pytest.mark.parametrize("dpi", [203, 300])
def test_every_value_the_template_accepts_also_fits(templates, name, dpi) -> None:
    """max_length is a promise: a value that passes validation is printed whole."""
    template = templates[name]
    fields = {k: _widest(k, spec) for k, spec in template.spec.fields.items() if spec.kind != "unit_price"}
    fields = {k: int(v) if template.spec.fields[k].kind == "number" else v for k, v in fields.items()}
    assert template.layout(fields, dpi, 2000).elements
