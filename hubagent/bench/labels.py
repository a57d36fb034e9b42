"""Micro-benchmark: layout + render + encode of every built-in template.

Measures what one print job costs on the hub's CPU before any bytes leave:
the ESC/POS figure covers python-escpos' raster encoding (on a ``Dummy``
printer), the ZPL figure the compressed ``^GFA`` encoding. Printers are a
4x6 inch (101.6 mm) 203 dpi head. Imports python-escpos lazily; without it
only ZPL is measured.
"""

from __future__ import annotations

import importlib.util
import statistics
import time
from collections.abc import Callable, Mapping

from hubagent.printing import zpl
from hubagent.printing.model import Label
from hubagent.printing.render import render
from hubagent.printing.templates import load_templates

DPI = 203
WIDTH_DOTS = 812  # 4 inch at 203 dpi

SAMPLE_FIELDS: Mapping[str, Mapping[str, object]] = {
    "shelf": {"name": "Organic whole milk 3.5% 1 L", "price": 1.29, "currency": "EUR", "sku": "MILK-0001",
              "bin": "A-01-3", "gtin": "4006381333931", "net_content": 1, "net_unit": "l"},
    "parcel": {"parcel_id": "PCL-2026-000123", "compartment": "A3", "recipient": "Jane Doe", "hub": "Hub 7"},
    "pickup": {"parcel": "PCL-2026-000123", "compartment": "A3", "code": "482913",
               "qr": "https://example.invalid/p/482913", "expiry": "2026-11-29 20:00"},
    "return": {"return_id": "RET-000042", "order_id": "ORD-77", "customer": "Jane Doe", "reason": "Wrong size",
               "destination": "Central returns, Hall 4, Example Street 12, 12345 Town"},
    "picklist": {"title": "Pick list ORD-77", "order_id": "ORD-77",
                 "lines": [f"{i} x Item number {i} from bin A-0{i % 10}" for i in range(1, 31)]},
    "bin": {"bin": "A-01-3", "zone": "Chilled"},
    "command_sheet": {"title": "Hub 7"},
}
"""Realistic field values per built-in template (also used by the tests)."""


def _escpos_encoder() -> Callable[[Label], bytes] | None:
    if importlib.util.find_spec("escpos") is None:
        return None
    # The driver module owns python-escpos; the core never imports it directly.
    from hubagent.drivers.escpos_printer import encode_escpos

    def encode(label: Label) -> bytes:
        image = render(label)
        return bytes(encode_escpos(image, width_dots=WIDTH_DOTS, width_mm=101.6, dpi=DPI, copies=1, cutter=True))

    return encode


def _percentiles(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    return {"p50": statistics.median(ordered), "p99": p99}


def bench_render(n: int) -> dict[str, dict[str, float]]:
    """Per "<template>/<language>": p50 and p99 milliseconds over ``n`` runs."""
    if n < 1:
        raise ValueError("n must be at least 1")
    templates = load_templates()
    encoders: dict[str, Callable[[Label], bytes]] = {"zpl": lambda lab: zpl.encode_image(render(lab))}
    escpos = _escpos_encoder()
    if escpos is not None:
        encoders["escpos"] = escpos
    results: dict[str, dict[str, float]] = {}
    for name, fields in SAMPLE_FIELDS.items():
        template = templates[name]
        for language, encode in encoders.items():
            encode(template.layout(fields, DPI, WIDTH_DOTS))  # warm caches (fonts, symbols)
            samples = []
            for _ in range(n):
                start = time.perf_counter()
                encode(template.layout(fields, DPI, WIDTH_DOTS))
                samples.append((time.perf_counter() - start) * 1000.0)
            results[f"{name}/{language}"] = _percentiles(samples)
    return results
