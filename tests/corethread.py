"""An app running in-process on its own asyncio loop thread, as the daemon runs it.

``call`` runs a function on that (core) thread and returns its result;
``command`` sends a command through the real dispatcher. Tests that build the
app with a :class:`~hubagent.clock.ManualClock` move its time with
``clock.advance``.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import itertools
import json
import threading
from typing import Any, Callable

from hubagent.app import App


class CoreThread:
    """``app`` started on a loop thread of its own; :meth:`close` stops both."""

    def __init__(self, app: App) -> None:
        self.app = app
        self._ids = itertools.count(1)
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        asyncio.run_coroutine_threadsafe(app.start(), self.loop).result(30)

    def call(self, fn: Callable[[], Any]) -> Any:
        """Run ``fn()`` on the core thread; its result, or its exception raised here."""
        fut: concurrent.futures.Future[Any] = concurrent.futures.Future()

        def run() -> None:
            try:
                fut.set_result(fn())
            except BaseException as e:
                fut.set_exception(e)

        self.loop.call_soon_threadsafe(run)
        return fut.result(30)

    def handle(self, name: str, payload: bytes) -> dict[str, Any]:
        """The dispatcher's reply to raw command bytes."""
        return self.call(lambda: self.app.commands.handle(name, payload))  # type: ignore[no-any-return]

    def command(self, name: str, **args: Any) -> dict[str, Any]:
        """A command as central sends it; asserts it succeeded and returns the result."""
        args.setdefault("id", f"t-{name}-{next(self._ids)}")
        reply = self.handle(name, json.dumps(args).encode())
        assert reply["ok"], reply
        return reply["result"]  # type: ignore[no-any-return]

    def close(self) -> None:
        """Stop the app, then the loop."""
        asyncio.run_coroutine_threadsafe(self.app.stop(), self.loop).result(30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()
