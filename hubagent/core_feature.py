"""What every hub has whatever its hardware: the outbox/inbox schema, ``ping`` and ``events.list``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from hubagent.commands import CommandContext, NoArgs
from hubagent.feature import Built, Feature, Interfaces
from hubagent.recent_events import EventsList, events_list
from hubagent.store.migrations import CORE

if TYPE_CHECKING:
    from hubagent.app import App
    from hubagent.clock import Clock


def build(*, app: "App", clock: "Clock", uses: Interfaces) -> Built:
    """Register the core commands."""

    def ping(ctx: CommandContext, args: NoArgs) -> dict[str, Any]:
        return {"pong": True, "hub": app.hub_id, "version": app.version,
                "time": ctx.tx.now, "last_seq": app.store.last_seq()}

    app.commands.register("ping", ping, read_only=True)
    app.commands.register("events.list", events_list, EventsList, read_only=True)
    return Built()


FEATURE = Feature("core", build, migrations=tuple(CORE))
