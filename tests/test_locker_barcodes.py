"""Parcel barcodes and courier sign-in sessions: pure logic, no fakes."""

from __future__ import annotations

import pytest

from hubagent.clock import ManualClock
from hubagent.errors import CommandError
from hubagent.lockers.barcodes import BarcodeKind, parse_barcode, parse_barcodes, scan_key
from hubagent.lockers.signins import CourierSessions, Role, SignedIn, WhoIsSignedIn

SSCC = "106141411234567897"  # GS1 US example SSCC, valid check digit


@pytest.mark.parametrize("raw", [SSCC, f"00{SSCC}", f"(00){SSCC}"])
def test_an_sscc_in_every_form_is_its_18_digits(raw: str) -> None:
    assert parse_barcode(raw) == parse_barcode(SSCC)
    assert parse_barcode(raw).kind is BarcodeKind.SSCC and parse_barcode(raw).code == SSCC


@pytest.mark.parametrize("raw", ["1Z999AA10123456784", "1z999aa10123456784", "JJD014600006281230385",
                                 "RR123456785GB", "123456789012"])
def test_tracking_numbers_are_upper_cased_letters_and_digits(raw: str) -> None:
    assert parse_barcode(raw).kind is BarcodeKind.TRACKING
    assert parse_barcode(raw).code == raw.upper()


@pytest.mark.parametrize("raw, words", [
    ("106141411234567890", "check digit"),          # an SSCC with a wrong check digit
    ("(00)10614141123456789", "not an SSCC"),        # 17 digits after (00)
    ("1Z 999 AA1", "6-40 letters and digits"),       # spaces are not guessed away
    ("ABC12", "6-40 letters and digits"),            # too short
    ("A" * 41, "6-40 letters and digits"),
    ("1Z999\u202eAA1012", "6-40 letters and digits"),  # a bidi override
])
def test_bad_barcodes_are_refused_naming_the_field(raw: str, words: str) -> None:
    with pytest.raises(CommandError) as e:
        parse_barcodes(["1Z999AA10123456784", raw])
    assert e.value.code == "bad_args"
    assert e.value.message.startswith("barcodes[1]") and words in e.value.message


def test_a_barcode_given_twice_or_too_many_is_refused() -> None:
    with pytest.raises(CommandError, match="given twice"):
        parse_barcodes([SSCC, f"(00){SSCC}"])
    with pytest.raises(CommandError, match="at most 4"):
        parse_barcodes([f"TRACK{n:04d}" for n in range(5)])


@pytest.mark.parametrize("read, symbology, key", [
    (f"]C100{SSCC}".encode(), None, SSCC),           # GS1-128 with its AIM identifier
    (f"00{SSCC}".encode(), None, SSCC),              # GS1-128 without it
    (f"\x1d00{SSCC}".encode(), None, SSCC),          # leading FNC1 as GS
    (SSCC.encode(), "]C0", SSCC),
    (b"1z999aa10123456784\r\n", None, "1Z999AA10123456784"),
    (b"123456789012", None, "123456789012"),         # a FedEx number the scanner takes for a bad GTIN
    (b"]C0JJD014600006281230385", None, "JJD014600006281230385"),
    (b"HA:PCL:P-1", None, None),
    (b"106141411234567890", None, None),             # an SSCC-shaped read with a bad check digit
    (b"\xff\xfe", None, None),
])
def test_scan_key_reads_like_the_scanner(read: bytes, symbology: str | None, key: str | None) -> None:
    assert scan_key(read, symbology) == key


def test_courier_sessions_end_when_idle_revoked_or_replaced() -> None:
    clock = ManualClock()
    valid = {"C-1": True, "C-2": True}
    sessions = CourierSessions(60.0, clock.monotonic, lambda c: valid.get(c, False))
    who = WhoIsSignedIn(sessions, lambda station: "S-7" if station == "desk" else None)
    sessions.sign_in("front", "C-1", "ups")
    assert who.signed_in("front") == SignedIn(Role.COURIER, "C-1", "ups")
    assert who.signed_in("desk") == SignedIn(Role.STAFF, "S-7")
    assert who.signed_in("side") is None
    clock.advance(59.0)
    sessions.touch("front")  # a load restarts the idle window
    clock.advance(59.0)
    assert who.signed_in("front") is not None
    clock.advance(1.0)
    assert who.signed_in("front") is None
    sessions.sign_in("front", "C-2", "dhl")
    assert sessions.stations() == {"front": "C-2"}
    valid["C-2"] = False  # revoked or expired in the registry: signed out at the next lookup
    assert who.signed_in("front") is None
    sessions.sign_in("front", "C-1", "ups")
    assert sessions.sign_out("C-1") == ["front"] and sessions.stations() == {}
