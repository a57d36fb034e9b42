"""``hubctl bench``: the ingest's throughput and ack lag, against baselines of the same run.

- Events per second stored by the ingest's database path (events, cursors
  and derived tables in one transaction per batch), into SQLite and into
  PostgreSQL, each next to a raw batched ``INSERT`` of the same rows into a
  bare table on the same database: the ratio is the price of the books.
- End to end with the fleet simulator at N hubs (default 1,000) on a private
  Mosquitto: a steady load (ack lag: from a hub sending an event to the
  ack covering it) and a burst (events per second until all are acked).

Figures are reported, never asserted: machines differ.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from hubagent.bench.broker import broker
from hubagent.central import books
from hubagent.central.books import Incoming
from hubagent.central.db import Database

_BATCH = 1000


def _events(n: int, hubs: int, start: int) -> list[Incoming]:
    """``n`` stock moves spread over ``hubs`` hubs, seqs continuing from ``start``."""
    per_hub = max(1, n // hubs)
    return [Incoming(f"bench-{h:04d}", "b" * 32, start + k + 1, uuid.uuid4().hex, "stock.moved",
                     "2026-11-22T14:02:03.120Z",
                     {"movement": k, "type": "receive", "sku": f"SKU-{k % 7}", "bin": "A-01",
                      "delta": 1, "on_hand": start + k + 1, "negative": False})
            for h in range(hubs) for k in range(per_hub)]


def raw_insert_rate(url: str, n: int) -> float:
    """Rows/s of a plain batched INSERT of event rows into a bare table."""
    db = Database(url)
    try:
        with db.tx() as tx:
            tx.execute("CREATE TABLE IF NOT EXISTS bench_raw (hub TEXT, db TEXT, seq BIGINT, "
                       "id TEXT, kind TEXT, at TEXT, data TEXT, stored_at TEXT)")
        rows = [(e.hub, e.db, e.seq, e.id, e.kind, e.at, json.dumps(e.data), e.at)
                for e in _events(n, 200, 0)]
        started = time.perf_counter()
        for i in range(0, len(rows), _BATCH):
            with db.tx() as tx:
                tx.many("INSERT INTO bench_raw VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows[i:i + _BATCH])
        return len(rows) / (time.perf_counter() - started)
    finally:
        db.close()


def ingest_rate(url: str, n: int, hubs: int = 200) -> float:
    """Events/s through the ingest's store path (dedupe, cursors, derived stock)."""
    db = Database(url)
    try:
        db.migrate()
        per_batch_hub = max(1, _BATCH // hubs)
        rounds = max(1, n // _BATCH)
        started = time.perf_counter()
        stored = 0
        for r in range(rounds):
            batch = _events(per_batch_hub * hubs, hubs, r * per_batch_hub)
            with db.tx() as tx:
                stored += sum(c.new for c in books.store_events(tx, batch))
        return stored / (time.perf_counter() - started)
    finally:
        db.close()


@contextmanager
def _broker() -> Iterator[int]:
    """A private Mosquitto without queue limits on a free port (the hub bench's own)."""
    work = Path(tempfile.mkdtemp(prefix="hubctl-bench-"))
    try:
        with broker(work) as port:
            yield port
    finally:
        shutil.rmtree(work, ignore_errors=True)


def fleet_run(url: str, hubs: int, steady_s: float, burst: int) -> dict[str, float]:
    """Fleet of ``hubs`` + one ingest: ack lag at 1 event/s/hub, then a burst's rate."""
    from hubagent.central.fleet import Fleet
    from hubagent.central.ingest import Ingest, Options
    from hubagent.central.link import Broker
    from hubagent.settings import MqttSettings

    with _broker() as port:
        ingest = Ingest(Broker(MqttSettings(host="127.0.0.1", port=port)),
                        Options(db_url=url, gap_s=3.0))
        ready = threading.Event()
        runner = threading.Thread(target=ingest.run, kwargs={"ready": ready.set}, daemon=True)
        runner.start()
        try:
            if not ready.wait(30):
                raise RuntimeError("the ingest did not start")
            fleet = Fleet("127.0.0.1", port, hubs, name="bench", ack_timeout_s=10.0)
            fleet.start(timeout=60)
            try:
                fleet.record(1)
                fleet.wait_all_acked(120)
                fleet.ack_lags.clear()
                started = time.monotonic()
                while time.monotonic() - started < steady_s:  # 1 event per hub per second
                    fleet.record(1)
                    time.sleep(1.0)
                steady_ok = fleet.wait_all_acked(120)
                lags = sorted(fleet.ack_lags)
                before = fleet.total_events()
                started = time.monotonic()
                fleet.record(burst)
                burst_ok = fleet.wait_all_acked(300)
                burst_s = time.monotonic() - started
                return {"lag_p50_s": statistics.median(lags) if lags else float("nan"),
                        "lag_p95_s": lags[int(len(lags) * 0.95)] if lags else float("nan"),
                        "lag_max_s": lags[-1] if lags else float("nan"),
                        "steady_all_acked": float(steady_ok),
                        "burst_events_per_s": (fleet.total_events() - before) / burst_s,
                        "burst_all_acked": float(burst_ok)}
            finally:
                fleet.close()
        finally:
            ingest.stop()
            runner.join(30)


def run(hubs: int, events: int, pg_url: str | None) -> list[dict[str, Any]]:
    """All measurements; a database that cannot be reached is reported, not raised."""
    rows: list[dict[str, Any]] = []
    work = Path(tempfile.mkdtemp(prefix="hubctl-bench-db-"))
    server = None
    try:
        targets = [("sqlite", lambda name: f"sqlite:///{work}/{name}.db")]
        if pg_url is None:
            from hubagent.central.pgserver import PgServer, PgServerError

            try:
                server = PgServer().start()
                targets.append(("postgresql", server.create_db))
            except PgServerError as e:
                rows.append({"name": "postgresql", "error": str(e).splitlines()[0]})
        else:
            fixed = pg_url
            targets.append(("postgresql", lambda name: fixed))
        for kind, make in targets:
            raw = raw_insert_rate(make("raw"), events)
            stored = ingest_rate(make("ingest"), events)
            rows.append({"name": f"{kind}: raw batched INSERT", "value": raw, "unit": "rows/s"})
            rows.append({"name": f"{kind}: ingest store path", "value": stored, "unit": "events/s",
                         "note": f"{stored / raw:.0%} of the raw INSERT rate"})
            fr = fleet_run(make("fleet"), hubs, steady_s=10.0, burst=20)
            rows.append({"name": f"{kind}: ack lag p50 at {hubs} hubs x 1 ev/s",
                         "value": fr["lag_p50_s"], "unit": "s",
                         "note": f"p95 {fr['lag_p95_s']:.3f} s, max {fr['lag_max_s']:.3f} s, "
                                 f"all acked: {bool(fr['steady_all_acked'])}"})
            rows.append({"name": f"{kind}: end to end, burst of 20 per hub",
                         "value": fr["burst_events_per_s"], "unit": "events/s",
                         "note": f"all acked: {bool(fr['burst_all_acked'])}"})
    finally:
        if server is not None:
            server.stop()
        shutil.rmtree(work, ignore_errors=True)
    return rows


def main(args: argparse.Namespace) -> int:
    """``hubctl bench``."""
    rows = run(args.hubs, args.events, args.pg)
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    for row in rows:
        if "error" in row:
            print(f"{row['name']:<48} not measured: {row['error']}")
            continue
        print(f"{row['name']:<48} {row['value']:>12.3f} {row['unit']}")
        if row.get("note"):
            print(f"{'':<50}{row['note']}")
    return 0
