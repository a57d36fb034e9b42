"""Lock pulses, one bank at a time: a FIFO per bank on the core thread.

The driver refuses a second pulse while one runs on the same bank (the
locks share a supply), raising :class:`~hubagent.errors.BankBusy`. A release
that finds its bank busy waits its turn here, retrying every
:data:`RETRY_S`, for at most ``busy_wait_s``; then it is given up and
undone. A job carrying an MQTT v5 deadline is checked right before its
pulse, so an expired ``locker.open`` never energises a lock.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Mapping
from typing import Any, Callable

import msgspec

from hubagent.clock import Clock
from hubagent.errors import BankBusy, DeviceError, InputError
from hubagent.ports import LockerBank

log = logging.getLogger(__name__)

RETRY_S = 0.05
"""How often a waiting job asks its busy bank again."""


class PulseJob(msgspec.Struct, frozen=True):
    """One lock pulse a committed release asked for."""

    bank: str
    compartment: str
    release_id: int
    seconds: float
    give_up_at: float
    """Monotonic time after which a busy bank makes the release fail."""
    expires_at: float | None = None
    """Monotonic MQTT v5 deadline of the command behind the release, if any."""


class PulseQueue:
    """Runs :class:`PulseJob` s on the core thread, one bank pulse at a time.

    ``on_pulsed(job)`` and ``on_failed(job, reason)`` are called on the core
    thread. ``later(delay, fn)`` schedules a retry on the core clock and
    returns False when it cannot (then a busy bank fails the job at once);
    ``clock`` tells the deadlines (``give_up_at``, ``expires_at``).
    """

    def __init__(self, banks: Mapping[str, LockerBank], later: Callable[[float, Callable[[], None]], bool],
                 on_pulsed: Callable[[PulseJob], None],
                 on_failed: Callable[[PulseJob, str], None], *, clock: Clock) -> None:
        """Remember the banks and the callbacks; runs nothing yet."""
        self._clock = clock
        self._banks = banks
        self._later = later
        self._on_pulsed = on_pulsed
        self._on_failed = on_failed
        self._queues: dict[str, deque[PulseJob]] = {name: deque() for name in banks}
        self._waiting: set[str] = set()
        self.paused = False
        """While true (the hub is parking its locks for a power-off) every job fails as "parked"."""

    def submit(self, job: PulseJob) -> None:
        """Queue a job and pulse now if its bank is free."""
        self._queues[job.bank].append(job)
        if job.bank not in self._waiting:
            self._drain(job.bank)

    def pending(self, bank: str) -> int:
        """Jobs waiting on one bank."""
        return len(self._queues.get(bank, ()))

    def clear(self) -> list[PulseJob]:
        """Drop every waiting job (shutdown); returns them."""
        dropped = [job for q in self._queues.values() for job in q]
        for q in self._queues.values():
            q.clear()
        return dropped

    def _drain(self, bank: str) -> None:
        self._waiting.discard(bank)
        queue = self._queues[bank]
        while queue:
            job = queue[0]
            outcome = self._try(job)
            if outcome == "busy":
                if self._clock.monotonic() < job.give_up_at and self._later(RETRY_S, lambda: self._drain(bank)):
                    self._waiting.add(bank)
                    return
                queue.popleft()
                self._fail(job, "bank busy")
                continue
            queue.popleft()
            if outcome == "ok":
                self._guard(self._on_pulsed, job)
            else:
                self._fail(job, outcome)

    def _try(self, job: PulseJob) -> str:
        """Pulse one job: "ok", "busy" or the reason it cannot be done."""
        if self.paused:
            return "parked"
        if job.expires_at is not None and self._clock.monotonic() >= job.expires_at:
            return "expired"
        try:
            self._banks[job.bank].pulse(job.compartment, job.seconds)
        except BankBusy:
            return "busy"
        except DeviceError as e:
            return f"device error: {e}"
        except InputError as e:
            return f"refused: {e.message}"
        return "ok"

    def _fail(self, job: PulseJob, reason: str) -> None:
        log.warning("release %d of %s/%s not pulsed: %s", job.release_id, job.bank, job.compartment, reason)
        self._guard(self._on_failed, job, reason)

    @staticmethod
    def _guard(fn: Callable[..., None], *args: Any) -> None:
        try:
            fn(*args)
        except Exception:
            log.exception("pulse callback failed")
