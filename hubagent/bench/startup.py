"""Start-up time of the simulated daemon until READY=1."""

from __future__ import annotations

import os
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from hubagent.bench.rows import Row, percentile, python


def _one_start(state: Path) -> float:
    notify_path = state / "notify.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(notify_path))
        sock.settimeout(30)
        env = {**os.environ, "NOTIFY_SOCKET": str(notify_path)}
        started = time.monotonic()
        proc = subprocess.Popen(python("-m", "hubagent", "run", "--sim", "--state-dir",
                                 str(state / "s")), env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        try:
            while b"READY=1" not in sock.recv(4096):
                pass
            return time.monotonic() - started
        finally:
            proc.terminate()
            proc.wait(30)
            notify_path.unlink()


def bench(quick: bool) -> list[Row]:
    """Seconds from exec to READY=1 for ``hubagent run --sim`` (no camera)."""
    runs = 2 if quick else 5
    with tempfile.TemporaryDirectory() as tmp:
        samples = [_one_start(Path(tmp)) for _ in range(runs)]
    p50 = percentile(samples, 50)
    return [Row(name="run --sim to READY=1, p50", value=p50, unit="s", target="< 2 s", met=p50 < 2.0,
                note=f"{runs} starts")]
