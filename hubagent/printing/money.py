"""Prices on labels: ISO 4217 currencies, their minor units, and unit prices.

A price is never rounded silently: a value with more decimals than its
currency has (``1.299`` for EUR, ``12.5`` for JPY) is refused. Only the
unit price (per kg, per litre, EU Directive 98/6/EC) is computed, and it is
rounded half up to the currency's minor unit, as a shop's till would.
Amounts are :class:`~decimal.Decimal` throughout: no binary floating point.
"""

from __future__ import annotations

import re
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

from hubagent.errors import InputError

# ISO 4217 active codes by minor units (decimals); every code not listed under
# 0, 3 or 4 has 2.
_ZERO = "BIF CLP DJF GNF ISK JPY KMF KRW PYG RWF UGX UYI VND VUV XAF XOF XPF"
_THREE = "BHD IQD JOD KWD LYD OMR TND"
_FOUR = "CLF UYW"
_TWO = (
    "AED AFN ALL AMD ANG AOA ARS AUD AWG AZN BAM BBD BDT BGN BMD BND BOB BOV BRL BSD BTN BWP BYN BZD "
    "CAD CDF CHE CHF CHW CNY COP COU CRC CUP CVE CZK DKK DOP DZD EGP ERN ETB EUR FJD FKP GBP GEL GHS "
    "GIP GMD GTQ GYD HKD HNL HTG HUF IDR ILS INR IRR JMD KES KGS KHR KPW KYD KZT LAK LBP LKR LRD "
    "LSL MAD MDL MGA MKD MMK MNT MOP MRU MUR MVR MWK MXN MXV MYR MZN NAD NGN NIO NOK NPR NZD PAB PEN "
    "PGK PHP PKR PLN QAR RON RSD RUB SAR SBD SCR SDG SEK SGD SHP SLE SOS SRD SSP STN SVC SYP SZL THB "
    "TJS TMT TOP TRY TTD TWD TZS UAH USD USN UYU UZS VED VES WST XCD XCG YER ZAR ZMW ZWG"
)
MINOR_UNITS: dict[str, int] = {
    **{c: 2 for c in _TWO.split()},
    **{c: 0 for c in _ZERO.split()},
    **{c: 3 for c in _THREE.split()},
    **{c: 4 for c in _FOUR.split()},
}
"""Decimals of every ISO 4217 currency code."""

SYMBOLS: dict[str, str] = {
    "EUR": "€", "GBP": "£", "USD": "$", "JPY": "¥", "PLN": "zł", "CZK": "Kč", "HUF": "Ft",
    "SEK": "kr", "DKK": "kr", "NOK": "kr", "ISK": "kr", "RON": "lei", "BGN": "лв", "UAH": "₴",
    "RUB": "₽", "TRY": "₺", "INR": "₹", "KRW": "₩", "ILS": "₪", "CHF": "CHF",
}
"""How a currency is printed; other currencies print their ISO code."""

UNIT_BASES: dict[str, tuple[str, Decimal]] = {
    "g": ("kg", Decimal(1000)), "kg": ("kg", Decimal(1)),
    "ml": ("l", Decimal(1000)), "l": ("l", Decimal(1)),
    "piece": ("piece", Decimal(1)),
}
"""Net content unit -> (unit the unit price is given per, how many of the unit make one)."""

_AMOUNT = re.compile(r"\d{1,12}(\.\d{1,12})?")


def currency_code(field: str, value: str) -> str:
    """``value`` as an ISO 4217 code (upper case); InputError ``unknown_currency`` otherwise."""
    code = value.strip().upper()
    if code not in MINOR_UNITS:
        raise InputError("unknown_currency", f"field {field!r}: {value!r} is not an ISO 4217 currency code "
                                             "(for example EUR, GBP, PLN, JPY)")
    return code


def symbol(code: str) -> str:
    """The printed sign of a currency (its code when it has none listed)."""
    return SYMBOLS.get(code, code)


def typed_text(field: str, value: object) -> str:
    """The amount exactly as the user gave it: a string as typed, a number in its shortest form."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str, Decimal)):
        raise InputError("wrong_type", f"field {field!r} must be a number, not {type(value).__name__}")
    text = value.strip() if isinstance(value, str) else str(value)
    if not _AMOUNT.fullmatch(text):
        raise InputError("wrong_type" if not isinstance(value, str) else "bad_value",
                         f"field {field!r}: {value!r} is not an amount (digits with an optional '.' and decimals)")
    return text


def amount(field: str, value: object, decimals: int) -> Decimal:
    """A price with at most ``decimals`` decimals; InputError ``too_many_decimals`` instead of rounding."""
    text = typed_text(field, value)
    try:
        d = Decimal(text)
    except InvalidOperation:  # pragma: no cover - the pattern above admits only valid decimals
        raise InputError("bad_value", f"field {field!r}: {value!r} is not an amount") from None
    if d != d.quantize(Decimal(1).scaleb(-decimals)):
        raise InputError("too_many_decimals", f"field {field!r}: {text} has more than {decimals} decimal"
                                              f"{'s' if decimals != 1 else ''}; it would have to be rounded")
    return d


def shown(d: Decimal, decimals: int) -> str:
    """``d`` with exactly ``decimals`` decimals (only adds zeros: :func:`amount` refused the rest)."""
    return f"{d.quantize(Decimal(1).scaleb(-decimals)):f}"


def unit_price(price: Decimal, content: Decimal, unit: str, decimals: int) -> tuple[Decimal, str] | None:
    """Price per kg, per litre (or per piece for a pack of several); None when it says nothing new.

    ``content`` is the net content in ``unit`` (g, kg, ml, l, piece).
    Rounded half up to the currency's minor unit.
    """
    base, per = UNIT_BASES[unit]
    if content <= 0:
        raise InputError("bad_value", f"net content must be more than 0, not {content}")
    quantity = content / per
    if base == "piece" and quantity == 1:
        return None  # one piece: the price is the unit price
    value = (price / quantity).quantize(Decimal(1).scaleb(-decimals), rounding=ROUND_HALF_UP)
    return value, base
