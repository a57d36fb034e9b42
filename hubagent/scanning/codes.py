"""What a scanned code means: pure interpretation of scanner bytes.

:func:`interpret` turns the bytes of one read (plus the symbology, when the
decoder knows it) into a :class:`Scan`, or raises
:class:`~hubagent.errors.InputError` with a stable ``code`` (see
:data:`ERROR_CODES`). It never does I/O and never looks anything up: whether
a GTIN or SKU exists is the catalog's business.

GS1 parsing (GTIN check digits, element strings, Digital Link URIs, AIM
symbology identifiers) is delegated to ``biip``. The hub's own codes
(``HA:...``) are defined here and documented in ``docs/scan-codes.md``.
"""

from __future__ import annotations

import datetime as dt
import enum
import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from biip import ParseError
    from biip.gs1_digital_link_uris import GS1DigitalLinkURI
    from biip.gs1_element_strings import GS1ElementStrings
    from biip.gs1_messages import GS1Message
    from biip.gtin import Gtin
    from biip.sscc import Sscc
    from biip.symbology import GS1Symbology, SymbologyIdentifier
    from biip.upc import Upc

import msgspec

from hubagent.errors import InputError

# --- the hub's own codes ---------------------------------------------------

INTERNAL_PREFIX = "HA:"
"""Every code the hub prints for itself starts with this."""

BIN = "BIN"
PARCEL = "PCL"
PICKUP = "PICKUP"
STAFF = "STAFF"
RETURN = "RET"
COURIER = "COURIER"
MODE = "MODE"
QTY = "QTY"
DONE = "DONE"
CANCEL = "CANCEL"
COND = "COND"
TOKEN = "TOK"
ZERO = "ZERO"

MODES = ("RECEIVE", "PICK", "COUNT", "MOVE", "RETURN", "LOOKUP")
"""Values of ``HA:MODE:<mode>`` command barcodes."""

CONDITIONS = ("RESELLABLE", "DAMAGED")
"""Values of ``HA:COND:<condition>`` barcodes (returns grading)."""

QTY_MIN, QTY_MAX = 1, 9999
"""Range of ``HA:QTY:<n>``."""

_ID = r"[A-Za-z0-9][A-Za-z0-9._-]{0,39}"
"""An identifier inside an internal code: 1-40 letters, digits, ``. _ -``."""

_ID_PATTERNS: dict[str, re.Pattern[str]] = {
    BIN: re.compile(r"[A-Za-z0-9][A-Za-z0-9-]{0,23}"),
    PARCEL: re.compile(_ID),
    PICKUP: re.compile(r"[A-Za-z0-9]{4,16}"),
    STAFF: re.compile(_ID),
    RETURN: re.compile(_ID),
    COURIER: re.compile(r"[A-Za-z0-9._-]{8,40}"),
    # base64url(payload) "." base64url(Ed25519 signature): see docs/scan-codes.md
    TOKEN: re.compile(r"[A-Za-z0-9_-]{8,600}\.[A-Za-z0-9_-]{86}"),
}
"""Internal codes that carry an identifier, and what that identifier may look like."""

SKU_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/-]{2,39}")
"""Conservative plain SKU: 3-40 characters, letters/digits first, then ``. _ / -``."""

GS1_SEPARATOR = "\x1d"
_GS1_START = re.compile(r"(?:0[12]\d{14}|00\d{18}).")
"""A GTIN (01/02) or SSCC (00) element followed by more data: a GS1 string without AIM id."""
"""ASCII GS: what scanners send for FNC1 between variable-length GS1 fields."""

ERROR_CODES = (
    "empty", "not_utf8", "bad_characters", "bad_check_digit", "bad_gtin",
    "gs1_parse_error", "bad_internal_code", "unknown_code",
)
"""Every ``InputError.code`` that :func:`interpret` raises."""


