"""``hubctl ingest`` end to end: real Mosquitto, real hub daemons, the fleet simulator,
and central's database on SQLite and on a real PostgreSQL 15."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from centralproc import IngestProc, hubctl, hubctl_json, query, upto, wait_rows
from fixtures_mqtt import MakeBroker, MosquittoBroker
from hubagent.central.fleet import Fleet
from hubproc import Daemon, wait_until

pytest_plugins = ["fixtures_pg"]

CATALOG = {"items": [
    {"sku": "TEA-1", "name": "Green tea", "gtins": ["4006381333931"], "bin": "A-01"},
    {"sku": "COF-2", "name": "Coffee", "gtins": ["5901234123457"], "bin": "B-02"},
]}


@pytest.fixture
def ingests(tmp_path: Path) -> Iterator[Callable[..., IngestProc]]:
    """Start ``hubctl ingest`` processes; all are killed at teardown."""
    made: list[IngestProc] = []

    def make(broker: MosquittoBroker, db_url: str, *extra: str) -> IngestProc:
        p = IngestProc(broker.port, db_url, tmp_path / f"ingest{len(made)}.log", *extra)
        made.append(p)
        return p.start()

    yield make
    for p in made:
        p.close()


@pytest.fixture
def fleets() -> Iterator[Callable[..., Fleet]]:
    """Start fleet simulators; all are closed at teardown."""
    made: list[Fleet] = []

    def make(broker: MosquittoBroker, n: int, **kw: Any) -> Fleet:
        f = Fleet(broker.host, broker.port, n, **kw)
        made.append(f)
        return f.start()

    yield make
    for f in made:
        f.close()


def run(d: Daemon, name: str, args: dict[str, Any]) -> dict[str, Any]:
    """A command through the hub's local API; returns the result of an ok reply."""
    reply = d.command(name, {"id": uuid.uuid4().hex, **args})
    assert reply["ok"] is True, reply
    return reply["result"]  # type: ignore[no-any-return]


def start_hubs(daemon_factory: Callable[..., Daemon], tmp_path: Path, port: int,
               *hubs: str) -> list[Daemon]:
    """Real ``hubagent run --sim`` daemons connected to the broker, started together."""
    made = []
    for hub in hubs:
        sd = tmp_path / f"hub-{hub}"
        sd.mkdir(exist_ok=True)
        made.append(daemon_factory("run", "--sim", "--hub-id", hub, "--mqtt", f"127.0.0.1:{port}",
                                   "--state-dir", str(sd), state_dir=sd, wait_ready=False))
    for d in made:
        d.wait_notify("READY=1", 30)
    return made


def hub_in_sync(d: Daemon, db_url: str, hub: str) -> bool:
    """The hub has everything acknowledged and central holds it gap-free."""
    sync = d.status()["sync"]
    return bool(sync["subscribed"] and sync["acked_seq"] == sync["last_seq"]
                and upto(db_url, hub) == sync["last_seq"])


def stored_once(db_url: str, hub: str) -> int | None:
    """N when the hub's current database has seqs 1..N stored once each and acked, else None."""
    [(n, ids, lo, hi)] = query(db_url, "SELECT COUNT(*), COUNT(DISTINCT e.id), MIN(e.seq), "
                               "MAX(e.seq) FROM events e JOIN hubs h ON h.hub = e.hub "
                               "AND h.db = e.db WHERE e.hub = ?", (hub,))
    return n if n == ids == hi and lo == 1 and upto(db_url, hub) == n else None


def assert_stored_once(db_url: str, expected: dict[str, int]) -> None:
    """Each hub's current database holds seqs 1..N exactly once, all acked by central."""
    rows = query(db_url, "SELECT e.hub, COUNT(*), COUNT(DISTINCT e.id), MIN(e.seq), MAX(e.seq) "
                 "FROM events e JOIN hubs h ON h.hub = e.hub AND h.db = e.db GROUP BY e.hub")
    got = {hub: (n, ids, lo, hi) for hub, n, ids, lo, hi in rows if hub in expected}
    want = {hub: (n, n, 1, n) for hub, n in expected.items() if n}
    assert got == want
    assert {h: upto(db_url, h) for h in expected} == expected


