"""``hubctl`` processes for tests: long-running ingests and one-shot commands."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from hubagent.central.db import Database


class IngestProc:
    """``hubctl ingest`` in a subprocess; ``start`` waits for "ingest ready"."""

    def __init__(self, port: int, db_url: str, log_path: Path, *extra: str) -> None:
        self.cmd = [sys.executable, "-m", "hubagent.central.cli", "--mqtt", f"127.0.0.1:{port}",
                    "--log-level", "info", "ingest", "--db", db_url, "--gap-s", "1",
                    "--retry-s", "3", *extra]
        self.log_path = log_path
        self.env: dict[str, str] = {}  # added to the environment (credentials)
        self.proc: subprocess.Popen[str] | None = None
        self._ready = threading.Event()

    def start(self, timeout: float = 20.0) -> IngestProc:
        """Start and wait until subscribed."""
        self._ready.clear()
        self.proc = subprocess.Popen(self.cmd, stdout=subprocess.PIPE,
                                     stderr=open(self.log_path, "a"), text=True,
                                     env={**os.environ, **self.env})
        threading.Thread(target=self._read, args=(self.proc,), daemon=True).start()
        if not self._ready.wait(timeout):
            raise AssertionError(f"ingest not ready within {timeout} s:\n{self.log()}")
        return self

    def _read(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            if "ingest ready" in line:
                self._ready.set()

    def log(self) -> str:
        """The ingest's log so far (tail)."""
        try:
            return self.log_path.read_text(errors="replace")[-6000:]
        except OSError:
            return ""

    def stop(self) -> int:
        """SIGTERM and wait; returns the exit status."""
        assert self.proc is not None
        self.proc.terminate()
        return self.proc.wait(20)

    def kill(self) -> None:
        """SIGKILL, mid-stream."""
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(10)

    def close(self) -> None:
        """Make sure the process is gone."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


def hubctl(port: int, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run one ``hubctl`` command against the broker on ``port``."""
    return subprocess.run([sys.executable, "-m", "hubagent.central.cli", "--mqtt",
                           f"127.0.0.1:{port}", *args], capture_output=True, text=True,
                          timeout=timeout)


def hubctl_json(port: int, *args: str) -> Any:
    """``hubctl --json ...``, asserting success; the parsed output."""
    proc = hubctl(port, "--json", *args)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return json.loads(proc.stdout)


def query(db_url: str, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Rows of a read-only query on central's database."""
    db = Database(db_url)
    try:
        return db.read(sql, params)
    finally:
        db.close()


def upto(db_url: str, hub: str) -> int:
    """Central's gap-free seq for the hub's current database (0 if none)."""
    rows = query(db_url, "SELECT c.upto FROM cursors c JOIN hubs h ON h.hub = c.hub "
                 "AND h.db = c.db WHERE c.hub = ?", (hub,))
    return int(rows[0][0]) if rows else 0


def wait_rows(db_url: str, sql: str, params: tuple[Any, ...], want: Any,
              timeout: float) -> list[tuple[Any, ...]]:
    """Poll a query until it returns ``want`` (or fail with what it returned)."""
    deadline = time.monotonic() + timeout
    while True:
        rows = query(db_url, sql, params)
        if rows == want:
            return rows
        if time.monotonic() > deadline:
            raise AssertionError(f"{sql} {params}: {rows!r} != {want!r} after {timeout} s")
        time.sleep(0.1)
