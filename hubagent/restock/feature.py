"""Wires restock windows into the hub: claims, releases, no-shows, the retained windows.

A claim creates the delivery expectation (``delivery.expect``'s table) under
the claim's id in the same transaction, so receive scans count against it.
One clock timer waits for the earliest open claim's no-show deadline (and
none when nothing is open); the free windows are republished after every
change, on every reconnect, and at the start of each local day.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Annotated, Any

from msgspec import Meta

from hubagent.clock import Timer
from hubagent.commands import CommandArgs, CommandContext, NoArgs
from hubagent.errors import CommandError
from hubagent.feature import Built, Feature, Interfaces, Section
from hubagent.interfaces import Uplink
from hubagent.kpi.days import clock_sane, zone
from hubagent.restock import claims
from hubagent.restock.settings import RestockSettings
from hubagent.scanning import schema as deliveries
from hubagent.stock import ledger
from hubagent.store.store import dumps

if TYPE_CHECKING:
    from hubagent.app import App
    from hubagent.clock import Clock

log = logging.getLogger(__name__)

RESTOCK = Section("restock", RestockSettings)
MIN_SANE_YEAR = 2024
Id = Annotated[str, Meta(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9._/-]*$")]


class RestockLine(CommandArgs, frozen=True):
    """One expected line of a restock."""

    sku: Annotated[str, Meta(min_length=1, max_length=64)]
    qty: Annotated[int, Meta(ge=1, le=ledger.MAX_QTY)]


class RestockClaim(CommandArgs, frozen=True):
    """``restock.claim``: reserve a place in a slot for a delivery."""

    claim: Id
    slot: Annotated[str, Meta(min_length=16, max_length=16)]
    claimant: Annotated[str, Meta(min_length=1, max_length=80)]
    lines: Annotated[list[RestockLine], Meta(min_length=1, max_length=1000)]
    bin: Annotated[str, Meta(min_length=1, max_length=24)] | None = None


class RestockRelease(CommandArgs, frozen=True):
    """``restock.release``: free an open claim."""

    claim: Id


class RestockService:
    """Claims against the receiving slots of one hub."""

    def __init__(self, app: "App", clock: "Clock", settings: RestockSettings, uplink: Uplink | None) -> None:
        self.app = app
        self.clock = clock
        self.settings = settings
        self.uplink = uplink
        self.tz = zone(app.config.hub.timezone)
        self._timer: Timer | None = None
        self._day_timer: Timer | None = None

    def _now(self) -> datetime:
        now = self.clock.now()
        if not clock_sane(now, MIN_SANE_YEAR):
            raise CommandError("clock_not_set", f"the hub's clock says {now.year}: slots cannot be judged")
        return now

    # -- commands -----------------------------------------------------------------------
    def claim(self, ctx: CommandContext, args: RestockClaim) -> dict[str, Any]:
        """Reserve a place atomically, with the delivery expectation, or refuse with a code."""
        seen: set[str] = set()
        for line in args.lines:
            if line.sku in seen:
                raise CommandError("bad_args", f"SKU {line.sku!r} is listed twice; give one line per SKU")
            seen.add(line.sku)
            ledger.require_sku(ctx.tx, line.sku)
        if deliveries.delivery_exists(ctx.tx, args.claim):
            raise CommandError("exists", f"a delivery {args.claim!r} exists already")
        slot = claims.claim(ctx.tx, claim_id=args.claim, slot_name=args.slot, claimant=args.claimant,
                            now=self._now(), settings=self.settings, tz=self.tz, command=ctx.id)
        deliveries.create_delivery(ctx.tx, args.claim, [(x.sku, x.qty) for x in args.lines], args.bin, ctx.id)
        data = {"claim": args.claim, "slot": slot.name, "start": claims.iso(slot.start),
                "end": claims.iso(slot.end), "claimant": args.claimant,
                "free": self.settings.capacity - claims.taken(ctx.tx, slot.name)}
        ctx.tx.emit("restock.claimed", data)
        ctx.tx.after_commit(self.changed)
        return data

    def release(self, ctx: CommandContext, args: RestockRelease) -> dict[str, Any]:
        """Free an open claim and withdraw its delivery expectation."""
        data = claims.release(ctx.tx, args.claim, self.clock.now())
        ctx.tx.execute("UPDATE deliveries SET status='cancelled', closed_at=? WHERE id=? AND status='open'",
                       (claims.iso(self.clock.now()), args.claim))
        ctx.tx.emit("restock.released", {**data, "command": ctx.id})
        ctx.tx.after_commit(self.changed)
        return data

    def windows(self, ctx: CommandContext, args: NoArgs) -> dict[str, Any]:
        """The free windows of the coming days (read-only)."""
        return {"timezone": self.app.config.hub.timezone, "capacity": self.settings.capacity,
                "windows": claims.windows(ctx.tx, self._now(), self.settings, self.tz)}

    # -- arrivals, no-shows and publishing -------------------------------------------------------
    def check(self) -> None:
        """Mark arrived claims and no-shows; then wait for the next deadline."""
        self._timer = None
        now = self.clock.now()
        if not clock_sane(now, MIN_SANE_YEAR):
            return  # no no-show decided on a clock that is not set
        grace = timedelta(minutes=self.settings.grace_minutes)
        changed = False
        with self.app.store.write() as tx:
            arrived, no_show = claims.arrived_or_due(tx, now, grace)
            for item in arrived:
                claims.mark(tx, item["claim"], "arrived", now)
                tx.emit("restock.arrived", item)
            for item in no_show:
                claims.mark(tx, item["claim"], "no_show", now)
                tx.execute("UPDATE deliveries SET status='cancelled', closed_at=? WHERE id=? AND status='open'",
                           (claims.iso(now), item["claim"]))
                tx.emit("restock.no_show", item)
            changed = bool(arrived or no_show)
        if changed:
            self.publish()
        self._schedule()

    def _schedule(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        with self.app.store.read() as tx:
            deadline = claims.next_deadline(tx, timedelta(minutes=self.settings.grace_minutes))
        if deadline is not None:
            # At most an hour: a wall clock set while waiting moves the deadline.
            delay = min(3600.0, max(0.0, (deadline - self.clock.now()).total_seconds()))
            self._timer = self.clock.call_later(delay + 0.001, self.check)

    def changed(self) -> None:
        """After a claim or release committed: republish, re-arm the no-show timer."""
        self.publish()
        self._schedule()

    def publish(self) -> None:
        """Publish the free windows on the retained topic (when connected and the clock is set)."""
        if self.uplink is None or not self.uplink.is_connected():
            return
        now = self.clock.now()
        if not clock_sane(now, MIN_SANE_YEAR):
            return
        with self.app.store.read() as tx:
            body = {"timezone": self.app.config.hub.timezone, "capacity": self.settings.capacity,
                    "windows": claims.windows(tx, now, self.settings, self.tz)}
        self.uplink.publish_restock(dumps(body).encode())

    def _daily(self) -> None:
        """At the start of each local day the window moves on: publish again."""
        self.publish()
        now = self.clock.now().astimezone(self.tz)
        tomorrow = (now + timedelta(days=1)).replace(hour=0, minute=0, second=1, microsecond=0)
        self._day_timer = self.clock.call_later((tomorrow - now).total_seconds(), self._daily)

    def start(self) -> None:
        """Arm the timers and publish once."""
        self.check()
        self._daily()

    def stop(self) -> None:
        """Cancel the timers."""
        for timer in (self._timer, self._day_timer):
            if timer is not None:
                timer.cancel()

    def kpis(self, since: datetime) -> dict[str, int]:
        """Restock outcomes of claims whose slot started since ``since``."""
        with self.app.store.read() as tx:
            return claims.kpis(tx, since, self.clock.now())


def build(*, app: "App", clock: "Clock", uses: Interfaces) -> Built:
    """The restock service when ``[restock] hours`` are configured."""
    settings = RESTOCK.of(app.config)
    if not settings.enabled:
        return Built()
    svc = RestockService(app, clock, settings, uses.uplink)
    app.commands.register("restock.claim", svc.claim, RestockClaim)
    app.commands.register("restock.release", svc.release, RestockRelease)
    app.commands.register("restock.windows", svc.windows, NoArgs, read_only=True)
    app.on_start(svc.start)
    app.on_stop(svc.stop)
    if uses.uplink is not None:
        uses.uplink.on_connected(svc.publish)
    return Built(svc)


FEATURE = Feature("restock", build, sections=(RESTOCK,), migrations=tuple(claims.MIGRATIONS))
