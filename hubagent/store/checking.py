"""The deferred integrity check of a big database, beside the running hub.

:meth:`hubagent.store.store.Store.open` runs ``quick_check`` before anything
uses the file when the last stop was unclean or the file is small; a big
file after a clean stop is checked here instead, in a thread with its own
read-only connection, so a ledger of millions neither delays READY nor
holds up the core loop. Damage found raises the ``database_damaged``
alert (the file is left as it is: see docs/operations.md, "Recovery").
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Callable

from hubagent.clock import Clock
from hubagent.store.db import background_check

log = logging.getLogger(__name__)

ALERT = "database_damaged"


def start(path: Path, clock: Clock, set_alert: Callable[[str, str | None], None]) -> threading.Thread:
    """Check ``path`` in a daemon thread; the alert is set on the core loop if damaged."""

    def report(bad: str | None) -> None:
        if bad is None:
            log.info("database %s passed its quick_check", path)
            return
        log.error("database %s is damaged: %s", path, bad)
        set_alert(ALERT, f"quick_check found damage in {path}: {bad[:300]}; "
                         "stop the hub and follow docs/operations.md (Recovery)")

    def run() -> None:
        bad = background_check(path)
        clock.call_from_thread(lambda: report(bad))

    thread = threading.Thread(target=run, name="db-check", daemon=True)
    thread.start()
    return thread
