"""Turn a template and field values into a :class:`~hubagent.printing.model.Label`.

Field values are checked first (every problem is an InputError with a
stable code), then each element is placed in printer dots: text is fitted,
barcodes are encoded and given the widest whole-dot module that fits.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import TYPE_CHECKING

from hubagent.errors import InputError
from hubagent.printing import fit, model, money, symbols
from hubagent.printing.spec import (
    FIELD_REF,
    BoxSpec,
    ElementSpec,
    FieldSpec,
    ImageSpec,
    LineSpec,
    QrSpec,
    TextSpec,
)
from hubagent.textcheck import text_problem

if TYPE_CHECKING:
    from hubagent.printing.templates import Template

_MAX_LIST_ITEM = 200
_MIN_BAR_MM = 4.0  # shorter bars are hard to aim a hand scanner at


def lay_out(template: Template, values: Mapping[str, object], dpi: int, width_dots: int) -> model.Label:
    """Lay ``template`` out with ``values`` at ``dpi`` for a ``width_dots`` wide printer."""
    text = check_values(template.spec.fields, values)
    dpm = dpi / 25.4
    width = round(template.spec.width_mm * dpm)
    if width > width_dots:
        raise InputError(
            "label_too_wide",
            f"template {template.name!r} is {template.spec.width_mm} mm wide; the printer prints {width_dots} dots "
            f"({width_dots / dpm:.1f} mm)",
        )
    elements: list[model.Element] = []
    for spec in template.spec.elements:
        if spec.when and not text[spec.when]:
            continue
        el = _place(spec, text, dpm, template)
        if el is not None:
            elements.append(el)
    return model.Label(template.name, width, round(template.spec.height_mm * dpm), dpi, tuple(elements))


def check_values(specs: Mapping[str, FieldSpec], values: Mapping[str, object]) -> dict[str, str]:
    """Each field's value as printable text ("" for an absent optional field)."""
    unknown = sorted(str(k) for k in values if k not in specs)
    if unknown:
        raise InputError("unknown_field", f"unknown field(s) {', '.join(unknown)} (known: {', '.join(specs)})")
    out: dict[str, str] = {}
    currencies: dict[str, str] = {}
    amounts: dict[str, Decimal] = {}
    # Currencies first: a money field's decimals depend on its currency.
    order = sorted(specs, key=lambda n: {"currency": 0, "unit_price": 2}.get(specs[n].kind, 1))
    for name in order:
        spec = specs[name]
        value = values.get(name)
        if spec.kind == "unit_price":
            if value is not None:
                raise InputError("computed_field", f"field {name!r} is computed from {spec.price!r}, "
                                                   f"{spec.content!r} and {spec.content_unit!r}; do not send it")
            out[name] = _unit_price(name, spec, specs, out, currencies, amounts)
            continue
        blank = isinstance(value, str) and not value.strip()
        if value is None or blank or (isinstance(value, (list, tuple)) and not value):
            if spec.required:
                raise InputError("missing_field", f"field {name!r} is required")
            out[name] = ""
            continue
        if spec.kind == "currency":
            code = money.currency_code(name, _check_string(name, value))
            currencies[name] = code
            out[name] = money.symbol(code)
        elif spec.kind == "money":
            out[name] = _money(name, spec, value, currencies, amounts)
        else:
            out[name] = _as_text(name, spec, value)
            if spec.kind == "number":
                amounts[name] = Decimal(out[name])
    return out


def _money(name: str, spec: FieldSpec, value: object, currencies: Mapping[str, str],
           amounts: dict[str, Decimal]) -> str:
    code = currencies.get(spec.currency)
    if code is None:
        raise InputError("missing_field", f"field {name!r} needs a currency: set field {spec.currency!r} "
                                          "(or [printing] currency)")
    decimals = money.MINOR_UNITS[code]
    typed = money.typed_text(name, value)
    _check_length(name, spec, typed)  # the limit counts what was typed, not the padded form
    amounts[name] = money.amount(name, value, decimals)
    return money.shown(amounts[name], decimals)


def _unit_price(name: str, spec: FieldSpec, specs: Mapping[str, FieldSpec], out: Mapping[str, str],
                currencies: Mapping[str, str], amounts: Mapping[str, Decimal]) -> str:
    """"2.58 € / kg" from price and net content; "" when either is absent."""
    content, unit = amounts.get(spec.content), out.get(spec.content_unit, "")
    if (spec.content in amounts) != bool(unit):
        have, missing = (spec.content, spec.content_unit) if unit == "" else (spec.content_unit, spec.content)
        raise InputError("missing_field", f"field {have!r} needs field {missing!r} (the unit price needs both)")
    price = amounts.get(spec.price)
    if content is None or price is None:
        return ""
    if unit not in money.UNIT_BASES:
        raise InputError("bad_value", f"field {spec.content_unit!r} must be one of {', '.join(money.UNIT_BASES)}")
    code = currencies[specs[spec.price].currency]
    decimals = money.MINOR_UNITS[code]
    per = money.unit_price(price, content, unit, decimals)
    if per is None:
        return ""
    return f"{money.shown(per[0], decimals)} {money.symbol(code)} / {per[1]}"


