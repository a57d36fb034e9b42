"""The label model: a laid-out label, in printer dots, ready to render.

Everything here is decided: text is already wrapped and sized, barcodes are
already encoded into module patterns with whole-dot module widths. The
renderer only draws, and the printer languages only encode the drawing, so
one layout serves every printer. Coordinates are dots from the top-left.
"""

from __future__ import annotations

from typing import Literal

import msgspec

Align = Literal["left", "center", "right"]
Symbology = Literal["code128", "ean13", "ean8", "qr", "datamatrix"]
LINEAR: frozenset[str] = frozenset({"code128", "ean13", "ean8"})
"""Symbologies drawn as one row of bars stretched to ``height``."""


class Text(msgspec.Struct, frozen=True):
    """Lines of text drawn inside a box with a font pixel ``size``."""

    x: int
    y: int
    width: int
    height: int
    lines: tuple[str, ...]
    size: int
    line_height: int
    align: Align = "left"
    font: str = ""  # font file path ("" = the default label font)


class Barcode(msgspec.Struct, frozen=True):
    """A 1D or 2D symbol, already encoded.

    ``rows`` holds the module pattern ("1" = dark), one string per row (a
    single row for linear codes); each module is ``module`` dots wide (and
    high, for 2D codes). ``height`` is the bar height of linear codes.
    ``x``/``y`` is the top-left of the first module: quiet zones are
    outside the symbol and the layout has kept them clear.
    """

    x: int
    y: int
    symbology: Symbology
    data: str
    rows: tuple[str, ...]
    module: int
    height: int
    hri: str = ""
    hri_size: int = 0
    hri_font: str = ""  # font file path of the human-readable line ("" = default)

    @property
    def width(self) -> int:
        """Symbol width in dots (without quiet zones)."""
        return len(self.rows[0]) * self.module

    @property
    def symbol_height(self) -> int:
        """Symbol height in dots (bars only, without the human-readable line)."""
        return self.height if self.symbology in LINEAR else len(self.rows) * self.module


class Line(msgspec.Struct, frozen=True):
    """A straight line ``thickness`` dots wide."""

    x1: int
    y1: int
    x2: int
    y2: int
    thickness: int = 2


class Box(msgspec.Struct, frozen=True):
    """A rectangle outline (or filled when ``fill``)."""

    x: int
    y: int
    width: int
    height: int
    thickness: int = 2
    fill: bool = False


class Image(msgspec.Struct, frozen=True):
    """A picture (a logo) scaled into a box; ``png`` is the encoded file."""

    x: int
    y: int
    width: int
    height: int
    png: bytes


Element = Text | Barcode | Line | Box | Image


class Label(msgspec.Struct, frozen=True):
    """One label: its size in dots, its resolution and its elements."""

    name: str
    width: int
    height: int
    dpi: int
    elements: tuple[Element, ...]
