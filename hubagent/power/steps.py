"""The daemon's real shutdown steps, run from the shutdown worker thread.

:class:`~hubagent.power.shutdown.ShutdownSequence` runs on a worker thread
so that waiting for the outbox or for the power-off command never blocks
the core thread. Everything that touches the app (printing, lockers, the
store, the MQTT link) must still run on the core thread, so each step
hands its work to the loop with :class:`CoreCaller` and waits for the
result.
"""

from __future__ import annotations

import concurrent.futures
import logging
import threading
from typing import TYPE_CHECKING, Any, Callable, TypeVar

from hubagent.clock import Clock
from hubagent.feature import Interfaces
from hubagent.interfaces import Uplink
from hubagent.power.shutdown import ShutdownSteps

if TYPE_CHECKING:
    from hubagent.app import App

log = logging.getLogger(__name__)

T = TypeVar("T")

CORE_CALL_TIMEOUT_S = 10.0
"""How long a step waits for the core thread before giving up on that step."""
FLUSH_POLL_S = 0.1
"""How often the flush step asks the sync service how much is left to send."""


class CoreUnavailable(RuntimeError):
    """The core loop is closed or did not answer in time."""


class CoreCaller:
    """Runs a function on the app's core thread and waits for its result."""

    def __init__(self, app: "App", timeout_s: float = CORE_CALL_TIMEOUT_S) -> None:
        self._app = app
        self._timeout_s = timeout_s

    def __call__(self, fn: Callable[[], T]) -> T:
        """``fn()`` on the core thread; its exception is re-raised here."""
        fut: concurrent.futures.Future[T] = concurrent.futures.Future()

        def run() -> None:
            if not fut.set_running_or_notify_cancel():
                return
            try:
                fut.set_result(fn())
            except BaseException as e:  # handed to the waiting thread
                fut.set_exception(e)

        if not self._app.clock.call_from_thread(run):
            raise CoreUnavailable("the core loop is not running")
        # A real wait for another thread (the core), not a timer of the core.
        try:
            return fut.result(self._timeout_s)
        except concurrent.futures.TimeoutError:
            fut.cancel()
            raise CoreUnavailable(f"the core thread did not answer within {self._timeout_s:g} s") from None


def stop_print_jobs(uses: Interfaces) -> None:
    """Refuse new print jobs (core thread); the current job may finish."""
    if uses.print_pause is not None:
        uses.print_pause.pause_new("low battery")


def park_locks(app: "App", uses: Interfaces) -> None:
    """De-energise every lock (core thread); RuntimeError names what failed.

    The lockers feature (when present) parks first, so it also refuses new
    pulses; then every locker bank is released directly, so the locks are
    safe even without that feature or if it failed.
    """
    failed: list[str] = []
    if uses.lock_parking is not None:
        try:
            uses.lock_parking.park()
        except Exception:
            log.exception("lockers feature could not park")
            failed.append("(lockers feature)")
    for entry in app.devices_of("lockers"):
        try:
            entry.device.release_all()  # type: ignore[attr-defined]
        except Exception:
            log.exception("releasing the locks of bank %s failed", entry.name)
            failed.append(entry.name)
    if failed:
        raise RuntimeError(f"could not park: {', '.join(failed)}")


def resume_work(uses: Interfaces) -> None:
    """Take print jobs and lock pulses again after a cancelled shutdown (core thread)."""
    if uses.print_pause is not None:
        try:
            uses.print_pause.resume_new()
        except Exception:
            log.exception("printing could not resume")
    if uses.lock_parking is not None:
        uses.lock_parking.resume()


def flush_outbox(uplink: Uplink, call: CoreCaller, seconds: float, cancelled: threading.Event,
                 clock: Clock) -> int:
    """Wait up to ``seconds`` for every committed event to be published.

    Returns what is still pending (0 when flushed). Without a broker
    configured there is nothing to flush. Polls (every 0.1 s) because the
    sync service has no completion signal; the wait ends early on cancel.
    The deadline is on the core clock; the poll only waits for the network
    thread to make progress.
    """
    deadline = clock.monotonic() + seconds
    while True:
        pending = call(uplink.pending_publish)
        if pending <= 0:
            log.info("outbox flushed")
            return 0
        left = deadline - clock.monotonic()
        if left <= 0:
            log.warning("outbox not flushed: %d event(s) still unsent; they stay in the database", pending)
            return pending
        if cancelled.wait(min(FLUSH_POLL_S, left)):
            return pending


def build_steps(app: "App", uses: Interfaces, call: CoreCaller, cancelled: threading.Event) -> ShutdownSteps:
    """The steps of :class:`ShutdownSequence` for this app, each run through ``call``.

    ``uses`` are the interfaces of the other features: the print pause, the
    lock parking and the uplink (each skipped when not offered).
    """
    uplink = uses.uplink
    return ShutdownSteps(
        stop_print_jobs=lambda: call(lambda: stop_print_jobs(uses)),
        park_locks=lambda: call(lambda: park_locks(app, uses)),
        flush_outbox=(lambda left: flush_outbox(uplink, call, left, cancelled, app.clock))
        if uplink is not None else None,
        checkpoint_wal=lambda: call(app.store.checkpoint),
        publish_offline=(lambda: call(uplink.publish_offline)) if uplink is not None else None,
        resume=lambda: call(lambda: resume_work(uses)),
    )


def records_only(app: "App") -> bool:
    """Whether the power-off command is recorded instead of run.

    Always under ``hubagent run --sim``. With a config file, ``[sim]
    record_shutdown`` applies only when the power source is simulated: a
    hub reading a real UPS must really power off, whatever ``[sim]`` says
    (its default is true, and a missing ``[sim]`` table must not keep a
    real hub from shutting down cleanly).
    """
    if app.simulated:
        return True
    sources = app.config.devices_of("power")
    return bool(app.config.sim.record_shutdown and sources
                and all(d.spec.name == "sim" for d in sources))
