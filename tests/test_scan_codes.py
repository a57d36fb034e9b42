"""interpret(): real-world codes to Scan, or a stable InputError code."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hubagent.errors import InputError
from hubagent.scanning.codes import ERROR_CODES, Scan, ScanKind, interpret

GS = b"\x1d"

# (raw bytes, symbology, kind, value)
GOOD = [
    (b"4006381333931", None, ScanKind.GTIN, "04006381333931"),            # EAN-13
    (b"]E04006381333931", None, ScanKind.GTIN, "04006381333931"),         # EAN-13 with AIM id
    (b"]E3977123456789812", None, ScanKind.GTIN, "09771234567898"),       # EAN-13 + 2-digit add-on
    (b"96385074", None, ScanKind.GTIN, "00000096385074"),                 # EAN-8
    (b"036000291452", None, ScanKind.GTIN, "00036000291452"),             # UPC-A
    (b"10012345678902", None, ScanKind.GTIN, "10012345678902"),           # GTIN-14 (ITF-14)
    (b"4006381333931", "EAN13", ScanKind.GTIN, "04006381333931"),         # camera-reported symbology
    (b"376141411234567894", None, ScanKind.SSCC, "376141411234567894"),   # bare SSCC
    (b"]C100376141411234567894", None, ScanKind.SSCC, "376141411234567894"),
    (b"HA:BIN:a-01", None, ScanKind.BIN, "A-01"),
    (b"HA:PCL:P-2026-000123", None, ScanKind.PARCEL, "P-2026-000123"),
    (b"HA:PICKUP:7k3m9q", None, ScanKind.PICKUP, "7K3M9Q"),
    (b"HA:STAFF:jane.doe", None, ScanKind.STAFF, "jane.doe"),
    (b"HA:RET:R12345", None, ScanKind.RETURN, "R12345"),
    (b"HA:MODE:RECEIVE", None, ScanKind.MODE, "RECEIVE"),
    (b"ha:mode:lookup", None, ScanKind.MODE, "LOOKUP"),
    (b"HA:QTY:9999", None, ScanKind.QTY, "9999"),
    (b"HA:DONE", None, ScanKind.DONE, "DONE"),
    (b"HA:CANCEL", None, ScanKind.CANCEL, "CANCEL"),
    (b"HA:COND:damaged", None, ScanKind.CONDITION, "DAMAGED"),
    (b"]Q1HA:BIN:B-07", None, ScanKind.BIN, "B-07"),                      # QR with AIM id
    (b"HA:BIN:C-3", "QRCODE", ScanKind.BIN, "C-3"),
    (b"ABC-123", None, ScanKind.SKU, "ABC-123"),
    (b"tshirt/blue.XL", None, ScanKind.SKU, "tshirt/blue.XL"),
    (b"  SKU-9 \r\n", None, ScanKind.SKU, "SKU-9"),
    (b"]C110ABC" + GS + b"3712", None, ScanKind.GS1, "(10)ABC(37)12"),   # no GTIN/SSCC
]


@pytest.mark.parametrize("raw,symbology,kind,value", GOOD)
def test_good_codes(raw: bytes, symbology: str | None, kind: ScanKind, value: str) -> None:
    scan = interpret(raw, symbology)
    assert (scan.kind, scan.value) == (kind, value)
    assert scan.raw == raw


BAD = [
    (b"4006381333932", None, "bad_check_digit"),       # EAN-13, wrong check digit
    (b"]E04006381333932", None, "bad_check_digit"),
    (b"036000291453", None, "bad_check_digit"),        # UPC-A
    (b"376141411234567890", None, "bad_check_digit"),  # SSCC
    (b"]C10109506000134353" + GS + b"10AB", None, "bad_check_digit"),  # GTIN inside GS1-128
    (b"https://id.gs1.org/01/09506000134353", None, "bad_check_digit"),
    (b"]C101095060001343521725023110AB", None, "gs1_parse_error"),     # 31 Feb
    (b"]C1abc", None, "gs1_parse_error"),
    (b"]d2hello", None, "gs1_parse_error"),
    (b"0109506000134352" + GS + b"99", None, "gs1_parse_error"),
    (b"(01)0950600013435", None, "gs1_parse_error"),
    (b"https://id.gs1.org/01/abc", None, "gs1_parse_error"),
    (b"https://id.gs1.org/01/", None, "bad_gtin"),
    (b"00000000", None, "bad_gtin"),
    (b"https://example.com/some/page", None, "unknown_code"),
    (b"", None, "empty"),
    (GS, None, "empty"),
    (b" \r\n\t", None, "empty"),
    (b"\xff\xfeAB", None, "not_utf8"),
    (b"ABC\x07DEF", None, "bad_characters"),
    (b"!!", None, "unknown_code"),
    (b"a b c", None, "unknown_code"),
    (b"X" * 41, None, "unknown_code"),
    (b"HA:FOO:1", None, "bad_internal_code"),
    (b"HA:", None, "bad_internal_code"),
    (b"HA:BIN:", None, "bad_internal_code"),
    (b"HA:BIN:has space", None, "bad_internal_code"),
    (b"HA:MODE:DANCE", None, "bad_internal_code"),
    (b"HA:QTY:0", None, "bad_internal_code"),
    (b"HA:QTY:10000", None, "bad_internal_code"),
    (b"HA:QTY:-1", None, "bad_internal_code"),
    (b"HA:QTY:\xd9\xa3".decode("utf-8").encode(), None, "bad_internal_code"),  # Arabic-Indic 3
    (b"HA:DONE:now", None, "bad_internal_code"),
    (b"HA:PICKUP:12", None, "bad_internal_code"),
    (b"]E1", None, "unknown_code"),
]


@pytest.mark.parametrize("raw,symbology,code", BAD)
def test_bad_codes_give_stable_error_codes(raw: bytes, symbology: str | None, code: str) -> None:
    with pytest.raises(InputError) as info:
        interpret(raw, symbology)
    assert info.value.code == code
    assert info.value.message


def test_gs1_128_with_fnc1_separators_and_aim_prefix() -> None:
    scan = interpret(b"]C10109506000134352" + GS + b"10LOT-7" + GS + b"17261231" + b"3012")
    assert scan.kind is ScanKind.GTIN
    assert (scan.gtin, scan.lot, scan.expiry, scan.count) == ("09506000134352", "LOT-7", dt.date(2026, 12, 31), 12)
    assert scan.symbology == "]C1"


def test_gs1_datamatrix_with_lot_expiry_serial() -> None:
    scan = interpret(b"]d2010950600013435217270630" + b"10B42" + GS + b"21SN0001")
    assert (scan.kind, scan.gtin, scan.lot, scan.serial) == (ScanKind.GTIN, "09506000134352", "B42", "SN0001")
    assert scan.expiry == dt.date(2027, 6, 30)
    assert [ai for ai, _ in scan.elements] == ["01", "17", "10", "21"]


def test_gs1_datamatrix_symbology_from_decoder() -> None:
    scan = interpret(b"0109506000134352" + b"10L1", "]d2")
    assert (scan.gtin, scan.lot, scan.symbology) == ("09506000134352", "L1", "]d2")


def test_gs1_qr_and_sscc_with_count() -> None:
    scan = interpret(b"]Q300376141411234567894" + b"3724")
    assert (scan.kind, scan.sscc, scan.count) == (ScanKind.SSCC, "376141411234567894", 24)


def test_leading_fnc1_as_gs_is_ignored() -> None:
    assert interpret(GS + b"0109506000134352" + b"10X" + GS).lot == "X"


def test_gs1_string_without_aim_prefix() -> None:
    scan = interpret(b"010950600013435210ABC")
    assert (scan.kind, scan.gtin, scan.lot) == (ScanKind.GTIN, "09506000134352", "ABC")


def test_printed_human_readable_form_typed_in() -> None:
    scan = interpret(b"(01)09506000134352(17)250131(10)ABC")
    assert (scan.gtin, scan.lot, scan.expiry) == ("09506000134352", "ABC", dt.date(2025, 1, 31))


def test_digital_link_url() -> None:
    scan = interpret(b"https://id.gs1.org/01/09506000134352/10/ABC/21/S1?17=280101")
    assert (scan.kind, scan.gtin, scan.lot, scan.serial) == (ScanKind.GTIN, "09506000134352", "ABC", "S1")
    assert scan.expiry == dt.date(2028, 1, 1)


def test_digital_link_in_gs1_qr() -> None:
    scan = interpret(b"]Q3https://example.com/01/09506000134352")
    assert scan.gtin == "09506000134352"


def test_qty_carries_the_number() -> None:
    assert interpret(b"HA:QTY:12").quantity == 12


def test_scans_are_immutable_and_hashable() -> None:
    scan = interpret(b"4006381333931")
    with pytest.raises(AttributeError):
        scan.value = "x"  # type: ignore[misc]
    assert hash(scan) == hash(interpret(b"4006381333931"))
    assert isinstance(scan, Scan)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=80) | st.text(max_size=60).map(lambda t: t.encode("utf-8")))
def test_arbitrary_bytes_never_crash(raw: bytes) -> None:
    try:
        scan = interpret(raw)
    except InputError as e:
        assert e.code in ERROR_CODES
    else:
        assert scan.value


@settings(max_examples=100, deadline=None)
@given(st.text(alphabet="0123456789()]CdQE\x1dHA:BINQTY-", max_size=40))
def test_code_like_text_never_crashes(text: str) -> None:
    try:
        interpret(text.encode())
    except InputError as e:
        assert e.code in ERROR_CODES


def test_upc_e_is_expanded_to_upc_a() -> None:
    assert interpret(b"04252614").gtin == "00042100005264"          # not a valid EAN-8
    assert interpret(b"]E004252614").gtin == "00042100005264"       # ]E0 + 8 digits: UPC-E
    assert interpret(b"]E496385074").gtin == "00000096385074"       # ]E4: EAN-8


def test_eight_digits_valid_as_ean_8_and_upc_e_carry_both_readings() -> None:
    scan = interpret(b"12345601")
    assert scan.gtins == ("00000012345601", "00123000004561")     # EAN-8 first, UPC-E expansion next
    assert interpret(b"]E412345601").gtins == ("00000012345601",)
    assert interpret(b"]E012345601").gtins == ("00123000004561",)


def test_best_before_and_zero_code() -> None:
    scan = interpret(b"]C10109506000134352" + b"15261130" + b"10B1")
    assert (scan.best_before, scan.expiry, scan.lot) == (dt.date(2026, 11, 30), None, "B1")
    assert interpret(b"ha:zero").kind is ScanKind.ZERO
    with pytest.raises(InputError):
        interpret(b"HA:ZERO:1")
