"""The print service: validates and queues jobs, and drives one lane per printer.

Everything here runs on the core thread except :meth:`PrintService._go_ahead`
and :meth:`PrintService._report`, which the printer threads call and which
only hand work over to the core thread. A job is laid out when it is
queued (so a bad job is refused in the caller's transaction and never
queued) and laid out again at print time from its stored field values.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import msgspec

from hubagent.clock import Clock, Timer
from hubagent.errors import CommandError, InputError
from hubagent.events import DeviceHealthChanged, Health
from hubagent.ports import Printer
from hubagent.printing import catalog, queue
from hubagent.printing.settings import PrintingSettings, font_path
from hubagent.printing.templates import Template, get_template
from hubagent.printing.validate import check_fits, coerce_fields
from hubagent.printing.worker import Outcome, PrinterWorker, SendRequest, SendResult
from hubagent.store.store import Tx, ordered_id

if TYPE_CHECKING:
    from hubagent.app import App

log = logging.getLogger(__name__)

GO_AHEAD_TIMEOUT = 30.0  # a core thread this late is wedged; the job stays queued
MAX_JOB_ID = 200  # command ids are at most 128; a reprint appends "~r<n>"
_FAULTY = (Health.FAULTED, Health.OFFLINE)
INTERRUPTED_MESSAGE = ("the hub stopped while this label was being sent; it may or may not have printed "
                       "(reprint it with print.reprint if it did not)")


class Lane(msgspec.Struct):
    """One printer's place in the queue: at most one job in flight."""

    name: str
    device: Printer
    worker: PrinterWorker | None = None
    current: str | None = None  # job handed to the worker and not yet reported back
    timer: Timer | None = None  # pending retry
    retry_at: float | None = None  # monotonic time of that retry
    failures: int = 0  # consecutive unsuccessful attempts (backoff exponent)
    last_error: str = ""


