"""Malformed commands: an error reply naming the problem, no change, no crash.

Thousands of Hypothesis examples run in-process against the real dispatcher
on a real SQLite file (fast); a few hundred more, and the whole fixed
corpus, go through a real Mosquitto to the real daemon, which must still
answer ``ping`` with its state unchanged at the end.

The corpus assumes a 64 KiB payload limit; the hub's default
``[mqtt] max_payload`` is 256 KiB (a 1,000-item ``catalog.upsert`` needs
it), so the hubs here are configured with the corpus's limit, and the
default is checked separately against the 1 MiB corpus entry.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from central import Central
from fixtures_mqtt import MakeBroker
from hubagent.app import App, build_app
from hubagent.commands import MAX_DEPTH, MAX_ID_LENGTH
from hubagent.config import from_dict
from hubagent.stock import ledger
from hubproc import Daemon
from payload_corpus import CORPUS, MAX_PAYLOAD_BYTES, Malformed, malformed_payloads
from payload_corpus import MAX_DEPTH as CORPUS_DEPTH
from payload_corpus import MAX_ID_LENGTH as CORPUS_ID_LENGTH
from test_sync_faults import CATALOG, start_hub

# What the hub answers for each kind of malformed payload in the corpus.
EXPECTED = {
    "empty": "bad_json", "not_json": "bad_json", "bom": "bad_json", "nan": "bad_json",
    "duplicate_key": "bad_json", "too_large": "too_large", "not_utf8": "not_utf8",
    "too_deep": "too_deep", "not_object": "bad_payload", "missing_id": "missing_id",
    "id_type": "bad_id", "id_empty": "bad_id", "id_too_long": "bad_id",
    "unknown_field": "bad_args", "wrong_type": "bad_args", "missing_field": "bad_args",
    "unknown_command": "unknown_command",
}

# Valid commands the generator derives malformed variants from. Their ids
# are never used for a valid command here, so no variant can be answered
# with a stored ``ok`` reply.
VALID: list[tuple[str, dict[str, Any]]] = [
    ("stock.adjust", {"id": "fz-adj", "sku": "TEA-1", "bin": "A-01", "delta": 3,
                      "reason": "fuzz"}),
    ("stock.count", {"id": "fz-cnt", "sku": "TEA-1", "bin": "A-01", "counted": 2}),
    ("stock.get", {"id": "fz-get", "sku": "TEA-1"}),
    ("ping", {"id": "fz-ping"}),
]


def cases() -> st.SearchStrategy[tuple[str, Malformed]]:
    """(command name, malformed payload) pairs over every valid base."""
    return st.sampled_from(VALID).flatmap(
        lambda nv: malformed_payloads(nv[1]).map(lambda m: (m.command or nv[0], m)))


def check_reply(reply: dict[str, Any], m: Malformed) -> None:
    """An error reply with the right code, a message, and a sane id."""
    assert reply["ok"] is False, (m, reply)
    # A payload can be wrong in two ways (a 200 KB nest is also too large):
    # the size is checked first.
    codes = {EXPECTED[m.code]} | ({"too_large"} if len(m) > MAX_PAYLOAD_BYTES else set())
    assert reply["error"]["code"] in codes, (m, reply)
    assert isinstance(reply["error"]["message"], str) and reply["error"]["message"]
    cid = reply["id"]
    assert cid is None or (isinstance(cid, str) and cid.strip() and len(cid) <= MAX_ID_LENGTH)
    if m.code in ("unknown_field", "wrong_type", "missing_field", "unknown_command"):
        assert cid == m.id, (m, reply)


def test_hub_limits_are_at_least_as_strict_as_the_corpus() -> None:
    assert MAX_ID_LENGTH <= CORPUS_ID_LENGTH and MAX_DEPTH <= CORPUS_DEPTH


# -- in-process: the real dispatcher on a real SQLite file ----------------------------


@pytest.fixture(scope="module")
def app() -> Iterator[App]:
    with tempfile.TemporaryDirectory(prefix="fuzz-") as d:
        a = build_app(from_dict({"hub": {"id": "fz", "state_dir": d},
                                 "mqtt": {"host": "127.0.0.1", "max_payload": MAX_PAYLOAD_BYTES}}))
        a.store.open()
        r = a.commands.handle("catalog.upsert", json.dumps({"id": "cat", "items": CATALOG}).encode())
        assert r["ok"]
        r = a.commands.handle("stock.adjust", json.dumps(
            {"id": "seed", "sku": "TEA-1", "bin": "A-01", "delta": 5, "reason": "seed"}).encode())
        assert r["ok"]
        yield a
        a.store.close()


def _state(app: App) -> tuple[int, list[dict[str, Any]], int]:
    moves = app.store.query("SELECT COUNT(*) AS n FROM movements")[0]["n"]
    return app.store.last_seq(), ledger.balances(app.store), moves


@pytest.mark.parametrize("m", CORPUS, ids=lambda m: f"{m.code}:{m.problem}")
def test_corpus_in_process(app: App, m: Malformed) -> None:
    before = _state(app)
    check_reply(app.commands.handle(m.command or "stock.adjust", bytes(m)), m)
    assert _state(app) == before


def test_default_payload_limit_rejects_the_oversize_corpus_entry(tmp_path: Path) -> None:
    a = build_app(from_dict({"hub": {"id": "fz", "state_dir": str(tmp_path)},
                             "mqtt": {"host": "127.0.0.1"}}))
    a.store.open()
    try:
        big = next(m for m in CORPUS if m.code == "too_large")
        assert a.commands.max_payload < len(big)
        check_reply(a.commands.handle("ping", bytes(big)), big)
    finally:
        a.store.close()


@settings(max_examples=2000, deadline=None, database=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                 HealthCheck.filter_too_much])
@given(case=cases())
def test_thousands_of_malformed_payloads_in_process(app: App, case: tuple[str, Malformed]) -> None:
    name, m = case
    before = _state(app)
    check_reply(app.commands.handle(name, bytes(m)), m)
    assert _state(app) == before


# -- through the real broker and daemon -----------------------------------------------


def test_malformed_payloads_over_mqtt(make_broker: MakeBroker,
                                      central_factory: Callable[..., Central],
                                      daemon_factory: Callable[..., Daemon],
                                      tmp_path: Path) -> None:
    # Without Nagle's algorithm on the broker a round trip takes a
    # millisecond instead of a delayed-ACK timer or two.
    broker = make_broker(extra_conf=["set_tcp_nodelay true"])
    central = central_factory(broker)
    hub = start_hub(daemon_factory, tmp_path, broker, max_payload=MAX_PAYLOAD_BYTES)
    central.wait_for_state("online")
    assert central.command("catalog.upsert", {"items": CATALOG}, id="cat")["ok"]
    assert central.command("stock.adjust", {"sku": "TEA-1", "bin": "A-01", "delta": 5,
                                            "reason": "seed"}, id="seed")["ok"]
    before = central.command("state.snapshot", id="snap-before")["result"]

    for m in CORPUS:
        check_reply(central.command_raw(m.command or "stock.adjust", bytes(m), timeout=20), m)

    @settings(max_examples=2000, deadline=None, database=None, derandomize=True,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
    @given(case=cases())
    def through_the_broker(case: tuple[str, Malformed]) -> None:
        name, m = case
        check_reply(central.command_raw(name, bytes(m), timeout=20), m)

    through_the_broker()
    pong = central.command("ping", id="ping-after")
    assert pong["ok"] and pong["result"]["last_seq"] == before["last_seq"]
    after = central.command("state.snapshot", id="snap-after")["result"]
    assert after == before
    assert hub.proc is not None and hub.proc.poll() is None
    assert central.violations() == []
    assert hub.terminate() == 0
