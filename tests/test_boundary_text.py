"""Hostile text and numbers at the command boundary.

Control characters, bidirectional overrides, zero-width characters and lone
surrogates in every free-text field, and integers past 64 bits in every
number, are refused with the field named; nothing a client sends is
answered ``internal``. The commands run in-process on the simulator's full
feature set (every command the hub registers), on a real SQLite file.
"""

from __future__ import annotations

import itertools
import json
import tempfile
import tomllib
from importlib import resources
from typing import Any, Iterator

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from corethread import CoreThread
from hubagent.app import build_app
from hubagent.config import from_dict
from hubagent.textcheck import check_text, printable, text_problem, tree_problem

HOSTILE = [
    "\u0000", "a\u0007b", "\u001b[31mred", "line\nbreak", "\u0085", "\u202eevil", "\u2066x\u2069",
    "\u200b", "zero\u200bwidth", "\ufeffbom", "\u2060", "\u200f", "\ud800", "x\udfffy",
]
BIG_INTS = [2**63, -(2**63) - 1, 10**30]
FINE = ["Müller", "Łódź", "Ελλάδα", "Москва", "€ 1,99", "میخواهم", "क्षि", "👩\u200d💻", "a-b_c.d"]


def test_text_problem_names_the_character() -> None:
    assert text_problem("ok") is None
    problem = text_problem("abc\u202edef")
    assert problem is not None and "U+202E" in problem and "RIGHT-TO-LEFT OVERRIDE" in problem
    assert "position 3" in problem
    assert "surrogate" in (text_problem("\ud800") or "")
    for s in FINE:
        assert text_problem(s) is None, s
    for s in HOSTILE:
        assert text_problem(s) is not None, repr(s)
    with pytest.raises(ValueError, match="^name: contains U\\+0000"):
        check_text("a\u0000", "name")


def test_tree_problem_walks_keys_values_lists_and_numbers() -> None:
    assert tree_problem({"a": [1, "x", {"b": 2**63 - 1}]}) is None
    assert tree_problem({"items": [{"name": "ok"}, {"name": "\u202e"}]})[0] == "items[1].name"  # type: ignore[index]
    assert tree_problem({"lines": [{"qty": 2**63}]}) == ("lines[0].qty", "is outside the 64-bit integer range")
    key_problem = tree_problem({"a\u0000": 1})
    assert key_problem is not None and "\\u0000" in key_problem[0]
    assert tree_problem({"flag": True}) is None
    deep: Any = "\u0000"
    for _ in range(5000):
        deep = [deep]
    assert tree_problem(deep) is not None  # no recursion limit


def test_printable_escapes_for_logs() -> None:
    assert printable("a\u202eb\nc") == "a\\u202eb\\u000ac"
    assert printable("x" * 100, 10) == "x" * 10 + "…"


# -- every command of the simulator hub --------------------------------------------------


@pytest.fixture(scope="module")
def core(module_mock_pins: Any) -> Iterator[CoreThread]:
    doc = tomllib.loads(resources.files("hubagent").joinpath("sim.toml").read_text())
    # A tmpfs state directory: thousands of refused commands are recorded in the
    # inbox, each with an fsync; the SD card is not what this test is about.
    with tempfile.TemporaryDirectory(prefix="boundary-", dir="/dev/shm") as d:
        doc["hub"]["state_dir"] = d
        doc.pop("mqtt", None)
        c = CoreThread(build_app(from_dict(doc, "<sim>"), simulated=True))
        try:
            yield c
        finally:
            c.close()


def _fields(core: CoreThread, name: str) -> list[msgspec.structs.FieldInfo]:
    schema = core.app.commands.schema(name)
    if schema is None or not isinstance(schema, type) or not issubclass(schema, msgspec.Struct):
        return []
    return list(msgspec.structs.fields(schema))


