"""The power feature: UPS awareness wired into the daemon.

Built when at least one power source is configured: a
:class:`~hubagent.power.service.PowerService`, which pauses printing, parks
the locks and flushes the outbox through the interfaces other features offer.
:func:`~hubagent.power.checks.check_config` is its cross-section config check.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from hubagent.feature import Built, Feature, Interfaces
from hubagent.power.checks import check_config
from hubagent.power.service import PowerService
from hubagent.power.settings import POWER_POLICY

if TYPE_CHECKING:
    from hubagent.app import App
    from hubagent.clock import Clock


def build(*, app: "App", clock: "Clock", uses: Interfaces) -> Built:
    """The power service when a power source is configured."""
    if not app.config.devices_of("power"):
        return Built()
    svc = PowerService(app, POWER_POLICY.of(app.config), uses=uses, clock=clock)
    svc.install()
    return Built(svc)


FEATURE = Feature(
    "power", build,
    sections=(POWER_POLICY,),
    checks=(check_config,),  # at most one power source
)
