"""Decode the ESC/POS that hubagent emits back into images.

Understands what :func:`hubagent.drivers.escpos_printer.write_label` sends
through python-escpos 3.1: ``ESC @`` (init), ``GS v 0`` raster images,
``ESC d n`` (print and feed), ``GS V`` (cut), plus plain text lines with
``ESC t`` (code page), ``ESC 2``/``ESC 3`` (line spacing) and ``LF``, so a
text receipt previews too. Anything else is a ValueError: the decoder must
not silently skip bytes a real printer would act on.
"""

from __future__ import annotations


from PIL import Image, ImageDraw, ImageFont
import msgspec

ESC, GS, LF = 0x1B, 0x1D, 0x0A
_INVERT = bytes(255 - i for i in range(256))
DEFAULT_LINE = 30  # dots per line at the default 1/6 inch spacing on a 180/203 dpi head


class EscposJob(msgspec.Struct):
    """The decoded job: one image per cut-off piece of paper and the cut count."""

    pages: list[Image.Image] = msgspec.field(default_factory=list)
    cuts: int = 0


class _Paper:
    """Paper coming out of the printer: a list of image strips."""

    def __init__(self, width: int) -> None:
        self.width = width
        self.strips: list[Image.Image] = []
        self.line = DEFAULT_LINE
        self.text = bytearray()

    def add(self, strip: Image.Image) -> None:
        self.flush_text()
        self.strips.append(strip)

    def feed(self, lines: int) -> None:
        self.flush_text()
        if lines:
            self.strips.append(Image.new("1", (self.width, lines * self.line), 1))

    def flush_text(self, newline: bool = False) -> None:
        if not self.text and not newline:
            return
        strip = Image.new("1", (self.width, self.line), 1)
        font = ImageFont.load_default(size=max(8, self.line - 6))
        ImageDraw.Draw(strip).text((0, 2), self.text.decode("cp437"), font=font, fill=0)
        self.text.clear()
        self.strips.append(strip)

    def tear(self) -> Image.Image:
        self.flush_text()
        width = max([self.width, *(s.width for s in self.strips)])
        height = sum(s.height for s in self.strips) or 1
        page = Image.new("1", (width, height), 1)
        y = 0
        for s in self.strips:
            page.paste(s, (0, y))
            y += s.height
        self.strips = []
        return page


def decode(data: bytes, width: int = 0) -> EscposJob:
    """Decode ``data``; ``width`` is the paper width in dots (0: widest image)."""
    job = EscposJob()
    paper = _Paper(width)
    i = 0
    while i < len(data):
        b = data[i]
        if b == ESC:
            i = _esc(data, i, paper)
        elif b == GS:
            i, cut = _gs(data, i, paper)
            if cut:
                job.pages.append(paper.tear())
                job.cuts += 1
        elif b == LF:
            paper.flush_text(newline=True)
            i += 1
        elif b >= 0x20:
            paper.text.append(b)
            i += 1
        else:
            raise ValueError(f"unexpected control byte 0x{b:02x} at offset {i}")
    if paper.strips or paper.text:
        job.pages.append(paper.tear())
    return job


def _need(data: bytes, i: int, n: int) -> bytes:
    if i + n > len(data):
        raise ValueError(f"truncated command at offset {i}")
    return data[i : i + n]


def _esc(data: bytes, i: int, paper: _Paper) -> int:
    cmd = _need(data, i, 2)[1]
    if cmd == ord("@"):
        paper.line = DEFAULT_LINE
        return i + 2
    if cmd == ord("d"):
        paper.feed(_need(data, i, 3)[2])
        return i + 3
    if cmd == ord("t"):
        _need(data, i, 3)
        return i + 3
    if cmd == ord("2"):
        paper.line = DEFAULT_LINE
        return i + 2
    if cmd == ord("3"):
        paper.line = max(1, _need(data, i, 3)[2])
        return i + 3
    raise ValueError(f"unexpected ESC 0x{cmd:02x} at offset {i}")


def _gs(data: bytes, i: int, paper: _Paper) -> tuple[int, bool]:
    cmd = _need(data, i, 2)[1]
    if cmd == ord("v"):
        head = _need(data, i, 8)
        if head[2] != ord("0"):
            raise ValueError(f"unexpected GS v {head[2]:#x} at offset {i}")
        width_bytes = head[4] | head[5] << 8
        height = head[6] | head[7] << 8
        raw = _need(data, i + 8, width_bytes * height)
        # ESC/POS raster: 1 = black; PIL "1": 1 = white.
        strip = Image.frombytes("1", (width_bytes * 8, height), raw.translate(_INVERT))
        paper.add(strip)
        return i + 8 + width_bytes * height, False
    if cmd == ord("V"):
        mode = _need(data, i, 3)[2]
        # Function A (m = 0/1, "0"/"1") has no n; function B (m = 65/66) has n.
        return i + (4 if mode in (65, 66) else 3), True
    raise ValueError(f"unexpected GS 0x{cmd:02x} at offset {i}")
