"""docs/asyncapi.yaml stays in step with the code: every command and event kind, both ways."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Iterator

import msgspec
import pytest
import yaml

import hubagent
from hubagent.app import build_app
from hubagent.cli import sim_config

ROOT = Path(__file__).resolve().parent.parent
DOC_PATH = ROOT / "docs" / "asyncapi.yaml"
SRC = ROOT / "hubagent"
CMD_PREFIX = "hubs/{hub}/cmd/"
EVENT_PREFIX = "hubs/{hub}/events/"

# Event kinds built at run time, which a regex cannot read: the exact source
# text of the first argument -> every kind it can produce. A new dynamic
# emit fails test_no_unexplained_event_kinds until it is listed here.
DYNAMIC_KINDS: dict[str, set[str]] = {
    # hubagent/lockers/service.py: staff emptied a compartment (item_kind is parcel or return)
    'f"{item_kind}.{done}"': {"parcel.retrieved", "return.collected"},
}

# `.emit(` followed by its first argument (across a line break too).
_EMIT = re.compile(r"\.emit\(\s*(?P<arg>[^,)]+)")
_LITERAL = re.compile(r'^"(?P<kind>[a-z_]+(?:\.[a-z_]+)+)"$')
_CONSTANT = re.compile(r"^[A-Z][A-Z0-9_]*$")


@pytest.fixture(scope="module")
def doc() -> dict[str, Any]:
    """The parsed AsyncAPI document."""
    with DOC_PATH.open(encoding="utf-8") as f:
        return yaml.safe_load(f)


def _module_constants(text: str) -> dict[str, str]:
    """Module-level ``NAME = "string"`` assignments of one source file."""
    return dict(re.findall(r'^([A-Z][A-Z0-9_]*)\s*(?::\s*[\w\[\]]+\s*)?=\s*"([^"]*)"', text, re.M))


def emitted_kinds(src: Path = SRC) -> tuple[set[str], list[str]]:
    """(event kinds the code emits, emit calls whose kind could not be determined)."""
    kinds: set[str] = set()
    unknown: list[str] = []
    for path in sorted(src.rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        constants = _module_constants(text)
        for m in _EMIT.finditer(text):
            arg = m.group("arg").strip()
            lit = _LITERAL.match(arg)
            if lit:
                kinds.add(lit.group("kind"))
            elif _CONSTANT.match(arg) and arg in constants:
                kinds.add(constants[arg])
            elif arg in DYNAMIC_KINDS:
                kinds |= DYNAMIC_KINDS[arg]
            else:
                line = text.count("\n", 0, m.start()) + 1
                unknown.append(f"{path.relative_to(src.parent)}:{line}: emit({arg}")
    return kinds, unknown


def _channels(doc: dict[str, Any], prefix: str) -> dict[str, dict[str, Any]]:
    """Channels whose address starts with ``prefix``, keyed by the rest of the address."""
    out = {}
    for ch in doc["channels"].values():
        address = ch.get("address") or ""
        if address.startswith(prefix):
            out[address[len(prefix):]] = ch
    return out


def _resolve(doc: dict[str, Any], ref: str) -> Any:
    """Follow a local JSON pointer ``#/a/b``; KeyError/IndexError if it does not resolve."""
    assert ref.startswith("#/"), f"only local $refs are expected: {ref}"
    node: Any = doc
    for part in ref[2:].split("/"):
        part = part.replace("~1", "/").replace("~0", "~")
        node = node[int(part)] if isinstance(node, list) else node[part]
    return node


def _deref(doc: dict[str, Any], node: Any) -> Any:
    while isinstance(node, dict) and "$ref" in node:
        node = _resolve(doc, node["$ref"])
    return node


def _refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for k, v in node.items():
            if k == "$ref" and isinstance(v, str):
                yield v
            else:
                yield from _refs(v)
    elif isinstance(node, list):
        for v in node:
            yield from _refs(v)


def _documented(doc: dict[str, Any], prefix: str) -> set[str]:
    """The names under ``prefix`` (command names for CMD_PREFIX, event kinds for
    EVENT_PREFIX); each channel must carry a message named after it."""
    section = prefix.rstrip("/").rsplit("/", 1)[-1]  # "cmd" or "events"
    names = set()
    for name, ch in _channels(doc, prefix).items():
        msgs = [_deref(doc, m) for m in ch.get("messages", {}).values()]
        assert any(m.get("name") == name for m in msgs), f"{section}/{name} has no message named {name!r}"
        names.add(name)
    return names


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """The app with every simulated device and an MQTT section (never started: nothing connects)."""
    data = tmp_path_factory.mktemp("asyncapi")
    return build_app(sim_config(None, "127.0.0.1:1883", str(data)), simulated=True)


