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
from hubagent.store.store import EmittedEvent, dumps
from hubagent.stock import ledger
from hubagent.sync import outbox

if TYPE_CHECKING:
    from hubagent.app import App

Code = Annotated[str, Meta(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][A-Za-z0-9._/-]*$")]
Gtin = Annotated[str, Meta(pattern=r"^[0-9]{8,14}$")]
Text = Annotated[str, Meta(min_length=1, max_length=200)]
Qty = Annotated[int, Meta(ge=-ledger.MAX_QTY, le=ledger.MAX_QTY)]


class CatalogItem(CommandArgs):
    """One catalog entry of ``catalog.upsert``."""

    sku: Code
    name: Text
    gtins: Annotated[list[Gtin], Meta(max_length=20)] = []
    price: float | int | str | None = None
    bin: Code | None = None
    unit: Annotated[str, Meta(min_length=1, max_length=16)] = "each"


class CatalogUpsert(CommandArgs):
    """``catalog.upsert`` arguments."""

    items: Annotated[list[CatalogItem], Meta(min_length=1, max_length=1000)]


class StockAdjust(CommandArgs):
    """``stock.adjust`` arguments."""

    sku: Code
    bin: Code
    delta: Qty
    reason: Text
    ref: Annotated[str, Meta(max_length=128)] | None = None
    type: str = "adjust"


class StockCount(CommandArgs):
    """``stock.count`` arguments."""

    sku: Code
    bin: Code
    counted: Annotated[int, Meta(ge=0, le=ledger.MAX_QTY)]


class StockGet(CommandArgs):
    """``stock.get`` arguments."""

    sku: Code


class StockService:
    """Stock commands and the retained per-SKU summaries."""

    def __init__(self, app: "App") -> None:
        self.app = app
        self.store = app.store

    def install(self) -> None:
        """Register commands and hooks."""
        c = self.app.commands
        c.register("catalog.upsert", self.catalog_upsert, CatalogUpsert)
        c.register("stock.adjust", self.adjust, StockAdjust)
        c.register("stock.count", self.count, StockCount)
        c.register("stock.get", self.get, StockGet, read_only=True)
        c.register("state.snapshot", self.snapshot, NoArgs, read_only=True)
        self.app.on_start(lambda: self.store.on_commit(self._published_moves))
        if self.app.sync is not None:
            self.app.sync.on_connected(self.publish_all)
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
        sync = self.app.sync
        if sync is None or sync.link is None or not sync.link.connected:
            return
        found = ledger.summary(self.store, sku)
        if found is None:
            return
        body = {"sku": sku, "name": found["name"], "on_hand": found["on_hand"],
                "bins": found["bins"], "seq": self.store.last_seq()}
        sync.link.publish(sync.topics.stock(sku), dumps(body).encode(), retain=True)

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


def install(app: "App") -> None:
    """Add the stock service to the app."""
    svc = StockService(app)
    svc.install()
    app.stock = svc
