"""Label fields from the hub's catalog and settings, filled in before a job is checked.

A template with ``catalog = "<field>"`` (the shelf label: ``catalog = "sku"``)
gets every field the job leaves out filled from that SKU's catalog entry:
name, price, GTIN, unit, default bin, net content and its unit. A field
the job gives always wins. Currency fields left out get the hub's
``[printing] currency``.

:func:`catalog_item` is the one place that reads the stock feature's
catalog tables for labels.
"""

from __future__ import annotations

import json
import sqlite3
from decimal import Decimal, InvalidOperation
from collections.abc import Mapping
from typing import Any

from hubagent.errors import CommandError
from hubagent.printing.templates import Template
from hubagent.store.store import Tx


def _consumer_gtin(gtins: list[str]) -> str | None:
    """The GTIN a shelf label shows: a valid consumer-unit GTIN (not an outer case), smallest first."""
    from hubagent.printing.symbols import valid_gtin

    units = [g for g in gtins if valid_gtin(g) and len(g) <= 14 and g.zfill(14).startswith("0")]
    return _printed_form(min(units, key=lambda g: g.zfill(14))) if units else None


def _printed_form(gtin: str) -> str:
    """The symbol a pack carries for a GTIN the catalog keeps as GTIN-14: EAN-8 or EAN-13."""
    g14 = gtin.zfill(14)
    return g14[6:] if g14.startswith("000000") else g14[1:]


def catalog_item(tx: Tx, sku: str) -> dict[str, Any] | None:
    """What a label may show about ``sku``: name, price, gtin, unit, bin, net_content, net_unit.

    None for a SKU the catalog does not know. Absent values are left out.
    ``net_content``/``net_unit`` are read from catalog columns of that name
    when the catalog has them, else from the item's ``extra`` object.
    """
    try:
        cur = tx.execute("SELECT * FROM skus WHERE sku=?", (sku,))
    except sqlite3.OperationalError:  # no stock feature, no catalog
        return None
    row = cur.fetchone()
    if row is None:
        return None
    item = dict(zip([c[0] for c in cur.description], row))
    extra = _extra(item.get("extra"))
    gtins = [r[0] for r in tx.execute("SELECT gtin FROM gtins WHERE sku=?", (sku,)).fetchall()]
    out: dict[str, Any] = {
        "name": item.get("name"),
        "price": item.get("price"),
        "gtin": _consumer_gtin(gtins),
        # "each" is the catalog's default: it says nothing on a shelf label.
        "unit": item.get("unit") if item.get("unit") not in (None, "", "each") else None,
        "bin": item.get("default_bin"),
        "net_content": _number(_column_or_extra(item, extra, "net_content")),
        "net_unit": _column_or_extra(item, extra, "net_unit"),
    }
    return {k: v for k, v in out.items() if v is not None and v != ""}


def _column_or_extra(item: dict[str, Any], extra: dict[str, Any], key: str) -> Any:
    """The catalog column ``key`` when set (``catalog.upsert``), else the item's extra data."""
    value = item.get(key)
    return value if value is not None else extra.get(key)


def _number(value: Any) -> Any:
    """A decimal string from the catalog column (``"0.75"``) as the number a label field takes."""
    if not isinstance(value, str):
        return value
    try:
        d = Decimal(value)
    except InvalidOperation:
        return value
    return int(d) if d == d.to_integral_value() else float(d)


def _extra(raw: object) -> dict[str, Any]:
    if not isinstance(raw, str):
        return {}
    try:
        doc = json.loads(raw)
    except ValueError:
        return {}
    return doc if isinstance(doc, dict) else {}


def fill(tx: Tx, template: Template, fields: Mapping[str, object], currency: str) -> dict[str, object]:
    """``fields`` completed from the catalog (for a template with ``catalog``) and the hub's currency.

    Raises CommandError ``unknown_sku`` when the catalog does not know the
    SKU and the job does not give every required field itself.
    """
    out = dict(fields)
    spec = template.spec
    key = spec.catalog
    sku = out.get(key) if key else None
    if isinstance(sku, str) and sku.strip():
        _fill_from_catalog(tx, template, out, sku.strip())
    for name, f in spec.fields.items():
        if f.kind == "currency" and _absent(out.get(name)):
            out[name] = currency
    return out


def _fill_from_catalog(tx: Tx, template: Template, out: dict[str, object], sku: str) -> None:
    specs = template.spec.fields
    item = catalog_item(tx, sku)
    if item is None:
        missing = [n for n, f in specs.items() if f.required and f.kind != "unit_price" and _absent(out.get(n))]
        if missing:
            raise CommandError("unknown_sku", f"SKU {sku!r} is not in the catalog; give {', '.join(missing)} "
                                              "or add the SKU with catalog.upsert")
        return
    for name, value in item.items():
        if name in specs and _absent(out.get(name)):
            out[name] = value
    for name, f in specs.items():
        if f.kind == "money" and f.required and _absent(out.get(name)):
            raise CommandError("missing_field", f"field {name!r} is required: SKU {sku!r} has no {name} "
                                                "in the catalog")


def _absent(value: object) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())
