"""A full disk: an alert, one log line, no crash loop, nothing acknowledged lost.

The state directory sits on a small tmpfs that the test mounts (root only,
as CI runs) and fills with a file until the kernel says ENOSPC. The real
daemon runs on it, is restarted while the disk is full, and must come up
degraded (reads answered, writes refused with a clear error, a
``disk_full`` alert), then take writes again once the file is deleted.
"""

from __future__ import annotations

import errno
import os
import sqlite3
import subprocess
from pathlib import Path
from typing import Callable, Iterator

import pytest

from hubproc import Daemon, wait_until

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tmpfs needs root")

ITEM = {"sku": "TEA-1", "name": "Green tea", "gtins": ["05901234123457"]}


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 6 MiB tmpfs, unmounted at teardown."""
    mnt = tmp_path / "disk"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=6m", "tmpfs", str(mnt)], check=True)
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def fill(disk: Path, name: str = "fill") -> Path:
    """Write a file until the disk is full, down to the last block; return its path."""
    ballast = disk / name
    with open(ballast, "ab", buffering=0) as f:
        for size in (65536, 4096, 512):
            try:
                while True:
                    f.write(b"\0" * size)
            except OSError as e:
                assert e.errno == errno.ENOSPC
    return ballast


def adjust(hub: Daemon, n: int, delta: int = 1) -> dict:  # type: ignore[type-arg]
    return hub.command("stock.adjust", {"id": f"adj-{n}", "sku": "TEA-1", "bin": "A-01",
                                        "delta": delta, "reason": "restock"})


def on_hand(hub: Daemon) -> int:
    reply = hub.command("stock.get", {"id": f"get-{os.urandom(4).hex()}", "sku": "TEA-1"})
    assert reply["ok"], reply
    return int(reply["result"]["on_hand"])


def test_full_disk_degrades_survives_a_restart_and_recovers(
        small_disk: Path, daemon_factory: Callable[..., Daemon]) -> None:
    state = small_disk / "state"
    state.mkdir()
    cfg = small_disk.parent / "hub.toml"
    cfg.write_text(f'[hub]\nid = "hub-1"\nstate_dir = "{state}"\n\n'
                   "[store]\nreserve_kb = 512\nspace_check_s = 0.2\n")
    hub = daemon_factory("run", "--config", str(cfg), state_dir=state)
    assert hub.command("catalog.upsert", {"id": "cat", "items": [ITEM]})["ok"]
    acked = 0
    for i in range(20):
        assert adjust(hub, i)["ok"]
        acked += 1
    assert (state / "hubagent.db.reserve").stat().st_size == 512 * 1024

    ballast = fill(small_disk)
    refused = [adjust(hub, 100 + i) for i in range(10)]
    assert all(not r["ok"] and r["error"]["code"] == "unavailable" for r in refused), refused
    assert "disk full" in refused[0]["error"]["message"]
    status = hub.status()
    assert status["state"] == "alert" and "disk_full" in status["alerts"]
    assert on_hand(hub) == acked  # reads still answered
    assert hub.log().count("writes are refused until space is freed:") == 1
    assert "failed to commit" not in hub.log()  # the refused writes are not logged one by one
    assert "Traceback" not in hub.log()

    # A restart while the disk is still full: it comes up, degraded.
    assert hub.terminate() == 0
    second = fill(small_disk, "fill-2")  # what shutting down freed, too
    hub = daemon_factory("run", "--config", str(cfg), state_dir=state)
    status = hub.status()
    assert status["state"] == "alert" and "disk_full" in status["alerts"], status
    again = adjust(hub, 200)
    assert not again["ok"] and again["error"]["code"] == "unavailable"
    assert on_hand(hub) == acked
    assert hub.proc is not None and hub.proc.poll() is None
    assert "exclusive mode: no room for its -shm file" in hub.log()

    # Space comes back: the alert clears, the WAL is folded in, writes resume.
    ballast.unlink()
    second.unlink()
    wait_until(lambda: "disk_full" not in hub.status()["alerts"], 10, "the disk_full alert to clear")
    assert "disk space is back" in hub.log()
    for i in range(5):
        assert adjust(hub, 300 + i)["ok"]
    assert on_hand(hub) == acked + 5
    assert (state / "hubagent.db.reserve").exists()
    assert hub.terminate() == 0
    conn = sqlite3.connect(state / "hubagent.db")
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        n = conn.execute("SELECT COUNT(*) FROM movements").fetchone()[0]
    finally:
        conn.close()
    assert n == acked + 5
