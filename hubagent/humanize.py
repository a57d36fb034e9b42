"""Status in plain words: the reason first, units and relative times.

Shared by the staff page and ``hubagent status``: a person wants "Printer
label is out of paper since 14:02", not ``{"printers": {"label": ...}}``.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Callable

Translate = Callable[..., str]


def english(key: str, **values: Any) -> str:
    """The built-in English phrasing, for callers without catalogues (the CLI)."""
    return _EN.get(key, key).format(**values)


_EN = {
    "state_ok": "Everything is working",
    "state_alert": "Needs attention",
    "state_offline": "Offline: events wait for central",
    "ago_s": "{n} s ago", "ago_min": "{n} min ago", "ago_h": "{n} h ago", "ago_d": "{n} days ago",
    "since": "since {time}",
    "alert_disk_full": "The disk is full: {detail}",
    "alert_device": "{role} {name}: {detail}",
    "alert_generic": "{key}: {detail}",
    "sync_waiting": "{n} events wait for central",
}


def parse_time(value: Any) -> datetime | None:
    """An RFC 3339 string (or epoch seconds) as aware UTC, or None."""
    if isinstance(value, (int, float)):
        return datetime.fromtimestamp(value, timezone.utc)
    if not isinstance(value, str) or not value:
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def ago(then: Any, now: datetime, t: Translate = english) -> str:
    """"3 min ago" for a time before ``now``; "" when unknown."""
    moment = parse_time(then)
    if moment is None:
        return ""
    secs = max(0, int((now - moment).total_seconds()))
    if secs < 120:
        return t("ago_s", n=secs)
    if secs < 7200:
        return t("ago_min", n=secs // 60)
    if secs < 172800:
        return t("ago_h", n=secs // 3600)
    return t("ago_d", n=secs // 86400)


def clock_time(value: Any) -> str:
    """"14:02" (UTC, as the hub logs) for an RFC 3339 time; "" when unknown."""
    moment = parse_time(value)
    return moment.strftime("%H:%M") if moment else ""


def duration(seconds: Any) -> str:
    """"1 h 5 min", "40 s"."""
    if not isinstance(seconds, (int, float)):
        return ""
    s = int(seconds)
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60} s" if s % 60 else f"{s // 60} min"
    return f"{s // 3600} h {(s % 3600) // 60} min"


def hub_state(st: dict[str, Any]) -> str:
    """``ok``, ``alert`` or ``offline``: offline when central cannot be reached and events wait."""
    if st.get("alerts"):
        return "alert"
    sync = st.get("sync") or {}
    if sync.get("mode", "").startswith("offline (no"):
        return "ok"
    if not sync.get("connected", True) and (sync.get("outbox_depth") or 0) > 0:
        return "offline"
    return "ok"


def reasons(st: dict[str, Any], t: Translate = english) -> list[str]:
    """Why the hub is not ``ok``, most important first, in plain words."""
    out: list[str] = []
    since = st.get("alerts_since") or {}
    for key, detail in sorted((st.get("alerts") or {}).items(), key=lambda kv: _rank(kv[0])):
        if key == "disk_full":
            text = t("alert_disk_full", detail=detail)
        elif key.startswith("device:"):
            role, _, name = key[len("device:"):].partition("/")
            text = t("alert_device", role=_singular(role).capitalize(), name=name,
                     detail=_plain(detail))
        else:
            text = t("alert_generic", key=key, detail=detail)
        when = clock_time(since.get(key))
        out.append(f"{text} ({t('since', time=when)})" if when else str(text))
    sync = st.get("sync") or {}
    if hub_state(st) == "offline":
        out.append(t("sync_waiting", n=sync.get("outbox_depth", 0)))
    return out


def _plain(detail: str) -> str:
    """"faulted: paper out" -> "paper out": the health word adds nothing to the reason."""
    head, sep, rest = detail.partition(": ")
    return rest if sep and head in ("faulted", "offline", "degraded") else detail


def _rank(key: str) -> int:
    for i, prefix in enumerate(("disk_full", "mqtt", "power", "device:", "locker")):
        if key.startswith(prefix):
            return i
    return 9


def _singular(role: str) -> str:
    return {"printers": "printer", "scanners": "scanner", "lockers": "locker bank",
            "keypads": "keypad", "feedback": "feedback", "power": "power source"}.get(role, role)
