"""Stock commands from central and the shared inventory directory.

Commands: ``catalog.upsert``, ``stock.adjust``, ``stock.count``,
``stock.get``, ``state.snapshot``. After each commit that moved stock, the
retained ``<prefix>/<hub>/stock/<sku>`` summary is republished, so any
consortium member can see where stock is.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

from msgspec import Meta

from hubagent.commands import CommandArgs, CommandContext, NoArgs
from hubagent.errors import CommandError
from hubagent.feature import Built, Feature, Interfaces
from hubagent.interfaces import SummaryFields, Uplink
from hubagent.store.store import EmittedEvent, dumps
from hubagent.stock import ledger
from hubagent.sync import outbox

if TYPE_CHECKING:
    from hubagent.app import App
    from hubagent.clock import Clock

Code = Annotated[str, Meta(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9._/-]*$")]
Gtin = Annotated[str, Meta(pattern=r"^[0-9]{8,14}$")]
Text = Annotated[str, Meta(min_length=1, max_length=200)]
Qty = Annotated[int, Meta(ge=-ledger.MAX_QTY, le=ledger.MAX_QTY)]


class CatalogItem(CommandArgs, frozen=True):
    """One catalog entry of ``catalog.upsert``."""

    sku: Code
    name: Text
    gtins: Annotated[list[Gtin], Meta(max_length=20)] = []
    price: float | int | str | None = None
    bin: Code | None = None
    unit: Annotated[str, Meta(min_length=1, max_length=16)] = "each"


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


class StockCount(CommandArgs, frozen=True):
    """``stock.count`` arguments."""

    sku: Code
    bin: Code
    counted: Annotated[int, Meta(ge=0, le=ledger.MAX_QTY)]


class StockGet(CommandArgs, frozen=True):
    """``stock.get`` arguments."""

    sku: Code


class StockService:
    """Stock commands and the retained per-SKU summaries."""

    def __init__(self, app: "App", *, uplink: Uplink | None = None) -> None:
        """Stock of ``app``; summaries go out through ``uplink`` (None: no broker)."""
        self.app = app
        self.store = app.store
        self.uplink = uplink
        self._summary_fields: list[SummaryFields] = []

    def install(self) -> None:
        """Register commands and hooks."""
        c = self.app.commands
        c.register("catalog.upsert", self.catalog_upsert, CatalogUpsert)
        c.register("stock.adjust", self.adjust, StockAdjust)
        c.register("stock.count", self.count, StockCount)
        c.register("stock.get", self.get, StockGet, read_only=True)
        c.register("state.snapshot", self.snapshot, NoArgs, read_only=True)
        self.app.on_start(lambda: self.store.on_commit(self._published_moves))
        if self.uplink is not None:
            self.uplink.on_connected(self.publish_all)
        self.app.add_status("stock", self.status)

    # -- commands ----------------------------------------------------------
    def catalog_upsert(self, ctx: CommandContext, args: CatalogUpsert) -> dict[str, Any]:
        """Insert or update catalog items."""
        for item in args.items:
            ledger.upsert_sku(ctx.tx, item.sku, item.name, item.gtins, item.price, item.bin, item.unit)
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
                          device=ctx.source)
        return {"movement": m.id, "seq": m.seq, "on_hand": m.on_hand, "negative": m.negative}

    def count(self, ctx: CommandContext, args: StockCount) -> dict[str, Any]:
        """A counted quantity, recorded as the difference."""
        m = ledger.count(ctx.tx, sku=args.sku, bin=args.bin, counted=args.counted,
                         ref=ctx.id, actor="central", device=ctx.source)
        return {"movement": m.id, "seq": m.seq, "delta": m.delta, "on_hand": m.on_hand}

    def get(self, ctx: CommandContext, args: StockGet) -> dict[str, Any]:
        """On-hand of one SKU."""
        found = ledger.summary(self.store, args.sku)
        if found is None:
            raise CommandError("unknown_sku", f"SKU {args.sku!r} is not in the catalog")
        return found

    def snapshot(self, ctx: CommandContext, args: NoArgs) -> dict[str, Any]:
        """All balances plus the last seq, for central to resync from."""
        st = outbox.stats(self.store)
        oldest = outbox.oldest_retained(self.store)
        return {"last_seq": st.last_seq, "acked_seq": st.acked_seq, "oldest_retained_seq": oldest,
                "balances": ledger.balances(self.store), **self.app.snapshot_parts()}

    # -- the shared inventory directory -------------------------------------
    def _published_moves(self, events: list[EmittedEvent]) -> None:
        skus = {e.data["sku"] for e in events if e.kind == "stock.moved"}
        for sku in sorted(skus):
            self.publish_summary(sku)

    def publish_summary(self, sku: str) -> None:
        """Publish the retained on-hand summary of one SKU (if connected)."""
        if self.uplink is None or not self.uplink.is_connected():
            return
        found = ledger.summary(self.store, sku)
        if found is None:
            return
        body = {"sku": sku, "name": found["name"], "on_hand": found["on_hand"],
                "bins": found["bins"], "seq": self.store.last_seq()}
        if self._summary_fields:
            with self.store.read() as tx:
                for fields in self._summary_fields:
                    body.update(fields(tx, sku))
        self.uplink.publish_stock(sku, dumps(body).encode())

    def add_summary_fields(self, fields: SummaryFields) -> None:
        """Merge ``fields(tx, sku)`` into every summary published from now on (the KPIs)."""
        self._summary_fields.append(fields)

    def publish_all(self) -> None:
        """Republish every summary (after a reconnect: some may be stale)."""
        for row in self.store.query("SELECT DISTINCT sku FROM balances"):
            self.publish_summary(row["sku"])

    def status(self) -> dict[str, Any]:
        """Catalog size and negative balances."""
        skus = self.store.query("SELECT COUNT(*) AS n FROM skus")[0]["n"]
        neg = self.store.query("SELECT sku, bin, on_hand FROM balances WHERE on_hand < 0")
        moves = self.store.query("SELECT COUNT(*) AS n FROM movements")[0]["n"]
        return {"skus": skus, "movements": moves, "negative_balances": neg}


def _bad(message: str) -> Exception:
    return CommandError("bad_args", message)


def build(*, app: "App", clock: "Clock", uses: Interfaces) -> Built:
    """The stock service; summaries go out through the uplink when there is one."""
    svc = StockService(app, uplink=uses.uplink)
    svc.install()
    return Built(svc, Interfaces(stock_summary=svc))


FEATURE = Feature("stock", build, migrations=tuple(ledger.MIGRATIONS))
