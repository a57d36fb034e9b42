"""Label render-and-encode time per template and printer language."""

from __future__ import annotations

from hubagent.bench.rows import Row

TARGET_MS = 50.0  # for a 4x6 label at 203 dpi on a developer machine


def bench(quick: bool) -> list[Row]:
    """p50 and p99 milliseconds of layout + render + encode, per built-in template and language."""
    from hubagent.bench.labels import bench_render

    runs = 5 if quick else 30
    rows: list[Row] = []
    note = f"{runs} runs each; layout + render + encode for a 4x6 in, 203 dpi head"
    for key, stats in bench_render(runs).items():
        template, _, language = key.partition("/")
        for pct in ("p50", "p99"):
            value = stats[pct]
            rows.append(Row(name=f"{template} label, {language}, {pct}", value=value, unit="ms",
                            target=f"< {TARGET_MS:g} ms", met=value < TARGET_MS,
                            note="" if rows else note))
    return rows
