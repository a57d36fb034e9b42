"""Fit text into a box: shrink to a minimum size, then wrap, never cut.

Text is measured with the label font (:mod:`hubagent.printing.fonts`): the
same TrueType file, at the same size, that the renderer draws with, so a
line that fits here fits on paper. ``font`` arguments are font file paths;
"" is the default font.
"""

from __future__ import annotations


import msgspec

from hubagent.errors import InputError
from hubagent.printing import fonts
from hubagent.printing.fonts import font, has_glyph, printable

__all__ = ["Fitted", "fit_text", "font", "has_glyph", "line_height", "printable", "text_width"]


class Fitted(msgspec.Struct, frozen=True):
    """Text that fits its box: the lines, the font size and the line pitch."""

    lines: tuple[str, ...]
    size: int
    line_height: int


def line_height(size: int, path: str = "") -> int:
    """Pitch between lines at ``size`` (ascent + descent)."""
    ascent, descent = fonts.font(size, path).getmetrics()
    return int(ascent + descent)


def text_width(text: str, size: int, path: str = "") -> int:
    """Width of ``text`` in dots at ``size``."""
    return int(fonts.font(size, path).getlength(text) + 0.999)


def _sizes(size: int, min_size: int) -> list[int]:
    sizes, s = [], size
    while s > min_size:
        sizes.append(s)
        s -= max(1, s // 12)
    return [*sizes, min_size]


def _wrap_paragraph(text: str, size: int, width: int, path: str) -> list[str]:
    """Greedy word wrap; a word wider than a whole line is broken between characters."""
    lines: list[str] = []
    current = ""
    for word in text.split():
        candidate = f"{current} {word}" if current else word
        if text_width(candidate, size, path) <= width:
            current = candidate
        elif text_width(word, size, path) <= width:
            lines.append(current)
            current = word
        else:
            current = _break_word(lines, f"{current} " if current else "", word, size, width, path)
    lines.append(current)
    return lines


def _break_word(lines: list[str], prefix: str, word: str, size: int, width: int, path: str) -> str:
    """Break an over-long ``word`` across lines, starting after ``prefix``; returns the open line."""
    while True:
        cut = _longest_fit(prefix, word, size, width, path)
        if cut == len(word):
            return prefix + word
        if cut == 0 and prefix:
            lines.append(prefix.rstrip())
            prefix = ""
            continue
        cut = max(cut, 1)  # a single glyph wider than the box: the fit check will refuse it
        lines.append(prefix + word[:cut])
        prefix, word = "", word[cut:]


def _longest_fit(prefix: str, word: str, size: int, width: int, path: str) -> int:
    """How many leading characters of ``word`` fit on a line after ``prefix`` (binary search)."""
    lo, hi = 0, len(word)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if text_width(prefix + word[:mid], size, path) <= width:
            lo = mid
        else:
            hi = mid - 1
    return lo


def _fewest_lines(paragraphs: list[str], size: int, width: int, path: str) -> int:
    """A lower bound on the wrapped line count: each paragraph's width over the box width."""
    return sum(max(1, -(-text_width(p, size, path) // width)) for p in paragraphs)


def _fits(lines: list[str], size: int, width: int, height: int, path: str) -> bool:
    return len(lines) * line_height(size, path) <= height and all(text_width(ln, size, path) <= width for ln in lines)


def fit_text(text: str, width: int, height: int, size: int, min_size: int, *, wrap: bool = True,
             font_path: str = "") -> Fitted:
    """Fit ``text`` into ``width`` x ``height`` dots.

    First shrink (keeping explicit line breaks) from ``size`` down to
    ``min_size``; if it still does not fit, wrap at the largest size that
    fits. Raises InputError("text_does_not_fit") rather than cutting.
    """
    path = font_path
    text = printable(text, path)
    paragraphs = text.split("\n")
    sizes = _sizes(size, min(size, min_size))
    for s in sizes:
        if _fits(paragraphs, s, width, height, path):
            return Fitted(tuple(paragraphs), s, line_height(s, path))
    if wrap:
        for s in sizes:
            if _fewest_lines(paragraphs, s, width, path) * line_height(s, path) > height:
                continue  # cannot fit at this size however it wraps: skip the costly wrapping
            lines = [ln for p in paragraphs for ln in _wrap_paragraph(p, s, width, path)]
            if _fits(lines, s, width, height, path):
                return Fitted(tuple(lines), s, line_height(s, path))
    shown = text if len(text) <= 40 else text[:37] + "..."
    raise InputError(
        "text_does_not_fit",
        f"{shown!r} does not fit a {width}x{height} dot box even at {sizes[-1]} px"
        + (" wrapped" if wrap else ""),
    )