class PrintService:
    """The durable print queue of a hub."""

    def __init__(self, app: "App", settings: PrintingSettings, templates: Mapping[str, Template], *,
                 clock: Clock) -> None:
        """Prepare one lane per configured printer; starts nothing.

        ``clock`` times retries and the wait for labels being sent at stop,
        and carries printer threads' calls to the core thread.
        """
        self.app = app
        self.clock = clock
        self.store = app.store
        self.settings = settings
        font = font_path(settings, app.config.state_dir)
        self.templates = {name: t.with_font(font) for name, t in templates.items()}
        self.lanes = {e.name: Lane(e.name, e.device) for e in app.devices_of("printers")}  # type: ignore[arg-type]
        self.paused: str | None = None
        self._stopping = False
        self._settled: asyncio.Event | None = None

    # -- API for commands and other features ---------------------------------
    def enqueue(self, tx: Tx, template: str, fields: Mapping[str, object], *, printer: str | None = None,
                job_id: str | None = None, copies: int = 1) -> str:
        """Validate and queue a label inside the caller's transaction; returns the job id.

        A ``job_id`` that already exists is not queued again (its id is
        returned). Raises CommandError (an InputError) naming the problem:
        paused, unknown_template, unknown_printer, bad_copies, missing_field,
        value_too_long, text_does_not_fit, ..., queue_full.
        """
        job, _ = self.submit(tx, template, fields, printer=printer, job_id=job_id, copies=copies, origin="feature")
        return job.id

    def submit(self, tx: Tx, template: str, fields: Mapping[str, object], *, printer: str | None,
               job_id: str | None, copies: int, origin: str,
               reprint_of: str | None = None) -> tuple[queue.Job, bool]:
        """Like :meth:`enqueue`; returns the job and whether it was created now."""
        if job_id is not None:
            if not job_id or len(job_id) > MAX_JOB_ID:
                raise CommandError("bad_job_id", f"a job id is 1 to {MAX_JOB_ID} characters")
            existing = queue.get(tx.conn, job_id)
            if existing is not None:
                return existing, False
        if self.paused is not None:
            raise CommandError("paused", f"printing is paused: {self.paused}")
        try:
            tpl = get_template(self.templates, template)
        except InputError as e:
            raise CommandError(e.code, e.message) from None
        lane = self.lanes[self.printer_for(template, printer)]
        if not 1 <= copies <= self.settings.max_copies:
            raise CommandError("bad_copies", f"copies must be 1 to {self.settings.max_copies}, not {copies}")
        if reprint_of is None:  # a reprint prints the stored fields as they were
            fields = catalog.fill(tx, tpl, fields, self.settings.currency)
        values = coerce_fields(tpl, fields)
        check_fits(tpl, values, lane.device)
        if queue.waiting_count(tx.conn) >= self.settings.max_queue:
            raise CommandError("queue_full", f"{self.settings.max_queue} jobs are already waiting to print")
        job = queue.insert(tx, job_id=job_id or ordered_id(), printer=lane.name, template=template,
                           fields=values, copies=copies, origin=origin, reprint_of=reprint_of)
        tx.emit("print.queued", {"job": job.id, "printer": job.printer, "template": job.template,
                                 "copies": job.copies, "origin": origin})
        tx.after_commit(functools.partial(self._kick, lane.name))
        return job, True

    def reprint(self, tx: Tx, job_id: str, *, printer: str | None = None, copies: int | None = None,
                origin: str = "feature") -> queue.Job:
        """Queue a finished job again, deliberately, as a new job ``<id>~r<n>``."""
        old = queue.get(tx.conn, job_id)
        if old is None:
            raise CommandError("unknown_job", f"no print job {job_id!r}")
        if old.state in queue.WAITING:
            raise CommandError("not_finished", f"job {job_id!r} is still {old.state}; it will print once")
        n = queue.reprint_count(tx.conn, job_id) + 1
        while queue.get(tx.conn, f"{job_id}~r{n}") is not None:
            n += 1
        job, _ = self.submit(tx, old.template, old.fields, printer=printer or old.printer,
                             job_id=f"{job_id}~r{n}", copies=copies or old.copies, origin=origin,
                             reprint_of=job_id)
        return job

    def cancel(self, tx: Tx, job_id: str, why: str) -> queue.Job:
        """Withdraw a job that is still waiting; emits ``print.failed`` (reason cancelled)."""
        job = queue.get(tx.conn, job_id)
        if job is None:
            raise CommandError("unknown_job", f"no print job {job_id!r}")
        if job.state == "sending":
            raise CommandError("busy", f"job {job_id!r} is being sent to the printer now")
        if not queue.finish(tx, job_id, "cancelled", "cancelled", why):
            raise CommandError("not_queued", f"job {job_id!r} is already {job.state}")
        self._emit_failed(tx, job, "cancelled", why)
        cancelled = queue.get(tx.conn, job_id)
        assert cancelled is not None
        return cancelled

    def pause_new(self, reason: str) -> None:
        """Refuse new jobs (``paused``) until :meth:`resume_new`; waiting jobs still print."""
        if self.paused != reason:
            log.warning("new print jobs paused: %s", reason)
        self.paused = reason or "paused"

    def resume_new(self) -> None:
        """Accept new jobs again."""
        if self.paused is not None:
            log.info("new print jobs accepted again")
        self.paused = None

    def printer_for(self, template: str, printer: str | None = None) -> str:
        """The printer a job goes to: the one asked for, the template's, the default, the first."""
        name = printer or self.settings.templates.get(template) or self.settings.default_printer
        if not name:
            name = next(iter(self.lanes))
        if name not in self.lanes:
            raise CommandError("unknown_printer", f"no printer {name!r} (known: {', '.join(self.lanes)})")
        return name

    def printers_status(self) -> dict[str, dict[str, Any]]:
        """Per printer: health, queue depth, current job, last error, next retry."""
        out = {}
        now = self.clock.monotonic()
        for lane in self.lanes.values():
            health = lane.device.status()
            waiting = queue.waiting_count(self.store.conn, lane.name)
            state = "printing" if lane.current else ("waiting" if waiting and lane.timer else
                                                     ("queued" if waiting else "idle"))
            out[lane.name] = {
                "language": lane.device.language, "health": health.health.value, "detail": health.detail,
                "state": state, "queued": waiting, "current_job": lane.current, "last_error": lane.last_error,
                "retry_in_s": round(max(0.0, lane.retry_at - now), 1) if lane.timer and lane.retry_at else None,
            }
        return out

    def status(self) -> dict[str, Any]:
        """The ``printing`` section of ``hubagent status``."""
        return {"paused": self.paused is not None, "pause_reason": self.paused,
                "queued": queue.waiting_count(self.store.conn), "printers": self.printers_status(),
                "recent": [_line(j) for j in queue.recent(self.store, 5)]}

    # -- lifecycle -------------------------------------------------------------
    def start(self) -> None:
        """Settle jobs a crash left ``sending``, prune, start the printer threads, resume."""
        self._stopping = False
        self._settled = asyncio.Event()
        with self.store.write() as tx:
            for job in queue.sending_jobs(tx.conn):
                queue.finish(tx, job.id, "interrupted", "interrupted", INTERRUPTED_MESSAGE)
                self._emit_failed(tx, job, "interrupted", INTERRUPTED_MESSAGE)
                log.warning("print job %s was interrupted while sending; not printing it again", job.id)
            pruned = queue.prune(tx, self.settings.keep_finished)
        if pruned:
            log.info("pruned %d finished print jobs", pruned)
        for lane in self.lanes.values():
            lane.worker = PrinterWorker(lane.name, lane.device, self._go_ahead,
                                        functools.partial(self._report, lane.name))
            lane.worker.start()
        self.app.on(DeviceHealthChanged, self._on_health)
        for name in self.lanes:
            self._kick(name)

    async def stop(self) -> None:
        """Send nothing new; wait (up to ``stop_wait_s``) for labels being sent; stop the threads."""
        self._stopping = True
        for lane in self.lanes.values():
            if lane.timer is not None:
                lane.timer.cancel()
                lane.timer = None
        settled = self._settled
        if settled is not None and any(lane.current for lane in self.lanes.values()):
            timed_out: list[bool] = []

            def give_up() -> None:
                timed_out.append(True)
                settled.set()

            timer = self.clock.call_later(self.settings.stop_wait_s, give_up)
            while any(lane.current for lane in self.lanes.values()):
                if timed_out:
                    log.warning("printing still busy at shutdown; the job will show as interrupted")
                    break
                settled.clear()
                await settled.wait()  # a printer reported, or the wait timed out
            timer.cancel()
        for lane in self.lanes.values():
            if lane.worker is not None:
                lane.worker.stop(timeout=0.1 if lane.current else 2.0)

    # -- the lanes (core thread) -------------------------------------------------
    def _kick(self, name: str) -> None:
        """Hand the printer its next job if it is free; never raises."""
        try:
            self._next(self.lanes[name])
        except Exception:
            log.exception("printer %s: starting the next job failed", name)

    def _next(self, lane: Lane) -> None:
        if self._stopping or lane.worker is None or lane.current or lane.timer is not None:
            return
        while (job := queue.head(self.store, lane.name)) is not None:
            template = self.templates.get(job.template)
            if template is None:  # the template file was removed since the job was queued
                self._fail(job.id, "unknown_template", f"template {job.template!r} no longer exists")
                continue
            lane.current = job.id
            lane.worker.submit(SendRequest(job.id, template, job.fields, job.copies))
            return

    def _go_ahead(self, job_id: str) -> bool:
        """Printer thread: have the core commit ``sending``; False means do not send."""
        fut: concurrent.futures.Future[bool] = concurrent.futures.Future()
        if not self.clock.call_from_thread(lambda: self._begin_send(job_id, fut)):
            return False  # the core is not running
        # A real wait for the core thread (another thread), not a timer of the core.
        try:
            return fut.result(timeout=GO_AHEAD_TIMEOUT)
        except TimeoutError:
            return False

    def _begin_send(self, job_id: str, fut: concurrent.futures.Future[bool]) -> None:
        ok = False
        try:
            if not self._stopping:
                with self.store.write() as tx:
                    ok = queue.mark_sending(tx, job_id)
        except Exception:
            log.exception("marking print job %s as sending failed", job_id)
        finally:
            fut.set_result(ok)

    def _report(self, name: str, result: SendResult) -> None:
        """Printer thread: hand ``result`` to the core thread."""
        if not self.clock.call_from_thread(lambda: self._on_result(name, result)):
            log.warning("printer %s: result of job %s lost at shutdown (%s)", name, result.job, result.outcome.value)

    def _on_result(self, name: str, result: SendResult) -> None:
        lane = self.lanes[name]
        lane.current = None
        try:
            retry = self._record(lane, result)
        except Exception:
            log.exception("printer %s: recording job %s failed", name, result.job)
            retry = True
        if self._settled is not None:
            self._settled.set()
        if retry:
            self._schedule_retry(lane)
        else:
            self._kick(name)

    def _record(self, lane: Lane, result: SendResult) -> bool:
        """Write the outcome; True if the printer should be retried after a backoff."""
        outcome = result.outcome
        if outcome is Outcome.DONE:
            lane.failures, lane.last_error = 0, ""
            with self.store.write() as tx:
                if queue.mark_done(tx, result.job):
                    job = queue.get(tx.conn, result.job)
                    assert job is not None
                    data: dict[str, Any] = {"job": job.id, "printer": job.printer, "template": job.template,
                                            "copies": job.copies, "attempts": job.attempts}
                    if job.reprint_of:
                        data["reprint_of"] = job.reprint_of
                    tx.emit("print.done", data)
            return False
        if outcome is Outcome.BAD_JOB:
            self._fail(result.job, result.code, result.message)
            return False
        if outcome is Outcome.ABORTED:
            with self.store.write() as tx:
                queue.requeue(tx, result.job, "aborted", result.message, count_error=False)
            return False
        lane.last_error = result.message
        # A printer error while the printer reports a fault (paper ran out mid-job) is the
        # printer's state, not the job's: it does not count towards max_attempts.
        counted = outcome is Outcome.DEVICE_ERROR and lane.device.status().health not in _FAULTY
        with self.store.write() as tx:
            queue.requeue(tx, result.job, result.code, result.message, count_error=counted)
            job = queue.get(tx.conn, result.job)
            limit = self.settings.max_attempts
            if counted and job is not None and limit and job.errors >= limit and job.state == "queued":
                message = f"{job.errors} attempts failed; last: {result.message}"
                queue.finish(tx, job.id, "failed", "device_error", message)
                self._emit_failed(tx, job, "device_error", message)
        log.info("printer %s: job %s not printed (%s: %s)", lane.name, result.job, result.code, result.message)
        return True

    def _fail(self, job_id: str, reason: str, message: str) -> None:
        with self.store.write() as tx:
            job = queue.get(tx.conn, job_id)
            if job is not None and queue.finish(tx, job_id, "failed", reason, message):
                self._emit_failed(tx, job, reason, message)
                log.warning("print job %s failed: %s: %s", job_id, reason, message)

    @staticmethod
    def _emit_failed(tx: Tx, job: queue.Job, reason: str, message: str) -> None:
        tx.emit("print.failed", {"job": job.id, "printer": job.printer, "template": job.template,
                                 "reason": reason, "message": message})

    def _schedule_retry(self, lane: Lane) -> None:
        if self._stopping or lane.timer is not None:
            return
        s = self.settings
        delay = min(s.retry_max_s, s.retry_min_s * 2 ** min(lane.failures, 20))
        lane.failures += 1
        lane.retry_at = self.clock.monotonic() + delay
        lane.timer = self.clock.call_later(delay, lambda: self._retry(lane.name))

    def _retry(self, name: str) -> None:
        self.lanes[name].timer = None
        self._kick(name)

    def _on_health(self, ev: DeviceHealthChanged) -> None:
        """A printer came back: stop waiting and send at once."""
        lane = self.lanes.get(ev.device) if ev.role == "printers" else None
        if lane is None or ev.status.health not in (Health.OK, Health.UNKNOWN):
            return
        lane.failures = 0
        if lane.timer is not None:
            lane.timer.cancel()
            lane.timer = None
        self._kick(lane.name)


def _line(job: queue.Job) -> str:
    why = f" ({job.reason}: {job.message})" if job.reason and job.state != "done" else ""
    return f"{job.id} {job.template} -> {job.printer}: {job.state}{why}"
