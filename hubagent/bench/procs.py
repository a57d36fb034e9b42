"""Process figures the benchmarks read from Linux ``/proc``, and a daemon started to READY."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from hubagent.bench.broker import stop_process
from hubagent.bench.rows import python
from hubagent.clock import SYSTEM

MB = 1024 * 1024


def rss_mb(pid: int) -> float:
    """Resident set size of ``pid`` in MB (0 if unknown)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024 / MB
    except OSError:
        pass
    return 0.0


def context_switches(pid: int) -> int:
    """Voluntary plus involuntary context switches of every thread of ``pid``.

    Each wake-up of a sleeping thread (a timer, a poll timeout, a socket
    read) is one voluntary switch when it goes back to sleep.
    """
    total = 0
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return 0
    for task in tasks:
        try:
            text = Path(f"/proc/{pid}/task/{task}/status").read_text()
        except OSError:
            continue  # the thread ended meanwhile
        for line in text.splitlines():
            if line.startswith(("voluntary_ctxt_switches", "nonvoluntary_ctxt_switches")):
                total += int(line.split()[1])
    return total


def wakeups_per_s(pid: int, window_s: float) -> float:
    """Context switches per second of ``pid`` over ``window_s`` seconds."""
    before = context_switches(pid)
    time.sleep(window_s)
    return (context_switches(pid) - before) / window_s


def io_bytes_written(pid: int) -> int:
    """Bytes ``pid`` has sent towards storage (``write_bytes`` in ``/proc/<pid>/io``).

    Not ``wchar``: that counts socket writes too (every MQTT publish).
    """
    for line in Path(f"/proc/{pid}/io").read_text().splitlines():
        if line.startswith("write_bytes:"):
            return int(line.split()[1])
    return 0


@contextmanager
def daemon(args: list[str], workdir: Path, *, prefix: list[str] | None = None,
           timeout: float = 120.0) -> Iterator[tuple[subprocess.Popen[bytes], float]]:
    """``hubagent run ARGS`` until READY=1; yields (process, seconds from exec to READY).

    ``prefix`` runs it under another program (``strace``); the process is
    stopped with SIGTERM on exit.
    """
    notify = workdir / f"notify-{time.monotonic_ns()}.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(notify))
        sock.settimeout(timeout)
        env = {k: v for k, v in os.environ.items() if k != "WATCHDOG_USEC"}
        env["NOTIFY_SOCKET"] = str(notify)
        started = SYSTEM.monotonic()
        proc = subprocess.Popen([*(prefix or []), *python("-m", "hubagent", "run", *args)], env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        child = 0
        try:
            while b"READY=1" not in sock.recv(4096):
                pass
            ready = SYSTEM.monotonic() - started
            child = traced_pid(proc) if prefix else 0
            yield proc, ready
        finally:
            if child:
                _stop_pid(child, grace=30)  # strace would detach and leave it running
            stop_process(proc, grace=30)
            notify.unlink(missing_ok=True)


def _stop_pid(pid: int, grace: float) -> None:
    """SIGTERM ``pid`` (not our child), SIGKILL if it lives on after ``grace`` seconds."""
    try:
        os.kill(pid, signal.SIGTERM)
        deadline = SYSTEM.monotonic() + grace
        while Path(f"/proc/{pid}").exists() and SYSTEM.monotonic() < deadline:
            time.sleep(0.05)
        if Path(f"/proc/{pid}").exists():
            os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def exec_seconds(code: str) -> float:
    """Seconds to run ``python -c CODE`` to its exit."""
    started = SYSTEM.monotonic()
    subprocess.run(python("-c", code), check=True, stdout=subprocess.DEVNULL)
    return SYSTEM.monotonic() - started


def traced_pid(proc: subprocess.Popen[bytes]) -> int:
    """The pid of the program a prefix (``strace``) started, else ``proc``'s own."""
    try:
        children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()
    except OSError:
        return proc.pid
    return int(children[0]) if children else proc.pid