def _as_text(name: str, spec: FieldSpec, value: object) -> str:
    if spec.kind == "number":
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise InputError("wrong_type", f"field {name!r} must be a number, not {type(value).__name__}")
        typed = str(value) if isinstance(value, int) else repr(value)
        _check_length(name, spec, typed)  # what was typed, before any padding with zeros
        if spec.decimals is None:
            return str(value) if isinstance(value, int) else f"{value:.12g}"
        return money.shown(money.amount(name, value, spec.decimals), spec.decimals)
    if spec.kind == "list":
        if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
            raise InputError("wrong_type", f"field {name!r} must be a list of strings")
        if len(value) > spec.max_length:
            raise InputError("value_too_long", f"field {name!r} has {len(value)} items (at most {spec.max_length})")
        items = [_check_string(f"{name}[{i}]", item) for i, item in enumerate(value)]
        for i, item in enumerate(items):
            if len(item) > _MAX_LIST_ITEM:
                raise InputError("value_too_long", f"field {name}[{i}] is over {_MAX_LIST_ITEM} characters")
        return "\n".join(items)
    text = _check_length(name, spec, _check_string(name, value))
    if spec.choices and text not in spec.choices:
        raise InputError("bad_value", f"field {name!r} must be one of {', '.join(spec.choices)}, not {text!r}")
    return text


def _check_string(name: str, value: object) -> str:
    if not isinstance(value, str):
        raise InputError("wrong_type", f"field {name!r} must be a string, not {type(value).__name__}")
    problem = text_problem(value)
    if problem is not None:  # the hub-wide rule for text at a boundary
        raise InputError("bad_value", f"field {name!r} {problem}")
    return value


def _check_length(name: str, spec: FieldSpec, text: str) -> str:
    if len(text) > spec.max_length:
        raise InputError("value_too_long", f"field {name!r} is {len(text)} characters (at most {spec.max_length})")
    return text


def substitute(pattern: str, values: Mapping[str, str]) -> str:
    """``pattern`` with every ``{field}`` replaced by its value."""
    return FIELD_REF.sub(lambda m: values[m.group(1)], pattern)


def _place(spec: ElementSpec, values: Mapping[str, str], dpm: float, template: Template) -> model.Element | None:
    def d(mm: float) -> int:
        return round(mm * dpm)

    if isinstance(spec, LineSpec):
        return model.Line(d(spec.x1_mm), d(spec.y1_mm), d(spec.x2_mm), d(spec.y2_mm), max(1, d(spec.thickness_mm)))
    box = (d(spec.x_mm), d(spec.y_mm), d(spec.w_mm), d(spec.h_mm))
    if isinstance(spec, BoxSpec):
        return model.Box(*box, thickness=max(1, d(spec.thickness_mm)), fill=spec.fill)
    if isinstance(spec, ImageSpec):
        return model.Image(*box, png=template.images[spec.path])
    if isinstance(spec, TextSpec):
        text = substitute(spec.text, values).strip()  # an absent optional field leaves no stray space
        if not text:
            return None
        size, min_size = max(6, d(spec.size_mm)), max(6, d(spec.min_size_mm))
        fitted = fit.fit_text(text, box[2], box[3], size, min_size, wrap=spec.wrap, font_path=template.font)
        return model.Text(*box, lines=fitted.lines, size=fitted.size, line_height=fitted.line_height, align=spec.align,
                          font=template.font)
    pattern, scan_as = (spec.data, spec.scan) if substitute(spec.data, values) else (spec.fallback, spec.fallback_scan)
    data = substitute(pattern, values)
    if not data:
        return None
    if isinstance(spec, QrSpec):
        check_scannable(data, scan_as, pattern)
        symbol = symbols.encode("qr", data, spec.error)
        return _place_symbol("qr", data, symbol, box, d(spec.module_mm), d(spec.min_module_mm), 0)
    symbology, data = _symbology(spec.symbology, data)
    symbol = symbols.encode(symbology, data)
    check_scannable(data, scan_as, pattern)
    hri = max(6, d(spec.hri_size_mm)) if spec.hri and symbology in model.LINEAR else 0
    return _place_symbol(symbology, data, symbol, box, d(spec.module_mm), d(spec.min_module_mm), hri,
                         d(_MIN_BAR_MM), template.font)


