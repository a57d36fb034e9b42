"""The checks a print job must pass before it is queued.

The label is laid out for the printer it will go to, in the command's own
transaction, so a job that cannot print is refused with a clear error and
never queued. Values from the command line (strings only) are typed first.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from hubagent.errors import CommandError, InputError, LabelTooBig
from hubagent.ports import Printer, check_label_fits
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


def check_fits(template: Template, fields: Mapping[str, object], printer: Printer) -> None:
    """Lay the label out for ``printer`` now, so a job that cannot print is never queued."""
    try:
        label = template.layout(fields, printer.dpi, printer.width_dots)
    except InputError as e:
        raise CommandError(e.code, f"template {template.name!r}: {e.message}") from None
    try:
        check_label_fits(label, printer.width_dots, printer.height_dots)
    except LabelTooBig as e:
        raise CommandError(e.code, f"template {template.name!r}: {e.message}") from None
