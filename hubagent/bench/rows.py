"""The figures a benchmark reports, and helpers the benchmarks share."""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
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
    """Child processes keep their compiled bytecode, in a temporary cache.

    An installed hub starts from bytecode pip compiled at install time.
    With ``PYTHONDONTWRITEBYTECODE`` set (some shells and containers set
    it), a checkout would compile every module on every start, and start-up
    figures would measure the compiler. Children get a cache of their own
    (``PYTHONPYCACHEPREFIX``), so nothing is written beside the sources;
    each start-up figure drops its first run, which fills it.
    """
    saved = {k: os.environ.get(k) for k in ("PYTHONDONTWRITEBYTECODE", "PYTHONPYCACHEPREFIX")}
    cache = tempfile.mkdtemp(prefix="hubagent-bench-pycache-")
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    os.environ["PYTHONPYCACHEPREFIX"] = cache
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        shutil.rmtree(cache, ignore_errors=True)
