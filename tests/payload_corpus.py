"""Malformed command payloads: a fixed corpus and a Hypothesis strategy.

Every payload is a :class:`Malformed`, which *is* ``bytes`` (publish it as
is) tagged with ``code`` (a short machine name of what is wrong, one of
:data:`CODES`), ``problem`` (a sentence), ``command`` (a command name to
send it to instead of a valid one, for the unknown-command case) and
``id`` (the command id a reply could echo, or None when there is no
usable one).

The limits below are the harness's assumption of what a hub must reject;
the hub may be stricter, never looser. :func:`command_problems` is a
reference checker for the command payload contract; the tests use it to
prove that every payload here really is malformed in the way its tag says.
"""

from __future__ import annotations

import json
import string
from collections.abc import Collection, Mapping
from typing import Any

from hypothesis import strategies as st

MAX_PAYLOAD_BYTES = 64 * 1024  # a command is a few hundred bytes; 64 KiB is generous
MAX_ID_LENGTH = 128  # UUIDs are 36 characters
MAX_DEPTH = 32  # no command needs deeper JSON; deep nesting crashes naive parsers
BOM = b"\xef\xbb\xbf"
# Bytes that never occur in UTF-8, anywhere.
_NEVER_UTF8 = (b"\xff", b"\xfe", b"\xc0", b"\xc1", b"\xf5")

CODES = frozenset({
    "empty", "too_large", "bom", "not_utf8", "not_json", "nan", "duplicate_key",
    "too_deep", "not_object", "missing_id", "id_type", "id_empty", "id_too_long",
    "unknown_field", "wrong_type", "missing_field", "unknown_command",
})


class Malformed(bytes):
    """A malformed command payload: bytes, tagged with what is wrong with it."""

    code: str
    problem: str
    command: str | None
    id: object

    def __new__(cls, payload: bytes, code: str, problem: str, *,
                command: str | None = None, id: object = None) -> Malformed:
        if code not in CODES:
            raise ValueError(f"unknown code {code!r}")
        obj = super().__new__(cls, payload)
        obj.code, obj.problem, obj.command, obj.id = code, problem, command, id
        return obj

    @property
    def payload(self) -> bytes:
        """The plain bytes."""
        return bytes(self)

    def __repr__(self) -> str:
        head = bytes(self[:60])
        more = f"...({len(self)} bytes)" if len(self) > 60 else ""
        return f"Malformed[{self.code}: {self.problem}]({head!r}{more})"


# -- reference checker --------------------------------------------------------------


class _DuplicateKey(ValueError):
    pass


class _Constant(ValueError):
    pass


def _pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """object_pairs_hook that refuses duplicate keys."""
    keys = [k for k, _ in pairs]
    if len(keys) != len(set(keys)):
        raise _DuplicateKey("duplicate key")
    return dict(pairs)


def _constant(name: str) -> float:
    """parse_constant that refuses NaN and the infinities (not JSON)."""
    raise _Constant(name)


def _too_deep(value: Any, limit: int) -> bool:
    """True if a parsed JSON value nests more than ``limit`` levels (iterative: no recursion)."""
    stack = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, (dict, list)):
            depth += 1
            if depth > limit:
                return True
            stack.extend((child, depth) for child in
                         (item.values() if isinstance(item, dict) else item))
    return False


def _has_type(value: Any, expected: type | tuple[type, ...]) -> bool:
    """isinstance, except a bool is not a number and an int is a valid float."""
    types = expected if isinstance(expected, tuple) else (expected,)
    if isinstance(value, bool):
        return bool in types
    if isinstance(value, int) and float in types:
        return True
    return isinstance(value, types)


