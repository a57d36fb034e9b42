"""Variable-measure EAN-13s: an item reference plus a weight or price.

EAN-13s with prefix ``02`` or ``20``-``29`` are restricted-circulation
numbers: each country (or retailer) decides their layout. A hub lists the
layouts its region uses in ``[[scanning.variable_measure]]``; for example
GS1 Sweden's weight code ``23`` is six item digits and a four-digit weight
in grams (``23 IIIIII VVVV C``), GS1 Germany's ``28`` four item digits, a
price/weight check digit and a five-digit weight (``28 IIII P VVVVV C``).

A scan matching a layout names the catalog item whose GTIN is the same code
with the value digits zeroed (and both check digits recomputed); the value
is recorded on the movement. Pure functions, no I/O.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Iterable


import msgspec

from hubagent.errors import InputError
from hubagent.scanning.settings import VariableMeasureLayout


class Measured(msgspec.Struct, frozen=True):
    """A variable-measure scan: the catalog GTIN-14 it names and its value."""

    gtin: str
    kind: str
    value: Decimal


def read(gtin14: str, layouts: Iterable[VariableMeasureLayout]) -> Measured | None:
    """The measure in ``gtin14`` if a configured layout covers its prefix, else None.

    Raises InputError ``bad_check_digit`` when the layout has a price/weight
    check digit and it does not match the value.
    """
    if len(gtin14) != 14 or gtin14[0] != "0":
        return None
    ean = gtin14[1:]
    layout = next((x for x in layouts if ean.startswith(x.prefix)), None)
    if layout is None:
        return None
    # Imported here: importing any part of biip loads its GS1 prefix table.
    from biip.checksums import gs1_price_weight_check_digit, gs1_standard_check_digit

    item_end = len(layout.prefix) + layout.item_digits
    value_start = item_end + (1 if layout.value_check else 0)
    value = ean[value_start:12]
    base = ean[:item_end]
    if layout.value_check:
        if gs1_price_weight_check_digit(value) != int(ean[item_end]):
            raise InputError("bad_check_digit", f"{ean}: the {layout.kind} check digit {ean[item_end]} "
                                                f"does not match {value}")
        base += str(gs1_price_weight_check_digit("0" * len(value)))
    base += "0" * len(value)
    base += str(gs1_standard_check_digit(base))
    return Measured("0" + base, layout.kind, Decimal(value).scaleb(-layout.decimals))
