"""``hubagent status`` for a person at a terminal."""

from __future__ import annotations

from typing import Any

_CORE = {"hub", "version", "simulated", "uptime_s", "state", "alerts", "alerts_since", "devices", "last_seq"}


def render(st: dict[str, Any]) -> str:
    """A short, aligned text view of the status document."""
    mode = "simulated" if st.get("simulated") else "hardware"
    lines = [
        f"hub {st['hub']}  ({mode}, version {st['version']}, up {st['uptime_s']:.0f} s)",
        f"state: {st['state']}   last seq: {st['last_seq']}",
    ]
    for key, detail in sorted(st.get("alerts", {}).items()):
        lines.append(f"  ALERT {key}: {detail}")
    lines.append("devices:")
    for d in st.get("devices", []):
        lines.append(f"  {d['role']:<9} {d['name']:<12} {d['driver']:<7} {d['health']:<8} {d['detail']}")
    for section, value in st.items():
        if section in _CORE:
            continue
        lines.append(f"{section}:")
        lines.extend(_section(value))
    return "\n".join(lines)


def _section(value: Any, indent: str = "  ") -> list[str]:
    if isinstance(value, dict):
        out = []
        for k, v in value.items():
            if isinstance(v, (dict, list)) and v:
                out.append(f"{indent}{k}:")
                out.extend(_section(v, indent + "  "))
            else:
                out.append(f"{indent}{k}: {v}")
        return out
    if isinstance(value, list):
        return [f"{indent}- {item}" for item in value]
    return [f"{indent}{value}"]
