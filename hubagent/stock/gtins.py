"""GTINs in the catalog: one canonical form, whatever form central holds.

Central may keep a product's GTIN as printed on the pack (EAN-13
``5901234123457``), as a GTIN-8 (``96385074``), a UPC-A (``036000291452``),
a GTIN-14 (``15901234123454`` on an outer case), with the leading zeros a
database column kept or dropped (``36000291452``). They all name the same
number once left-padded to 14 digits, so the catalog stores **GTIN-14**, the
form :func:`hubagent.scanning.codes.interpret` gives every scanned GTIN.
The check digit is verified with biip; a wrong one is refused, never stored.
"""

from __future__ import annotations

from biip import ParseError
from biip.gtin import Gtin

GTIN_MAX_DIGITS = 14


def canonical_gtin(value: str | int) -> str:
    """The GTIN-14 of ``value``; ValueError naming the problem otherwise.

    Accepts 1-14 ASCII digits (or a non-negative integer, as a JSON number
    from a system that lost the leading zeros).
    """
    text = str(value) if isinstance(value, int) and not isinstance(value, bool) else value
    if not isinstance(text, str) or not text.isascii() or not text.isdigit():
        raise ValueError(f"GTIN {value!r} must be digits only")
    if len(text) > GTIN_MAX_DIGITS:
        raise ValueError(f"GTIN {value!r} has more than {GTIN_MAX_DIGITS} digits")
    padded = text.zfill(GTIN_MAX_DIGITS)
    if not padded.strip("0"):
        raise ValueError(f"GTIN {value!r} is all zeros")
    try:
        gtin = Gtin.parse(padded)
    except ParseError as e:
        raise ValueError(f"GTIN {value!r}: {e}") from None
    return gtin.as_gtin_14()
