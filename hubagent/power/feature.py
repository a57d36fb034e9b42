"""The power feature: UPS awareness wired into the daemon.

``install(app)`` sets ``app.power`` to a :class:`~hubagent.power.service.PowerService`
when at least one power source is configured; without one the feature
installs nothing. :func:`check_config` (from :mod:`hubagent.power.checks`)
is the power cross-section check of the config loader.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from hubagent.power.checks import check_config
from hubagent.power.service import PowerService

if TYPE_CHECKING:
    from hubagent.app import App

__all__ = ["check_config", "install"]


def install(app: "App") -> None:
    """Add the power service when a power source is configured."""
    if not app.config.devices_of("power"):
        return
    svc = PowerService(app, app.config.section("power_policy"), clock=app.clock)
    svc.install()
    app.power = svc
