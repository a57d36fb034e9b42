"""Fit text into a box: shrink to a minimum size, then wrap, never cut.

The font is the one embedded in Pillow (``ImageFont.load_default(size)``,
Pillow >= 10.1) so no system font is needed. It covers printable ASCII only,
so characters it has no glyph for are transliterated with unidecode
("Москва" -> "Moskva", "€" -> "EUR") rather than printed as empty boxes.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass

from PIL import ImageFont

from hubagent.errors import InputError

log = logging.getLogger(__name__)

_PROBE_SIZE = 24
_NOT_A_CHAR = "\U0010fffd"  # private-use code point: always the font's "missing glyph" box


@dataclass(frozen=True)
class Fitted:
    """Text that fits its box: the lines, the font size and the line pitch."""

    lines: tuple[str, ...]
    size: int
    line_height: int


@functools.lru_cache(maxsize=64)
def font(size: int) -> ImageFont.FreeTypeFont:
    """Pillow's embedded font at ``size`` pixels."""
    return ImageFont.load_default(size=size)  # type: ignore[return-value]


@functools.lru_cache(maxsize=1)
def _missing_mask() -> bytes:
    return bytes(font(_PROBE_SIZE).getmask(_NOT_A_CHAR))


@functools.lru_cache(maxsize=4096)
def has_glyph(char: str) -> bool:
    """Whether the embedded font can draw ``char``."""
    if char.isspace() or 32 <= ord(char) < 127:
        return True
    return bytes(font(_PROBE_SIZE).getmask(char)) != _missing_mask()


def printable(text: str) -> str:
    """``text`` with every character the font lacks transliterated (or "?")."""
    if all(has_glyph(c) for c in text):
        return text
    from unidecode import unidecode

    out = "".join(c if has_glyph(c) else (unidecode(c).strip() or "?") for c in text)
    log.info("transliterated %r to %r for printing", text, out)
    return out


def line_height(size: int) -> int:
    """Pitch between lines at ``size`` (ascent + descent)."""
    ascent, descent = font(size).getmetrics()
    return int(ascent + descent)


def text_width(text: str, size: int) -> int:
    """Width of ``text`` in dots at ``size``."""
    return int(font(size).getlength(text) + 0.999)


def _sizes(size: int, min_size: int) -> list[int]:
    sizes, s = [], size
    while s > min_size:
        sizes.append(s)
        s -= max(1, s // 12)
    return [*sizes, min_size]


def _wrap_paragraph(text: str, size: int, width: int) -> list[str]:
    """Greedy word wrap; a word wider than a whole line is broken between characters."""
    lines: list[str] = []
    current = ""
    for word in text.split():
        candidate = f"{current} {word}" if current else word
        if text_width(candidate, size) <= width:
            current = candidate
        elif text_width(word, size) <= width:
            lines.append(current)
            current = word
        else:
            current = _break_word(lines, f"{current} " if current else "", word, size, width)
    lines.append(current)
    return lines


def _break_word(lines: list[str], prefix: str, word: str, size: int, width: int) -> str:
    """Break an over-long ``word`` across lines, starting after ``prefix``; returns the open line."""
    while True:
        cut = 0
        while cut < len(word) and text_width(prefix + word[: cut + 1], size) <= width:
            cut += 1
        if cut == len(word):
            return prefix + word
        if cut == 0 and prefix:
            lines.append(prefix.rstrip())
            prefix = ""
            continue
        cut = max(cut, 1)  # a single glyph wider than the box: the fit check will refuse it
        lines.append(prefix + word[:cut])
        prefix, word = "", word[cut:]


def _fits(lines: list[str], size: int, width: int, height: int) -> bool:
    return len(lines) * line_height(size) <= height and all(text_width(ln, size) <= width for ln in lines)


def fit_text(text: str, width: int, height: int, size: int, min_size: int, *, wrap: bool = True) -> Fitted:
    """Fit ``text`` into ``width`` x ``height`` dots.

    First shrink (keeping explicit line breaks) from ``size`` down to
    ``min_size``; if it still does not fit, wrap at the largest size that
    fits. Raises InputError("text_does_not_fit") rather than cutting.
    """
    text = printable(text)
    paragraphs = text.split("\n")
    sizes = _sizes(size, min(size, min_size))
    for s in sizes:
        if _fits(paragraphs, s, width, height):
            return Fitted(tuple(paragraphs), s, line_height(s))
    if wrap:
        for s in sizes:
            lines = [ln for p in paragraphs for ln in _wrap_paragraph(p, s, width)]
            if _fits(lines, s, width, height):
                return Fitted(tuple(lines), s, line_height(s))
    shown = text if len(text) <= 40 else text[:37] + "..."
    raise InputError(
        "text_does_not_fit",
        f"{shown!r} does not fit a {width}x{height} dot box even at {sizes[-1]} px"
        + (" wrapped" if wrap else ""),
    )
