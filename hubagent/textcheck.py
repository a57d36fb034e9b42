"""Text and numbers at the hub's boundaries.

Free text that crosses a boundary (command arguments, config values, scans,
keypad entries, label fields) ends up in labels, logs and central's screens.
Characters that have no business there are refused, naming the field:

* C0 and C1 control characters (NUL, escape sequences, line breaks);
* bidirectional overrides, embeddings, isolates and marks (the
  "Trojan Source" characters, U+202E and friends);
* invisible characters that make two different strings look the same
  (zero-width space U+200B, word joiner U+2060, BOM U+FEFF);
* lone surrogates, which are not text at all (JSON can spell them as
  ``"\\ud800"``, and SQLite refuses to bind them).

The zero-width non-joiner and joiner (U+200C, U+200D) are allowed: Persian,
Indic scripts and emoji need them.

Integers must fit SQLite's 64-bit INTEGER; anything larger is refused here
instead of overflowing at the bind.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Any

INT_MIN = -(2**63)
INT_MAX = 2**63 - 1

_FORBIDDEN = re.compile(
    "[\x00-\x1f\x7f-\x9f"          # C0, DEL, C1
    "\u200b\u200e\u200f"           # zero-width space, LRM, RLM
    "\u202a-\u202e"                # bidi embeddings and overrides
    "\u2060-\u2064\u2066-\u2069"   # word joiner, invisible operators, bidi isolates
    "\ufeff"                       # BOM / zero-width no-break space
    "\ud800-\udfff]"               # lone surrogates
)


def describe(char: str) -> str:
    """``U+202E (RIGHT-TO-LEFT OVERRIDE)`` for a character."""
    name = unicodedata.name(char, "")
    if not name:
        name = "surrogate" if "\ud800" <= char <= "\udfff" else "control character"
    return f"U+{ord(char):04X} ({name})"


def text_problem(value: str) -> str | None:
    """What is wrong with ``value`` as boundary text, or None when it is fine."""
    m = _FORBIDDEN.search(value)
    if m is None:
        return None
    return (f"contains {describe(m.group())} at position {m.start()}; control, "
            "bidirectional-override and invisible characters are not allowed")


def check_text(value: str, field: str) -> str:
    """Return ``value`` or raise ValueError naming ``field`` and the character."""
    problem = text_problem(value)
    if problem is not None:
        raise ValueError(f"{field}: {problem}")
    return value


def tree_problem(value: Any, path: str = "") -> tuple[str, str] | None:
    """The first (field path, problem) in a parsed JSON value, or None.

    Walks dicts (keys and values), lists, strings and integers without
    recursion, so deep input cannot exhaust the stack.
    """
    stack: list[tuple[Any, str]] = [(value, path)]
    while stack:
        item, where = stack.pop()
        if isinstance(item, str):
            problem = text_problem(item)
            if problem is not None:
                return where or "(payload)", problem
        elif isinstance(item, bool):
            continue
        elif isinstance(item, int):
            if not INT_MIN <= item <= INT_MAX:
                return where or "(payload)", "is outside the 64-bit integer range"
        elif isinstance(item, dict):
            for key, child in item.items():
                key_problem = text_problem(key) if isinstance(key, str) else None
                if key_problem is not None:
                    return f"{where}.{_printable(key)}".lstrip(".") or "(key)", key_problem
                stack.append((child, f"{where}.{key}".lstrip(".")))
        elif isinstance(item, list):
            stack.extend((child, f"{where}[{i}]") for i, child in enumerate(item))
    return None


def _printable(text: str) -> str:
    """``text`` with forbidden characters escaped, safe for a message or log line."""
    return _FORBIDDEN.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


def printable(text: str, limit: int = 80) -> str:
    """A log- and reply-safe excerpt of untrusted text."""
    short = text if len(text) <= limit else text[:limit] + "…"
    return _printable(short)
