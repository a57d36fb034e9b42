"""The features a hub is made of: the one list the composition root reads.

:func:`hubagent.app.build_app` builds them in this order (a feature may use
the interfaces offered by those above it), :mod:`hubagent.config` validates
their sections and runs their checks, and the store applies their
migrations in this order. Adding a feature is its own package plus one line
here.
"""

from __future__ import annotations

from hubagent import core_feature, telemetry
from hubagent.feature import Feature, Migration
from hubagent.kpi.feature import FEATURE as KPI
from hubagent.lockers.feature import FEATURE as LOCKERS
from hubagent.restock.feature import FEATURE as RESTOCK
from hubagent.power.feature import FEATURE as POWER
from hubagent.printing.feature import FEATURE as PRINTING
from hubagent.scanning.feature import FEATURE as SCANNING
from hubagent.staff.feature import FEATURE as STAFF
from hubagent.stock.feature import FEATURE as STOCK
from hubagent.sync.feature import FEATURE as SYNC
from hubagent.web.feature import FEATURE as WEB

FEATURES: tuple[Feature, ...] = (
    core_feature.FEATURE,
    SYNC,
    STOCK,
    PRINTING,
    STAFF,
    SCANNING,
    LOCKERS,
    POWER,
    KPI,
    RESTOCK,
    telemetry.FEATURE,
    WEB,
)


def all_migrations(features: tuple[Feature, ...] = FEATURES) -> list[Migration]:
    """Every feature's migrations, in feature order (the core's come first)."""
    return [m for f in features for m in f.migrations]
