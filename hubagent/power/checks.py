"""The power feature's cross-section config check (imports nothing heavy)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from hubagent.config import Config


def check_config(cfg: "Config") -> None:
    """At most one power source: the policy follows one UPS and powers off once.

    Two sources (a NUT UPS and a HAT) would feed one policy contradicting
    readings, so the hub could flap between states; refuse it up front.
    """
    sources = cfg.devices_of("power")
    if len(sources) > 1:
        names = ", ".join(d.name for d in sources)
        raise ValueError(f"power.{sources[1].name}: only one power source is supported "
                         f"(configured: {names})")
