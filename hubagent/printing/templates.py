"""Label templates: data files a hub can change without code.

Template file format (``hubagent/templates/<name>.toml``; a hub's own
directory may add templates or override built-ins by file name)::

    description = "Shelf-edge label"   # free text
    width_mm = 60.0                    # label size
    height_mm = 40.0

    [fields.name]                      # one table per field
    kind = "text"                      # text | number | barcode | qr | list
    required = true                    # default true
    max_length = 60                    # characters (items, for a list)
    decimals = 2                       # number only: digits after the point

    [[elements]]                       # drawn in order; positions in mm
    type = "text"                      # text | barcode | qr | line | box | image
    x_mm = 2.0                         # top-left of the element's box
    y_mm = 2.0
    w_mm = 56.0
    h_mm = 10.0
    text = "{name}"                    # "{field}" is replaced by the value
    size_mm = 4.0                      # font size (pixel height) ...
    min_size_mm = 2.0                  # ... shrunk down to this, then wrapped
    align = "left"                     # left | center | right
    when = "bin"                       # any element: drawn only if this field is set

Barcode elements take ``symbology`` (auto | code128 | ean13 | ean8 |
datamatrix; auto is EAN for a valid GTIN, else Code 128), ``data`` and an
optional ``fallback`` (used when ``data`` comes out empty), ``hri`` (print
the text under the bars), ``module_mm``/``min_module_mm`` (module width
range). ``qr`` elements take ``data``, ``fallback``, ``error`` (L/M/Q/H)
and the module range. ``line`` takes x1_mm/y1_mm/x2_mm/y2_mm/thickness_mm; ``box`` takes the
box plus thickness_mm and ``fill``; ``image`` takes the box and ``path``
(a PNG, relative to the template file). Curly braces are reserved for
field references. Layout never cuts: a value that cannot fit is an
InputError.

This module imports no imaging library at import time, so the scanning
module can import :data:`COMMAND_CODES` cheaply.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import msgspec

from hubagent.errors import ConfigError, InputError
from hubagent.printing.spec import (
    BarcodeSpec,
    BoxSpec,
    ElementSpec,
    FIELD_REF,
    FieldSpec,
    ImageSpec,
    LineSpec,
    QrSpec,
    ScanAs,
    TemplateFile,
    TextSpec,
)

if TYPE_CHECKING:
    from hubagent.printing.model import Label

log = logging.getLogger(__name__)

# The scanning module imports this list: these are the payloads of the mode
# barcodes on the command sheet, and the command_sheet template must print
# exactly these (a test checks it).
COMMAND_CODES: tuple[str, ...] = (
    "HA:MODE:RECEIVE",
    "HA:MODE:PICK",
    "HA:MODE:COUNT",
    "HA:MODE:MOVE",
    "HA:MODE:RETURN",
    "HA:MODE:LOOKUP",
    *(f"HA:QTY:{n}" for n in range(1, 11)),
    "HA:DONE",
    "HA:CANCEL",
    "HA:COND:RESELLABLE",
    "HA:COND:DAMAGED",
    "HA:ZERO",
)

@dataclass(frozen=True)
class Template:
    """A loaded, checked template; :meth:`layout` turns field values into a Label."""

    name: str
    spec: TemplateFile = field(repr=False)
    images: Mapping[str, bytes] = field(default_factory=dict, repr=False)
    font: str = ""  # the font file this hub prints the template with ("" = the default font)

    def with_font(self, font: str) -> "Template":
        """This template printed with the font file ``font``."""
        return dataclasses.replace(self, font=font)

    def layout(self, fields: Mapping[str, object], dpi: int, width_dots: int) -> Label:
        """Validate ``fields`` and lay the label out at ``dpi``.

        Raises InputError (missing_field, unknown_field, wrong_type,
        value_too_long, bad_barcode_data, text_does_not_fit,
        barcode_does_not_fit, label_too_wide) and never cuts a value.
        """
        # Imported here: layout loads Pillow's font code, which a hub
        # without printers (or checking its config) never needs.
        from hubagent.printing.layout import lay_out

        return lay_out(self, fields, dpi, width_dots)


def builtin_dir() -> Path:
    """Directory of the templates shipped with hubagent."""
    from importlib import resources  # here, not at import: it costs start-up time

    return Path(str(resources.files("hubagent") / "templates"))


def load_templates(extra_dir: Path | None = None) -> dict[str, Template]:
    """Built-in templates, overridden (by file name) by those in ``extra_dir``.

    Raises ConfigError naming the file and key for a template that is invalid.
    """
    templates = {p.stem: load_template(p) for p in sorted(builtin_dir().glob("*.toml"))}
    if extra_dir is not None:
        if not extra_dir.is_dir():
            raise ConfigError(str(extra_dir), "", "template directory does not exist")
        for path in sorted(extra_dir.glob("*.toml")):
            if path.stem in templates:
                log.info("template %s overridden by %s", path.stem, path)
            templates[path.stem] = load_template(path)
    return templates


def get_template(templates: Mapping[str, Template], name: str) -> Template:
    """``templates[name]``, or InputError("unknown_template") listing the known names."""
    try:
        return templates[name]
    except KeyError:
        known = ", ".join(sorted(templates))
        raise InputError("unknown_template", f"no template {name!r} (known: {known})") from None


def load_template(path: Path) -> Template:
    """Read and check one template file."""
    try:
        spec = msgspec.toml.decode(path.read_bytes(), type=TemplateFile)
    except OSError as e:
        raise ConfigError(str(path), "", f"cannot read: {e}") from e
    except msgspec.ValidationError as e:
        key = str(e).rpartition("at `$.")[2].rstrip("`") if "at `$." in str(e) else ""
        raise ConfigError(str(path), key, str(e)) from e
    except msgspec.DecodeError as e:
        raise ConfigError(str(path), "", f"not valid TOML: {e}") from e
    _check(path, spec)
    images = {}
    for i, el in enumerate(spec.elements):
        if isinstance(el, ImageSpec):
            try:
                images[el.path] = (path.parent / el.path).read_bytes()
            except OSError as e:
                raise ConfigError(str(path), f"elements[{i}].path", f"cannot read image: {e}") from e
    return Template(name=path.stem, spec=spec, images=images)


def _check_fields(path: Path, spec: TemplateFile) -> None:
    """Fields that name other fields name fields of the right kind."""
    if spec.catalog and spec.catalog not in spec.fields:
        raise ConfigError(str(path), "catalog", f"unknown field {spec.catalog!r}")
    refs = {"currency": ("currency",), "price": ("money",), "content": ("number",), "content_unit": ("text",)}
    needs = {"money": ("currency",), "unit_price": ("price", "content", "content_unit")}
    for name, f in spec.fields.items():
        for attr in needs.get(f.kind, ()):
            target = getattr(f, attr)
            if spec.fields.get(target) is None or spec.fields[target].kind not in refs[attr]:
                raise ConfigError(str(path), f"fields.{name}.{attr}",
                                  f"must name a {' or '.join(refs[attr])} field of this template")


def _check(path: Path, spec: TemplateFile) -> None:
    """Every field reference resolves and every element lies on the label."""
    _check_fields(path, spec)
    for i, el in enumerate(spec.elements):
        key = f"elements[{i}]"
        for text in _texts(el):
            for ref in FIELD_REF.findall(text):
                if ref not in spec.fields:
                    raise ConfigError(str(path), key, f"refers to unknown field {{{ref}}}")
        if el.when and el.when not in spec.fields:
            raise ConfigError(str(path), f"{key}.when", f"unknown field {el.when!r}")
        right, bottom = _extent(el)
        if right > spec.width_mm + 1e-6 or bottom > spec.height_mm + 1e-6:
            raise ConfigError(str(path), key, "element extends beyond the label")
        if isinstance(el, TextSpec) and el.min_size_mm > el.size_mm:
            raise ConfigError(str(path), f"{key}.min_size_mm", "larger than size_mm")
        if isinstance(el, (BarcodeSpec, QrSpec)) and el.min_module_mm > el.module_mm:
            raise ConfigError(str(path), f"{key}.min_module_mm", "larger than module_mm")


def _texts(el: ElementSpec) -> list[str]:
    if isinstance(el, TextSpec):
        return [el.text]
    if isinstance(el, BarcodeSpec):
        return [el.data, el.fallback]
    if isinstance(el, QrSpec):
        return [el.data, el.fallback]
    return []


def _extent(el: ElementSpec) -> tuple[float, float]:
    if isinstance(el, LineSpec):
        return max(el.x1_mm, el.x2_mm), max(el.y1_mm, el.y2_mm)
    return el.x_mm + el.w_mm, el.y_mm + el.h_mm
