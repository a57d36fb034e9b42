"""``hubagent bench``: measurements a user can take on their own hub.

Each benchmark is a function ``(quick: bool) -> list[Row]`` registered in
:data:`BENCHES`; it imports heavy libraries inside the function, so
benchmarking the printer does not load OpenCV. Benchmarks build the hub
through :func:`hubagent.app.build_app` and the driver registry, like the
daemon; only the two decode/encode micro-benchmarks (:mod:`.camera`,
:mod:`.labels`) call a driver's own code path directly. Nothing in the
daemon imports this package. Targets are reported next to the measurement,
never asserted: a Pi 3 and a laptop differ.
"""

from __future__ import annotations

import platform
from typing import Any, Callable

from hubagent import __version__
from hubagent.bench import commands, footprint, kpi, lockers, printing, scale, scanning, sync, writes
from hubagent.bench.rows import Row, cached_bytecode, percentile
from hubagent.clock import SYSTEM

__all__ = ["BENCHES", "Row", "percentile", "render", "run_all"]


BENCHES: dict[str, Callable[[bool], list[Row]]] = {
    "idle": footprint.bench,
    "writes": writes.bench,
    "commands": commands.bench,
    "scale": scale.bench,
    "sync": sync.bench,
    "scanning": scanning.bench,
    "printing": printing.bench,
    "lockers": lockers.bench,
    "kpi": kpi.bench,
}


def run_all(only: list[str] | None = None, quick: bool = False) -> dict[str, Any]:
    """Run the selected benchmarks; failures are reported, not raised."""
    results: dict[str, Any] = {}
    with cached_bytecode():
        for name, bench in BENCHES.items():
            if only and name not in only:
                continue
            started = SYSTEM.monotonic()
            try:
                rows = bench(quick)
                results[name] = {"rows": rows, "seconds": round(SYSTEM.monotonic() - started, 2)}
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
