"""The label-printing feature: commands ``print``, ``print.reprint``, ``print.cancel``.

Builds :class:`~hubagent.printing.service.PrintService` when at least one
printer is configured, and offers it as the label queue and the print pause
of other features. Without printers nothing is offered (other features skip
their labels) and the commands answer ``no_printer``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

from msgspec import Meta

from hubagent.clock import Clock
from hubagent.commands import CommandArgs, CommandContext
from hubagent.errors import CommandError
from hubagent.feature import Built, Feature, Interfaces
from hubagent.printing import queue
from hubagent.printing.service import PrintService
from hubagent.printing.settings import PRINTING, PrintingSettings, check_printing
from hubagent.printing.templates import load_templates

if TYPE_CHECKING:
    from hubagent.app import App
    from hubagent.clock import Clock

_Name = Annotated[str, Meta(min_length=1, max_length=64)]
_JobId = Annotated[str, Meta(min_length=1, max_length=200)]


class PrintArgs(CommandArgs, frozen=True):
    """``print`` arguments; the command id is the job id."""

    template: _Name
    fields: dict[str, Any] = {}
    printer: _Name | None = None
    copies: Annotated[int, Meta(ge=1, le=1000)] = 1


class ReprintArgs(CommandArgs, frozen=True):
    """``print.reprint`` arguments."""

    job: _JobId
    printer: _Name | None = None
    copies: Annotated[int, Meta(ge=1, le=1000)] | None = None


class JobsArgs(CommandArgs, frozen=True):
    """``print.jobs`` arguments."""

    limit: Annotated[int, Meta(ge=1, le=200)] = 20


class CancelArgs(CommandArgs, frozen=True):
    """``print.cancel`` arguments."""

    job: _JobId


def _not_expired(ctx: CommandContext, clock: Clock) -> None:
    expires = ctx.extra.get("expires_at_monotonic")
    if expires is not None and clock.monotonic() >= expires:
        raise CommandError("expired", "the command expired before it could run")


class PrintCommands:
    """The MQTT/local commands over a :class:`PrintService` (None: no printer)."""

    def __init__(self, service: PrintService | None, *, clock: Clock) -> None:
        """Wrap ``service``; ``clock`` tells whether a command has expired."""
        self.service = service
        self.clock = clock

    def install(self, app: "App") -> None:
        """Register the commands."""
        app.commands.register("print", self.print_, PrintArgs)
        app.commands.register("print.reprint", self.reprint, ReprintArgs)
        app.commands.register("print.cancel", self.cancel, CancelArgs)
        app.commands.register("print.jobs", self.jobs, JobsArgs, read_only=True)

    def jobs(self, ctx: CommandContext, args: "JobsArgs") -> dict[str, Any]:
        """The newest print jobs, newest first (read-only)."""
        found = queue.recent(self._svc().store, args.limit)
        return {"jobs": [{**j.summary(), "created_at": j.created_at, "updated_at": j.updated_at}
                         for j in found]}

    def _svc(self) -> PrintService:
        if self.service is None:
            raise CommandError("no_printer", "this hub has no printer configured")
        return self.service

    def print_(self, ctx: CommandContext, args: PrintArgs) -> dict[str, Any]:
        """Queue a label; the reply says where it waits."""
        svc = self._svc()
        _not_expired(ctx, self.clock)
        job, created = svc.submit(ctx.tx, args.template, args.fields, printer=args.printer, job_id=ctx.id,
                                  copies=args.copies, origin=f"command:{ctx.source}")
        return _reply(ctx, job, created)

    def reprint(self, ctx: CommandContext, args: ReprintArgs) -> dict[str, Any]:
        """Print a finished (done, failed, interrupted, cancelled) job again as a new job."""
        svc = self._svc()
        _not_expired(ctx, self.clock)
        job = svc.reprint(ctx.tx, args.job, printer=args.printer, copies=args.copies,
                          origin=f"command:{ctx.source}")
        return _reply(ctx, job, True)

    def cancel(self, ctx: CommandContext, args: CancelArgs) -> dict[str, Any]:
        """Withdraw a job that has not started printing."""
        job = self._svc().cancel(ctx.tx, args.job, f"cancelled by command {ctx.id} ({ctx.source})")
        return {"job": job.id, "state": job.state}


def _reply(ctx: CommandContext, job: queue.Job, created: bool) -> dict[str, Any]:
    out: dict[str, Any] = {"job": job.id, "printer": job.printer, "template": job.template, "state": job.state,
                           "waiting": queue.waiting_count(ctx.tx.conn, job.printer)}
    if job.reprint_of:
        out["reprint_of"] = job.reprint_of
    if not created:
        out["existing"] = True  # the job id was queued before: not queued again
    return out


def _templates_dir(app: "App", settings: PrintingSettings) -> Path | None:
    if not settings.templates_dir:
        return None
    path = Path(settings.templates_dir)
    return path if path.is_absolute() else app.config.state_dir / path


def build(*, app: "App", clock: "Clock", uses: Interfaces) -> Built:
    """The print queue when printers are configured; the commands either way."""
    settings = PRINTING.of(app.config)
    service = None
    if app.devices_of("printers"):
        service = PrintService(app, settings, load_templates(_templates_dir(app, settings)), clock=app.clock)
        app.on_start(service.start)
        app.on_stop(service.stop)
        app.add_status("printing", service.status)
    PrintCommands(service, clock=clock).install(app)
    if service is None:
        return Built()
    return Built(service, Interfaces(labels=service, print_pause=service))


FEATURE = Feature(
    "printing", build,
    sections=(PRINTING,),
    migrations=tuple(queue.MIGRATIONS),
    checks=(check_printing,),  # [printing] names configured printers
)
