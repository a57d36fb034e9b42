"""Checks on label previews: is the text drawn with the font's real glyphs?

The expected text is drawn straight with Pillow from the font file (not
through hubagent's font code) at the size and position the layout chose,
and compared dot for dot with the printed preview; the same text
transliterated to ASCII must differ, so the check can fail.
"""

from __future__ import annotations

from PIL import Image, ImageChops, ImageDraw, ImageFont
from unidecode import unidecode

from hubagent.printing.fonts import default_font_path
from hubagent.printing.model import Label, Text


def reference(lines: tuple[str, ...], font_path: str, size: int, line_height: int, align: str,
              width: int, height: int) -> Image.Image:
    """The lines drawn straight with Pillow and the font file, as the label box should show them."""
    font = ImageFont.truetype(font_path, size)
    img = Image.new("1", (width, height), 1)
    draw = ImageDraw.Draw(img)
    for i, line in enumerate(lines):
        w = int(font.getlength(line) + 0.999)
        x = {"left": 0, "center": (width - w) // 2, "right": width - w}[align]
        draw.text((x, i * line_height), line, font=font, fill=0)
    return img


def differs(a: Image.Image, b: Image.Image) -> int:
    """How many dots differ between two same-size 1-bit images."""
    xor = ImageChops.logical_xor(a.convert("1"), b.convert("1"))
    return sum(1 for px in xor.convert("L").tobytes() if px)


def text_boxes(label: Label, word: str) -> list[Text]:
    """The text elements of ``label`` that show ``word``."""
    return [el for el in label.elements if isinstance(el, Text) and word in " ".join(el.lines)]


def check_glyphs(preview: Image.Image, boxes: list[Text], word: str) -> None:
    """Each box shows its lines drawn with the font file's real glyphs, not an ASCII stand-in."""
    font = default_font_path()  # the file itself, not through hubagent's font code
    for el in boxes:
        printed = preview.crop((el.x, el.y, el.x + el.width, el.y + el.height))
        expected = reference(el.lines, font, el.size, el.line_height, el.align, el.width, el.height)
        ascii_only = reference(tuple(unidecode(ln) for ln in el.lines), font, el.size, el.line_height, el.align,
                               el.width, el.height)
        assert differs(printed, expected) == 0, f"{word!r}: the label does not show the real glyphs"
        assert differs(printed, ascii_only) > 0, f"{word!r}: indistinguishable from {unidecode(word)!r}"