class ScanKind(enum.Enum):
    """What a scan identifies."""

    GTIN = "gtin"          # a trade item (EAN/UPC/GTIN, or a GS1 string/URL with AI 01)
    SSCC = "sscc"          # a logistic unit (pallet, parcel) by GS1 SSCC (AI 00)
    GS1 = "gs1"            # a GS1 element string with neither GTIN nor SSCC
    SKU = "sku"            # a plain product code; the catalog decides if it exists
    BIN = "bin"            # HA:BIN:<code>
    PARCEL = "parcel"      # HA:PCL:<id>
    PICKUP = "pickup"      # HA:PICKUP:<code>
    STAFF = "staff"        # HA:STAFF:<id>
    RETURN = "return"      # HA:RET:<code>
    COURIER = "courier"    # HA:COURIER:<badge>
    MODE = "mode"          # HA:MODE:<mode>
    QTY = "qty"            # HA:QTY:<n>
    DONE = "done"          # HA:DONE
    CANCEL = "cancel"      # HA:CANCEL
    CONDITION = "condition"  # HA:COND:<condition>
    TOKEN = "token"        # HA:TOK:<payload>.<signature>, a signed pickup token
    ZERO = "zero"          # HA:ZERO: the counted bin is empty


_KIND_BY_TAG = {
    BIN: ScanKind.BIN, PARCEL: ScanKind.PARCEL, PICKUP: ScanKind.PICKUP, STAFF: ScanKind.STAFF,
    RETURN: ScanKind.RETURN, COURIER: ScanKind.COURIER, MODE: ScanKind.MODE, QTY: ScanKind.QTY,
    DONE: ScanKind.DONE, CANCEL: ScanKind.CANCEL, COND: ScanKind.CONDITION, ZERO: ScanKind.ZERO,
    TOKEN: ScanKind.TOKEN,
}


class Scan(msgspec.Struct, frozen=True):
    """One understood scan.

    ``value`` is normalised per kind: GTIN-14 for GTIN, 18 digits for SSCC,
    the GS1 human-readable form for GS1, the identifier for internal codes
    with one (``HA:BIN:A-01`` gives ``A-01``), the upper-case keyword for
    MODE/CONDITION, the decimal number for QTY and the keyword for
    DONE/CANCEL/ZERO. The GS1 fields are filled from AI 01/00/10/15/17/21/30/37
    wherever they appear (``elements`` keeps every AI in order).
    ``alternatives`` are other GTIN-14s the same symbol may stand for: an
    8-digit read without AIM identifier that is both a valid EAN-8 and a
    valid UPC-E (the catalog decides which one exists).
    """

    kind: ScanKind
    value: str
    raw: bytes
    symbology: str | None = None
    gtin: str | None = None
    sscc: str | None = None
    lot: str | None = None
    expiry: dt.date | None = None
    serial: str | None = None
    count: int | None = None
    quantity: int | None = None
    elements: tuple[tuple[str, str], ...] = ()
    best_before: dt.date | None = None
    alternatives: tuple[str, ...] = ()

    @property
    def gtins(self) -> tuple[str, ...]:
        """Every GTIN-14 this scan may name, the most likely first."""
        return ((self.gtin,) if self.gtin else ()) + self.alternatives


def _load_biip() -> None:
    """Import biip on the first read, not at start-up.

    Importing biip parses its GS1 prefix table: about 20 MB and 0.1 s that a
    hub pays only once something is scanned. The names become this module's
    globals, where the functions below look them up at call time.
    """
    global ParseError, GS1DigitalLinkURI, GS1ElementStrings, GS1Message, Gtin, Sscc
    global GS1Symbology, SymbologyIdentifier, Upc
    if "Gtin" in globals():
        return
    from biip import ParseError
    from biip.gs1_digital_link_uris import GS1DigitalLinkURI
    from biip.gs1_element_strings import GS1ElementStrings
    from biip.gs1_messages import GS1Message
    from biip.gtin import Gtin
    from biip.sscc import Sscc
    from biip.symbology import GS1Symbology, SymbologyIdentifier
    from biip.upc import Upc


