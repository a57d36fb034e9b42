"""The in-process core thread of :mod:`hubagent.bench.corethread`, with a command helper.

Tests that build the app with a :class:`~hubagent.clock.ManualClock` move its
time with ``clock.advance``.
"""

from __future__ import annotations

import itertools
import json
from typing import Any

from hubagent.app import App
from hubagent.bench import corethread


class CoreThread(corethread.CoreThread):
    """``app`` started on a loop thread of its own; :meth:`close` stops both."""

    def __init__(self, app: App) -> None:
        super().__init__(app)
        self._ids = itertools.count(1)

    def command(self, name: str, **args: Any) -> dict[str, Any]:
        """A command as central sends it; asserts it succeeded and returns the result."""
        args.setdefault("id", f"t-{name}-{next(self._ids)}")
        reply = self.handle(name, json.dumps(args).encode())
        assert reply["ok"], reply
        return reply["result"]  # type: ignore[no-any-return]
