"""``locker.audit``: the newest rows of the append-only locker audit trail (read-only).

For people: the staff page's audit view, and central's look at who opened
what. Codes never appear in the trail, so nothing secret is shown.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

from msgspec import Meta

from hubagent.commands import CommandArgs, CommandContext


class LockerAudit(CommandArgs, frozen=True):
    """``locker.audit`` arguments: newest first, optionally one kind, before a row."""

    kind: Annotated[str, Meta(pattern=r"^[a-z_]{1,40}$")] | None = None
    before: Annotated[int, Meta(ge=1)] | None = None
    limit: Annotated[int, Meta(ge=1, le=500)] = 100


def locker_audit(ctx: CommandContext, args: LockerAudit) -> dict[str, Any]:
    """Up to ``limit`` audit rows, newest first."""
    where: list[str] = ["1=1"]
    params: list[object] = []
    if args.kind:
        where.append("kind = ?")
        params.append(args.kind)
    if args.before is not None:
        where.append("seq < ?")
        params.append(args.before)
    rows = ctx.tx.execute(
        f"SELECT seq, at, kind, bank, compartment, ref, source, detail FROM locker_audit "
        f"WHERE {' AND '.join(where)} ORDER BY seq DESC LIMIT ?", (*params, args.limit)).fetchall()
    entries = [{"seq": r[0], "at": r[1], "kind": r[2], "bank": r[3], "compartment": r[4], "ref": r[5],
                "source": r[6], "detail": json.loads(r[7] or "{}")} for r in rows]
    return {"entries": entries, "count": len(entries)}
