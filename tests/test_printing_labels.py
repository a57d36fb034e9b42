"""Label content rules: prices and unit prices, codes the scanner accepts, the font, the command sheet."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hubagent import cli, config
from hubagent.errors import ConfigError, InputError
from hubagent.printing import fonts, money
from hubagent.printing.settings import PRINTING
from hubagent.bench.labels import SAMPLE_FIELDS
from hubagent.printing.layout import check_scannable
from hubagent.printing.model import Barcode, Text
from hubagent.printing.templates import COMMAND_CODES, load_templates
from hubagent.scanning import codes

WIDE = 812


@pytest.fixture(scope="module")
def templates():
    return load_templates()


def texts(label) -> list[str]:
    return [" ".join(el.lines) for el in label.elements if isinstance(el, Text)]


def shelf(templates, **fields):
    base = {k: v for k, v in SAMPLE_FIELDS["shelf"].items() if k not in ("net_content", "net_unit")}
    return templates["shelf"].layout({**base, **fields}, 203, WIDE)


# --- prices -------------------------------------------------------------------


@pytest.mark.parametrize(("price", "currency", "shown"), [
    ("1.29", "EUR", "1.29 €"), (1.29, "EUR", "1.29 €"), ("1.2", "EUR", "1.20 €"), (3, "GBP", "3.00 £"),
    ("150", "JPY", "150 ¥"), ("150.00", "JPY", "150 ¥"), ("1.290", "EUR", "1.29 €"),
    ("2.125", "BHD", "2.125 BHD"), ("9.99", "pln", "9.99 zł"), ("129", "CZK", "129.00 Kč"),
])
def test_prices_print_with_their_currency_decimals(templates, price, currency, shown) -> None:
    assert shown in texts(shelf(templates, price=price, currency=currency))


@pytest.mark.parametrize(("price", "currency"), [
    ("1.299", "EUR"), (1.299, "EUR"), ("0.001", "USD"), ("12.5", "JPY"), ("1.2345", "BHD"),
])
def test_a_price_is_never_rounded_silently(templates, price, currency) -> None:
    with pytest.raises(InputError) as err:
        shelf(templates, price=price, currency=currency)
    assert err.value.code == "too_many_decimals"
    assert "price" in err.value.message and str(price) in err.value.message


def test_the_length_limit_counts_what_was_typed(templates) -> None:
    # max_length 10: "1234567.8" (9 typed) prints as "1234567.80" (10) and is fine;
    # "12345678.9" (10 typed) also; "123456789.1" (11 typed) is too long.
    assert "1234567.80 €" in texts(shelf(templates, price="1234567.8"))
    assert "12345678.90 €" in texts(shelf(templates, price="12345678.9"))
    with pytest.raises(InputError) as err:
        shelf(templates, price="123456789.1")
    assert err.value.code == "value_too_long" and "11 characters" in err.value.message


@pytest.mark.parametrize(("price", "content", "unit", "currency", "shown"), [
    ("1.29", 500, "g", "EUR", "2.58 € / kg"),
    ("4.99", 750, "ml", "EUR", "6.65 € / l"),  # 6.6533...
    ("0.99", 0.33, "l", "EUR", "3.00 € / l"),
    ("2.49", 1.5, "kg", "GBP", "1.66 £ / kg"),  # 1.66
    ("0.01", 400, "g", "EUR", "0.03 € / kg"),  # 0.025: half up, not to even
    ("1.00", 3, "piece", "EUR", "0.33 € / piece"),
    ("398", 250, "g", "JPY", "1592 ¥ / kg"),
])
def test_unit_price_per_kg_or_litre_rounded_half_up(templates, price, content, unit, currency, shown) -> None:
    shown_texts = texts(shelf(templates, price=price, currency=currency, net_content=content, net_unit=unit))
    assert shown in shown_texts


def test_no_unit_price_without_net_content_or_for_a_single_piece(templates) -> None:
    assert not any("/" in t for t in texts(shelf(templates)))
    assert not any("/" in t for t in texts(shelf(templates, net_content=1, net_unit="piece")))


def test_unit_price_arithmetic_is_decimal() -> None:
    assert money.unit_price(Decimal("0.10"), Decimal("300"), "g", 2) == (Decimal("0.33"), "kg")
    assert money.unit_price(Decimal("1.05"), Decimal("0.5"), "kg", 2) == (Decimal("2.10"), "kg")
    assert money.MINOR_UNITS["EUR"] == 2 and money.MINOR_UNITS["JPY"] == 0 and money.MINOR_UNITS["KWD"] == 3


# --- codes the scanner accepts --------------------------------------------------


@settings(max_examples=150, deadline=None)
@given(bin_code=st.text(alphabet="AZaz09-_./ :Ł", min_size=1, max_size=24))
def test_a_bin_label_is_printed_only_when_its_code_scans_as_that_bin(bin_code: str) -> None:
    template = load_templates()["bin"]
    try:
        label = template.layout({"bin": bin_code}, 203, WIDE)
    except InputError as e:
        assert e.code in ("unscannable_code", "missing_field", "bad_barcode_data"), e
        try:
            scan = codes.interpret(f"HA:BIN:{bin_code}".encode())
        except InputError:
            return  # refused by the scanner too
        assert scan.kind is not codes.ScanKind.BIN or scan.value != bin_code.upper(), bin_code
        return
    [bc] = [el for el in label.elements if isinstance(el, Barcode)]
    scan = codes.interpret(bc.data.encode())
    assert scan.kind is codes.ScanKind.BIN and scan.value == bin_code.upper()


def test_the_refusal_names_the_field_and_the_scanner_reason(templates) -> None:
    with pytest.raises(InputError) as err:
        templates["bin"].layout({"bin": "A_01"}, 203, WIDE)
    assert err.value.code == "unscannable_code"
    assert "'bin'" in err.value.message and "HA:BIN:A_01" in err.value.message
    assert "bad_internal_code" in err.value.message


@pytest.mark.parametrize(("data", "scan_as", "ok"), [
    ("HA:PCL:PCL-1", ["parcel"], True),
    ("HA:PCL:PCL-1", ["bin"], False),
    ("HA:PICKUP:12", ["pickup"], False),
    ("https://example.invalid/p/1", ["other"], True),  # for phones: not the hub's business
    ("HA:PICKUP:12", ["other"], False),  # but a hub code is always checked
    ("4006381333931", ["gtin"], True),
    ("MILK-0001", ["gtin"], False),
])
def test_check_scannable(data, scan_as, ok) -> None:
    if ok:
        check_scannable(data, scan_as, "{x}")
    else:
        with pytest.raises(InputError) as err:
            check_scannable(data, scan_as, "{x}")
        assert err.value.code == "unscannable_code" and "'x'" in err.value.message


@pytest.mark.parametrize(("template", "field", "longest"), [
    ("bin", "bin", "A" * 24), ("parcel", "parcel_id", "P" * 40), ("return", "return_id", "R" * 40),
    ("shelf", "sku", "S" * 64), ("shelf", "gtin", "04006381333931"),
])
def test_field_limits_match_the_id_rules(templates, template, field, longest) -> None:
    fields = {**SAMPLE_FIELDS[template], field: longest}
    label = templates[template].layout(fields, 203, WIDE)
    assert label.elements
    with pytest.raises(InputError) as err:
        templates[template].layout({**fields, field: longest + "1"}, 203, WIDE)
    assert err.value.code == "value_too_long"


def test_a_gtin_14_of_a_consumer_unit_prints_as_its_ean(templates) -> None:
    label = shelf(templates, gtin="04006381333931")
    [bc] = [el for el in label.elements if isinstance(el, Barcode)]
    assert (bc.symbology, bc.data) == ("ean13", "4006381333931")
    label = shelf(templates, gtin="00000096385074")
    [bc] = [el for el in label.elements if isinstance(el, Barcode)]
    assert (bc.symbology, bc.data) == ("ean8", "96385074")


def test_the_command_sheet_carries_every_code_the_modes_need() -> None:
    needed = {f"{codes.INTERNAL_PREFIX}{codes.MODE}:{m}" for m in codes.MODES}
    needed |= {f"{codes.INTERNAL_PREFIX}{codes.COND}:{c}" for c in codes.CONDITIONS}
    needed |= {f"{codes.INTERNAL_PREFIX}{codes.DONE}", f"{codes.INTERNAL_PREFIX}{codes.CANCEL}"}
    assert needed <= set(COMMAND_CODES)
    assert all(codes.interpret(c.encode()) for c in COMMAND_CODES)


# --- the font ---------------------------------------------------------------------


@pytest.mark.parametrize("char", list("äöüßéèçñåøŁłŚśŹźŻżĄąĘęČčŘřŠšŽžŮůĚěΑαΩωΛλάδЖжЩщЫыЁё€£¥"))
def test_the_default_font_has_latin_greek_cyrillic_and_the_euro(char: str) -> None:
    assert fonts.has_glyph(char), f"U+{ord(char):04X}"


def test_a_font_file_of_the_hubs_own_is_used(tmp_path: Path, templates) -> None:
    italic = str(Path(fonts.default_font_path()).with_name("NotoSans-Italic[wdth,wght].ttf"))
    plain = templates["shelf"].layout(SAMPLE_FIELDS["shelf"], 203, WIDE)
    slanted = templates["shelf"].with_font(italic).layout(SAMPLE_FIELDS["shelf"], 203, WIDE)
    [t] = [el for el in slanted.elements if isinstance(el, Text) and el.lines[0].startswith("Organic")]
    assert t.font == italic
    from hubagent.printing.render import render

    assert render(plain).tobytes() != render(slanted).tobytes()


HUB = '[hub]\nid = "hub-7"\nstate_dir = "{state}"\n[printers.label]\ndriver = "sim"\n'


@pytest.mark.parametrize(("printing", "key", "words"), [
    ('font = "/nonexistent/label.ttf"', "printing.font", "/nonexistent/label.ttf: no such file"),
    ('font = "fonts"', "printing.font", "is a directory"),
    ('font = "hub.toml"', "printing.font", "not a TrueType or OpenType font file"),
    ('currency = "EURO"', "printing.currency", "matching regex"),
    ('currency = "XXY"', "printing.currency", "not an ISO 4217 currency code"),
])
def test_a_bad_font_or_currency_is_a_config_error(tmp_path: Path, capsys, printing, key, words) -> None:
    state = tmp_path / "state"
    (state / "fonts").mkdir(parents=True)
    path = tmp_path / "hub.toml"
    path.write_text(HUB.format(state=state) + f"[printing]\n{printing}\n")
    (state / "hub.toml").write_text("not a font")
    with pytest.raises(ConfigError) as err:
        config.load(path)
    assert err.value.key == key and words in err.value.reason
    assert cli.main(["check-config", str(path)]) == 2
    assert key in capsys.readouterr().err


def test_a_good_font_path_is_accepted(tmp_path: Path) -> None:
    path = tmp_path / "hub.toml"
    path.write_text(HUB.format(state=tmp_path) + f'[printing]\nfont = "{fonts.default_font_path()}"\n'
                    'currency = "PLN"\n')
    cfg = config.load(path)
    assert PRINTING.of(cfg).currency == "PLN"