def command_problems(
    payload: bytes,
    *,
    fields: Mapping[str, type | tuple[type, ...]] | None = None,
    command: str | None = None,
    known_commands: Collection[str] | None = None,
) -> list[str]:
    """Codes of what is wrong with ``payload`` as a command; [] if it is valid.

    ``fields`` are the command's arguments (all required) and their JSON
    types besides ``id``; by default the command takes none.
    """
    problems = []
    if command is not None and known_commands is not None and command not in known_commands:
        problems.append("unknown_command")
    if len(payload) > MAX_PAYLOAD_BYTES:
        problems.append("too_large")
    if not payload:
        return [*problems, "empty"]
    if payload.startswith(BOM):
        problems.append("bom")
        payload = payload[len(BOM):]
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError:
        return [*problems, "not_utf8"]
    try:
        doc = json.loads(text, object_pairs_hook=_pairs, parse_constant=_constant)
    except _DuplicateKey:
        return [*problems, "duplicate_key"]
    except _Constant:
        return [*problems, "nan"]
    except RecursionError:
        return [*problems, "too_deep"]
    except ValueError:
        return [*problems, "not_json"]
    if _too_deep(doc, MAX_DEPTH):
        problems.append("too_deep")
    if not isinstance(doc, dict):
        return [*problems, "not_object"]
    return problems + _object_problems(doc, fields or {})


def _object_problems(doc: dict[str, Any],
                     fields: Mapping[str, type | tuple[type, ...]]) -> list[str]:
    """Problems with the id and the arguments of a parsed command object."""
    problems = []
    if "id" not in doc:
        problems.append("missing_id")
    elif not isinstance(doc["id"], str):
        problems.append("id_type")
    elif not doc["id"].strip():
        problems.append("id_empty")
    elif len(doc["id"]) > MAX_ID_LENGTH:
        problems.append("id_too_long")
    for key, value in doc.items():
        if key == "id":
            continue
        if key not in fields:
            problems.append("unknown_field")
        elif not _has_type(value, fields[key]):
            problems.append("wrong_type")
    if any(name not in doc for name in fields):
        problems.append("missing_field")
    return problems


# -- the fixed corpus ---------------------------------------------------------------


def _j(doc: Any) -> bytes:
    """Compact JSON bytes."""
    return json.dumps(doc, separators=(",", ":")).encode()


def _deep(depth: int) -> bytes:
    """A command whose argument is ``depth`` nested arrays."""
    return b'{"id":"bad-deep","args":' + b"[" * depth + b"]" * depth + b"}"


UNKNOWN_COMMAND = "no-such-command"

