"""``hubagent bench``: measurements a user can take on their own hub.

Each benchmark is a function ``(quick: bool) -> list[Row]`` registered in
:data:`BENCHES` by ``"module:function"``; it imports what it needs itself,
so benchmarking the printer does not load OpenCV. Targets are reported next
to the measurement, never asserted: a Pi 3 and a laptop differ.
"""

from __future__ import annotations

import importlib
import platform
import time
from typing import Any, TypedDict

from hubagent import __version__


class Row(TypedDict, total=False):
    """One measured figure."""

    name: str
    value: float
    unit: str
    target: str
    met: bool | None
    note: str


BENCHES: dict[str, str] = {
    "startup": "hubagent.bench.startup:bench",
    "sync": "hubagent.bench.sync:bench",
    "scanning": "hubagent.bench.scanning:bench",
    "printing": "hubagent.bench.printing:bench",
    "lockers": "hubagent.bench.lockers:bench",
}


def run_all(only: list[str] | None = None, quick: bool = False) -> dict[str, Any]:
    """Run the selected benchmarks; failures are reported, not raised."""
    results: dict[str, Any] = {}
    for name, ref in BENCHES.items():
        if only and name not in only:
            continue
        module, _, attr = ref.partition(":")
        started = time.monotonic()
        try:
            rows = getattr(importlib.import_module(module), attr)(quick)
            results[name] = {"rows": rows, "seconds": round(time.monotonic() - started, 2)}
        except Exception as e:  # a missing broker must not hide the other figures
            results[name] = {"error": f"{type(e).__name__}: {e}"}
    return {"version": __version__, "machine": platform.machine(), "python": platform.python_version(),
            "node": platform.node(), "benchmarks": results}


def render(report: dict[str, Any]) -> str:
    """The report as an aligned table."""
    lines = [f"hubagent {report['version']} bench on {report['node']} "
             f"({report['machine']}, Python {report['python']})", ""]
    lines.append(f"{'benchmark':<10} {'measure':<44} {'value':>12} {'unit':<8} {'target':<14} met")
    for bench, result in report["benchmarks"].items():
        if "error" in result:
            lines.append(f"{bench:<10} ERROR {result['error']}")
            continue
        for row in result["rows"]:
            met = {True: "yes", False: "NO", None: "-"}[row.get("met")]
            lines.append(f"{bench:<10} {row['name']:<44} {row['value']:>12.3f} {row['unit']:<8} "
                         f"{row.get('target', ''):<14} {met}")
            if row.get("note"):
                lines.append(f"{'':<10}   {row['note']}")
    return "\n".join(lines)


def percentile(samples: list[float], pct: float) -> float:
    """The ``pct`` percentile (nearest rank) of ``samples``."""
    ordered = sorted(samples)
    if not ordered:
        return float("nan")
    k = max(0, min(len(ordered) - 1, round(pct / 100 * len(ordered) + 0.5) - 1))
    return ordered[k]
