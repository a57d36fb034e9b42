"""Encode barcode data into module patterns ("1" = dark module).

Linear codes come from python-barcode's module pattern, QR codes from
segno, DataMatrix from zxing-cpp when it is installed. Drawing the modules
ourselves at whole-dot widths is what makes the codes scan at 203 dpi.
"""

from __future__ import annotations

import functools
import importlib.util
import logging

import msgspec

from hubagent.errors import InputError

log = logging.getLogger(__name__)

QUIET_MODULES = {"code128": 10, "ean13": 11, "ean8": 7, "qr": 4, "datamatrix": 1}
"""Clear modules each symbology needs on each side (EAN: the wider left side)."""


class Symbol(msgspec.Struct, frozen=True):
    """An encoded symbol: module rows and the human-readable text."""

    rows: tuple[str, ...]
    hri: str


def datamatrix_available() -> bool:
    """Whether DataMatrix can be encoded (zxing-cpp is installed)."""
    return importlib.util.find_spec("zxingcpp") is not None


def gtin_check_digit(body: str) -> str:
    """The GS1 mod-10 check digit for ``body`` (all digits)."""
    total = sum(int(d) * (3 if i % 2 == 0 else 1) for i, d in enumerate(reversed(body)))
    return str((10 - total % 10) % 10)


def valid_gtin(data: str) -> bool:
    """Whether ``data`` is all digits with a correct GS1 check digit."""
    return data.isdigit() and len(data) >= 8 and gtin_check_digit(data[:-1]) == data[-1]


@functools.lru_cache(maxsize=256)
def encode(symbology: str, data: str, qr_error: str = "M") -> Symbol:
    """Encode ``data``; InputError("bad_barcode_data") when it cannot be encoded."""
    if not data:
        raise InputError("bad_barcode_data", f"empty {symbology} data")
    if symbology == "code128":
        return _code128(data)
    if symbology in ("ean13", "ean8"):
        return _ean(symbology, data)
    if symbology == "qr":
        return _qr(data, qr_error)
    if symbology == "datamatrix":
        return _datamatrix(data)
    raise InputError("unknown_symbology", f"unknown symbology {symbology!r}")


def _code128(data: str) -> Symbol:
    if not all(32 <= ord(c) < 127 for c in data):
        raise InputError("bad_barcode_data", f"Code 128 takes printable ASCII only: {data!r}")
    import barcode

    return Symbol(rows=(barcode.get("code128", data).build()[0],), hri=data)


def _ean(symbology: str, data: str) -> Symbol:
    length = 13 if symbology == "ean13" else 8
    if not data.isdigit() or len(data) not in (length - 1, length):
        raise InputError("bad_barcode_data", f"{symbology} needs {length - 1} or {length} digits: {data!r}")
    if len(data) == length and not valid_gtin(data):
        raise InputError("bad_barcode_data", f"{symbology} check digit is wrong: {data!r}")
    full = data if len(data) == length else data + gtin_check_digit(data)
    import barcode

    code = barcode.get(symbology, full[:-1])
    if code.get_fullcode() != full:  # never print a code that says something else
        raise InputError("bad_barcode_data", f"{symbology} encoding mismatch for {data!r}")
    return Symbol(rows=(code.build()[0],), hri=full)


def _qr(data: str, error: str) -> Symbol:
    import segno

    try:
        if data.isascii():
            qr = segno.make_qr(data, error=error.lower(), boost_error=False)
        else:
            # UTF-8 with an ECI marker: without it zbar (our camera decoder)
            # guesses Shift-JIS for non-ASCII bytes and misreads the code.
            qr = segno.make_qr(data, error=error.lower(), boost_error=False, encoding="utf-8", eci=True)
    except segno.DataOverflowError as e:
        raise InputError("bad_barcode_data", f"too much data for a QR code ({len(data)} characters)") from e
    rows = tuple("".join("1" if m else "0" for m in row) for row in qr.matrix)
    return Symbol(rows=rows, hri=data)


def _datamatrix(data: str) -> Symbol:
    if not datamatrix_available():
        raise InputError("symbology_unavailable", "DataMatrix needs zxing-cpp (install hubagent[datamatrix])")
    import zxingcpp

    try:
        code = zxingcpp.create_barcode(data, zxingcpp.BarcodeFormat.DataMatrix)
        img = code.to_image(scale=1, add_quiet_zones=False)
    except Exception as e:  # zxing-cpp raises plain exceptions for content it cannot encode
        raise InputError("bad_barcode_data", f"cannot encode DataMatrix: {e}") from e
    width = img.shape[1]
    raw = bytes(memoryview(img).cast("B"))  # type: ignore[arg-type]  # zxingcpp.Image is a buffer
    rows = tuple(
        "".join("1" if raw[r * width + c] < 128 else "0" for c in range(width)) for r in range(img.shape[0])
    )
    return Symbol(rows=rows, hri=data)