def test_three_daemons_and_a_fleet_stored_once_and_acked(
        db_url: str, make_broker: MakeBroker, ingests: Callable[..., IngestProc],
        fleets: Callable[..., Fleet], daemon_factory: Callable[..., Daemon],
        tmp_path: Path) -> None:
    broker = make_broker()
    ingest = ingests(broker, db_url)
    daemons = start_hubs(daemon_factory, tmp_path, broker.port, "hub-a", "hub-b", "hub-c")
    fleet = fleets(broker, 1000, name="sim")
    fleet.record(2)
    for i, d in enumerate(daemons):
        run(d, "catalog.upsert", CATALOG)
        for n in range(3 + i):
            run(d, "stock.adjust", {"sku": "TEA-1", "bin": "A-01", "delta": 5 + n,
                                       "reason": "delivery"})
        run(d, "stock.adjust", {"sku": "COF-2", "bin": "B-02", "delta": -2, "reason": "damage",
                                   "type": "damage"})
    fleet.record(1)
    if not fleet.wait_all_acked(120):
        behind = [(h.hub, h.acked, h.last_seq) for h in fleet.hubs if h.acked < h.last_seq]
        raise AssertionError(f"{len(behind)} hubs not acked, e.g. {behind[:5]}\n{ingest.log()}")
    for hub, d in zip(("hub-a", "hub-b", "hub-c"), daemons):
        # (A daemon may still emit an event of its own, e.g. its first power reading:
        # checked again until the hub, central's books and the cursor agree.)
        wait_until(lambda: hub_in_sync(d, db_url, hub) and stored_once(db_url, hub) ==
                   d.status()["sync"]["last_seq"], 30, lambda: f"{hub} in sync\n{d.log()}")
    assert_stored_once(db_url, {h.hub: h.last_seq for h in fleet.hubs})
    assert all((stored_once(db_url, hub) or 0) >= 5 for hub in ("hub-a", "hub-b", "hub-c"))
    # The derived balances are the hubs' own.
    for hub, d in zip(("hub-a", "hub-b", "hub-c"), daemons):
        for sku in ("TEA-1", "COF-2"):
            bins = run(d, "stock.get", {"sku": sku})["bins"]
            central = dict(query(db_url, "SELECT bin, on_hand FROM stock WHERE hub = ? AND sku = ?",
                                 (hub, sku)))
            assert central == bins, (hub, sku)
    sim = fleet.hubs[7]
    assert dict(((s, b), q) for s, b, q in query(
        db_url, "SELECT sku, bin, on_hand FROM stock WHERE hub = ?", (sim.hub,))) == sim.ledger


def test_two_shared_ingests_one_killed_mid_stream_lose_and_double_nothing(
        db_url: str, make_broker: MakeBroker, ingests: Callable[..., IngestProc],
        fleets: Callable[..., Fleet]) -> None:
    broker = make_broker()
    a = ingests(broker, db_url, "--mode", "shared", "--group", "books")
    ingests(broker, db_url, "--mode", "shared", "--group", "books")
    fleet = fleets(broker, 100, ack_timeout_s=1.0)
    fleet.record(10)
    assert fleet.wait_all_acked(60)
    fleet.record(20)
    a.kill()  # mid-stream: it holds events it has received and not yet stored
    killed_with_unacked = not fleet.all_acked()
    fleet.record(10)
    assert fleet.wait_all_acked(60)
    assert killed_with_unacked
    assert_stored_once(db_url, {h.hub: h.last_seq for h in fleet.hubs})
    assert query(db_url, "SELECT COUNT(*), COUNT(DISTINCT id) FROM events") == [(4000, 4000)]
    # Both processes took a share of the events before the kill (per the broker's log).
    log = broker.log_text()
    assert log.count("$share/books/hubs/+/events/#") >= 2


