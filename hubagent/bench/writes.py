"""What one command costs the SD card: bytes, WAL frames and fsyncs.

Run in a child process of its own (so its write counters hold nothing
else), under ``strace`` when it is installed to count ``fsync`` and
``fdatasync`` calls. The child builds an offline hub on a real database
file, records 1,000 movements (setup), folds the WAL into the main file,
turns automatic checkpoints off, and then sends ``N`` commands one at a
time through the dispatcher. WAL frames are read off the WAL file's size;
bytes are ``wchar`` from ``/proc/self/io``. The baseline is a raw SQLite
table of one integer key and one text column, one row per committed
transaction, with the same ``journal_mode=WAL`` and ``synchronous=FULL``.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any, Callable

from hubagent.bench.rows import Row, python

# Marks where the measured part starts and ends in strace's output: a
# system call nothing else in the child makes.
_MARK = "getppid"


def _wal_frames(db: Path, page_size: int) -> int:
    wal = db.with_name(db.name + "-wal")
    size = wal.stat().st_size if wal.exists() else 0
    return max(0, (size - 32) // (page_size + 24))


def _wchar() -> int:
    for line in Path("/proc/self/io").read_text().splitlines():
        if line.startswith("wchar:"):
            return int(line.split()[1])
    return 0


def _measure(conn: sqlite3.Connection, db: Path, n: int, one: Callable[[int], None]) -> dict[str, Any]:
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.execute("PRAGMA wal_autocheckpoint=0")
    page = int(conn.execute("PRAGMA page_size").fetchone()[0])
    before = _wchar()
    os.getppid()
    for i in range(n):
        one(i)
    os.getppid()
    return {"bytes": (_wchar() - before) / n, "frames": _wal_frames(db, page) / n}


def child(kind: str, workdir: str, n: int) -> dict[str, Any]:
    """The measurement itself (runs in the child process)."""
    root = Path(workdir)
    if kind == "raw":
        db = root / "raw.db"
        conn = sqlite3.connect(db, isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("CREATE TABLE t (k INTEGER PRIMARY KEY, v TEXT NOT NULL)")

        def insert(i: int) -> None:
            conn.execute("BEGIN IMMEDIATE")
            conn.execute("INSERT INTO t(v) VALUES (?)", ("x" * 200,))
            conn.execute("COMMIT")
        return _measure(conn, db, n, insert)
    from hubagent.bench.sync import _offline_app, prefill

    prefill(root / "hub", 1000)
    app = _offline_app(root / "hub")
    name = "stock.adjust" if kind == "adjust" else kind

    def command(i: int) -> None:
        args: dict[str, Any] = {"id": f"w-{i}"}
        if name == "stock.adjust":
            args.update(sku="BENCH-1", bin="A-01", delta=1, reason="bench")
        elif name == "stock.get":
            args.update(sku="BENCH-1")
        reply = app.commands.handle(name, json.dumps(args).encode())
        assert reply["ok"], reply
    try:
        return _measure(app.store.conn, app.store.path, n, command)
    finally:
        app.store.close()


def _run(kind: str, n: int, root: Path) -> dict[str, Any]:
    """Run :func:`child` in its own process; adds ``fsyncs`` per command when strace is there."""
    work = root / kind
    work.mkdir()
    code = ("import json, sys; from hubagent.bench.writes import child; "
            "print(json.dumps(child(sys.argv[1], sys.argv[2], int(sys.argv[3]))))")
    strace = shutil.which("strace")
    trace = work / "strace.txt"
    prefix = [strace, "-f", "-qq", "--seccomp-bpf", "-e", f"trace=fsync,fdatasync,{_MARK}",
              "-o", str(trace)] if strace else []
    out = subprocess.run([*prefix, *python("-c", code, kind, str(work), str(n))], check=True,
                         capture_output=True, text=True, timeout=600)
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    if strace:
        lines = trace.read_text().splitlines()
        marks = [i for i, line in enumerate(lines) if _MARK in line]
        inside = lines[marks[0]:marks[-1]] if len(marks) >= 2 else []
        result["fsyncs"] = sum(1 for line in inside if "sync(" in line) / n
    return result


def bench(quick: bool) -> list[Row]:
    """Bytes, WAL frames and fsyncs per movement and per read-only command."""
    n = 100 if quick else 500
    with tempfile.TemporaryDirectory(prefix="hubagent-bench-writes-") as tmp:
        root = Path(tmp)
        raw, adjust = _run("raw", n, root), _run("adjust", n, root)
        ping, get = _run("ping", n, root), _run("stock.get", n, root)
    fs = "fsyncs" in adjust

    def fsync_note(r: dict[str, Any]) -> str:
        return f", {r['fsyncs']:.2f} fsync" if fs else ", fsyncs not counted (no strace)"
    return [
        Row(name="one movement at a time: WAL frames", value=adjust["frames"], unit="frames",
            target="<= 5", met=adjust["frames"] <= 5,
            note=f"raw one-row commit: {raw['frames']:.1f} frames, {raw['bytes'] / 1024:.1f} KB"
                 f"{fsync_note(raw)}; {n} stock.adjust commands"),
        Row(name="one movement at a time: bytes written", value=adjust["bytes"] / 1024, unit="KB",
            target="-", met=None, note=f"{adjust['bytes'] / raw['bytes']:.1f} x raw{fsync_note(adjust)}"),
        Row(name="read-only commands (ping, stock.get): bytes", value=(ping["bytes"] + get["bytes"]) / 2048,
            unit="KB", target="0", met=ping["frames"] == 0 and get["frames"] == 0 and ping["bytes"] == 0
            and get["bytes"] == 0,
            note=f"WAL frames {ping['frames']:.2f} / {get['frames']:.2f}"
                 + (f", fsyncs {ping['fsyncs']:.2f} / {get['fsyncs']:.2f}" if fs else "")),
    ]


if __name__ == "__main__":  # pragma: no cover - a manual entry for one figure
    for row in bench("--quick" in sys.argv):
        print(row)
