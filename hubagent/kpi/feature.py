"""Wires the KPIs into the hub: rollups on every emit, ``kpi.get``, ``kpi.rebuild``, telemetry.

The rollups are updated inside the transaction of each event they count
(``Store.on_emit``), so a figure commits with what it counts. Events that
carry a time from a clock that is not set (before ``min_sane_year``) are
not counted by day: their day is unknown.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Annotated, Any
from zoneinfo import ZoneInfo

from msgspec import Meta

from hubagent.clock import Timer
from hubagent.commands import CommandArgs, CommandContext, NoArgs
from hubagent.errors import CommandError
from hubagent.feature import Built, Feature, Interfaces, Section
from hubagent.interfaces import ClockTrustView, ScanCounts, Uplink
from hubagent.kpi import compute, rollup
from hubagent.kpi.days import clock_sane, local_day, zone
from hubagent.kpi.settings import KpiSettings
from hubagent.stock.settings import STOCK
from hubagent.store.store import EmittedEvent, Tx

if TYPE_CHECKING:
    from hubagent.app import App
    from hubagent.clock import Clock

log = logging.getLogger(__name__)

KPI = Section("kpi", KpiSettings)
MIN_SANE_YEAR = 2024
SAMPLE_S = 600.0


class KpiGet(CommandArgs, frozen=True):
    """``kpi.get`` arguments: a SKU's figures, or the hub's without one."""

    sku: Annotated[str, Meta(min_length=1, max_length=64)] | None = None
    window_days: Annotated[int, Meta(ge=1, le=90)] | None = None


class KpiService:
    """The hub's figures over its daily rollups."""

    def __init__(self, app: "App", clock: "Clock", settings: KpiSettings, scans: ScanCounts | None,
                 uplink: Uplink | None = None, trust: ClockTrustView | None = None) -> None:
        self.app = app
        self.trust = trust  # the lockers' clock trust, where lockers are configured
        self.clock = clock
        self.settings = settings
        self.tz: ZoneInfo = zone(app.config.hub.timezone)
        self.unsellable = frozenset(STOCK.of(app.config).unsellable_bins)
        self.scans = scans
        self.uplink = uplink
        self._scans_seen = (0, 0)
        self._timer: Timer | None = None

    # -- incremental rollups (inside each event's transaction) ----------------------
    def on_emit(self, tx: Tx, ev: EmittedEvent) -> None:
        """Fold one event into the rollups, in its own transaction."""
        if not ev.at or int(ev.at[:4]) < MIN_SANE_YEAR or not self._trusted():
            return
        d = ev.data
        if ev.kind == "stock.moved":
            move = rollup.Move(d["type"], d["sku"], d["bin"], int(d["delta"]), d.get("reason"),
                               d.get("lot"), ev.at)
            sellable = rollup.sellable_on_hand(tx, move.sku, self.unsellable)
            rollup.apply_move(tx, move, sellable, self.tz, self.unsellable)
        elif ev.kind == "parcel.stored":
            rollup.parcel_stored(tx, d["parcel"], ev.at, self.tz)
        elif ev.kind == "parcel.picked_up":
            rollup.parcel_left(tx, d["parcel"], ev.at, self.tz, picked_up=True)
        elif ev.kind == "parcel.expired" and d.get("stage") != "assigned":
            rollup.parcel_left(tx, d["parcel"], ev.at, self.tz, picked_up=False)
        elif ev.kind == "return.dropped":
            rollup.count_hub(tx, rollup.local_day(ev.at, self.tz), "returns_dropped")

    def _trusted(self) -> bool:
        """No day-based decision on a clock the lockers' trust rule distrusts (either direction)."""
        return self.trust is None or self.trust.trusted()

    # -- queries ----------------------------------------------------------------------
    def today(self) -> str:
        """The hub's local day; CommandError while the clock is not set."""
        now = self.clock.now()
        if not clock_sane(now, MIN_SANE_YEAR) or not self._trusted():
            raise CommandError("clock_not_set", f"the hub's clock says {now.year}: no day-based figures "
                                                "until it is set")
        return local_day(now, self.tz)

    def get(self, ctx: CommandContext, args: KpiGet) -> dict[str, Any]:
        """``kpi.get``: one SKU's figures, or the hub's."""
        window = args.window_days or self.settings.window_days
        today = self.today()
        if args.sku is None:
            return self.hub(ctx.tx, today, window)
        if ctx.tx.execute("SELECT 1 FROM skus WHERE sku=?", (args.sku,)).fetchone() is None:
            raise CommandError("unknown_sku", f"SKU {args.sku!r} is not in the catalog")
        sellable = rollup.sellable_on_hand(ctx.tx, args.sku, self.unsellable)
        return compute.sku_kpis(ctx.tx, args.sku, today, window, sellable)

    def hub(self, tx: Tx, today: str, window: int) -> dict[str, Any]:
        """The hub-level figures (with restock outcomes when restock is configured).

        Scans counted since the last sample are added, so the answer is exact
        without writing from a read-only command.
        """
        figures = compute.hub_kpis(tx, today, window)
        da, dr = self.pending_scans()
        if da or dr:
            figures["scans_accepted"] += da
            figures["scans_refused"] += dr
            figures["scans_refused_per_100"] = compute.ratio(100 * figures["scans_refused"],
                                                              figures["scans_accepted"], 2)
        # Now, not over the window: central's view of this hub lags by this much.
        figures["sync_lag_s"] = self.uplink.sync_lag_s() if self.uplink is not None else None
        figures["timezone"] = self.app.config.hub.timezone
        return figures

    def rebuild(self, ctx: CommandContext, args: NoArgs) -> dict[str, Any]:
        """``kpi.rebuild``: recompute every rollup from the ledger (for repair)."""
        counts = {"kpi_hub_day": ctx.tx.execute("SELECT COUNT(*) FROM kpi_hub_day").fetchone()[0]}
        scans = ctx.tx.execute("SELECT day, scans_accepted, scans_refused FROM kpi_hub_day").fetchall()
        rollup.clear(ctx.tx)
        moves = rollup.rebuild_stock(ctx.tx, rollup.movement_rows(ctx.tx), self.tz, self.unsellable)
        lockers = 0
        if ctx.tx.execute("SELECT 1 FROM sqlite_master WHERE name='locker_audit'").fetchone():
            lockers = rollup.rebuild_lockers(ctx.tx, self.tz)
        # Scans have no per-scan record (an accepted scan is not an event): keep the counts.
        for day, accepted, refused in scans:
            rollup.count_hub(ctx.tx, day, "scans_accepted", int(accepted))
            rollup.count_hub(ctx.tx, day, "scans_refused", int(refused))
        return {"movements": moves, "locker_records": lockers, "scan_days_kept": len(scans),
                "hub_days_before": counts["kpi_hub_day"]}

    # -- scans and telemetry --------------------------------------------------------------
    def sample_scans(self) -> None:
        """Add the scans counted since the last sample to today's row."""
        if self.scans is None:
            return
        # The scanning counters start at zero with the process.
        da, dr = self.pending_scans()
        self._scans_seen = self.scans.totals()
        now = self.clock.now()
        if (da or dr) and clock_sane(now, MIN_SANE_YEAR) and self._trusted():
            with self.app.store.write() as tx:
                day = local_day(now, self.tz)
                rollup.count_hub(tx, day, "scans_accepted", da)
                rollup.count_hub(tx, day, "scans_refused", dr)

    def pending_scans(self) -> tuple[int, int]:
        """Scans counted by the scanners since the last sample (not yet in the rollups)."""
        if self.scans is None:
            return 0, 0
        accepted, refused = self.scans.totals()
        before = self._scans_seen
        return (accepted - before[0] if accepted >= before[0] else accepted,
                refused - before[1] if refused >= before[1] else refused)

    def start(self) -> None:
        """Sample the scan counters every ``SAMPLE_S`` (one small write only if they moved)."""
        self._timer = self.clock.call_later(SAMPLE_S, self._tick)

    def _tick(self) -> None:
        self.sample_scans()
        self._timer = self.clock.call_later(SAMPLE_S, self._tick)

    def stop(self) -> None:
        """Keep the last scans counted, stop sampling."""
        if self._timer is not None:
            self._timer.cancel()
        try:
            self.sample_scans()
        except Exception:
            log.warning("could not record the last scan counts at stop", exc_info=True)

    def telemetry(self) -> dict[str, Any]:
        """The hub-level figures for each telemetry message (empty while the clock is not set)."""
        try:
            self.sample_scans()
            today = self.today()
        except CommandError:
            return {"kpi": {"clock_not_set": True}}
        with self.app.store.read() as tx:
            return {"kpi": self.hub(tx, today, self.settings.window_days)}

    def summary_fields(self, tx: Tx, sku: str) -> dict[str, Any]:
        """``days_of_supply`` and ``sell_through_14d`` for the retained stock summary."""
        try:
            today = self.today()
        except CommandError:
            return {}
        sellable = rollup.sellable_on_hand(tx, sku, self.unsellable)
        k = compute.sku_kpis(tx, sku, today, 14, sellable)
        return {"days_of_supply": k["days_of_supply"], "sell_through_14d": k["sell_through_14d"]}


def build(*, app: "App", clock: "Clock", uses: Interfaces) -> Built:
    """The KPI service: rollups on every emit, its commands, its telemetry block."""
    svc = KpiService(app, clock, KPI.of(app.config), uses.scan_counts, uses.uplink, uses.clock_trust)
    app.store.on_emit(svc.on_emit)
    app.commands.register("kpi.get", svc.get, KpiGet, read_only=True)
    app.commands.register("kpi.rebuild", svc.rebuild, NoArgs)
    if uses.uplink is not None:
        uses.uplink.add_telemetry(svc.telemetry)
    if uses.stock_summary is not None:
        uses.stock_summary.add_summary_fields(svc.summary_fields)
    app.on_start(svc.start)
    app.on_stop(svc.stop)
    return Built(svc)


def check_timezone(config: Any) -> None:
    """``hub.timezone`` names a time zone this machine knows."""
    try:
        zone(config.hub.timezone)
    except ValueError as e:
        raise ValueError(f"hub.timezone: {e}") from None


FEATURE = Feature("kpi", build, sections=(KPI,), migrations=tuple(rollup.MIGRATIONS), checks=(check_timezone,))
