"""Decode the ZPL that hubagent emits back into an image.

Understands exactly what :mod:`hubagent.printing.zpl` writes: ``^XA``,
``^PW``, ``^LL``, ``^LH``, ``^FO`` followed by ``^GFA`` (plain or
compressed ASCII hex), ``^FS``, ``^PQ`` and ``^XZ``. Anything else is a
ValueError, so a change in the encoder cannot go unnoticed.
"""

from __future__ import annotations

import re

from PIL import Image
import msgspec

_COMMAND = re.compile(r"\^([A-Z]{2})")
_INVERT = bytes(255 - i for i in range(256))
_KNOWN = {"XA", "PW", "LL", "LH", "FO", "GF", "FS", "PQ", "XZ"}


class ZplLabel(msgspec.Struct, frozen=True):
    """One decoded ``^XA...^XZ`` format: the image and the copy count."""

    image: Image.Image
    copies: int


def decode(data: bytes) -> list[ZplLabel]:
    """Every label in ``data``, in order."""
    text = data.decode("ascii")
    labels = []
    for chunk in text.split("^XA")[1:]:
        if "^XZ" not in chunk:
            raise ValueError("label format without ^XZ")
        labels.append(_decode_format(chunk.split("^XZ", 1)[0]))
    if not labels:
        raise ValueError("no ^XA...^XZ label in data")
    return labels


def _decode_format(body: str) -> ZplLabel:
    params, order = _commands(body)
    img = Image.new("1", (int(params["PW"][0]), int(params["LL"][0])), 1)
    origin = (0, 0)
    for cmd, arg in order:
        if cmd == "FO":
            x, y = (int(v) for v in arg.split(",")[:2])
            origin = (x, y)
        elif cmd == "GF":
            img.paste(_graphic(arg), origin)
    copies = int(params["PQ"][0].split(",")[0]) if "PQ" in params else 1
    return ZplLabel(img, copies)


def _commands(body: str) -> tuple[dict[str, list[str]], list[tuple[str, str]]]:
    """Arguments by command, and every (command, argument) in order."""
    found: dict[str, list[str]] = {}
    order: list[tuple[str, str]] = []
    pieces = _COMMAND.split(body)
    for cmd, raw in zip(pieces[1::2], pieces[2::2], strict=True):
        if cmd not in _KNOWN:
            raise ValueError(f"unexpected ZPL command ^{cmd}")
        arg = raw.strip()
        found.setdefault(cmd, []).append(arg)
        order.append((cmd, arg))
    for needed in ("PW", "LL"):
        if needed not in found:
            raise ValueError(f"missing ^{needed}")
    return found, order


def _graphic(arg: str) -> Image.Image:
    fmt, total, _field, per_row, data = arg.split(",", 4)
    if fmt != "A":
        raise ValueError(f"unsupported ^GF format {fmt!r}")
    total_i, per_row_i = int(total), int(per_row)
    raw = expand(data, per_row_i)
    if len(raw) != total_i:
        raise ValueError(f"^GF data is {len(raw)} bytes, header says {total_i}")
    height = total_i // per_row_i
    inverted = raw.translate(_INVERT)  # ZPL 1 = black; PIL "1": 1 = white
    return Image.frombytes("1", (per_row_i * 8, height), inverted)


def _count(ch: str) -> int:
    if "G" <= ch <= "Y":
        return ord(ch) - ord("G") + 1
    return (ord(ch) - ord("g") + 1) * 20


def expand(data: str, per_row: int) -> bytes:
    """ASCII hex graphic data (compressed or not) as raw bytes."""
    nibbles = per_row * 2
    rows: list[str] = []
    row: list[str] = []
    filled = 0
    count = 0
    for ch in data.strip():
        if ch in "\r\n ":
            continue
        if "G" <= ch <= "Y" or "g" <= ch <= "z":
            count += _count(ch)
            continue
        if ch in "0123456789ABCDEFabcdef":
            n = count or 1
            if filled + n > nibbles:
                raise ValueError("^GF repeat runs past the end of a row")
            row.append(ch.upper() * n)
            filled += n
            count = 0
            if filled == nibbles:
                rows.append("".join(row))
                row, filled = [], 0
        elif ch in ",!":
            rows.append("".join(row) + ("0" if ch == "," else "F") * (nibbles - filled))
            row, filled = [], 0
        elif ch == ":":
            if not rows or filled:
                raise ValueError("':' with no previous row or inside a row")
            rows.append(rows[-1])
        else:
            raise ValueError(f"unexpected character {ch!r} in ^GF data")
    if filled:
        raise ValueError("^GF data ends in a partial row")
    return bytes.fromhex("".join(rows))
