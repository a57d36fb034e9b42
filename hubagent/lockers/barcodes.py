"""The barcodes already on a parcel: carrier tracking numbers and SSCCs.

Pure functions, no I/O. :func:`parse_barcode` checks what central sends in
``parcel.assign`` ``"barcodes"``; :func:`scan_key` turns one scanner read
into the same normal form, so a courier's scan finds the parcel.

* An **SSCC** (GS1 AI 00) is 18 digits with a GS1 check digit. Central may
  send it bare (``"376123450000012345"``), with its AI (``"00376..."``) or in
  the printed form (``"(00)376..."``); a GS1-128 scan of ``(00)...`` gives the
  same 18 digits. Exactly 18 bare digits are always read as an SSCC (as the
  scanner does), so the check digit must hold.
* A **carrier tracking number** is 6-40 letters and digits, compared
  upper-case (``1Z999AA10123456784``, ``JD014600006281230385``,
  ``RR123456785GB``); spaces and dashes, which scanners never send, are
  refused at the boundary rather than guessed away.
"""

from __future__ import annotations

import enum
import re


import msgspec

from hubagent.errors import CommandError, InputError

MAX_BARCODES = 4
"""Barcodes per parcel: a tracking number, an SSCC, and room for a second carrier's."""

_TRACKING = re.compile(r"[A-Za-z0-9]{6,40}")
_SSCC_FORMS = (re.compile(r"\(00\)(\d{18})"), re.compile(r"00(\d{18})"), re.compile(r"(\d{18})"))
_AIM = re.compile(r"\][A-Za-z][0-9A-Za-z]")


class BarcodeKind(str, enum.Enum):
    """What a parcel barcode is."""

    TRACKING = "tracking"
    SSCC = "sscc"


class ParcelBarcode(msgspec.Struct, frozen=True):
    """One normalised parcel barcode: ``code`` is what scans are matched against."""

    kind: BarcodeKind
    code: str


def parse_barcode(raw: object, field: str = "barcodes") -> ParcelBarcode:
    """``raw`` as a parcel barcode; CommandError("bad_args") naming ``field`` otherwise."""
    if not isinstance(raw, str):
        raise CommandError("bad_args", f"{field} must be text, not {type(raw).__name__}")
    for form in _SSCC_FORMS:
        match = form.fullmatch(raw)
        if match:
            return ParcelBarcode(BarcodeKind.SSCC, _sscc(match.group(1), field))
    if raw.startswith("("):
        raise CommandError("bad_args", f"{field}: {raw[:40]!r} is not an SSCC ((00) and 18 digits)")
    if not _TRACKING.fullmatch(raw):
        raise CommandError("bad_args", f"{field}: a tracking number is 6-40 letters and digits, "
                                       f"not {raw[:40]!r}")
    return ParcelBarcode(BarcodeKind.TRACKING, raw.upper())


def parse_barcodes(raw: list[str]) -> list[ParcelBarcode]:
    """Every barcode of one ``parcel.assign``, each checked, none twice."""
    if len(raw) > MAX_BARCODES:
        raise CommandError("bad_args", f"barcodes: at most {MAX_BARCODES}, not {len(raw)}")
    out: list[ParcelBarcode] = []
    for index, value in enumerate(raw):
        barcode = parse_barcode(value, f"barcodes[{index}]")
        if any(b.code == barcode.code for b in out):
            raise CommandError("bad_args", f"barcodes[{index}]: {value!r} is given twice")
        out.append(barcode)
    return out


def _sscc(digits: str, field: str) -> str:
    # Imported here: any part of biip loads its GS1 prefix table (about 20 MB).
    from biip import ParseError
    from biip.sscc import Sscc

    try:
        return Sscc.parse(digits).value
    except ParseError as e:
        raise CommandError("bad_args", f"{field}: SSCC {digits}: {e}") from None


def scan_key(data: bytes, symbology: str | None = None) -> str | None:
    """The normalised parcel barcode a scanner read could be, or None.

    A GS1 read carrying AI 00 gives its SSCC; any other read that is 6-40
    letters and digits (after an AIM prefix such as ``]C0``) gives itself
    upper-cased, so a tracking number matches whether or not the scanner
    thought it looked like a GTIN. Internal ``HA:`` codes give None.
    """
    from hubagent.scanning.codes import interpret  # the scanner's own reading of GS1

    try:
        scan = interpret(data, symbology)
    except InputError:
        scan = None
    if scan is not None and scan.sscc:
        return scan.sscc
    try:
        text = data.decode("utf-8").strip(" \r\n\t\x1d")
    except UnicodeDecodeError:
        return None
    if _AIM.match(text):
        text = text[3:]
    try:
        return parse_barcode(text).code
    except CommandError:
        return None
