"""Central's books on SQLite and PostgreSQL: events once, gap-free cursors, derivations."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator

import pytest

from hubagent.central import books
from hubagent.central.books import HubState, Incoming
from hubagent.central.db import Database, DatabaseError

pytest_plugins = ["fixtures_pg"]

DB1 = "9c1e0d6c7a1f4a4e8d3b2a1f00000001"


def _moved(seq: int, sku: str, bin_: str, on_hand: int, hub: str = "hub-1",
           db: str = DB1) -> Incoming:
    data = {"movement": seq, "type": "receive", "sku": sku, "bin": bin_, "delta": 1,
            "on_hand": on_hand, "negative": False}
    return Incoming(hub, db, seq, f"ev-{db[-4:]}-{seq}", "stock.moved",
                    "2026-11-22T14:02:03.120Z", data)


@pytest.fixture
def db(db_url: str) -> Iterator[Database]:
    d = Database(db_url)
    d.migrate()
    d.migrate()  # idempotent
    yield d
    d.close()


def _store(db: Database, events: list[Incoming]) -> list[books.Cursor]:
    with db.tx() as tx:
        return books.store_events(tx, events)


def test_events_are_stored_once_and_the_cursor_is_gap_free(db: Database) -> None:
    [c] = _store(db, [_moved(1, "TEA-1", "A-01", 1), _moved(2, "TEA-1", "A-01", 2),
                      _moved(4, "TEA-1", "A-01", 4)])
    assert (c.upto, c.max_seq, c.new, c.gap) == (2, 4, 3, True)
    # A resend of what is stored changes nothing; seq 3 closes the gap.
    [c] = _store(db, [_moved(2, "TEA-1", "A-01", 2), _moved(3, "TEA-1", "A-01", 3)])
    assert (c.upto, c.max_seq, c.new, c.gap) == (4, 4, 1, False)
    assert db.read("SELECT COUNT(*) FROM events") == [(4,)]
    assert db.read("SELECT on_hand, seq FROM stock") == [(4, 4)]


def test_derived_stock_does_not_depend_on_arrival_order(db_url: str) -> None:
    """Events applied in any order (replays, resends) leave the same balances."""
    rng = random.Random(16)
    balance: dict[tuple[str, str], int] = {}
    events = []
    for seq in range(1, 301):
        key = (rng.choice(["TEA-1", "COF-2", "5901234123457"]), rng.choice(["A-01", "B-02"]))
        balance[key] = balance.get(key, 0) + rng.randint(-3, 9)
        events.append(_moved(seq, key[0], key[1], balance[key]))
    db = Database(db_url)
    db.migrate()
    try:
        shuffled = events[:]
        rng.shuffle(shuffled)
        for i in range(0, 300, 37):  # uneven batches, some with duplicates
            _store(db, shuffled[i:i + 37] + shuffled[max(0, i - 5):i])
        got = {(s, b): q for s, b, q in db.read("SELECT sku, bin, on_hand FROM stock")}
        assert got == balance
        assert db.read("SELECT upto, max_seq FROM cursors") == [(300, 300)]
    finally:
        db.close()


def test_lockers_parcels_print_jobs_and_power_are_derived(db: Database) -> None:
    def ev(seq: int, event_kind: str, **data: object) -> Incoming:
        return Incoming("hub-1", DB1, seq, f"e{seq}", event_kind, None, data)

    _store(db, [
        ev(1, "parcel.assigned", parcel="P-1", bank="main", compartment=3, size="M",
           expires_at="2026-12-01T00:00:00Z", command="c1"),
        ev(2, "print.queued", job="cmd-7f3a", printer="label", template="parcel", copies=1),
        ev(3, "parcel.stored", parcel="P-1", bank="main", compartment=3, release="r1",
           expires_at="2026-12-01T00:00:00Z", pickup_code="123456"),
        ev(4, "power.changed", **{"from": "mains", "to": "on_battery"}, source="ups",
           flags=["OB"], charge=97),
        ev(5, "locker.alarm", kind="forced_open", bank="main", compartment=5, detail="x"),
    ])
    # Replayed out of order: the earlier events must not undo the later ones.
    _store(db, [ev(7, "print.done", job="cmd-7f3a", printer="label", template="parcel"),
                ev(6, "parcel.picked_up", parcel="P-1", bank="main", compartment=3,
                   release="r2", source="keypad")])
    _store(db, [ev(1, "parcel.assigned", parcel="P-1", bank="main", compartment=3, size="M")])
    assert db.read("SELECT parcel, state, size FROM parcels") == [("P-1", "picked_up", "M")]
    assert db.read("SELECT bank, compartment, state, item FROM lockers") == \
        [("main", "3", "free", None)]
    assert db.read("SELECT job, state FROM print_jobs") == [("cmd-7f3a", "done")]
    assert db.read("SELECT seq, state, previous FROM power_history") == \
        [(4, "on_battery", "mains")]
    assert db.read("SELECT compartment, kind, active FROM locker_alarms") == \
        [("5", "forced_open", 1)]
    # The pickup code is in the stored event (central sends it on) but in no derived table.
    assert "123456" not in json.dumps(db.read("SELECT * FROM parcels"))


def test_malformed_event_data_is_stored_but_not_derived(db: Database) -> None:
    bad = Incoming("hub-1", DB1, 1, "e1", "stock.moved", None, {"sku": "TEA-1", "bin": "A-01"})
    [c] = _store(db, [bad, _moved(2, "TEA-1", "A-01", 5)])
    assert c.upto == 2  # nothing lost, the stream moves on
    assert db.read("SELECT seq FROM events ORDER BY seq") == [(1,), (2,)]
    assert db.read("SELECT on_hand FROM stock") == [(5,)]


def test_state_changes_ask_for_one_resync(db: Database) -> None:
    def st(state: str, session: int, dbid: str = DB1) -> HubState:
        return HubState("hub-1", state, session, dbid, "0.1.0", f"{dbid[:2]}-{session}-{state}",
                        ())

    with db.tx() as tx:
        assert books.record_state(tx, st("online", 1)) is None
        assert books.record_state(tx, st("offline", 1)) is None
        assert books.record_state(tx, st("online", 2)) is None  # clean stop, clean start
        assert books.record_state(tx, st("lost", 2)) is None
        assert books.record_state(tx, st("online", 3)) == "restart_after_lost"
        assert books.record_state(tx, st("online", 3)) is None  # a second process: no repeat
        assert books.record_state(tx, st("online", 1, "f" * 32)) == "new_db"
    assert books.claim_resyncs(db, retry_s=10) == [("hub-1", "new_db")]
    assert books.claim_resyncs(db, retry_s=10) == []  # claimed: nobody else takes it
    # One history row per state message, not per process that received it.
    assert sorted(s for (s,) in db.read("SELECT since FROM alert_history")) == [
        "9c-1-offline", "9c-1-online", "9c-2-lost", "9c-2-online", "9c-3-online", "ff-1-online"]


def test_snapshot_resets_stock_and_skips_pruned_seqs(db: Database) -> None:
    with db.tx() as tx:
        books.record_state(tx, HubState("hub-1", "online", 1, DB1, None, None, ()))
    _store(db, [_moved(1, "TEA-1", "A-01", 10), _moved(900, "COF-2", "A-01", 3),
                _moved(901, "COF-2", "A-01", 4)])
    snap = {"last_seq": 900, "acked_seq": 0, "oldest_retained_seq": 800,
            "balances": [{"sku": "COF-2", "bin": "A-01", "on_hand": 3},
                         {"sku": "RICE-5", "bin": "B-02", "on_hand": 7}]}
    with db.tx() as tx:
        cur = books.apply_snapshot(tx, "hub-1", "pruned", snap)
    # 2..799 are gone from the hub: skipped; 900 and 901 are stored, so the cursor runs on.
    assert (cur.upto, cur.max_seq) == (799, 901)
    assert db.read("SELECT sku, bin, on_hand FROM stock ORDER BY sku") == [
        ("COF-2", "A-01", 4), ("RICE-5", "B-02", 7)]  # TEA-1 is zero in the snapshot
    assert db.read("SELECT skipped_from, skipped_to FROM resyncs") == [(2, 799)]


def test_bad_database_urls_name_the_option(tmp_path: object) -> None:
    with pytest.raises(DatabaseError, match="--db: unsupported URL scheme 'mysql'"):
        Database("mysql://x/y")
    with pytest.raises(DatabaseError, match="--db: cannot connect to PostgreSQL"):
        Database("postgresql://postgres@127.0.0.1:1/none?connect_timeout=2")


def test_the_core_never_imports_central_and_sqlite_needs_no_psycopg() -> None:
    import subprocess
    import sys

    code = ("import sys, hubagent.app, hubagent.cli, hubagent.daemon\n"
            "assert not [m for m in sys.modules if m.startswith('hubagent.central')]\n"
            "import hubagent.central.ingest, hubagent.central.cli\n"
            "from hubagent.central.db import Database\n"
            "Database('sqlite:///:memory:').close()\n"
            "assert 'psycopg' not in sys.modules\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
