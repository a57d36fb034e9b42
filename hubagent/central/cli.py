"""``hubctl``: central ops on the command line (see README "Central ops").

Exit status: 0 done, 1 a command failed or timed out, 2 bad usage or config.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

from hubagent.central import views
from hubagent.central.db import Database, DatabaseError
from hubagent.central.link import Broker, CentralConfigError, Reply, Session, load_config

log = logging.getLogger("hubctl")
EXIT_FAILED, EXIT_USAGE = 1, 2


def _broker(args: argparse.Namespace) -> Broker:
    broker, _ = load_config(args.config, args.mqtt)
    return broker


def _db_url(args: argparse.Namespace) -> str:
    if args.db:
        return str(args.db)
    if args.config:
        _, central = load_config(args.config, args.mqtt or "localhost:1883")
        return central.db
    return "sqlite:///central.db"


def _out(args: argparse.Namespace, doc: Any, human: Callable[[], str]) -> None:
    print(json.dumps(doc, indent=2, sort_keys=True) if args.json else human())


# -- ingest -----------------------------------------------------------------------
def _cmd_ingest(args: argparse.Namespace) -> int:
    from hubagent.central.ingest import Ingest, Options

    broker, central = load_config(args.config, args.mqtt)
    k, n = 0, 1
    if args.partition:
        try:
            ks, ns = args.partition.split("/")
            k, n = int(ks), int(ns)
        except ValueError:
            raise CentralConfigError(f"--partition: expected K/N, got {args.partition!r}") from None
    mode = args.mode or ("partition" if args.partition else "single")
    opts = Options(db_url=args.db or central.db, mode=mode, group=args.group or central.group,
                   partition=(k, n), gap_s=args.gap_s, retry_s=args.retry_s,
                   session_expiry=args.session_expiry, client_id=args.client_id)
    ingest = Ingest(broker, opts)
    signal.signal(signal.SIGTERM, lambda *_: ingest.stop())
    signal.signal(signal.SIGINT, lambda *_: ingest.stop())
    return ingest.run(ready=lambda: print("ingest ready", flush=True))


# -- fleet view --------------------------------------------------------------------
def _cmd_hubs(args: argparse.Namespace) -> int:
    broker = _broker(args)
    fleet = views.fleet(broker, wait_s=args.wait)
    if args.db:
        db = Database(args.db)
        try:
            views.add_central_view(db, fleet)
        finally:
            db.close()
    _out(args, fleet, lambda: views.hubs_table(fleet))
    return 0


def _cmd_stock(args: argparse.Namespace) -> int:
    rows = views.stock_directory(_broker(args), args.sku, wait_s=args.wait)
    _out(args, rows, lambda: views.stock_table(args.sku, rows))
    return 0


def _cmd_cmd(args: argparse.Namespace) -> int:
    if args.hubs and args.hub and args.args is None:
        # `hubctl cmd --hubs a,b NAME JSON`: no HUB, so the positionals shift.
        args.hub, args.name, args.args = "", args.hub, args.name
    try:
        payload = json.loads(args.args) if args.args else {}
    except ValueError as e:
        raise CentralConfigError(f"JSON: arguments are not JSON: {e}") from e
    if not isinstance(payload, dict):
        raise CentralConfigError("JSON: arguments must be a JSON object")
    if args.hubs:
        hubs = [h for h in args.hubs.split(",") if h]
    elif args.hub:
        hubs = [args.hub]
    else:
        raise CentralConfigError("HUB: name a hub, or give --hubs A,B,... before NAME")
    replies = views.fan_out(_broker(args), hubs, args.name, payload, command_id=args.id,
                            timeout=args.timeout, retries=args.retries, expiry=args.expiry)
    _out(args, replies, lambda: views.replies_text(replies))
    return 0 if all(r.get("ok") is True for r in replies.values()) else EXIT_FAILED


def _cmd_events(args: argparse.Namespace) -> int:
    db = Database(_db_url(args))
    try:
        last = args.from_seq - 1
        while True:
            rows = views.events(db, args.hub, after=last, limit=args.limit)
            for row in rows:
                print(json.dumps(row, sort_keys=True) if args.json else views.event_line(row),
                      flush=True)
                last = max(last, int(row["seq"]))
            if not args.follow:
                return 0
            if not rows:
                time.sleep(0.5)  # follow polls the database; nothing else to wake on
    except KeyboardInterrupt:
        return 0
    finally:
        db.close()


def _cmd_table(view: Callable[[Database, str], list[dict[str, Any]]],
               columns: Sequence[str]) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        db = Database(_db_url(args))
        try:
            rows = view(db, args.hub)
        finally:
            db.close()
        _out(args, rows, lambda: views.table(rows, columns))
        return 0
    return run


# -- reconcile ----------------------------------------------------------------------
def _cmd_reconcile(args: argparse.Namespace) -> int:
    from hubagent.central import reconcile

    db = Database(_db_url(args))
    try:
        with Session(_broker(args)) as session:
            report = reconcile.compare(db, session.requester, args.hub, wait_s=args.wait)
            if args.apply and report.differences:
                reconcile.apply(db, session.requester, report, reason=args.reason)
    finally:
        db.close()
    _out(args, report.as_dict(), report.text)
    return 0


def _cmd_resync(args: argparse.Namespace) -> int:
    from hubagent.central import books

    db = Database(_db_url(args))
    try:
        with db.tx() as tx:
            books.want_resync(tx, args.hub, "operator")
    finally:
        db.close()
    print(f"resync of {args.hub} requested: a running ingest takes it within a second")
    return 0


# -- simulation and benchmarks ---------------------------------------------------------
def _cmd_fleet(args: argparse.Namespace) -> int:
    from hubagent.central.fleet import Fleet

    broker = _broker(args)
    s = broker.settings
    fleet = Fleet(s.host, s.port, args.hubs, prefix=s.prefix, name=args.name)
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    fleet.start(rate_per_hub=args.rate)
    fleet.publish_stock()
    print(f"fleet of {args.hubs} simulated hubs up ({args.rate} events/s each)", flush=True)
    try:
        while not stop:
            time.sleep(1)  # the fleet runs on its own threads
    except KeyboardInterrupt:
        pass
    finally:
        fleet.close()
    return 0


def _cmd_bench(args: argparse.Namespace) -> int:
    from hubagent.central.bench import main as bench_main

    return bench_main(args)


def build_parser() -> argparse.ArgumentParser:
    """The ``hubctl`` argument parser."""
    p = argparse.ArgumentParser(prog="hubctl", description="Central ops for hubagent hubs.")
    p.add_argument("--mqtt", metavar="HOST:PORT", help="broker (or [mqtt] in --config)")
    p.add_argument("--config", metavar="FILE", help="TOML with [mqtt] (as the hub's) and [central]")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--log-level", default="warning", choices=["debug", "info", "warning", "error"])
    sub = p.add_subparsers(dest="command", required=True)

    def db_opt(q: argparse.ArgumentParser) -> None:
        q.add_argument("--db", help="database URL (default sqlite:///central.db)")

    q = sub.add_parser("ingest", help="store every hub's events, ack, replay and resync")
    db_opt(q)
    q.add_argument("--mode", choices=["single", "shared", "partition"])
    q.add_argument("--group", help="shared-subscription group (mode shared)")
    q.add_argument("--partition", metavar="K/N", help="take the hubs of partition K of N")
    q.add_argument("--gap-s", type=float, default=3.0, help="replay a gap open this long")
    q.add_argument("--retry-s", type=float, default=10.0, help="retry replays/resyncs after")
    q.add_argument("--session-expiry", type=int, default=0,
                   help="keep the broker session this many seconds (needs --client-id)")
    q.add_argument("--client-id")
    q.set_defaults(fn=_cmd_ingest)

    q = sub.add_parser("hubs", help="the fleet from retained state")
    q.add_argument("--wait", type=float, default=1.5, help="seconds to listen for telemetry")
    db_opt(q)
    q.set_defaults(fn=_cmd_hubs)

    q = sub.add_parser("cmd", help="send a command and print the reply")
    q.add_argument("hub", nargs="?", default="")
    q.add_argument("name")
    q.add_argument("args", nargs="?", help="JSON object of arguments")
    q.add_argument("--hubs", help="comma-separated hubs to fan out to")
    q.add_argument("--id", help="command id (reuse it to retry safely)")
    q.add_argument("--timeout", type=float, default=10.0)
    q.add_argument("--retries", type=int, default=2, help="resends with the same id")
    q.add_argument("--expiry", type=int, help="MQTT message expiry in seconds")
    q.set_defaults(fn=_cmd_cmd)

    q = sub.add_parser("events", help="a hub's events from central's database")
    q.add_argument("hub")
    q.add_argument("--from-seq", type=int, default=1)
    q.add_argument("--limit", type=int, default=1000)
    q.add_argument("--follow", action="store_true")
    db_opt(q)
    q.set_defaults(fn=_cmd_events)

    q = sub.add_parser("stock", help="where a SKU is, from retained stock summaries")
    q.add_argument("sku")
    q.add_argument("--wait", type=float, default=3.0, help="longest wait for summaries")
    q.set_defaults(fn=_cmd_stock)

    for name, view, cols in (("lockers", views.lockers, views.LOCKER_COLUMNS),
                             ("parcels", views.parcels, views.PARCEL_COLUMNS)):
        q = sub.add_parser(name, help=f"a hub's {name} from central's database")
        q.add_argument("hub")
        db_opt(q)
        q.set_defaults(fn=_cmd_table(view, cols))

    q = sub.add_parser("reconcile", help="compare central's balances with the hub's")
    q.add_argument("hub")
    q.add_argument("--apply", action="store_true", help="send stock.count corrections")
    q.add_argument("--reason", default="reconcile with central books")
    q.add_argument("--wait", type=float, default=15.0, help="wait for central to catch up")
    db_opt(q)
    q.set_defaults(fn=_cmd_reconcile)

    q = sub.add_parser("resync", help="ask the ingest to resync a hub from its snapshot")
    q.add_argument("hub")
    db_opt(q)
    q.set_defaults(fn=_cmd_resync)

    q = sub.add_parser("fleet", help="simulate N hubs on the broker")
    q.add_argument("--hubs", type=int, default=10)
    q.add_argument("--rate", type=float, default=0.2, help="events per second per hub")
    q.add_argument("--name", default="sim")
    q.set_defaults(fn=_cmd_fleet)

    q = sub.add_parser("bench", help="ingest throughput and ack lag")
    q.add_argument("--hubs", type=int, default=1000)
    q.add_argument("--events", type=int, default=20_000, help="events per database run")
    q.add_argument("--pg", help="PostgreSQL URL (default: a temporary server if installed)")
    q.set_defaults(fn=_cmd_bench)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``hubctl``."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), stream=sys.stderr,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        return int(args.fn(args))
    except (CentralConfigError, DatabaseError) as e:
        print(f"hubctl: {e}", file=sys.stderr)
        return EXIT_USAGE
    except (TimeoutError, ConnectionError, Reply) as e:
        print(f"hubctl: {e}", file=sys.stderr)
        return EXIT_FAILED
    except Exception as e:
        from hubagent.central.ingest import IngestError

        if isinstance(e, IngestError):
            print(f"hubctl: {e}", file=sys.stderr)
            return EXIT_FAILED
        raise


if __name__ == "__main__":
    sys.exit(main())
