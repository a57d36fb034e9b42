"""Commands of the scanning feature: ``delivery.expect``, ``pick.request``, ``scanner.mode``.

Each runs inside the command's write transaction (exactly once per command
id); the in-memory session of a scanner is only touched after commit.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Callable

from msgspec import Meta

from hubagent.commands import CommandArgs, CommandContext
from hubagent.errors import CommandError
from hubagent.scanning import schema
from hubagent.scanning.settings import BinCode, Mode
from hubagent.stock import ledger
from hubagent.stock.feature import Code

if TYPE_CHECKING:
    from hubagent.app import App
    from hubagent.store.store import Tx

Qty = Annotated[int, Meta(ge=1, le=ledger.MAX_QTY)]
Lines = Meta(min_length=1, max_length=1000)


class DeliveryLine(CommandArgs, frozen=True):
    """One expected line of a delivery."""

    sku: Code
    qty: Qty


class DeliveryExpect(CommandArgs, frozen=True):
    """``delivery.expect`` arguments."""

    delivery: Code
    lines: Annotated[list[DeliveryLine], Lines]
    bin: BinCode | None = None


class PickLine(CommandArgs, frozen=True):
    """One line of a pick list."""

    sku: Code
    qty: Qty
    bin: BinCode | None = None


class PickRequest(CommandArgs, frozen=True):
    """``pick.request`` arguments."""

    pick: Code
    lines: Annotated[list[PickLine], Lines]
    scanner: str | None = None


class ScannerMode(CommandArgs, frozen=True):
    """``scanner.mode`` arguments."""

    scanner: str
    mode: Mode


def _unique_skus(skus: list[str]) -> None:
    seen: set[str] = set()
    for sku in skus:
        if sku in seen:
            raise CommandError("bad_args", f"SKU {sku!r} is listed twice; give one line per SKU")
        seen.add(sku)


def _default_bin(tx: "Tx", sku: str) -> str | None:
    row = tx.execute("SELECT default_bin FROM skus WHERE sku=?", (sku,)).fetchone()
    return str(row[0]) if row and row[0] else None


class ScanCommands:
    """Handlers bound to the app; ``on_mode`` resets a scanner's session after commit."""

    def __init__(self, app: "App", on_mode: Callable[[str, str], None]) -> None:
        self.app = app
        self.on_mode = on_mode

    def install(self) -> None:
        """Register the commands."""
        c = self.app.commands
        c.register("delivery.expect", self.delivery_expect, DeliveryExpect)
        c.register("pick.request", self.pick_request, PickRequest)
        c.register("scanner.mode", self.scanner_mode, ScannerMode)

    def _scanners(self) -> list[str]:
        return [d.name for d in self.app.config.devices_of("scanners")]

    def delivery_expect(self, ctx: CommandContext, args: DeliveryExpect) -> dict[str, Any]:
        """Announce a delivery: receive scans count against it until HA:DONE."""
        _unique_skus([line.sku for line in args.lines])
        if schema.delivery_exists(ctx.tx, args.delivery):
            raise CommandError("exists", f"delivery {args.delivery!r} was already announced")
        for line in args.lines:
            ledger.require_sku(ctx.tx, line.sku)
        schema.create_delivery(ctx.tx, args.delivery, [(x.sku, x.qty) for x in args.lines],
                               args.bin, ctx.id)
        return {"delivery": args.delivery, "lines": len(args.lines),
                "expected": sum(x.qty for x in args.lines)}

    def pick_request(self, ctx: CommandContext, args: PickRequest) -> dict[str, Any]:
        """A pick list for hub staff; completion emits ``pick.done``."""
        _unique_skus([line.sku for line in args.lines])
        if args.scanner is not None and args.scanner not in self._scanners():
            raise CommandError("bad_args", f"no scanner named {args.scanner!r} on this hub")
        if schema.pick_exists(ctx.tx, args.pick):
            raise CommandError("exists", f"pick {args.pick!r} was already requested")
        for line in args.lines:
            ledger.require_sku(ctx.tx, line.sku)
        schema.create_pick(ctx.tx, args.pick, [(x.sku, x.qty, x.bin) for x in args.lines],
                           args.scanner, ctx.id)
        first = [{"sku": x.sku, **(ledger.first_lot(ctx.tx, x.sku, x.bin or _default_bin(ctx.tx, x.sku))
                                   or {"bin": None, "lot": None, "expiry": None, "best_before": None})}
                 for x in args.lines]
        return {"pick": args.pick, "lines": len(args.lines), "scanner": args.scanner, "first": first}

    def scanner_mode(self, ctx: CommandContext, args: ScannerMode) -> dict[str, Any]:
        """Switch a scanner's mode remotely (as scanning HA:MODE:<mode> would)."""
        if args.scanner not in self._scanners():
            raise CommandError("bad_args", f"no scanner named {args.scanner!r} on this hub")
        row = ctx.tx.execute("SELECT staff FROM scan_stations WHERE scanner=?", (args.scanner,)).fetchone()
        schema.save_station(ctx.tx, args.scanner, args.mode, row[0] if row else None, None, None)
        ctx.tx.after_commit(lambda: self.on_mode(args.scanner, args.mode))
        return {"scanner": args.scanner, "mode": args.mode}