CORPUS: tuple[Malformed, ...] = (
    Malformed(b"", "empty", "empty payload"),
    Malformed(b"hello hub", "not_json", "plain text"),
    Malformed(b'{"id": "bad-trunc", "sku": ', "not_json", "truncated JSON"),
    Malformed(b"{'id': 'bad-quotes'}", "not_json", "single-quoted pseudo-JSON"),
    Malformed(b'{"id": "bad-comma",}', "not_json", "trailing comma"),
    Malformed(b'["id", "bad-array"]', "not_object", "JSON array, not an object"),
    Malformed(b'"bad-string"', "not_object", "JSON string, not an object"),
    Malformed(b"42", "not_object", "JSON number, not an object"),
    Malformed(b"null", "not_object", "JSON null, not an object"),
    Malformed(b"true", "not_object", "JSON boolean, not an object"),
    Malformed(b'{"sku": "A1"}', "missing_id", "no id"),
    Malformed(b"{}", "missing_id", "empty object"),
    Malformed(b'{"id": null}', "id_type", "id is null"),
    Malformed(b'{"id": 42}', "id_type", "id is a number", id=42),
    Malformed(b'{"id": true}', "id_type", "id is a boolean", id=True),
    Malformed(b'{"id": ["bad-list"]}', "id_type", "id is a list"),
    Malformed(b'{"id": {"nested": "bad"}}', "id_type", "id is an object"),
    Malformed(b'{"id": ""}', "id_empty", "empty id", id=""),
    Malformed(b'{"id": "   "}', "id_empty", "blank id", id="   "),
    Malformed(_j({"id": "x" * 10_000}), "id_too_long", "10 000-character id", id="x" * 10_000),
    Malformed(_j({"id": "bad-oversize", "pad": "x" * (1 << 20)}), "too_large",
              "1 MiB payload", id="bad-oversize"),
    Malformed(b'{"id": "bad-\xff\xfe"}', "not_utf8", "invalid UTF-8 bytes in the id"),
    Malformed('{"id": "bad-café"}'.encode("latin-1"), "not_utf8", "Latin-1, not UTF-8"),
    Malformed('{"id": "bad-utf16"}'.encode("utf-16"), "not_utf8", "UTF-16 with BOM"),
    Malformed(b'{"id": "bad-\xed\xa0\x80"}', "not_utf8", "UTF-8-encoded surrogate"),
    Malformed(BOM + b'{"id": "bad-bom"}', "bom", "UTF-8 byte order mark", id="bad-bom"),
    Malformed(b'{"id": "bad-nan", "qty": NaN}', "nan", "NaN literal"),
    Malformed(b'{"id": "bad-inf", "qty": Infinity}', "nan", "Infinity literal"),
    Malformed(b'{"id": "bad-ninf", "qty": -Infinity}', "nan", "-Infinity literal"),
    Malformed(b'{"id": "bad-dup-1", "id": "bad-dup-2"}', "duplicate_key", "duplicate id key"),
    Malformed(b'{"id": "bad-dup-x", "a": 1, "a": 2}', "duplicate_key", "duplicate argument key"),
    Malformed(_deep(100_000), "too_deep", "100 000 nested arrays (crashes recursive parsers)"),
    Malformed(_deep(MAX_DEPTH + 1), "too_deep", f"{MAX_DEPTH + 1} nested arrays"),
    Malformed(_j({"id": "bad-junk", "x": {"y": [None, {"z": [1, "2", {}]}]}}), "unknown_field",
              "nested junk argument", id="bad-junk"),
    Malformed(_j({"id": "bad-unknown-cmd"}), "unknown_command", "unknown command name",
              command=UNKNOWN_COMMAND, id="bad-unknown-cmd"),
)


def corpus(code: str | None = None) -> list[Malformed]:
    """The fixed corpus, optionally only the entries with ``code``."""
    return [m for m in CORPUS if code is None or m.code == code]


_WRONG_VALUES: tuple[Any, ...] = ("1", 1.5, 7, True, None, [], {}, [1], {"k": "v"})


def wrong_type_variants(valid: Mapping[str, Any]) -> list[Malformed]:
    """For each argument of the valid command ``valid``, copies with a wrong-typed value.

    The type each argument should have is the type of its value in ``valid``.
    Variants of ``id`` are tagged ``id_type``, others ``wrong_type``.
    """
    out = []
    for key, good in valid.items():
        expected: type | tuple[type, ...] = str if key == "id" else type(good)
        for bad in _WRONG_VALUES:
            if _has_type(bad, expected):
                continue
            doc = {**valid, key: bad}
            code = "id_type" if key == "id" else "wrong_type"
            out.append(Malformed(_j(doc), code, f"{key} is {type(bad).__name__}, "
                                 f"not {type(good).__name__}",
                                 id=None if key == "id" else valid.get("id")))
    return out


# -- Hypothesis ---------------------------------------------------------------------

_ids = st.text(alphabet=string.ascii_letters + string.digits + "-", min_size=1, max_size=40)
_json_scalars = st.none() | st.booleans() | st.integers() | st.text(max_size=20) \
    | st.floats(allow_nan=False, allow_infinity=False)
_json = st.recursive(_json_scalars, lambda kids: st.lists(kids, max_size=4)
                     | st.dictionaries(st.text(max_size=8), kids, max_size=4), max_leaves=12)


def _not_utf8() -> st.SearchStrategy[Malformed]:
    """Any bytes with at least one byte that UTF-8 never uses."""
    return st.tuples(st.binary(max_size=32), st.sampled_from(_NEVER_UTF8),
                     st.binary(max_size=32)).map(
        lambda t: Malformed(b"".join(t), "not_utf8", "not UTF-8"))


