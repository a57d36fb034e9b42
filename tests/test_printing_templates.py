"""Templates: loading, field validation, text fitting and layout errors."""

from __future__ import annotations

import io
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


def test_non_latin_text_is_transliterated_not_dropped(templates) -> None:
    fields = dict(SAMPLE_FIELDS["shelf"], name="Молоко 1 л", currency="€")
    label = templates["shelf"].layout(fields, 203, WIDE)
    shown = texts(label)
    assert "Moloko 1 l" in shown
    assert any(t.startswith("EUR") for t in shown)
    assert fit.printable("Crème brûlée") == "Creme brulee"
    assert fit.printable("😀") == "?"


BAD_INPUT = [
    ("shelf", {**SAMPLE_FIELDS["shelf"], "sku": None}, "missing_field"),
    ("shelf", {k: v for k, v in SAMPLE_FIELDS["shelf"].items() if k != "name"}, "missing_field"),
    ("shelf", {**SAMPLE_FIELDS["shelf"], "colour": "red"}, "unknown_field"),
    ("shelf", {**SAMPLE_FIELDS["shelf"], "sku": "X" * 17}, "value_too_long"),
    ("shelf", {**SAMPLE_FIELDS["shelf"], "price": "1.29"}, "wrong_type"),
    ("shelf", {**SAMPLE_FIELDS["shelf"], "price": True}, "wrong_type"),
    ("shelf", {**SAMPLE_FIELDS["shelf"], "price": float("nan")}, "wrong_type"),
    ("shelf", {**SAMPLE_FIELDS["shelf"], "name": 42}, "wrong_type"),
    ("shelf", {**SAMPLE_FIELDS["shelf"], "name": "Milk\x1b@"}, "bad_value"),
    ("shelf", {**SAMPLE_FIELDS["shelf"], "gtin": "4006381333932"}, "bad_barcode_data"),
    ("shelf", {**SAMPLE_FIELDS["shelf"], "name": "W" * 61}, "value_too_long"),
    ("shelf", {**SAMPLE_FIELDS["shelf"], "gtin": None, "sku": "Ünïcode"}, "bad_barcode_data"),
    ("picklist", {**SAMPLE_FIELDS["picklist"], "lines": "one line"}, "wrong_type"),
    ("picklist", {**SAMPLE_FIELDS["picklist"], "lines": ["ok", 3]}, "wrong_type"),
    ("picklist", {**SAMPLE_FIELDS["picklist"], "lines": ["x"] * 33}, "value_too_long"),
    ("picklist", {**SAMPLE_FIELDS["picklist"], "lines": [f"line {i} " * 12 for i in range(32)]}, "text_does_not_fit"),
    ("shelf", {**SAMPLE_FIELDS["shelf"], "gtin": "40063813"}, "bad_barcode_data"),
]


@pytest.mark.parametrize(("name", "fields", "code"), BAD_INPUT)
def test_bad_input_gives_a_clear_input_error(templates, name, fields, code) -> None:
    with pytest.raises(InputError) as err:
        templates[name].layout(fields, 203, WIDE)
    assert err.value.code == code
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
        return
    shown = next(el for el in label.elements if isinstance(el, Text))
    assert "".join("".join(shown.lines).split()) == "".join(fit.printable(name).split())


def _widest(spec) -> object:
    if spec.kind == "number":
        decimals = spec.decimals or 0
        whole = spec.max_length - decimals - (1 if decimals else 0)
        return float("9" * whole + ("." + "9" * decimals if decimals else ""))
    if spec.kind == "list":
        return ["12 x Widget assorted, bin A-01-03"] * spec.max_length
    return "W" * spec.max_length  # the widest glyph, as many as the template allows


@pytest.mark.parametrize("name", sorted(BUILTIN))
@pytest.mark.parametrize("dpi", [203, 300])
def test_every_value_the_template_accepts_also_fits(templates, name, dpi) -> None:
    """max_length is a promise: a value that passes validation is printed whole."""
    template = templates[name]
    fields = {k: _widest(spec) for k, spec in template.spec.fields.items()}
    assert template.layout(fields, dpi, 2000).elements
