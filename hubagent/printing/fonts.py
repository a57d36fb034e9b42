"""The label font: which TrueType file draws label text, and what it can draw.

The default is Noto Sans from the ``fontpkg-noto-sans`` wheel (a Python
dependency of the ``print`` extra, so a plain ``pip install`` on any
machine has it; no system font package is needed). It covers Latin-1,
Latin Extended-A/B, Greek, Cyrillic and the euro sign, so "Müller",
"Łódź", "Ελλάδα", "Москва" and "€" print as written. A hub may name its
own font file (``[printing] font``).

A character the font has no glyph for (CJK, emoji with the default font)
is transliterated with unidecode ("中" -> "Zhong") or printed as "?", and
the substitution is logged: never an empty box, never a dropped character.

:func:`check_font_file` reads only the file's first bytes, so the config
check imports no imaging library.
"""

from __future__ import annotations

import functools
import logging
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from PIL.ImageFont import FreeTypeFont

log = logging.getLogger(__name__)

DEFAULT_FAMILY = "Noto Sans"
"""The family of the default font (from the ``fontpkg-noto-sans`` package)."""

_MAGIC = (b"\x00\x01\x00\x00", b"true", b"OTTO", b"ttcf")
"""First four bytes of a TrueType, Apple TrueType, CFF OpenType file and a collection."""
_PROBE_SIZE = 24
_NOT_A_CHAR = "\U0010fffd"  # private-use code point: always the font's "missing glyph" box


def check_font_file(path: Path) -> str | None:
    """Why ``path`` cannot be the label font, or None when it looks like a TrueType/OpenType file."""
    try:
        with path.open("rb") as f:
            head = f.read(4)
    except FileNotFoundError:
        return "no such file"
    except IsADirectoryError:
        return "is a directory, not a font file"
    except OSError as e:
        return f"cannot read: {e.strerror or e}"
    if head not in _MAGIC:
        return "not a TrueType or OpenType font file"
    return None


@functools.lru_cache(maxsize=1)
def default_font_path() -> str:
    """Path of the bundled default font (Noto Sans, regular)."""
    import fontpkg  # type: ignore[import-untyped]  # the package ships no type information

    return str(fontpkg.path(DEFAULT_FAMILY))


def resolve(path: str) -> str:
    """``path``, or the default font's path for ""."""
    return path or default_font_path()


# Each size is a FreeType face of its own (about 0.6 MB for the variable Noto
# Sans, 0.2 MB for DejaVu Sans): keep only the sizes in recent use.
@functools.lru_cache(maxsize=24)
def font(size: int, path: str = "") -> FreeTypeFont:
    """The font at ``path`` ("" = default) at ``size`` pixels."""
    from PIL import ImageFont

    return ImageFont.truetype(resolve(path), size)


@functools.lru_cache(maxsize=8)
def _missing_mask(path: str) -> bytes:
    return bytes(font(_PROBE_SIZE, path).getmask(_NOT_A_CHAR))


@functools.lru_cache(maxsize=8192)
def has_glyph(char: str, path: str = "") -> bool:
    """Whether the font draws ``char`` with a glyph of its own (not the missing-glyph box)."""
    if char.isspace() or 32 <= ord(char) < 127:
        return True
    return bytes(font(_PROBE_SIZE, path).getmask(char)) != _missing_mask(path)


def printable(text: str, path: str = "") -> str:
    """``text`` with every character the font lacks transliterated (or "?")."""
    if all(has_glyph(c, path) for c in text):
        return text
    from unidecode import unidecode

    out = "".join(c if has_glyph(c, path) else (unidecode(c).strip() or "?") for c in text)
    log.info("the label font has no glyph for some of %r: printed as %r", text, out)
    return out