def _not_json() -> st.SearchStrategy[Malformed]:
    """UTF-8 text that is not JSON (including truncated commands)."""
    text = st.text(min_size=1, max_size=60).map(str.encode).filter(
        lambda b: command_problems(b) == ["not_json"])
    truncated = st.tuples(_ids, st.dictionaries(st.text(max_size=8), _json, max_size=3)).map(
        lambda t: _j({"id": t[0], **t[1]})).flatmap(
        lambda b: st.integers(1, len(b) - 1).map(lambda n: b[:n]))
    return (text | truncated).map(lambda b: Malformed(b, "not_json", "not JSON"))


def malformed_payloads(valid: Mapping[str, Any] | None = None) -> st.SearchStrategy[Malformed]:
    """Bytes that are not a valid command, each tagged with what is wrong.

    ``valid`` is an optional valid payload of a real command; with it the
    strategy also produces wrong-typed arguments and unknown extra fields
    for that command. (The 1 MiB case lives only in :data:`CORPUS`.)
    """
    base = dict(valid or {"id": "cmd-1"})
    non_str = _json.filter(lambda v: not isinstance(v, str))
    no_id_keys = st.text(max_size=8).filter(lambda k: k != "id")
    literals = st.sampled_from(["NaN", "Infinity", "-Infinity"])
    options = [
        _not_utf8(),
        _not_json(),
        _json.filter(lambda v: not isinstance(v, dict)).map(
            lambda v: Malformed(_j(v), "not_object", "JSON but not an object")),
        st.dictionaries(no_id_keys, _json, max_size=4).map(
            lambda d: Malformed(_j(d), "missing_id", "no id")),
        non_str.map(lambda v: Malformed(_j({**base, "id": v}), "id_type", "id not a string")),
        st.text(alphabet=" \t\r\n", max_size=5).map(
            lambda s: Malformed(_j({**base, "id": s}), "id_empty", "empty or blank id", id=s)),
        st.text(alphabet=string.ascii_letters, min_size=MAX_ID_LENGTH + 1,
                max_size=MAX_ID_LENGTH + 300).map(
            lambda s: Malformed(_j({**base, "id": s}), "id_too_long", "id too long", id=s)),
        st.tuples(_ids, no_id_keys, literals).map(
            lambda t: Malformed(_j({"id": t[0]})[:-1] + b"," + _j(t[1]) + b":" + t[2].encode()
                                + b"}", "nan", f"{t[2]} literal")),
        st.tuples(_ids, _ids).map(
            lambda t: Malformed(b'{"id":' + _j(t[0]) + b',"id":' + _j(t[1]) + b"}",
                                "duplicate_key", "duplicate id key")),
        st.integers(MAX_DEPTH + 1, 3000).map(
            lambda n: Malformed(_deep(n), "too_deep", f"{n} nested arrays", id="bad-deep")),
        st.tuples(no_id_keys.filter(lambda k: k not in base), _json).map(
            lambda t: Malformed(_j({**base, t[0]: t[1]}), "unknown_field",
                                f"unknown field {t[0]!r}", id=base.get("id"))),
        st.just(base).map(lambda d: Malformed(BOM + _j(d), "bom", "byte order mark",
                                              id=d.get("id"))),
    ]
    variants = wrong_type_variants(base)
    if variants:
        options.append(st.sampled_from(variants))
    args = sorted(k for k in base if k != "id")
    if args:
        options.append(st.tuples(st.sampled_from(args), _json).filter(
            lambda t: not _has_type(t[1], type(base[t[0]]))).map(
            lambda t: Malformed(_j({**base, t[0]: t[1]}), "wrong_type",
                                f"{t[0]} is {type(t[1]).__name__}", id=base.get("id"))))
    return st.one_of(options)