def test_quarantined_database_is_resynced(
        db_url: str, make_broker: MakeBroker, ingests: Callable[..., IngestProc],
        daemon_factory: Callable[..., Daemon], tmp_path: Path) -> None:
    broker = make_broker()
    ingests(broker, db_url)
    [hub] = start_hubs(daemon_factory, tmp_path, broker.port, "hub-q")
    run(hub, "catalog.upsert", CATALOG)
    run(hub, "stock.adjust", {"sku": "TEA-1", "bin": "A-01", "delta": 40, "reason": "delivery"})
    wait_until(lambda: hub_in_sync(hub, db_url, "hub-q"), 30, "hub-q in sync")
    old_db = query(db_url, "SELECT db FROM hubs WHERE hub = 'hub-q'")[0][0]
    old_last = hub.status()["sync"]["last_seq"]
    assert hub.terminate() == 0
    dbfile = hub.state_dir / "hubagent.db"
    dbfile.write_bytes(b"this is not a database" * 100)  # damaged on the SD card
    again = start_hubs_after_quarantine(daemon_factory, hub.state_dir, broker.port, "hub-q")
    run(again, "catalog.upsert", CATALOG)
    run(again, "stock.adjust", {"sku": "COF-2", "bin": "B-02", "delta": 7, "reason": "count"})
    wait_until(lambda: hub_in_sync(again, db_url, "hub-q") and stored_once(db_url, "hub-q") ==
               again.status()["sync"]["last_seq"], 30, lambda: again.log())
    new_db = query(db_url, "SELECT db FROM hubs WHERE hub = 'hub-q'")[0][0]
    assert new_db != old_db
    wait_rows(db_url, "SELECT reason, db FROM resyncs WHERE hub = 'hub-q'", (),
              [("new_db", new_db)], 20)
    # Both databases' events are kept, each under its own id; stock is the new database's.
    per_db = {d: (n, hi) for d, n, hi in query(
        db_url, "SELECT db, COUNT(*), MAX(seq) FROM events WHERE hub = 'hub-q' GROUP BY db")}
    assert set(per_db) == {old_db, new_db}
    assert per_db[old_db][0] == per_db[old_db][1] >= old_last  # gap-free, all that was acked
    assert per_db[new_db][0] == per_db[new_db][1] >= 2
    assert query(db_url, "SELECT sku, bin, on_hand FROM stock WHERE hub = 'hub-q'") == \
        [("COF-2", "B-02", 7)]


def start_hubs_after_quarantine(daemon_factory: Callable[..., Daemon], state_dir: Path,
                                port: int, hub: str) -> Daemon:
    """Start the hub on a damaged database: it quarantines it, then runs on a new one."""
    args = ("run", "--sim", "--hub-id", hub, "--mqtt", f"127.0.0.1:{port}",
            "--state-dir", str(state_dir))
    first = daemon_factory(*args, state_dir=state_dir, wait_ready=False)
    assert first.proc is not None and first.proc.wait(60) == 3  # moved aside, exit 3
    assert any(p.name.startswith("hubagent.db.corrupt-") for p in state_dir.iterdir())
    return daemon_factory(*args, state_dir=state_dir)


def test_restart_after_lost_and_new_database_resync_from_snapshot(
        db_url: str, make_broker: MakeBroker, ingests: Callable[..., IngestProc],
        fleets: Callable[..., Fleet]) -> None:
    broker = make_broker()
    ingests(broker, db_url)
    fleet = fleets(broker, 3)
    fleet.record(12)
    assert fleet.wait_all_acked(20)
    lost, fresh = fleet.hubs[0].hub, fleet.hubs[1].hub
    fleet.vanish(lost)
    wait_rows(db_url, "SELECT state FROM hubs WHERE hub = ?", (lost,), [("lost",)], 10)
    fleet.restart(lost)
    fleet.record(3, [lost])
    fleet.new_database(fresh)  # balances kept, no events for them
    fleet.record(4, [fresh])
    assert fleet.wait_all_acked(20)
    wait_rows(db_url, "SELECT hub, reason FROM resyncs ORDER BY hub", (),
              sorted([(lost, "restart_after_lost"), (fresh, "new_db")]), 20)
    assert "state.snapshot" in fleet.by_id[lost].commands
    assert_stored_once(db_url, {h.hub: h.last_seq for h in fleet.hubs})
    for h in fleet.hubs:
        got = {(s, b): q for s, b, q in query(
            db_url, "SELECT sku, bin, on_hand FROM stock WHERE hub = ? AND on_hand <> 0", (h.hub,))}
        assert got == {k: v for k, v in h.ledger.items() if v}, h.hub


def test_gap_left_by_a_broker_that_dropped_queued_messages_is_replayed(
        db_url: str, make_broker: MakeBroker, ingests: Callable[..., IngestProc],
        fleets: Callable[..., Fleet]) -> None:
    # The broker keeps at most 5 messages for an offline client and drops the rest.
    broker = make_broker(max_queued_messages=5)
    keep = ("--session-expiry", "300", "--client-id", "central-books")
    ingest = ingests(broker, db_url, *keep)
    # Hubs that never resend on their own: only central's events.replay can fill a gap.
    fleet = fleets(broker, 3, resend=False)
    fleet.record(5)
    assert fleet.wait_all_acked(20)
    assert ingest.stop() == 0  # its session (and queue) stays on the broker
    fleet.record(20)
    wait_until(lambda: "dropped" in broker.log_text(), 10, "the broker dropping messages")
    ingests(broker, db_url, *keep)
    fleet.record(3)
    assert fleet.wait_all_acked(30)
    assert all("events.replay" in h.commands for h in fleet.hubs)
    assert_stored_once(db_url, {h.hub: h.last_seq for h in fleet.hubs})


