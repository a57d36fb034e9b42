"""The ``hubagent`` command line.

Exit status: 0 success; 1 a runtime failure; 2 a bad config file or bad
command-line arguments (before anything is opened); 3 the database was
damaged and has been quarantined.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tomllib
from pathlib import Path
from typing import Any, Callable, Sequence

from hubagent import __version__
from hubagent import config as config_mod
from hubagent.errors import ConfigError, DatabaseCorrupt, HubError

EXIT_FAILURE, EXIT_CONFIG, EXIT_CORRUPT = 1, 2, 3


class UsageError(HubError):
    """Bad command-line arguments (exit 2, like argparse's own errors)."""
DEFAULT_SOCKET = Path("/run/hubagent/api.sock")


def sim_config(hub_id: str | None, mqtt: str | None, state_dir: str | None) -> config_mod.Config:
    """The embedded simulator config with the command line's overrides."""
    from importlib import resources  # only for --sim: importlib.resources costs start-up time

    doc = tomllib.loads(resources.files("hubagent").joinpath("sim.toml").read_text())
    if hub_id:
        doc["hub"]["id"] = hub_id
    doc["hub"]["state_dir"] = state_dir or doc["hub"]["state_dir"]
    if mqtt:
        host, sep, port = mqtt.rpartition(":")
        if not sep or not port.isdigit():
            raise UsageError(f"--mqtt: expected HOST:PORT, got {mqtt!r}")
        doc["mqtt"] = {**doc.get("mqtt", {}), "host": host, "port": int(port)}
    return config_mod.from_dict(doc, "<embedded sim config>")


def _cmd_run(args: argparse.Namespace) -> int:
    from hubagent import logsetup

    if args.sim:
        cfg = sim_config(args.hub_id, args.mqtt, args.state_dir)
    elif args.config:
        if args.hub_id or args.mqtt or args.state_dir:
            raise UsageError("--hub-id/--mqtt/--state-dir go with --sim only")
        cfg = config_mod.load(args.config)
    else:
        raise UsageError("give --config FILE or --sim")
    cfg = _web_override(cfg, args.web, args.no_web)
    from hubagent import preflight

    preflight.check(cfg)  # before anything is opened: exit 2 naming the key
    logsetup.configure(cfg.hub.log_level)
    from hubagent.app import build_app
    from hubagent.daemon import run

    return run(build_app(cfg, simulated=args.sim))


def _web_override(cfg: config_mod.Config, web: str | None, no_web: bool) -> config_mod.Config:
    """Apply ``--web HOST:PORT`` / ``--no-web`` to the config's ``[web]``."""
    import msgspec
    import msgspec.structs

    from hubagent.web.settings import WebSettings

    if no_web:
        if web:
            raise UsageError("--web and --no-web exclude each other")
        return msgspec.structs.replace(cfg, web=None)
    if not web:
        return cfg
    try:
        base = msgspec.to_builtins(cfg.web) if cfg.web is not None else {}
        settings = msgspec.convert({**base, "listen": web}, WebSettings)
    except msgspec.ValidationError as e:
        raise UsageError(f"--web: expected HOST:PORT, got {web!r} ({e})") from None
    return msgspec.structs.replace(cfg, web=settings)


def _cmd_check(args: argparse.Namespace) -> int:
    cfg = config_mod.load(args.file)
    if not args.syntax_only:
        from hubagent import preflight

        preflight.check(cfg)
    roles = ", ".join(f"{d.role}.{d.name}={d.spec.name}" for d in cfg.devices) or "none"
    print(f"{args.file}: ok (hub {cfg.hub.id}; devices: {roles})")
    return 0


def _socket(args: argparse.Namespace) -> Path:
    if args.socket:
        return Path(args.socket)
    if args.config:
        return config_mod.load(args.config).socket_path
    if args.state_dir:
        return Path(args.state_dir) / "api.sock"
    local = Path(sim_config(None, None, None).state_dir) / "api.sock"
    return DEFAULT_SOCKET if DEFAULT_SOCKET.exists() or not local.exists() else local


def _call(args: argparse.Namespace, req: dict[str, Any]) -> dict[str, Any]:
    from hubagent.api import request

    path = _socket(args)
    try:
        reply = request(path, req)
    except (FileNotFoundError, ConnectionRefusedError) as e:
        raise HubError(f"no running hubagent at {path} ({e.strerror})") from None
    except OSError as e:
        raise HubError(f"cannot reach hubagent at {path}: {e}") from None
    if not reply.get("ok"):
        err = reply.get("error", {})
        raise HubError(f"{err.get('code')}: {err.get('message')}")
    return reply["result"]


def _cmd_status(args: argparse.Namespace) -> int:
    st = _call(args, {"op": "status"})
    if args.json:
        print(json.dumps(st, indent=2, sort_keys=True))
        return 0
    from hubagent.status_text import render

    print(render(st))
    return 0


def _cmd_sim(args: argparse.Namespace) -> int:
    role, name, verb, sim_args = args.sim_request(args)
    result = _call(args, {"op": "sim", "role": role, "name": name, "verb": verb, "args": sim_args})
    print(json.dumps(result, sort_keys=True))
    return 0


def _cmd_version(args: argparse.Namespace) -> int:
    print(f"hubagent {__version__}")
    return 0


def _add_target(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("which daemon")
    g.add_argument("--socket", help="API socket of the daemon")
    g.add_argument("--config", help="config file of the daemon (its [api] socket)")
    g.add_argument("--state-dir", help="state directory of a --sim daemon")


def _sim_parsers(sub: Any) -> None:
    sim = sub.add_parser("sim", help="drive the simulated devices of a running daemon")
    _add_target(sim)
    verbs = sim.add_subparsers(dest="sim_verb", required=True)
    for extend in SIM_COMMANDS:
        extend(verbs)
    sim.set_defaults(func=_cmd_sim)


def _scan_parser(verbs: Any) -> None:
    p = verbs.add_parser("scan", help="type a code into a simulated scanner (as a serial scanner would)")
    p.add_argument("code")
    p.add_argument("--scanner", help="scanner name (needed when there are several)")
    p.set_defaults(sim_request=lambda a: ("scanners", a.scanner, "scan", {"code": a.code}))
    p = verbs.add_parser("bytes", help="send raw bytes (hex) to a simulated scanner: noise, bad UTF-8")
    p.add_argument("hex")
    p.add_argument("--scanner", help="scanner name")
    p.set_defaults(sim_request=lambda a: ("scanners", a.scanner, "bytes", {"hex": a.hex}))


def _printer_parser(verbs: Any) -> None:
    p = verbs.add_parser("printer", help="inject printer faults: paper-out, paper-in, offline, online")
    p.add_argument("action", choices=["paper-out", "paper-in", "offline", "online"])
    p.add_argument("name", nargs="?", help="printer name (needed when there are several)")
    p.set_defaults(sim_request=lambda a: ("printers", a.name, a.action, {}))


def _door_parser(verbs: Any) -> None:
    p = verbs.add_parser("door", help="open, close, jam or unjam a simulated locker door")
    p.add_argument("where", metavar="BANK/COMPARTMENT")
    p.add_argument("action", choices=["open", "close", "jam", "unjam"])

    def request(a: argparse.Namespace) -> tuple[str, str, str, dict[str, Any]]:
        bank, sep, comp = a.where.partition("/")
        if not sep or not bank or not comp:
            raise UsageError(f"door: expected BANK/COMPARTMENT, got {a.where!r}")
        return "lockers", bank, a.action, {"compartment": comp}

    p.set_defaults(sim_request=request)


def _code_parser(verbs: Any) -> None:
    p = verbs.add_parser("code", help="enter a pickup, staff or return code on a simulated keypad")
    p.add_argument("code")
    p.add_argument("--keypad", help="keypad name (needed when there are several)")
    p.set_defaults(sim_request=lambda a: ("keypads", a.keypad, "code", {"code": a.code}))


def _power_parser(verbs: Any) -> None:
    p = verbs.add_parser("power", help="switch the simulated UPS: mains, battery, low, unreachable")
    p.add_argument("state", choices=["mains", "battery", "low", "unreachable"])
    p.add_argument("--charge", type=float, help="battery charge in percent")
    p.add_argument("--runtime", type=float, help="battery runtime in seconds")
    p.add_argument("--source", help="power source name (needed when there are several)")

    def request(a: argparse.Namespace) -> tuple[str, str | None, str, dict[str, Any]]:
        args = {k: v for k, v in (("charge", a.charge), ("runtime", a.runtime)) if v is not None}
        return "power", a.source, a.state, args

    p.set_defaults(sim_request=request)


# Each adds one `hubagent sim VERB` parser.
SIM_COMMANDS: list[Callable[[Any], None]] = [
    _scan_parser, _printer_parser, _door_parser, _code_parser, _power_parser,
]


def _cmd_print(args: argparse.Namespace) -> int:
    fields: dict[str, Any] = {}
    for item in args.field or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UsageError(f"--field: expected KEY=VALUE, got {item!r}")
        # A key given again builds a list (the lines of a pick list).
        prev = fields.get(key)
        fields[key] = value if prev is None else [*(prev if isinstance(prev, list) else [prev]), value]
    payload: dict[str, Any] = {"template": args.template, "fields": fields, "copies": args.copies}
    if args.printer:
        payload["printer"] = args.printer
    return _send_command(args, "print", payload, args.job_id)


def _send_command(args: argparse.Namespace, name: str, payload: dict[str, Any],
                  cid: str | None) -> int:
    """Run one command through the local API; print the reply; exit 1 unless ok."""
    payload.setdefault("id", cid or f"cli-{os.urandom(6).hex()}")
    reply = _call(args, {"op": "command", "name": name, "payload": payload})
    print(json.dumps(reply, sort_keys=True))
    return 0 if reply.get("ok") else EXIT_FAILURE


def _print_parser(sub: Any) -> None:
    p = sub.add_parser("print", help="queue a label on the running daemon's printer")
    p.add_argument("template", help="template name: shelf, parcel, pickup, return, picklist, bin, command_sheet")
    p.add_argument("--field", action="append", metavar="KEY=VALUE",
                   help="a template field (repeat; a key given again makes a list)")
    p.add_argument("--printer", help="printer name (default: the template's printer)")
    p.add_argument("--copies", type=int, default=1)
    p.add_argument("--job-id", help="job id (a repeated id is not printed twice)")
    _add_target(p)
    p.set_defaults(func=_cmd_print)


def _cmd_bench(args: argparse.Namespace) -> int:
    from hubagent.bench import run_all

    report = run_all(args.only, quick=args.quick)
    if args.json:
        print(json.dumps(report, indent=2, sort_keys=True))
    else:
        from hubagent.bench import render

        print(render(report))
    return 0


def _bench_parser(sub: Any) -> None:
    p = sub.add_parser("bench", help="measure this machine: commit latency, drain rate, scans, labels")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--only", action="append", help="run only these benchmarks (repeat)")
    p.add_argument("--quick", action="store_true", help="smaller sample sizes")
    p.set_defaults(func=_cmd_bench)


def _cmd_command(args: argparse.Namespace) -> int:
    try:
        payload = json.loads(args.payload)
    except ValueError as e:
        raise UsageError(f"payload: not valid JSON: {e}") from None
    if not isinstance(payload, dict):
        raise UsageError("payload: must be a JSON object")
    return _send_command(args, args.name, payload, args.id)


def _command_parser(sub: Any) -> None:
    # Any command central could send, through the local API (e.g. parcel.assign on the simulator).
    p = sub.add_parser("command", help="run a command on the daemon as central would (local API)")
    p.add_argument("name", help="command name, e.g. parcel.assign or locker.open")
    p.add_argument("payload", nargs="?", default="{}", help="arguments as a JSON object")
    p.add_argument("--id", help="command id (a repeated id has no second effect)")
    _add_target(p)
    p.set_defaults(func=_cmd_command)


# Each adds top-level subcommands; features append theirs.
EXTRA_COMMANDS: list[Callable[[Any], None]] = [_print_parser, _bench_parser, _command_parser]


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``hubagent``."""
    parser = argparse.ArgumentParser(prog="hubagent", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run the daemon")
    run.add_argument("--config", help="config file (TOML)")
    run.add_argument("--sim", action="store_true", help="run with every device simulated")
    run.add_argument("--hub-id", help="hub id (with --sim)")
    run.add_argument("--mqtt", metavar="HOST:PORT", help="broker (with --sim); default offline")
    run.add_argument("--state-dir", help="state directory (with --sim); default ./state")
    run.add_argument("--web", metavar="HOST:PORT",
                     help="serve the kiosk and staff pages here (--sim: 127.0.0.1:8080)")
    run.add_argument("--no-web", action="store_true", help="no web pages")
    run.set_defaults(func=_cmd_run)

    check = sub.add_parser("check-config", help="validate a config file and exit")
    check.add_argument("file")
    check.add_argument("--syntax-only", action="store_true",
                       help="check the file alone, not the paths and credentials it names "
                            "(e.g. on another machine than the hub)")
    check.set_defaults(func=_cmd_check)

    status = sub.add_parser("status", help="ask the running daemon how it is")
    status.add_argument("--json", action="store_true", help="machine-readable output")
    _add_target(status)
    status.set_defaults(func=_cmd_status)

    _sim_parsers(sub)
    for extend in EXTRA_COMMANDS:
        extend(sub)

    version = sub.add_parser("version", help="print the version")
    version.set_defaults(func=_cmd_version)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit status."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except ConfigError as e:
        print(f"hubagent: config error: {e}", file=sys.stderr)
        return EXIT_CONFIG
    except UsageError as e:
        print(f"hubagent: {e}", file=sys.stderr)
        return EXIT_CONFIG
    except DatabaseCorrupt as e:
        print(f"hubagent: {e}", file=sys.stderr)
        return EXIT_CORRUPT
    except HubError as e:
        print(f"hubagent: {e}", file=sys.stderr)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