def check_scannable(data: str, scan_as: Sequence[str], pattern: str = "") -> None:
    """Refuse to print a code the hub would refuse, or misread, when it is scanned.

    ``data`` goes through the scanner's own parser
    (:func:`hubagent.scanning.codes.interpret`), the one source of the id
    rules; ``scan_as`` lists the kinds it must be read as ([] = any,
    ["other"] = a payload for phones, checked only when it is a hub code).
    """
    from hubagent.scanning.codes import INTERNAL_PREFIX, interpret

    if "other" in scan_as and not data.upper().startswith(INTERNAL_PREFIX):
        return
    fields = ", ".join(repr(f) for f in FIELD_REF.findall(pattern)) or "the template"
    if data != data.strip():
        raise InputError("unscannable_code", f"{fields}: {data!r} starts or ends with a space, which the "
                                             "scanner drops: the hub would read something else")
    try:
        scan = interpret(data.encode("utf-8"))
    except InputError as e:
        raise InputError("unscannable_code", f"{fields}: {data!r} would be refused when scanned "
                                             f"({e.code}: {e.message})") from None
    if scan_as and scan.kind.value not in scan_as:
        raise InputError("unscannable_code", f"{fields}: {data!r} would scan as a {scan.kind.value}, "
                                             f"not as a {' or '.join(scan_as)}")


def _symbology(wanted: str, data: str) -> tuple[str, str]:
    """Resolve "auto": EAN-13 for a GTIN-13 or UPC-A, EAN-8 for a GTIN-8, else Code 128.

    A GTIN-14 starting with 0 is a padded GTIN-13/12/8 and is printed as
    such; one with another indicator digit (a case) stays Code 128.

    A GTIN-12 (UPC-A) is complete with its check digit, so it becomes the
    EAN-13 "0" + GTIN-12 (the same number) rather than a body to extend.
    """
    if wanted != "auto":
        return wanted, data
    if data.isdigit() and len(data) in (8, 12, 13) and not symbols.valid_gtin(data):
        # A number of GTIN length with a bad check digit is a typo, not a SKU.
        raise InputError("bad_barcode_data", f"{data!r} looks like a GTIN but its check digit is wrong")
    if len(data) == 14 and symbols.valid_gtin(data) and data.startswith("0"):
        # A GTIN-14 of a consumer unit (indicator 0) is printed as the EAN it pads.
        data = data[6:] if data.startswith("000000") else data[1:]
    if symbols.valid_gtin(data) and len(data) in (8, 12, 13):
        if len(data) == 12:
            return "ean13", "0" + data
        return ("ean8" if len(data) == 8 else "ean13"), data
    return "code128", data


def _place_symbol(
    symbology: str,
    data: str,
    symbol: symbols.Symbol,
    box: tuple[int, int, int, int],
    max_module: int,
    min_module: int,
    hri_size: int,
    min_bar: int = 0,
    font: str = "",
) -> model.Barcode:
    x, y, w, h = box
    cols, rows = len(symbol.rows[0]), len(symbol.rows)
    quiet = symbols.QUIET_MODULES[symbology]
    linear = symbology in model.LINEAR
    hri_h = fit.line_height(hri_size, font) if hri_size else 0
    fit_w = w // (cols + 2 * quiet)
    fit_h = h // (rows + 2 * quiet) if not linear else fit_w
    module = min(max(1, max_module), fit_w, fit_h)
    bar_h = h - hri_h
    if module < max(1, min_module) or (linear and bar_h < min_bar):
        raise InputError(
            "barcode_does_not_fit",
            f"{symbology} {data!r} needs {(cols + 2 * quiet) * max(1, min_module)} x "
            f"{(rows + 2 * quiet) * max(1, min_module) if not linear else min_bar + hri_h} dots; the box is {w} x {h}",
        )
    if hri_size:
        # The human-readable line shrinks like any text; it is never cut.
        hri_size = fit.fit_text(symbol.hri, w, hri_h, hri_size, max(6, hri_size // 2), wrap=False,
                                  font_path=font).size
    left = x + (w - cols * module) // 2
    if linear:
        hri = symbol.hri if hri_size else ""
        return model.Barcode(left, y, symbology, data, symbol.rows, module, bar_h, hri, hri_size,  # type: ignore[arg-type]
                             font)
    top = y + (h - rows * module) // 2
    return model.Barcode(left, top, symbology, data, symbol.rows, module, rows * module)  # type: ignore[arg-type]
