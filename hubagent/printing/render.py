"""Draw a laid-out :class:`~hubagent.printing.model.Label` as a 1-bit image.

The only drawing code in hubagent: every printer language encodes this
image, so what the preview shows is what the printer prints.
"""

from __future__ import annotations

import io
import logging

from PIL import Image, ImageDraw

from hubagent.errors import InputError
from hubagent.printing import fit, model

log = logging.getLogger(__name__)

WHITE, BLACK = 1, 0


def render(label: model.Label) -> Image.Image:
    """The label as a mode "1" image, white background, ``label.width`` x ``label.height``."""
    img = Image.new("1", (label.width, label.height), WHITE)
    draw = ImageDraw.Draw(img)
    for el in label.elements:
        if isinstance(el, model.Text):
            _text(draw, el)
        elif isinstance(el, model.Barcode):
            _barcode(img, draw, el)
        elif isinstance(el, model.Line):
            draw.line((el.x1, el.y1, el.x2, el.y2), fill=BLACK, width=el.thickness)
        elif isinstance(el, model.Box):
            _box(draw, el)
        elif isinstance(el, model.Image):
            _image(img, el)
    return img


def _text(draw: ImageDraw.ImageDraw, el: model.Text) -> None:
    font = fit.font(el.size, el.font)
    for i, line in enumerate(el.lines):
        width = fit.text_width(line, el.size, el.font)
        if el.align == "center":
            x = el.x + (el.width - width) // 2
        elif el.align == "right":
            x = el.x + el.width - width
        else:
            x = el.x
        # No anti-aliasing: a 1-bit head prints grey as speckle.
        draw.text((x, el.y + i * el.line_height), line, font=font, fill=BLACK)


def symbol_image(rows: tuple[str, ...], module: int, height: int | None = None) -> Image.Image:
    """The module pattern at ``module`` dots per module (linear rows stretched to ``height``)."""
    cols = len(rows[0])
    small = Image.frombytes("L", (cols, len(rows)), b"".join(r.translate(_TO_BYTES).encode("latin-1") for r in rows))
    size = (cols * module, height if height is not None else len(rows) * module)
    # NEAREST keeps every module an exact whole number of dots.
    return small.resize(size, Image.Resampling.NEAREST).convert("1", dither=Image.Dither.NONE)


_TO_BYTES = str.maketrans({"1": "\x00", "0": "\xff"})


def _barcode(img: Image.Image, draw: ImageDraw.ImageDraw, el: model.Barcode) -> None:
    linear = el.symbology in model.LINEAR
    img.paste(symbol_image(el.rows, el.module, el.height if linear else None), (el.x, el.y))
    if el.hri:
        width = fit.text_width(el.hri, el.hri_size, el.hri_font)
        x = el.x + (el.width - width) // 2
        draw.text((x, el.y + el.height), el.hri, font=fit.font(el.hri_size, el.hri_font), fill=BLACK)


def _box(draw: ImageDraw.ImageDraw, el: model.Box) -> None:
    corners = (el.x, el.y, el.x + el.width - 1, el.y + el.height - 1)
    if el.fill:
        draw.rectangle(corners, fill=BLACK)
    else:
        draw.rectangle(corners, outline=BLACK, width=el.thickness)


def _image(img: Image.Image, el: model.Image) -> None:
    try:
        with Image.open(io.BytesIO(el.png)) as src:
            src.load()
            pic = src.convert("RGBA")
    except (OSError, ValueError) as e:
        raise InputError("bad_image", f"cannot read the label image: {e}") from e
    pic.thumbnail((el.width, el.height))
    flat = Image.new("RGBA", pic.size, (255, 255, 255, 255))
    flat.alpha_composite(pic)
    # Floyd-Steinberg dithering keeps a photo-like logo recognisable in 1 bit.
    mono = flat.convert("L").convert("1")
    img.paste(mono, (el.x + (el.width - pic.width) // 2, el.y + (el.height - pic.height) // 2))
