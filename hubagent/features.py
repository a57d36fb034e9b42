"""The features a hub is made of, installed in order by :func:`build_app`.

Each entry is ``"module:function"``; the function takes the
:class:`~hubagent.app.App` and registers its commands, event handlers,
status sections and start/stop hooks. A feature whose devices are not
configured installs nothing heavy.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from hubagent.app import App

FEATURES: list[str] = [
    "hubagent.core_feature:install",
    "hubagent.sync.feature:install",
    "hubagent.stock.feature:install",
    "hubagent.printing.feature:install",
    "hubagent.staff.feature:install",
    "hubagent.scanning.feature:install",
    "hubagent.lockers.feature:install",
    "hubagent.power.feature:install",
    "hubagent.telemetry:install",
    "hubagent.web.feature:install",
]


def install_all(app: "App") -> None:
    """Install every feature into ``app``."""
    for ref in FEATURES:
        module, _, attr = ref.partition(":")
        getattr(importlib.import_module(module), attr)(app)
