"""The template file format as msgspec types (see :mod:`hubagent.printing.templates`).

Kept apart from the loader so the layout code can use the element types
without importing the loader, which lays labels out with it.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

import msgspec

FIELD_REF = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
_Mm = Annotated[float, msgspec.Meta(ge=0.0, le=1000.0)]
_Size = Annotated[float, msgspec.Meta(gt=0.5, le=100.0)]
_Module = Annotated[float, msgspec.Meta(gt=0.05, le=5.0)]


class FieldSpec(msgspec.Struct, forbid_unknown_fields=True, kw_only=True, frozen=True):
    """One input field of a template."""

    kind: Literal["text", "number", "barcode", "qr", "list", "currency", "money", "unit_price"] = "text"
    required: bool = True
    max_length: Annotated[int, msgspec.Meta(ge=1, le=4000)] = 200
    decimals: Annotated[int, msgspec.Meta(ge=0, le=6)] | None = None
    choices: list[str] = []  # text: the only values allowed (e.g. net content units)
    currency: str = ""  # money: the currency field that decides the decimals
    price: str = ""  # unit_price: the money field it divides ...
    content: str = ""  # ... by this number field (net content) ...
    content_unit: str = ""  # ... in this unit field (g, kg, ml, l, piece)


ScanAs = Literal["gtin", "sku", "bin", "parcel", "pickup", "staff", "return", "mode", "qty", "done", "cancel",
                 "condition", "other"]
"""Scan kinds (:class:`hubagent.scanning.codes.ScanKind` values) a printed code may be read as."""


class _Element(msgspec.Struct, forbid_unknown_fields=True, kw_only=True, frozen=True, tag_field="type"):
    when: str = ""


class _Boxed(_Element, kw_only=True, frozen=True):
    x_mm: _Mm
    y_mm: _Mm
    w_mm: _Mm
    h_mm: _Mm


class TextSpec(_Boxed, kw_only=True, frozen=True, tag="text"):
    """Text in a box, shrunk then wrapped to fit."""

    text: str
    size_mm: _Size = 4.0
    min_size_mm: _Size = 2.0
    align: Literal["left", "center", "right"] = "left"
    wrap: bool = True


class BarcodeSpec(_Boxed, kw_only=True, frozen=True, tag="barcode"):
    """A linear code (or DataMatrix) centred in its box."""

    data: str
    fallback: str = ""
    symbology: Literal["auto", "code128", "ean13", "ean8", "datamatrix"] = "auto"
    hri: bool = True
    hri_size_mm: _Size = 3.0
    module_mm: _Module = 0.5
    min_module_mm: _Module = 0.25
    scan: list[ScanAs] = []  # what the hub must read `data` as; [] = any code it accepts
    fallback_scan: list[ScanAs] = []  # ... and `fallback`


class QrSpec(_Boxed, kw_only=True, frozen=True, tag="qr"):
    """A QR code centred in its box."""

    data: str
    fallback: str = ""
    error: Literal["L", "M", "Q", "H"] = "M"
    module_mm: _Module = 1.0
    min_module_mm: _Module = 0.375
    scan: list[ScanAs] = []  # as for barcodes; ["other"]: a payload for phones (URLs), not for the hub
    fallback_scan: list[ScanAs] = []


class LineSpec(_Element, kw_only=True, frozen=True, tag="line"):
    """A straight line."""

    x1_mm: _Mm
    y1_mm: _Mm
    x2_mm: _Mm
    y2_mm: _Mm
    thickness_mm: _Module = 0.25


class BoxSpec(_Boxed, kw_only=True, frozen=True, tag="box"):
    """A rectangle outline or a filled block."""

    thickness_mm: _Module = 0.25
    fill: bool = False


class ImageSpec(_Boxed, kw_only=True, frozen=True, tag="image"):
    """A PNG (a logo) scaled into its box; ``path`` is relative to the template."""

    path: str


ElementSpec = TextSpec | BarcodeSpec | QrSpec | LineSpec | BoxSpec | ImageSpec


class TemplateFile(msgspec.Struct, forbid_unknown_fields=True, kw_only=True, frozen=True):
    """The top level of a template file."""

    description: str = ""
    width_mm: Annotated[float, msgspec.Meta(gt=5.0, le=1000.0)]
    height_mm: Annotated[float, msgspec.Meta(gt=5.0, le=3000.0)]
    fields: dict[str, FieldSpec] = {}
    elements: list[ElementSpec]
    # A field holding a SKU: fields the job leaves out are filled from that SKU's catalog entry.
    catalog: str = ""