def test_document_header(doc: dict[str, Any]) -> None:
    assert doc["asyncapi"] == "3.0.0"
    assert doc["info"]["title"] == "hubagent hub MQTT API"
    assert doc["info"]["version"] == hubagent.__version__
    assert all(s["protocol"] == "mqtt" for s in doc["servers"].values())


def test_every_registered_command_is_documented(doc: dict[str, Any], app: Any) -> None:
    registered = set(app.commands.names())
    documented = _documented(doc, CMD_PREFIX)
    assert registered, "the simulated app registered no command"
    assert registered - documented == set(), "commands missing from docs/asyncapi.yaml"
    assert documented - registered == set(), "documented commands the daemon does not register"


def test_command_arguments_match_the_structs(doc: dict[str, Any], app: Any) -> None:
    """Each command's documented argument names (and required ones) are the msgspec Struct's."""
    by_name = {m.get("name"): m for m in doc["components"]["messages"].values()}
    for name in app.commands.names():
        # _entries holds the Struct each command was registered with (no public accessor yet).
        struct = app.commands.schema(name)
        want = msgspec.json.schema(struct)
        want = want["$defs"][want["$ref"].rsplit("/", 1)[1]]
        parts = [_deref(doc, p) for p in _deref(doc, by_name[name]["payload"])["allOf"]]
        props: set[str] = set()
        required: set[str] = set()
        for p in parts:
            props |= set(p.get("properties", {}))
            required |= set(p.get("required", []))
        assert props - {"id"} == set(want["properties"]), name
        assert required - {"id"} == set(want.get("required", [])), name
        assert "id" in required, name


def test_every_emitted_event_kind_is_documented(doc: dict[str, Any]) -> None:
    emitted, _ = emitted_kinds()
    documented = _documented(doc, EVENT_PREFIX)
    assert len(emitted) > 20, f"the source scan found too few kinds: {sorted(emitted)}"
    assert emitted - documented == set(), "event kinds missing from docs/asyncapi.yaml"
    assert documented - emitted == set(), "documented event kinds the code never emits"


def test_no_unexplained_event_kinds() -> None:
    """Every ``.emit(`` has a kind the scan can read (a literal, a module constant or DYNAMIC_KINDS)."""
    _, unknown = emitted_kinds()
    assert unknown == [], "add these to DYNAMIC_KINDS (or use literal kinds)"


def test_event_messages_carry_their_kind(doc: dict[str, Any]) -> None:
    for kind, ch in _channels(doc, EVENT_PREFIX).items():
        for m in ch["messages"].values():
            payload = _deref(doc, _deref(doc, m)["payload"])
            consts = [p.get("properties", {}).get("kind", {}).get("const") for p in payload["allOf"]]
            assert kind in consts, kind


def test_hub_sends_and_receives_the_right_channels(doc: dict[str, Any]) -> None:
    actions: dict[str, str] = {}
    for op in doc["operations"].values():
        actions[_deref(doc, op["channel"])["address"]] = op["action"]
    for ch in doc["channels"].values():
        address = ch["address"]
        receive = address.startswith(CMD_PREFIX) or address == "hubs/{hub}/ack"
        if address == "hubs/{hub}/reply":
            continue  # reached through each command's operation reply
        assert actions.get(address) == ("receive" if receive else "send"), address


def test_every_ref_resolves(doc: dict[str, Any]) -> None:
    refs = set(_refs(doc))
    assert refs
    broken = []
    for ref in sorted(refs):
        try:
            _resolve(doc, ref)
        except (KeyError, IndexError, ValueError, TypeError, AssertionError):
            broken.append(ref)
    assert broken == []


def test_source_scan_reads_every_form(tmp_path: Path) -> None:
    """The kind scanner sees literals on the same or the next line and module constants."""
    pkg = tmp_path / "hubagent"
    pkg.mkdir()
    (pkg / "a.py").write_text(
        'KIND_X = "x.happened"\n'
        'def f(tx):\n'
        '    tx.emit("a.one", {})\n'
        '    ctx.tx.emit(\n        "b.two", {})\n'
        '    tx.emit(KIND_X, {})\n'
        '    tx.emit(kind, {})\n', encoding="utf-8")
    kinds, unknown = emitted_kinds(pkg)
    assert kinds == {"a.one", "b.two", "x.happened"}
    assert unknown == ["hubagent/a.py:7: emit(kind"]