def test_every_string_field_of_every_command_refuses_hostile_text(core: CoreThread) -> None:
    checked = 0
    for name in core.app.commands.names():
        for f in _fields(core, name):
            for bad in ("\u0000", "\u202e", "\u200b", "\ud800"):
                payload = json.dumps({"id": f"bt-{name}-{f.encode_name}-{ord(bad)}",
                                      f.encode_name: bad}).encode()
                reply = core.handle(name, payload)
                assert reply["ok"] is False, (name, f.encode_name, reply)
                assert reply["error"]["code"] == "bad_args", (name, f.encode_name, reply)
                assert reply["error"]["message"].startswith(f.encode_name), reply
                checked += 1
    assert checked > 50  # the sim hub registers dozens of fields


def test_every_field_refuses_integers_past_64_bits(core: CoreThread) -> None:
    for name in core.app.commands.names():
        for f in _fields(core, name):
            for big in BIG_INTS:
                payload = json.dumps({"id": f"bi-{name}-{f.encode_name}-{big}",
                                      f.encode_name: big}).encode()
                reply = core.handle(name, payload)
                assert reply["ok"] is False and reply["error"]["code"] == "bad_args", reply
                assert f.encode_name in reply["error"]["message"], reply


def test_nested_fields_are_named_with_their_path(core: CoreThread) -> None:
    reply = core.handle("catalog.upsert", json.dumps(
        {"id": "nest-1", "items": [{"sku": "OK-1", "name": "Tea"},
                                   {"sku": "OK-2", "name": "Tea\u202e"}]}).encode())
    assert reply["error"]["code"] == "bad_args"
    assert reply["error"]["message"].startswith("items[1].name contains U+202E")
    assert core.handle("stock.get", b'{"id":"n-2","sku":"OK-2"}')["error"]["code"] == "unknown_sku"


def test_hostile_ids_and_floats_are_refused(core: CoreThread) -> None:
    for cid in ("\ud800", "a\u0000", "\u202e1"):
        reply = core.handle("ping", json.dumps({"id": cid}).encode())
        assert reply == {"id": None, "ok": False, "error": reply["error"]}
        assert reply["error"]["code"] == "bad_id"
    reply = core.handle("stock.adjust", b'{"id":"f-1","sku":"A","bin":"A-01","delta":1e400}')
    assert reply["error"]["code"] == "bad_json"


def test_fine_text_still_passes(core: CoreThread) -> None:
    for i, name in enumerate(FINE):
        reply = core.handle("catalog.upsert", json.dumps(
            {"id": f"fine-{i}", "items": [{"sku": f"FINE-{i}", "name": name}]}).encode())
        assert reply["ok"], reply


_ids = itertools.count()
_values = st.one_of(
    st.sampled_from(HOSTILE + FINE), st.sampled_from(BIG_INTS), st.integers(),
    st.floats(allow_nan=False, allow_infinity=False), st.booleans(), st.none(),
    st.text(max_size=12), st.lists(st.sampled_from(HOSTILE + FINE), max_size=3),
)


@settings(max_examples=10_000, deadline=None, database=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=st.data())
def test_ten_thousand_payloads_and_never_internal(core: CoreThread, data: st.DataObject) -> None:
    names = core.app.commands.names()
    name = data.draw(st.sampled_from(names))
    fields = [f.encode_name for f in _fields(core, name)] or ["x"]
    body = data.draw(st.dictionaries(st.sampled_from(fields), _values, max_size=4))
    # Fresh ids, so no payload is answered with an earlier command's stored reply.
    cid = data.draw(st.sampled_from(["\u202e", "fz-\u0000", "fresh"]))
    payload = {"id": f"fz-{next(_ids)}" if cid == "fresh" else cid, **body}
    raw = json.dumps(payload).encode()
    reply = core.handle(name, raw)
    assert reply.get("error", {}).get("code") != "internal", (name, payload, reply)
    if tree_problem(payload) is not None:
        assert reply["ok"] is False, (name, payload, reply)