def test_partitioned_ingests_take_only_their_hubs(
        make_broker: MakeBroker, ingests: Callable[..., IngestProc],
        fleets: Callable[..., Fleet], tmp_path: Path) -> None:
    from hubagent.central.ingest import partition_of

    db_url = f"sqlite:///{tmp_path}/central.db"
    broker = make_broker()
    fleet = fleets(broker, 40)  # retained states first: the ingests discover the hubs
    fleet.record(5)
    ingests(broker, db_url, "--partition", "0/2", "--client-id", "part-0")
    ingests(broker, db_url, "--partition", "1/2", "--client-id", "part-1")
    fleet.record(5)
    assert fleet.wait_all_acked(30)
    assert_stored_once(db_url, {h.hub: h.last_seq for h in fleet.hubs})
    log = broker.log_text()
    for h in fleet.hubs:
        k = partition_of(h.hub, 2)
        assert f"part-{k} 1 hubs/{h.hub}/events/#" in log
        assert f"part-{1 - k} 1 hubs/{h.hub}/events/#" not in log
    assert "hubs/+/events/#" not in log


def test_hubctl_reads_the_books(
        make_broker: MakeBroker, ingests: Callable[..., IngestProc],
        fleets: Callable[..., Fleet], tmp_path: Path) -> None:
    db_url = f"sqlite:///{tmp_path}/central.db"
    broker = make_broker()
    ingests(broker, db_url)
    fleet = fleets(broker, 2)
    fleet.record(60)
    assert fleet.wait_all_acked(20)
    hub = fleet.hubs[0]
    out = hubctl(broker.port, "--json", "events", hub.hub, "--db", db_url, "--from-seq", "55")
    evs = [json.loads(line) for line in out.stdout.splitlines()]  # one event a line
    assert [e["seq"] for e in evs] == [55, 56, 57, 58, 59, 60]
    assert [e["id"] for e in evs] == [e["id"] for e in hub.events[54:]]
    # --follow prints new events as the ingest stores them.
    follow = subprocess.Popen([sys.executable, "-m", "hubagent.central.cli", "--json", "events",
                               hub.hub, "--db", db_url, "--from-seq", "61", "--follow"],
                              stdout=subprocess.PIPE, text=True)
    try:
        fleet.record(2, [hub.hub])
        assert follow.stdout is not None
        lines = [json.loads(follow.stdout.readline()) for _ in range(2)]
        assert [e["seq"] for e in lines] == [61, 62]
    finally:
        follow.kill()
        follow.wait(10)
    parcels = hubctl_json(broker.port, "parcels", hub.hub, "--db", db_url)
    # Sim parcels P0 and P1: assigned at seq 9/39, stored 19/49, picked up 29/59.
    assert [(p["parcel"], p["state"], p["size"]) for p in parcels] == [
        ("P0", "picked_up", "M"), ("P1", "picked_up", "M")]
    lockers = hubctl_json(broker.port, "lockers", hub.hub, "--db", db_url)
    assert [(x["bank"], x["compartment"], x["state"]) for x in lockers] == [
        ("main", "1", "free"), ("main", "2", "free")]
    fleet.vanish(fleet.hubs[1].hub)
    hubs = hubctl_json(broker.port, "hubs", "--db", db_url, "--wait", "0.5")
    assert [(h["hub"], h["state"], h["session"]) for h in hubs] == [
        (hub.hub, "online", 1), (fleet.hubs[1].hub, "lost", 1)]
    assert hubs[0]["central_acked_seq"] == 62
    human = hubctl(broker.port, "hubs", "--wait", "0.5")
    assert human.returncode == 0 and "lost" in human.stdout and hub.hub in human.stdout
    bad = hubctl(broker.port, "events", hub.hub, "--db", "mysql://x/y")
    assert bad.returncode == 2 and "--db: unsupported URL scheme" in bad.stderr

