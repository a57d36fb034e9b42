"""Message catalogues: every word a page shows comes from one of these.

A catalogue is a TOML file of ``key = "text"`` pairs, one per language
(``locales/en.toml`` ...). ``[web] locale_dir`` may add languages or
override single messages without touching the package. Missing keys fall
back to English, and a key missing there too shows the key itself, so a
forgotten message is visible rather than blank.
"""

from __future__ import annotations

import tomllib
from importlib import resources
from pathlib import Path
from typing import Any, Mapping

from hubagent.textcheck import text_problem

FALLBACK = "en"


class Catalogues:
    """The loaded catalogues of the configured languages."""

    def __init__(self, languages: tuple[str, ...], extra_dir: str | None = None) -> None:
        self.languages = languages
        self._messages: dict[str, dict[str, str]] = {}
        for lang in {FALLBACK, *languages}:
            merged = _builtin(lang)
            if extra_dir is not None:
                merged.update(_read(Path(extra_dir) / f"{lang}.toml"))
            self._messages[lang] = merged
        missing = [lang for lang in languages if not self._messages[lang]]
        if missing:
            raise ValueError(f"no message catalogue for language(s) {', '.join(missing)}")

    def pick(self, wanted: str | None) -> str:
        """``wanted`` if offered, else the first configured language."""
        return wanted if wanted in self.languages else self.languages[0]

    def text(self, lang: str, key: str, **values: Any) -> str:
        """The message ``key`` in ``lang`` with ``{name}`` placeholders filled in."""
        msg = self._messages.get(lang, {}).get(key) or self._messages[FALLBACK].get(key) or key
        try:
            return msg.format(**values) if values else msg
        except (KeyError, IndexError, ValueError):
            return msg

    def name(self, lang: str) -> str:
        """The language's own name ("Deutsch")."""
        return self._messages.get(lang, {}).get("language_name", lang)

    def keys(self, lang: str) -> Mapping[str, str]:
        """Every message of one language (for tests and translators)."""
        return dict(self._messages.get(lang, {}))


def _builtin(lang: str) -> dict[str, str]:
    ref = resources.files("hubagent.web").joinpath("locales", f"{lang}.toml")
    if not ref.is_file():
        return {}
    return _parse(ref.read_text(encoding="utf-8"), f"locales/{lang}.toml")


def _read(path: Path) -> dict[str, str]:
    try:
        return _parse(path.read_text(encoding="utf-8"), str(path))
    except FileNotFoundError:
        return {}


def _parse(text: str, where: str) -> dict[str, str]:
    doc = tomllib.loads(text)
    out: dict[str, str] = {}
    for key, value in doc.items():
        if not isinstance(value, str):
            raise ValueError(f"{where}: {key} must be a string")
        problem = text_problem(value)
        if problem is not None:
            raise ValueError(f"{where}: {key} {problem}")
        out[key] = value
    return out
