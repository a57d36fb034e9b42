"""Encode a rendered label as ZPL: one ``^GFA`` graphic field per label.

Pure bytes-in, bytes-out: the ZPL driver and the simulator both call
:func:`encode_image`, so the simulator checks exactly what a printer gets.
Graphic data is ASCII hex, optionally with ZPL's run-length compression
(repeat letters, ``,``/``!`` for a row that ends in white/black, ``:`` for a
row equal to the one before), which shrinks a typical label about tenfold.
"""

from __future__ import annotations

import functools
import re

from PIL import Image

_INVERT = bytes(255 - i for i in range(256))  # PIL "1": 1 = white; ZPL: 1 = black
_RUN = re.compile(r"(.)\1+")  # single digits stay as they are


def image_rows(img: Image.Image) -> tuple[int, list[bytes]]:
    """Bytes per row and the rows of ``img`` with 1 = black, padded white to whole bytes."""
    img = img.convert("1", dither=Image.Dither.NONE) if img.mode != "1" else img
    width = (img.width + 7) // 8 * 8
    if width != img.width:
        padded = Image.new("1", (width, img.height), 1)
        padded.paste(img, (0, 0))
        img = padded
    per_row = width // 8
    raw = img.tobytes().translate(_INVERT)
    return per_row, [raw[i : i + per_row] for i in range(0, len(raw), per_row)]


@functools.lru_cache(maxsize=1024)
def _repeat(count: int) -> str:
    """ZPL repeat prefix for ``count`` copies of the next hex digit (none for 1)."""
    out = []
    while count >= 20:
        k = min(count // 20, 20)
        out.append(chr(ord("g") + k - 1))  # g = 20 ... z = 400
        count -= k * 20
    if count > 1 or (count == 1 and out):
        out.append(chr(ord("G") + count - 1))  # G = 1 ... Y = 19
    return "".join(out)


def compress_row(hexrow: str) -> str:
    """One row of hex digits in ZPL ASCII compression (without the ``:`` rule)."""
    stripped = hexrow.rstrip("0")
    tail = ","
    if len(stripped) == len(hexrow):
        stripped, tail = hexrow.rstrip("F"), "!"
        if len(stripped) == len(hexrow):
            tail = ""
    return _RUN.sub(_run, stripped) + tail


def _run(m: re.Match[str]) -> str:
    return _repeat(len(m.group())) + m.group(1)


def graphic_field(img: Image.Image, *, compress: bool = True) -> str:
    """``^GFA,b,c,d,data`` for ``img`` (b = c = total bytes, d = bytes per row)."""
    per_row, rows = image_rows(img)
    total = per_row * len(rows)
    if not compress:
        data = "".join(r.hex().upper() for r in rows)
    else:
        parts, prev = [], None
        for row in rows:
            parts.append(":" if row == prev else compress_row(row.hex().upper()))
            prev = row
        data = "".join(parts)
    return f"^GFA,{total},{total},{per_row},{data}"


def encode_image(img: Image.Image, *, copies: int = 1, compress: bool = True) -> bytes:
    """A complete ZPL job printing ``img`` at the label origin ``copies`` times."""
    if not 1 <= copies <= 99_999_999:
        raise ValueError(f"copies must be 1..99999999, not {copies}")
    body = (
        "^XA\n"
        f"^PW{img.width}\n^LL{img.height}\n^LH0,0\n"
        f"^FO0,0{graphic_field(img, compress=compress)}^FS\n"
        f"^PQ{copies}\n"
        "^XZ\n"
    )
    return body.encode("ascii")
