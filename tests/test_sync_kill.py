"""The hub is SIGKILLed at random points while staff record movements.

A writer records movements through the local API; each ``ok`` reply is the
beep staff hear. The daemon is killed (SIGKILL: a crash or a power cut as
far as the process can tell) at random moments and restarted on the same
state directory. One Central client watches all runs: it flags any seq that
arrives with two different event ids.
"""

from __future__ import annotations

import random
import time
from pathlib import Path
from typing import Any, Callable

from central import Central
from fixtures_mqtt import MosquittoBroker
from hubproc import Daemon, wait_until
from test_sync_faults import (Writer, db_rows, fold, hub_balances, restart_hub, start_online,
                              wait_all_delivered)

RUNS = 12


def _kill_runs(hub: Daemon, daemon_factory: Callable[..., Daemon], tmp_path: Path, runs: int,
               seed: int) -> tuple[Daemon, dict[str, tuple[int, str, str, int]]]:
    """Record, kill at a random moment, restart; ``runs`` times. Returns the live hub."""
    rng = random.Random(seed)
    acked: dict[str, tuple[int, str, str, int]] = {}
    for run in range(runs):
        if run:
            hub = restart_hub(daemon_factory, tmp_path)
        writer = Writer(hub.socket_path, f"s{seed}r{run}", seed=seed * 100 + run).start()
        wait_until(lambda: writer.acked or writer.errors, 20, "a first movement")
        time.sleep(rng.uniform(0.0, 0.5))  # the random kill point is the point of the test
        hub.kill()
        writer.stop()
        assert len(writer.errors) <= 1, writer.errors  # at most the request the kill cut off
        acked.update(writer.acked)
    return restart_hub(daemon_factory, tmp_path), acked


def _check_database(db: Path, acked: dict[str, tuple[int, str, str, int]], last: int) -> None:
    """Every acknowledged movement is there with its seq; the ledger folds; seq is gap-free."""
    assert db_rows(db, "PRAGMA integrity_check") == [("ok",)]
    stored = {mid: seq for mid, seq in db_rows(db, "SELECT id, seq FROM movements")}
    missing = [mid for mid in acked if mid not in stored]
    assert missing == [], f"{len(missing)} acknowledged movements lost"
    assert all(stored[mid] == seq for mid, (seq, *_rest) in acked.items())
    seqs = [s for (s,) in db_rows(db, "SELECT seq FROM outbox ORDER BY seq")]
    assert seqs == list(range(1, last + 1))
    cached = db_rows(db, "SELECT sku, bin, on_hand FROM balances WHERE on_hand != 0 "
                         "ORDER BY sku, bin")
    folded = db_rows(db, "SELECT sku, bin, SUM(delta) FROM movements GROUP BY sku, bin "
                         "HAVING SUM(delta) != 0 ORDER BY sku, bin")
    assert cached == folded


def test_sigkill_at_random_points_loses_nothing_acknowledged(
        mqtt_broker: MosquittoBroker, central_factory: Callable[..., Central],
        daemon_factory: Callable[..., Daemon], tmp_path: Path) -> None:
    central, hub = start_online(central_factory, daemon_factory, tmp_path, mqtt_broker)
    hub, acked = _kill_runs(hub, daemon_factory, tmp_path, RUNS, seed=1)
    assert len(acked) >= RUNS  # every run acknowledged something before its kill

    last = hub.status()["last_seq"]
    events = wait_all_delivered(central, last, timeout=60)
    # Central's own check: no seq ever arrived with two different event ids.
    assert central.violations() == []
    assert central.seqs() == list(range(1, last + 1))
    assert fold(events) == hub_balances(hub)
    assert hub.terminate() == 0
    _check_database(hub.state_dir / "hubagent.db", acked, last)


def test_sigkill_while_central_lags_behind_the_pubacks(
        mqtt_broker: MosquittoBroker, central_factory: Callable[..., Central],
        daemon_factory: Callable[..., Daemon], tmp_path: Path) -> None:
    # A slow consumer acking late: at each kill, events are out in every
    # state (in paho's queue before the PUBACK, PUBACKed but not acked by
    # central, acked).
    central, hub = start_online(central_factory, daemon_factory, tmp_path, mqtt_broker,
                                slow=0.003, ack_delay=0.5)
    hub, acked = _kill_runs(hub, daemon_factory, tmp_path, 4, seed=2)
    central.slow = 0
    last = hub.status()["last_seq"]
    events = wait_all_delivered(central, last, timeout=60)
    assert central.violations() == []
    # Events PUBACKed but not acknowledged when the hub died were sent again.
    assert central.duplicates() > 0
    assert fold(events) == hub_balances(hub)
    assert {e["data"]["movement"] for e in events if e["kind"] == "stock.moved"} >= set(acked)
    assert hub.terminate() == 0
    _check_database(hub.state_dir / "hubagent.db", acked, last)
