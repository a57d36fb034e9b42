"""Stock commands from central and the shared inventory directory.

Commands: ``catalog.upsert``, ``stock.adjust``, ``stock.count``,
``stock.get``, ``state.snapshot``. After each commit that moved stock, the
retained ``<prefix>/<hub>/stock/<sku>`` summary is republished, so any
consortium member can see where stock is (``available`` counts sellable
bins only). A daily check reports expiring and expired lots
(:mod:`hubagent.stock.expiry`).
"""

from __future__ import annotations

import datetime as dt
import functools
from typing import TYPE_CHECKING, Annotated, Any, Literal

from msgspec import Meta, Struct

from hubagent.commands import CommandArgs, CommandContext, NoArgs
from hubagent.errors import CommandError
from hubagent.feature import Built, Feature, Interfaces
from hubagent.interfaces import SummaryFields, Uplink
from hubagent.store.store import EmittedEvent, dumps
from hubagent.stock import counts, expiry, ledger
from hubagent.stock.gtins import canonical_gtin
from hubagent.stock.settings import STOCK, StockSettings
from hubagent.sync import outbox

if TYPE_CHECKING:
    from hubagent.app import App
    from hubagent.clock import Clock

REPUBLISH_PAGE = 20
"""Retained summaries republished per loop turn after a reconnect (a page
takes about 10 ms on a small machine: a command waits at most that long)."""

