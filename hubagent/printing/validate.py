"""The checks a print job must pass before it is queued.

The label is laid out for the printer it will go to, in the command's own
transaction, so a job that cannot print is refused with a clear error and
never queued. Values from the command line (strings only) are typed first.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Protocol, runtime_checkable

from hubagent.errors import CommandError, InputError
from hubagent.ports import Printer
from hubagent.printing.templates import Template

_NUMBER = re.compile(r"-?\d{1,15}(\.\d{1,15})?")


def coerce_fields(template: Template, fields: Mapping[str, object]) -> dict[str, object]:
    """Field values with command-line strings made typed: "1.29" for a number, "x" for a list of one.

    The command line can only send strings; JSON clients send typed values
    and are unaffected. Anything else is left for the layout to judge.
    """
    out = dict(fields)
    for name, spec in template.spec.fields.items():
        value = out.get(name)
        if not isinstance(value, str) or not value.strip():
            continue
        if spec.kind == "number" and _NUMBER.fullmatch(value.strip()):
            text = value.strip()
            out[name] = float(text) if "." in text else int(text)
        elif spec.kind == "list":
            out[name] = [value]
    return out


@runtime_checkable
class FixedLength(Protocol):
    """A printer whose labels have a fixed length (ZPL label stock)."""

    @property
    def height_dots(self) -> int:
        """The label length in dots."""
        ...


def check_fits(template: Template, fields: Mapping[str, object], printer: Printer) -> None:
    """Lay the label out for ``printer`` now, so a job that cannot print is never queued."""
    try:
        label = template.layout(fields, printer.dpi, printer.width_dots)
    except InputError as e:
        raise CommandError(e.code, f"template {template.name!r}: {e.message}") from None
    height = printer.height_dots if isinstance(printer, FixedLength) else None
    if printer.language == "zpl" and height is not None and label.height > height:
        raise CommandError("label_too_long", f"template {template.name!r} is {label.height} dots long; "
                                             f"the printer's labels are {height}")
