"""One thread per printer that does the blocking printer I/O.

The core thread decides which job goes next and owns every database write;
the worker only lays the label out, asks the printer whether it can print,
asks the core for the go-ahead (the core commits the job as ``sending``
first, so a crash mid-send is never mistaken for "not printed"), sends, and
reports a :class:`SendResult`. It never touches the database itself.
"""

from __future__ import annotations

import enum
import logging
import queue
import threading
from collections.abc import Callable, Mapping

import msgspec

from hubagent.errors import DeviceError, DeviceUnavailable, InputError
from hubagent.ports import Printer, PrinterState
from hubagent.printing.templates import Template

log = logging.getLogger(__name__)

READY_STATES = (PrinterState.ONLINE, PrinterState.UNKNOWN)
"""States in which a job is sent (UNKNOWN: a one-way printer that cannot say)."""


class Outcome(enum.Enum):
    """How one attempt at a job ended."""

    DONE = "done"  # the printer took the whole job
    NOT_READY = "not_ready"  # the printer said it cannot print now; nothing was sent
    UNAVAILABLE = "unavailable"  # the send failed: printer absent, off or unreachable
    DEVICE_ERROR = "device_error"  # the send failed with another printer error
    BAD_JOB = "bad_job"  # the job itself cannot print (its label no longer lays out, ...)
    ABORTED = "aborted"  # the core withheld the go-ahead (stopping, cancelled); nothing was sent


class SendRequest(msgspec.Struct, frozen=True):
    """One job handed to a worker."""

    job: str
    template: Template
    fields: Mapping[str, object]
    copies: int


class SendResult(msgspec.Struct, frozen=True):
    """What became of a :class:`SendRequest`; ``code``/``message`` say why it did not print."""

    job: str
    outcome: Outcome
    code: str = ""
    message: str = ""


GoAhead = Callable[[str], bool]
"""Blocks until the core has committed the job as ``sending`` (True) or refused (False)."""
Report = Callable[[SendResult], None]
"""Hands a result to the core (thread-safe)."""


class PrinterWorker:
    """The thread that talks to one printer, one job at a time."""

    def __init__(self, name: str, printer: Printer, go_ahead: GoAhead, report: Report) -> None:
        """Prepare the worker; no thread runs until :meth:`start`."""
        self.name = name
        self._printer = printer
        self._go_ahead = go_ahead
        self._report = report
        self._inbox: queue.SimpleQueue[SendRequest | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start the thread (no-op if it runs)."""
        if self._thread is not None and self._thread.is_alive():
            return
        self._thread = threading.Thread(target=self._run, name=f"printer-{self.name}", daemon=True)
        self._thread.start()

    def submit(self, request: SendRequest) -> None:
        """Queue one job for the thread; returns at once."""
        self._inbox.put(request)

    def stop(self, timeout: float = 5.0) -> bool:
        """Ask the thread to end after its current job; True if it has ended."""
        self._inbox.put(None)
        thread = self._thread
        if thread is None or thread is threading.current_thread():
            return True
        thread.join(timeout)
        return not thread.is_alive()

    def _run(self) -> None:
        while (request := self._inbox.get()) is not None:
            try:
                result = self.attempt(request)
            except Exception as e:  # a bug in here must not kill the printer's thread
                log.exception("printer %s: job %s failed unexpectedly", self.name, request.job)
                result = SendResult(request.job, Outcome.DEVICE_ERROR, "internal", f"internal error: {e}")
            try:
                self._report(result)
            except Exception:
                log.exception("printer %s: reporting job %s failed", self.name, request.job)

    def attempt(self, request: SendRequest) -> SendResult:
        """Lay out, check the printer, get the go-ahead, send. Blocking; never raises for printer errors."""
        job = request.job
        try:
            label = request.template.layout(request.fields, self._printer.dpi, self._printer.width_dots)
        except InputError as e:
            return SendResult(job, Outcome.BAD_JOB, e.code, e.message)
        try:
            state = self._printer.printer_state()
        except DeviceError as e:
            return SendResult(job, Outcome.NOT_READY, "offline", str(e))
        if state not in READY_STATES:
            return SendResult(job, Outcome.NOT_READY, state.value, f"printer {self.name} is {state.value}")
        if not self._go_ahead(job):
            return SendResult(job, Outcome.ABORTED, "aborted", "withdrawn before sending")
        try:
            self._printer.print_label(label, request.copies)
        except DeviceUnavailable as e:
            return SendResult(job, Outcome.UNAVAILABLE, "unavailable", str(e))
        except InputError as e:
            return SendResult(job, Outcome.BAD_JOB, e.code, e.message)
        except DeviceError as e:
            return SendResult(job, Outcome.DEVICE_ERROR, "device_error", str(e))
        log.info("printer %s: job %s printed (%d cop%s)", self.name, job, request.copies,
                 "y" if request.copies == 1 else "ies")
        return SendResult(job, Outcome.DONE)
