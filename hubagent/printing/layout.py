"""Turn a template and field values into a :class:`~hubagent.printing.model.Label`.

Field values are checked first (every problem is an InputError with a
stable code), then each element is placed in printer dots: text is fitted,
barcodes are encoded and given the widest whole-dot module that fits.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from hubagent.errors import InputError
from hubagent.printing import fit, model, symbols
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
    for name, spec in specs.items():
        value = values.get(name)
        blank = isinstance(value, str) and not value.strip()
        if value is None or blank or (isinstance(value, (list, tuple)) and not value):
            if spec.required:
                raise InputError("missing_field", f"field {name!r} is required")
            out[name] = ""
            continue
        out[name] = _as_text(name, spec, value)
    return out


def _as_text(name: str, spec: FieldSpec, value: object) -> str:
    if spec.kind == "number":
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise InputError("wrong_type", f"field {name!r} must be a number, not {type(value).__name__}")
        if spec.decimals is not None:
            shown = f"{value:.{spec.decimals}f}"
        else:
            shown = str(value) if isinstance(value, int) else f"{value:.12g}"
        return _check_length(name, spec, shown)
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
    return _check_length(name, spec, _check_string(name, value))


def _check_string(name: str, value: object) -> str:
    if not isinstance(value, str):
        raise InputError("wrong_type", f"field {name!r} must be a string, not {type(value).__name__}")
    if any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise InputError("bad_value", f"field {name!r} contains control characters")
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
        fitted = fit.fit_text(text, box[2], box[3], size, min_size, wrap=spec.wrap)
        return model.Text(*box, lines=fitted.lines, size=fitted.size, line_height=fitted.line_height, align=spec.align)
    if isinstance(spec, QrSpec):
        data = substitute(spec.data, values) or substitute(spec.fallback, values)
        if not data:
            return None
        symbol = symbols.encode("qr", data, spec.error)
        return _place_symbol("qr", data, symbol, box, d(spec.module_mm), d(spec.min_module_mm), 0)
    data = substitute(spec.data, values) or substitute(spec.fallback, values)
    if not data:
        return None
    symbology, data = _symbology(spec.symbology, data)
    symbol = symbols.encode(symbology, data)
    hri = max(6, d(spec.hri_size_mm)) if spec.hri and symbology in model.LINEAR else 0
    return _place_symbol(symbology, data, symbol, box, d(spec.module_mm), d(spec.min_module_mm), hri, d(_MIN_BAR_MM))


def _symbology(wanted: str, data: str) -> tuple[str, str]:
    """Resolve "auto": EAN-13 for a GTIN-13 or UPC-A, EAN-8 for a GTIN-8, else Code 128.

    A GTIN-12 (UPC-A) is complete with its check digit, so it becomes the
    EAN-13 "0" + GTIN-12 (the same number) rather than a body to extend.
    """
    if wanted != "auto":
        return wanted, data
    if data.isdigit() and len(data) in (8, 12, 13) and not symbols.valid_gtin(data):
        # A number of GTIN length with a bad check digit is a typo, not a SKU.
        raise InputError("bad_barcode_data", f"{data!r} looks like a GTIN but its check digit is wrong")
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
) -> model.Barcode:
    x, y, w, h = box
    cols, rows = len(symbol.rows[0]), len(symbol.rows)
    quiet = symbols.QUIET_MODULES[symbology]
    linear = symbology in model.LINEAR
    hri_h = fit.line_height(hri_size) if hri_size else 0
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
        hri_size = fit.fit_text(symbol.hri, w, hri_h, hri_size, max(6, hri_size // 2), wrap=False).size
    left = x + (w - cols * module) // 2
    if linear:
        hri = symbol.hri if hri_size else ""
        return model.Barcode(left, y, symbology, data, symbol.rows, module, bar_h, hri, hri_size)  # type: ignore[arg-type]
    top = y + (h - rows * module) // 2
    return model.Barcode(left, top, symbology, data, symbol.rows, module, rows * module)  # type: ignore[arg-type]
