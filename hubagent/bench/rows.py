"""The figures a benchmark reports, and helpers the benchmarks share."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
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


@contextmanager
def cached_bytecode() -> Iterator[None]:
    """Child processes start from compiled bytecode, as an installed hub does.

    pip compiles a package's bytecode when it installs it. With
    ``PYTHONDONTWRITEBYTECODE`` set (some shells and containers set it), a
    checkout would compile every module on every start and start-up figures
    would time the compiler. So the children may write bytecode, and the
    hub's own packages are compiled first (``compileall``, beside the
    sources, as pip does); the variable is restored afterwards.
    """
    saved = os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    try:
        dirs: list[str] = []
        for name in ("hubagent", "hubagent.drivers", "hubagent.sim"):
            spec = importlib.util.find_spec(name)
            if spec is not None and spec.submodule_search_locations:
                dirs += spec.submodule_search_locations
        subprocess.run(python("-m", "compileall", "-q", *dirs), check=False,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        yield
    finally:
        if saved is not None:
            os.environ["PYTHONDONTWRITEBYTECODE"] = saved
