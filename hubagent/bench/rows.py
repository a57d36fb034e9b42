"""The figures a benchmark reports, and helpers the benchmarks share."""

from __future__ import annotations

import sys
from typing import TypedDict


class Row(TypedDict, total=False):
    """One measured figure."""

    name: str
    value: float
    unit: str
    target: str
    met: bool | None
    note: str


def percentile(samples: list[float], pct: float) -> float:
    """The ``pct`` percentile (nearest rank) of ``samples``."""
    ordered = sorted(samples)
    if not ordered:
        return float("nan")
    k = max(0, min(len(ordered) - 1, round(pct / 100 * len(ordered) + 0.5) - 1))
    return ordered[k]


def python(*args: str) -> list[str]:
    """A command line running this Python on ``args``.

    ``-P`` keeps the current directory off ``sys.path``: a folder named
    ``hubagent`` where the user runs ``hubagent bench`` must not shadow the
    installed package in the benchmark's child processes.
    """
    return [sys.executable, "-P", *args]
