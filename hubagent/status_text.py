"""``hubagent status`` for a person at a terminal: one screen, the reason first.

State and why come first, then one line per device, then sync, power,
lockers, scanning, printing, stock and the web pages summarised, with units
and relative times and no Python literals. ``--json`` is the full document.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Callable

from hubagent import humanize
from hubagent.clock import LoopClock

_SHOWN = {"hub", "version", "simulated", "uptime_s", "state", "alerts", "alerts_since", "devices",
          "last_seq", "sync", "power", "lockers", "scanning", "printing", "stock", "web", "system"}


def render(st: dict[str, Any], now: datetime | None = None) -> str:
    """A short text view of the status document."""
    now = now or LoopClock().now()
    state = humanize.hub_state(st)
    headline = {"ok": "ok", "alert": "ALERT", "offline": "OFFLINE"}[state]
    lines = [f"hub {st['hub']}: {headline}: {humanize.english('state_' + state)}"]
    lines += [f"  ! {why}" for why in humanize.reasons(st)]
    mode = "simulated" if st.get("simulated") else "hardware"
    lines.append(f"  {mode}, version {st['version']}, up {humanize.duration(st.get('uptime_s'))}, "
                 f"last event #{st.get('last_seq', 0)}")
    lines.append("devices")
    for d in st.get("devices", []):
        role = _ROLE.get(d["role"], d["role"])
        lines.append(f"  {role + ' ' + d['name']:<20} {d['health']:<8} {_short(d['detail'], 48)}")
    for name, fn in _SECTIONS:
        if st.get(name):
            text = fn(st[name], now)
            if text:
                lines.append(f"{name:<9}{text}")
    for name, value in st.items():
        if name not in _SHOWN and isinstance(value, dict):
            lines.append(f"{name:<9}{_pairs(value)}")
    return "\n".join(lines)


_ROLE = {"scanners": "scanner", "printers": "printer", "lockers": "lockers", "keypads": "keypad",
         "feedback": "feedback", "power": "power"}


def _short(text: Any, width: int) -> str:
    s = _plain(text)
    return s if len(s) <= width else "…" + s[-(width - 1):]


def _plain(value: Any) -> str:
    """A value as a person reads it: no None/True/False, lists joined."""
    if value is None:
        return "—"
    if value is True:
        return "yes"
    if value is False:
        return "no"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, (list, tuple)):
        return ", ".join(_plain(v) for v in value) or "none"
    if isinstance(value, dict):
        return _pairs(value)
    return str(value)


def _pairs(d: dict[str, Any]) -> str:
    return " · ".join(f"{k} {_plain(v)}" for k, v in d.items() if not isinstance(v, (dict, list)))


def _sync(s: dict[str, Any], now: datetime) -> str:
    waiting = s.get("outbox_depth") or 0
    if str(s.get("mode", "")).startswith("offline (no"):
        link = "offline mode (no broker configured)"
    elif s.get("connected"):
        link = "connected" + ("" if s.get("subscribed", True) else ", subscribing")
    else:
        link = "NOT CONNECTED to the broker"
    lag = humanize.ago(s.get("oldest_unacked_at"), now) if waiting else ""
    return f"{link} · {waiting} event{'s' if waiting != 1 else ''} waiting" + \
        (f", oldest {lag}" if lag else "")


def _power(p: dict[str, Any], now: datetime) -> str:
    parts = [str(p.get("state", "unknown")).replace("_", " ")]
    if p.get("charge") is not None:
        parts.append(f"charge {p['charge']:.0f} %")
    if p.get("runtime") is not None:
        parts.append(f"runtime {humanize.duration(p['runtime'])}")
    phase = (p.get("shutdown") or {}).get("phase")
    if phase and phase != "none":
        parts.append(f"shutdown {phase}")
    return " · ".join(parts)


def _lockers(lk: dict[str, Any], now: datetime) -> str:
    out = []
    for bank, b in (lk.get("banks") or {}).items():
        comps = b.get("compartments") or {}
        counts: dict[str, int] = {}
        for c in comps.values():
            counts[c.get("state", "unknown")] = counts.get(c.get("state", "unknown"), 0) + 1
        opened = sum(1 for c in comps.values() if c.get("door") == "open")
        faulted = b.get("faulted") or []
        text = f"{bank}: {len(comps)} compartments, " + ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
        energised = sum(1 for c in comps.values() if c.get("energised"))
        text += f"; {opened} open; {energised} lock{'s' if energised != 1 else ''} energised"
        if faulted:
            text += f"; faulted {', '.join(faulted)}"
        out_of_service = [f"{c} ({(comps[c].get('out_of_service') or {}).get('reason', '')})"
                          for c in b.get("out_of_service") or []]
        if out_of_service:
            text += f"; out of service {', '.join(out_of_service)}"
        out.append(text)
    if lk.get("couriers"):
        out.append("couriers signed in: " + ", ".join(f"{who} at {st}" for st, who in lk["couriers"].items()))
    if lk.get("lockouts"):
        out.append("locked out: " + ", ".join(f"{k} {humanize.duration(v)}" for k, v in lk["lockouts"].items()))
    return " | ".join(out)


def _scanning(sc: dict[str, Any], now: datetime) -> str:
    out = []
    for name, s in (sc.get("scanners") or {}).items():
        who = f", {s['staff']} signed in" if s.get("staff") else ""
        out.append(f"{name}: {s.get('mode')} mode{who}, {s.get('accepted', 0)} accepted, "
                   f"{s.get('rejected', 0)} refused")
    return " | ".join(out)


def _printing(pr: dict[str, Any], now: datetime) -> str:
    printers = " · ".join(f"{n}: {p.get('state')}" + (f" ({p['detail']})" if p.get("detail") else "")
                          for n, p in (pr.get("printers") or {}).items())
    paused = f" · paused: {pr['pause_reason']}" if pr.get("paused") else ""
    return f"{printers} · {pr.get('queued', 0)} queued{paused}"


def _stock(sk: dict[str, Any], now: datetime) -> str:
    negative = sk.get("negative_balances") or []
    n_neg = sk.get("negative_total", len(negative))
    return f"{sk.get('skus', 0)} SKUs · {sk.get('movements', 0)} movements · {n_neg} negative balances"


def _web(w: dict[str, Any], now: datetime) -> str:
    return " · ".join(w.get("urls") or []) or "not listening"


def _system(s: dict[str, Any], now: datetime) -> str:
    parts = []
    if s.get("disk_free_mb") is not None:
        parts.append(f"disk {s['disk_free_mb']:,} MB free")
    if s.get("rss_mb") is not None:
        parts.append(f"memory {s['rss_mb']:.0f} MB")
    if s.get("cpu_temp_c") is not None:
        parts.append(f"CPU {s['cpu_temp_c']:.0f} °C")
    return " · ".join(parts)


_SECTIONS: list[tuple[str, Callable[[dict[str, Any], datetime], str]]] = [
    ("sync", _sync), ("power", _power), ("lockers", _lockers), ("scanning", _scanning),
    ("printing", _printing), ("stock", _stock), ("web", _web), ("system", _system),
]
