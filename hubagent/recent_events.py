"""``events.list``: the newest events still in the outbox, for people to read.

Read-only (nothing is written, nothing is published): the staff page's
event log, and central's look at what a hub recorded recently. Replaying
events to central is ``events.replay``.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

from msgspec import Meta

from hubagent.commands import CommandArgs, CommandContext

KindPrefix = Annotated[str, Meta(pattern=r"^[a-z_.]{1,64}$")]


class EventsList(CommandArgs, frozen=True):
    """``events.list`` arguments: newest first, optionally only kinds starting with ``kind``."""

    kind: KindPrefix | None = None
    before_seq: Annotated[int, Meta(ge=1)] | None = None
    limit: Annotated[int, Meta(ge=1, le=500)] = 100


def events_list(ctx: CommandContext, args: EventsList) -> dict[str, Any]:
    """Up to ``limit`` events, newest first, from the rows the outbox still holds."""
    where, params = ["1=1"], []
    if args.kind:
        # A prefix match that an index on seq still serves: the rows are few.
        where.append("substr(kind, 1, ?) = ?")
        params += [len(args.kind), args.kind]
    if args.before_seq is not None:
        where.append("seq < ?")
        params.append(args.before_seq)
    rows = ctx.tx.execute(
        f"SELECT seq, id, kind, at, data FROM outbox WHERE {' AND '.join(where)} "
        "ORDER BY seq DESC LIMIT ?", (*params, args.limit)).fetchall()
    events = [{"seq": r[0], "id": r[1], "kind": r[2], "at": r[3], "data": json.loads(r[4])}
              for r in rows]
    return {"events": events, "count": len(events)}
