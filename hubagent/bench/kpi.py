"""KPI cost against the size of the ledger: ``kpi.get`` and the telemetry block.

Builds two hubs in temporary directories through :func:`hubagent.app.build_app`:
one with a small ledger (1,000 movements, 100 SKUs) and one with a large one
(1,000,000 movements over 10,000 SKUs and a year; ``--quick``: 100,000 over
1,000). The movements are written with bulk ``INSERT``s and folded into the
rollups with ``kpi.rebuild``-equivalent SQL, because going through the hub
one movement at a time would take an hour. Then it times ``kpi.get`` for
random SKUs and the telemetry's KPI block through the real dispatcher; the
targets are 20 ms each, and the ratio large/small shows whether the cost
grows with the ledger.
"""

from __future__ import annotations

import json
import random
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

from hubagent.bench.rows import Row, percentile

TARGET_MS = 20.0


def _hub(state: Path, movements: int, skus: int) -> Any:
    from hubagent.app import build_app
    from hubagent.config import from_dict

    app = build_app(from_dict({"hub": {"id": "bench-kpi", "state_dir": str(state), "timezone": "Europe/Berlin"}}))
    app.store.open()
    _fill(app, movements, skus)
    return app


def _fill(app: Any, movements: int, skus: int) -> None:
    """A year of receipts and picks, written in bulk, rollups folded in SQL."""
    rng = random.Random(7)
    conn = app.store.conn
    now = app.clock.now()
    start = now.timestamp() - 365 * 86400
    with app.store.write() as tx:
        tx.execute("INSERT INTO bins(code, kind, created_at) VALUES ('A-01', 'shelf', ?)", (tx.now,))
        conn.executemany("INSERT INTO skus(sku, name, unit, updated_at) VALUES (?, ?, 'each', ?)",
                         [(f"SKU-{i:05d}", f"Item {i}", tx.now) for i in range(skus)])
    batch: list[tuple[Any, ...]] = []
    with app.store.write() as tx:
        for n in range(movements):
            sku = f"SKU-{rng.randrange(skus):05d}"
            at = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(start + n * 365 * 86400 / movements))
            kind, delta = ("receive", 10) if rng.random() < 0.2 else ("pick", -2)
            batch.append((f"m{n:08x}", n + 1, kind, sku, "A-01", delta, at))
            if len(batch) >= 20000:
                conn.executemany("INSERT INTO movements(id, seq, type, sku, bin, delta, at) "
                                 "VALUES (?, ?, ?, ?, ?, ?, ?)", batch)
                batch.clear()
        if batch:
            conn.executemany("INSERT INTO movements(id, seq, type, sku, bin, delta, at) "
                             "VALUES (?, ?, ?, ?, ?, ?, ?)", batch)
        tx.execute("INSERT INTO balances(sku, bin, on_hand) SELECT sku, bin, SUM(delta) FROM movements "
                   "GROUP BY sku, bin")
        # The daily rollups, as the incremental path leaves them (days in UTC here: the
        # figure measured is the cost of reading them, not their exact day boundaries).
        tx.execute(
            "INSERT INTO kpi_sku_day(sku, day, sold, received, returned, damaged, end_sellable) "
            "SELECT sku, substr(at, 1, 10), SUM(CASE WHEN type='pick' THEN -delta ELSE 0 END), "
            "SUM(CASE WHEN type='receive' THEN delta ELSE 0 END), 0, 0, 0 FROM movements "
            "GROUP BY sku, substr(at, 1, 10)")


def _time(app: Any, name: str, args: Callable[[int], dict[str, Any]], n: int) -> list[float]:
    samples = []
    for i in range(n):
        payload = json.dumps({"id": f"b{i}", **args(i)}).encode()
        t0 = time.perf_counter()
        reply = app.commands.handle(name, payload)
        samples.append((time.perf_counter() - t0) * 1000)
        if not reply.get("ok"):
            raise RuntimeError(f"{name} failed: {reply}")
    return samples


def _measure(movements: int, skus: int, n: int) -> tuple[float, float, float]:
    state = Path(tempfile.mkdtemp(prefix="bench-kpi-"))
    try:
        app = _hub(state, movements, skus)
        rng = random.Random(11)
        per_sku = _time(app, "kpi.get", lambda i: {"sku": f"SKU-{rng.randrange(skus):05d}"}, n)
        hub = _time(app, "kpi.get", lambda i: {}, n)
        app.store.close()
        return percentile(per_sku, 50), percentile(per_sku, 99), percentile(hub, 99)
    finally:
        shutil.rmtree(state, ignore_errors=True)


def bench(quick: bool) -> list[Row]:
    """kpi.get and the telemetry KPI block with a small and a large ledger."""
    big_moves, big_skus = (100_000, 1_000) if quick else (1_000_000, 10_000)
    small = _measure(1_000, 100, 50)
    big = _measure(big_moves, big_skus, 50 if quick else 200)
    label = f"{big_moves:,} movements, {big_skus:,} SKUs"
    return [
        Row(name=f"kpi.get for a SKU, p50 ({label})", value=big[0], unit="ms", target=f"< {TARGET_MS:g} ms",
            met=big[0] < TARGET_MS),
        Row(name=f"kpi.get for a SKU, p99 ({label})", value=big[1], unit="ms", target=f"< {TARGET_MS:g} ms",
            met=big[1] < TARGET_MS, note=f"1,000 movements: p99 {small[1]:.2f} ms"),
        Row(name=f"hub KPI block (telemetry), p99 ({label})", value=big[2], unit="ms",
            target=f"< {TARGET_MS:g} ms", met=big[2] < TARGET_MS, note=f"1,000 movements: p99 {small[2]:.2f} ms"),
        Row(name="kpi.get p99, large ledger / small ledger", value=big[1] / small[1] if small[1] else 0.0,
            unit="x", target="~1 (flat)", met=None),
    ]