Code = Annotated[str, Meta(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9._/-]*$")]
Gtin = Annotated[str, Meta(max_length=14)] | Annotated[int, Meta(ge=0)]
"""GTIN-8, UPC-A, EAN-13 or GTIN-14, with or without leading zeros (checked in the ledger)."""
Text = Annotated[str, Meta(min_length=1, max_length=200)]
Qty = Annotated[int, Meta(ge=-ledger.MAX_QTY, le=ledger.MAX_QTY)]
Lot = Annotated[str, Meta(min_length=1, max_length=20, pattern=r"^[\x21-\x7e]+$")]


class GtinPack(Struct, forbid_unknown_fields=True, frozen=True):
    """A GTIN naming a pack of ``qty`` units of the SKU (an outer case)."""

    gtin: Gtin
    qty: Annotated[int, Meta(ge=1, le=ledger.MAX_QTY)] = 1


class CatalogItem(CommandArgs, frozen=True):
    """One catalog entry of ``catalog.upsert``."""

    sku: Code
    name: Text
    gtins: Annotated[list[Gtin | GtinPack], Meta(max_length=20)] = []
    price: float | int | str | None = None
    bin: Code | None = None
    unit: Annotated[str, Meta(min_length=1, max_length=16)] = "each"
    net_content: float | int | str | None = None
    net_unit: Literal["g", "kg", "ml", "l", "piece"] | None = None

    def gtin_entries(self) -> list[str | int | tuple[str | int, int]]:
        """The GTINs as the ledger takes them (plain, or ``(gtin, units)``)."""
        return [(g.gtin, g.qty) if isinstance(g, GtinPack) else g for g in self.gtins]


class CatalogUpsert(CommandArgs, frozen=True):
    """``catalog.upsert`` arguments."""

    items: Annotated[list[CatalogItem], Meta(min_length=1, max_length=1000)]


class StockAdjust(CommandArgs, frozen=True):
    """``stock.adjust`` arguments."""

    sku: Code
    bin: Code
    delta: Qty
    reason: Text
    ref: Annotated[str, Meta(max_length=128)] | None = None
    type: str = "adjust"
    lot: Lot | None = None
    expiry: dt.date | None = None
    best_before: dt.date | None = None


class StockCount(CommandArgs, frozen=True):
    """``stock.count`` arguments."""

    sku: Code
    bin: Code
    counted: Annotated[int, Meta(ge=0, le=ledger.MAX_QTY)]


class CatalogFind(CommandArgs, frozen=True):
    """``catalog.find``: look an item up by SKU, GTIN (any form) or part of its name."""

    q: Annotated[str, Meta(min_length=1, max_length=64)]
    limit: Annotated[int, Meta(ge=1, le=100)] = 20


class StockGet(CommandArgs, frozen=True):
    """``stock.get`` arguments."""

    sku: Code


class StockService:
    """Stock commands and the retained per-SKU summaries."""

    def __init__(self, app: "App", settings: StockSettings, clock: "Clock", *,
                 uplink: Uplink | None = None) -> None:
        """Stock of ``app``; summaries go out through ``uplink`` (None: no broker).

        The republish after a reconnect is paced on ``clock``: a page of
        summaries per loop turn, so commands and acks are not held up behind
        ten thousand of them.
        """
        self.app = app
        self.store = app.store
        self.settings = settings
        self._clock: "Clock | None" = clock
        self._republish = 0  # which republish is current (a reconnect starts a new one)
        self.uplink = uplink
        self.expiry = expiry.ExpiryCheck(app.store, clock, settings)
        self._summary_fields: list[SummaryFields] = []

    def install(self) -> None:
        """Register commands and hooks."""
        c = self.app.commands
        c.register("catalog.upsert", self.catalog_upsert, CatalogUpsert)
        c.register("stock.adjust", self.adjust, StockAdjust)
        c.register("stock.count", self.count, StockCount)
        c.register("stock.get", self.get, StockGet, read_only=True)
        c.register("catalog.find", self.find, CatalogFind, read_only=True)
        c.register("state.snapshot", self.snapshot, NoArgs, read_only=True)
        self.app.on_start(lambda: self.store.on_commit(self._published_moves))
        self.app.on_start(self.expiry.start)
        self.app.on_stop(self.expiry.stop)
        if self.uplink is not None:
            self.uplink.on_connected(self.publish_all)
            self.uplink.add_telemetry(lambda: {"stock": {"expired_units": self.expiry.expired_units()}})
        self.app.add_status("stock", self.status)

    # -- commands ----------------------------------------------------------
    def catalog_upsert(self, ctx: CommandContext, args: CatalogUpsert) -> dict[str, Any]:
        """Insert or update catalog items."""
        for item in args.items:
            try:
                ledger.upsert_sku(ctx.tx, item.sku, item.name, item.gtin_entries(), item.price, item.bin,
                                  item.unit, net_content=item.net_content, net_unit=item.net_unit)
            except CommandError as e:
                raise CommandError(e.code, f"items[{item.sku}]: {e.message}") from None
        skus = [i.sku for i in args.items]
        ctx.tx.emit("catalog.updated", {"skus": skus, "command": ctx.id})
        return {"upserted": len(skus)}

    def adjust(self, ctx: CommandContext, args: StockAdjust) -> dict[str, Any]:
        """A manual correction (or damage write-off) ordered by central."""
        if args.delta == 0:
            raise _bad("delta must not be zero")
        if args.type not in ("adjust", "damage", "receive", "return"):
            raise _bad("type must be adjust, damage, receive or return")
        m = ledger.record(ctx.tx, type=args.type, sku=args.sku, bin=args.bin, delta=args.delta,
                          reason=args.reason, ref=args.ref or ctx.id, actor="central",
                          device=ctx.source,
                          item=ledger.ItemData(args.lot, args.expiry, args.best_before))
        return {"movement": m.id, "seq": m.seq, "on_hand": m.on_hand, "negative": m.negative}

    def count(self, ctx: CommandContext, args: StockCount) -> dict[str, Any]:
        """A counted quantity, recorded as the difference."""
        m = ledger.count(ctx.tx, sku=args.sku, bin=args.bin, counted=args.counted,
                         ref=ctx.id, actor="central", device=ctx.source)
        return {"movement": m.id, "seq": m.seq, "delta": m.delta, "on_hand": m.on_hand}

    def find(self, ctx: CommandContext, args: CatalogFind) -> dict[str, Any]:
        """Items whose SKU or GTIN is ``q``, or whose name contains it (read-only)."""
        q = args.q.strip()
        found: dict[str, dict[str, Any]] = {}
        exact = self.store.query("SELECT sku, name FROM skus WHERE sku=?", (q,))
        try:
            gtin = canonical_gtin(q) if q.isdigit() else None
        except ValueError:
            gtin = None
        if gtin is not None:
            exact += self.store.query("SELECT s.sku, s.name FROM gtins g JOIN skus s ON s.sku = g.sku "
                                      "WHERE g.gtin=?", (gtin,))
        pattern = "%" + q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        named = self.store.query("SELECT sku, name FROM skus WHERE name LIKE ? ESCAPE '\\' "
                                 "ORDER BY name LIMIT ?", (pattern, args.limit))
        for row in [*exact, *named]:
            found.setdefault(row["sku"], {"sku": row["sku"], "name": row["name"]})
        items = list(found.values())[:args.limit]
        return {"items": items, "count": len(items)}

    def get(self, ctx: CommandContext, args: StockGet) -> dict[str, Any]:
        """On-hand of one SKU."""
        found = ledger.summary(self.store, args.sku, self.settings.unsellable_bins)
        if found is None:
            raise CommandError("unknown_sku", f"SKU {args.sku!r} is not in the catalog")
        return found

    def snapshot(self, ctx: CommandContext, args: NoArgs) -> dict[str, Any]:
        """All balances plus the last seq, for central to resync from."""
        st = outbox.stats(self.store)
        oldest = outbox.oldest_retained(self.store)
        return {"last_seq": st.last_seq, "acked_seq": st.acked_seq, "oldest_retained_seq": oldest,
                "balances": ledger.balances(self.store), "lots": ledger.lot_balances(self.store),
                **self.app.snapshot_parts()}

    # -- the shared inventory directory -------------------------------------
    def _published_moves(self, events: list[EmittedEvent]) -> None:
        skus = {e.data["sku"] for e in events if e.kind == "stock.moved"}
        for sku in sorted(skus):
            self.publish_summary(sku)

    def publish_summary(self, sku: str) -> None:
        """Publish the retained on-hand summary of one SKU (if connected)."""
        if self.uplink is None or not self.uplink.is_connected():
            return
        found = ledger.summary(self.store, sku, self.settings.unsellable_bins)
        if found is None:
            return
        body = {"sku": sku, "name": found["name"], "on_hand": found["on_hand"],
                "available": found["available"], "bins": found["bins"], "lots": found["lots"],
                "seq": self.store.last_seq()}
        if self._summary_fields:
            with self.store.read() as tx:
                for fields in self._summary_fields:
                    body.update(fields(tx, sku))
        self.uplink.publish_stock(sku, dumps(body).encode())

    def add_summary_fields(self, fields: SummaryFields) -> None:
        """Merge ``fields(tx, sku)`` into every summary published from now on (the KPIs)."""
        self._summary_fields.append(fields)

    def publish_all(self) -> None:
        """Republish every summary (after a reconnect: some may be stale), a page per loop turn."""
        self._republish += 1
        self._publish_page(self._republish, "")

    def _publish_page(self, generation: int, after: str) -> None:
        if generation != self._republish or self.uplink is None or not self.uplink.is_connected():
            return  # a newer reconnect took over, or the link went down again
        rows = self.store.query("SELECT DISTINCT sku FROM balances WHERE sku > ? ORDER BY sku LIMIT ?",
                                (after, REPUBLISH_PAGE))
        for row in rows:
            self.publish_summary(row["sku"])
        if len(rows) < REPUBLISH_PAGE:
            return
        nxt = functools.partial(self._publish_page, generation, rows[-1]["sku"])
        if self._clock is None:
            nxt()
        else:
            self._clock.call_soon(nxt)

    def status(self) -> dict[str, Any]:
        """Catalog size, movements and the first negative balances with their total."""
        skus = self.store.query("SELECT COUNT(*) AS n FROM skus")[0]["n"]
        moves = sum(counts.by_type(self.store).values())
        neg, total = counts.negative_balances(self.store)
        return {"skus": skus, "movements": moves, "negative_balances": neg, "negative_total": total,
                "expired_units": self.expiry.expired_units()}


def _bad(message: str) -> Exception:
    return CommandError("bad_args", message)


def build(*, app: "App", clock: "Clock", uses: Interfaces) -> Built:
    """The stock service; summaries go out through the uplink when there is one."""
    svc = StockService(app, STOCK.of(app.config), clock, uplink=uses.uplink)
    svc.install()
    return Built(svc, Interfaces(stock_summary=svc))


FEATURE = Feature("stock", build, sections=(STOCK,), migrations=(*ledger.MIGRATIONS, *counts.MIGRATIONS))
