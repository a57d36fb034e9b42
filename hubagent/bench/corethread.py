"""An app running in-process on its own asyncio loop thread, as the daemon runs it.

The benchmarks that need the hub in their own process (to see its pins or
time its core) use this, and so do the tests (``tests/corethread.py`` adds
their command helper). ``call`` runs a function on that core thread and
returns its result.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:
    from hubagent.app import App


class CoreThread:
    """``app`` started on a loop thread of its own; :meth:`close` stops both."""

    def __init__(self, app: "App") -> None:
        self.app = app
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        asyncio.run_coroutine_threadsafe(app.start(), self.loop).result(30)

    def call(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Run ``fn(*args)`` on the core thread; its result, or its exception raised here."""
        fut: concurrent.futures.Future[Any] = concurrent.futures.Future()

        def run() -> None:
            try:
                fut.set_result(fn(*args))
            except BaseException as e:
                fut.set_exception(e)

        self.loop.call_soon_threadsafe(run)
        return fut.result(30)

    def handle(self, name: str, payload: bytes) -> dict[str, Any]:
        """The dispatcher's reply to raw command bytes."""
        reply: dict[str, Any] = self.call(lambda: self.app.commands.handle(name, payload))
        return reply

    def close(self) -> None:
        """Stop the app, then the loop."""
        asyncio.run_coroutine_threadsafe(self.app.stop(), self.loop).result(30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()