def interpret(data: bytes, symbology: str | None = None) -> Scan:
    """Understand one read; raise InputError(code, message) if it means nothing.

    ``symbology`` is what the decoder reported: an AIM identifier such as
    ``"]E0"`` (used like one at the start of ``data``) or a decoder's name
    such as ``"QRCODE"`` (kept for information only).
    """
    _load_biip()
    text = _decode(data)
    aim, body = _split_aim(text, symbology)
    shown = aim.value if aim is not None else symbology
    if body.upper().startswith(INTERNAL_PREFIX):
        return _internal(body, data, shown)
    gs1 = aim.gs1_symbology if aim is not None else None
    if gs1 is not None:
        return _gs1_by_symbology(gs1, body, data, shown)
    return _guess(body, data, shown)


def _decode(data: bytes) -> str:
    """Bytes to stripped text; refuse empty, non-UTF-8 and control characters."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise InputError("not_utf8", f"byte 0x{data[e.start]:02x} at {e.start} is not UTF-8") from e
    # A GS at either end is a leading FNC1 or a trailing separator: no data.
    text = text.strip(" \r\n\t" + GS1_SEPARATOR)
    if not text:
        raise InputError("empty", "the scan contained no characters")
    bad = [ch for ch in text if (ord(ch) < 32 and ch != GS1_SEPARATOR) or ord(ch) == 127]
    if bad:
        raise InputError("bad_characters", f"control character 0x{ord(bad[0]):02x} in scan")
    return text


def _split_aim(text: str, symbology: str | None) -> tuple[SymbologyIdentifier | None, str]:
    """Remove a leading AIM identifier (``]C1``) from ``text`` or take it from ``symbology``."""
    if text.startswith("]") and len(text) >= 3:
        try:
            aim = SymbologyIdentifier.extract(text)
        except (ParseError, ValueError, IndexError):
            return None, text
        return aim, text[len(aim.value):]
    if symbology and symbology.startswith("]"):
        try:
            return SymbologyIdentifier.extract(symbology), text
        except (ParseError, ValueError, IndexError):
            return None, text
    return None, text


# --- internal codes --------------------------------------------------------


def _internal(body: str, raw: bytes, symbology: str | None) -> Scan:
    """Parse ``HA:<TAG>[:<arg>]``; tag and keywords are case-insensitive."""
    parts = body.split(":", 2)
    tag = parts[1].upper() if len(parts) > 1 else ""
    arg = parts[2] if len(parts) > 2 else None
    kind = _KIND_BY_TAG.get(tag)
    if kind is None:
        raise InputError("bad_internal_code", f"unknown hub code type {tag!r}")
    if tag in (DONE, CANCEL, ZERO):
        if arg is not None:
            raise InputError("bad_internal_code", f"HA:{tag} takes no argument")
        return Scan(kind, tag, raw, symbology)
    if arg is None or not arg:
        raise InputError("bad_internal_code", f"HA:{tag} needs a value after ':'")
    if tag == MODE:
        return Scan(kind, _keyword(tag, arg, MODES), raw, symbology)
    if tag == COND:
        return Scan(kind, _keyword(tag, arg, CONDITIONS), raw, symbology)
    if tag == QTY:
        qty = _quantity(arg)
        return Scan(kind, str(qty), raw, symbology, quantity=qty)
    if not _ID_PATTERNS[tag].fullmatch(arg):
        raise InputError("bad_internal_code", f"{arg!r} is not a valid HA:{tag} value")
    value = arg.upper() if tag in (BIN, PICKUP) else arg
    return Scan(kind, value, raw, symbology)


def _keyword(tag: str, arg: str, allowed: tuple[str, ...]) -> str:
    """One of ``allowed``, case-insensitively."""
    word = arg.upper()
    if word not in allowed:
        raise InputError("bad_internal_code", f"HA:{tag} must be one of {', '.join(allowed)}, not {arg!r}")
    return word


def _quantity(arg: str) -> int:
    """The number of ``HA:QTY:<n>``."""
    if not arg.isascii() or not arg.isdigit() or not QTY_MIN <= int(arg) <= QTY_MAX:
        raise InputError("bad_internal_code", f"HA:QTY must be a whole number {QTY_MIN}..{QTY_MAX}, not {arg!r}")
    return int(arg)


# --- GS1 -------------------------------------------------------------------


def _gs1_by_symbology(gs1: GS1Symbology, body: str, raw: bytes, symbology: str | None) -> Scan:
    """The AIM identifier says what the data is; hold it to that."""
    if gs1 is GS1Symbology.EAN_13_WITH_ADD_ON and len(body) in (15, 18):
        body = body[:13]  # the 2- or 5-digit add-on (issue number, price) is not part of the GTIN
    if gs1 is GS1Symbology.EAN_13 and len(body) == 8:
        return _upc_e(body, raw, symbology)  # ]E0 + 8 digits: UPC-E (EAN-8 is ]E4)
    if gs1 in GS1Symbology.with_gtin():
        return _gtin(body, raw, symbology)
    if gs1 in GS1Symbology.with_gs1_digital_link_uri() and body.lower().startswith("http"):
        return _digital_link(body, raw, symbology, strict=True)
    if gs1 in GS1Symbology.with_gs1_messages():
        return _gs1_message(body, raw, symbology)
    # EAN add-on symbols alone, composite components...: nothing we act on.
    raise InputError("unknown_code", f"symbology {symbology} is not used by the hub")


def _guess(body: str, raw: bytes, symbology: str | None) -> Scan:
    """No GS1 symbology identifier: decide from the shape of the data."""
    if body.isascii() and body.isdigit():
        if len(body) in (8, 12, 13, 14):
            return _gtin(body, raw, symbology, guess=True)
        if len(body) == 18:
            return _sscc(body, raw, symbology)
    if GS1_SEPARATOR in body or _GS1_START.match(body):
        # A GS1 element string from a scanner that sends no AIM prefix.
        return _gs1_message(body, raw, symbology)
    if body.startswith("(") and re.match(r"\(\d{2,4}\)", body):
        return _gs1_message(body, raw, symbology, hri=True)
    if body.lower().startswith(("http://", "https://")):
        return _digital_link(body, raw, symbology, strict=False)
    if SKU_PATTERN.fullmatch(body):
        return Scan(ScanKind.SKU, body, raw, symbology)
    raise InputError("unknown_code", f"not a code the hub knows: {body[:40]!r}")


def _gtin(digits: str, raw: bytes, symbology: str | None, *, guess: bool = False) -> Scan:
    """EAN-8/EAN-13/UPC-A/GTIN-14 to a GTIN-14 scan, check digit verified.

    Eight digits without an AIM identifier (``guess``) are an EAN-8, or a
    UPC-E when they are not a valid EAN-8; a code valid as both carries the
    UPC-E reading as an alternative.
    """
    try:
        gtin = Gtin.parse(digits)
    except ParseError as e:
        if guess and len(digits) == 8 and digits[0] in "01":
            try:
                return _upc_e(digits, raw, symbology)
            except InputError:
                pass
        code = "bad_check_digit" if "check digit" in str(e) else "bad_gtin"
        raise InputError(code, str(e)) from e
    value = _nonzero_gtin(gtin.as_gtin_14())
    alternatives: tuple[str, ...] = ()
    if guess and len(digits) == 8 and digits[0] in "01":
        try:
            alternatives = (Upc.parse(digits).as_gtin_14(),)
        except ParseError:
            pass
    return Scan(ScanKind.GTIN, value, raw, symbology, gtin=value, elements=(("01", value),),
                alternatives=alternatives)


def _upc_e(digits: str, raw: bytes, symbology: str | None) -> Scan:
    """A zero-suppressed UPC-E, expanded to its UPC-A (as GTIN-14)."""
    try:
        upc = Upc.parse(digits)
    except ParseError as e:
        code = "bad_check_digit" if "check digit" in str(e) else "bad_gtin"
        raise InputError(code, f"UPC-E {digits}: {e}") from e
    value = _nonzero_gtin(upc.as_gtin_14())
    return Scan(ScanKind.GTIN, value, raw, symbology, gtin=value, elements=(("01", value),))


def _nonzero_gtin(gtin14: str) -> str:
    """Refuse the all-zero GTIN (its check digit is valid; biip pads empty paths to it)."""
    if not gtin14.strip("0"):
        raise InputError("bad_gtin", "the all-zero GTIN identifies nothing")
    return gtin14


def _sscc(digits: str, raw: bytes, symbology: str | None) -> Scan:
    """A bare 18-digit SSCC."""
    try:
        sscc = Sscc.parse(digits)
    except ParseError as e:
        code = "bad_check_digit" if "check digit" in str(e) else "gs1_parse_error"
        raise InputError(code, str(e)) from e
    return Scan(ScanKind.SSCC, sscc.value, raw, symbology, sscc=sscc.value, elements=(("00", sscc.value),))


def _gs1_message(body: str, raw: bytes, symbology: str | None, *, hri: bool = False) -> Scan:
    """A GS1 element string (FNC1/GS separated) or its ``(01)...`` printed form."""
    try:
        message = GS1Message.parse_hri(body) if hri else GS1Message.parse(body)
    except ParseError as e:
        raise InputError("gs1_parse_error", str(e)) from e
    return _from_elements(message.element_strings, message.as_hri(), raw, symbology)


def _digital_link(url: str, raw: bytes, symbology: str | None, *, strict: bool) -> Scan:
    """A GS1 Digital Link URL (``https://id.gs1.org/01/<gtin>/10/<lot>``)."""
    try:
        link = GS1DigitalLinkURI.parse(url)
    except ParseError as e:
        if strict or re.search(r"/(01|00|gtin|sscc)/", url):
            raise InputError("gs1_parse_error", str(e)) from e
        raise InputError("unknown_code", f"a URL that is not a GS1 Digital Link: {url[:60]!r}") from e
    return _from_elements(link.element_strings, link.as_gs1_message().as_hri(), raw, symbology)


def _from_elements(elements: GS1ElementStrings, hri: str, raw: bytes, symbology: str | None) -> Scan:
    """Build a scan from parsed GS1 element strings; verify embedded check digits."""
    if not elements:
        raise InputError("gs1_parse_error", "no GS1 element strings in the data")
    for element in elements:
        error = element.gtin_error or element.sscc_error
        if error:
            raise InputError("bad_check_digit", f"AI ({element.ai.ai}): {error}")
    fields = {e.ai.ai: e for e in elements}

    def text(ai: str) -> str | None:
        return fields[ai].value if ai in fields else None

    gtin_element = fields["01"].gtin if "01" in fields else None
    gtin = _nonzero_gtin(gtin_element.as_gtin_14()) if gtin_element is not None else None
    sscc = text("00")
    count = text("30") or text("37")
    if gtin is not None:
        kind, value = ScanKind.GTIN, gtin
    elif sscc is not None:
        kind, value = ScanKind.SSCC, sscc
    else:
        kind, value = ScanKind.GS1, hri
    return Scan(kind, value, raw, symbology, gtin=gtin, sscc=sscc, lot=text("10"),
                expiry=fields["17"].date if "17" in fields else None, serial=text("21"),
                count=int(count) if count is not None else None,
                elements=tuple((e.ai.ai, e.value) for e in elements),
                best_before=fields["15"].date if "15" in fields else None)
