"""The daemon process: readiness, status, clean shutdown, systemd integration."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Callable

import pytest

from hubproc import Daemon

ROOT = Path(__file__).resolve().parent.parent


def test_sim_daemon_ready_status_and_sigterm(sim_daemon: Daemon) -> None:
    # Readiness comes through the real sd_notify protocol (READY=1).
    assert sim_daemon.ready_after is not None
    print(f"READY=1 after {sim_daemon.ready_after:.2f} s")
    proc = sim_daemon.cli("status", "--json", "--state-dir", str(sim_daemon.state_dir))
    assert proc.returncode == 0, proc.stderr
    st = json.loads(proc.stdout)
    assert st["hub"] == "sim-hub" and st["simulated"] is True
    assert {"devices", "sync", "state", "alerts", "last_seq"} <= set(st)
    text = sim_daemon.cli("status", "--state-dir", str(sim_daemon.state_dir))
    assert text.returncode == 0 and "hub sim-hub" in text.stdout
    assert sim_daemon.terminate() == 0
    assert "stopped" in sim_daemon.log()
    assert not sim_daemon.socket_path.exists()


def test_sigint_also_stops_cleanly(sim_daemon: Daemon) -> None:
    import signal

    assert sim_daemon.proc is not None
    sim_daemon.proc.send_signal(signal.SIGINT)
    assert sim_daemon.proc.wait(20) == 0


def test_watchdog_pings_when_systemd_asks(daemon_factory: Callable[..., Daemon], tmp_path: Path) -> None:
    sd = tmp_path / "wd"
    d = daemon_factory("run", "--sim", "--state-dir", str(sd), state_dir=sd,
                       env={"WATCHDOG_USEC": "400000"})
    d.wait_notify("WATCHDOG=1", timeout=5)
    d.wait_notify("WATCHDOG=1", timeout=5)
    assert d.terminate() == 0


def test_logs_carry_syslog_priorities_under_journald(daemon_factory: Callable[..., Daemon],
                                                      tmp_path: Path) -> None:
    sd = tmp_path / "j"
    d = daemon_factory("run", "--sim", "--state-dir", str(sd), state_dir=sd,
                       env={"JOURNAL_STREAM": "8:12345"})
    assert d.terminate() == 0
    lines = [line for line in d.log().splitlines() if line.strip()]
    assert lines and all(line[:3] in ("<6>", "<4>", "<3>", "<7>", "<2>") for line in lines), lines
    assert any(line.startswith("<6>hubagent.daemon: ready") for line in lines)


def test_status_without_daemon_is_a_clear_error(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "hubagent", "status", "--state-dir", str(tmp_path)],
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 1
    assert "no running hubagent" in proc.stderr


def test_second_daemon_on_same_state_is_refused(sim_daemon: Daemon, daemon_factory: Callable[..., Daemon]) -> None:
    other = daemon_factory("run", "--sim", "--state-dir", str(sim_daemon.state_dir),
                           state_dir=sim_daemon.state_dir, wait_ready=False)
    assert other.proc is not None
    assert other.proc.wait(30) == 1
    assert "already running" in other.log()
    assert sim_daemon.status()["hub"] == "sim-hub"


def test_corrupt_database_is_quarantined_with_clear_message(tmp_path: Path) -> None:
    sd = tmp_path / "state"
    sd.mkdir()
    garbage = b"PK\x03\x04 definitely not sqlite" * 50
    (sd / "hubagent.db").write_bytes(garbage)
    proc = subprocess.run([sys.executable, "-m", "hubagent", "run", "--sim", "--state-dir", str(sd)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 3
    assert "moved aside" in proc.stderr
    moved = [p for p in sd.iterdir() if p.name.startswith("hubagent.db.corrupt-")]
    assert len(moved) == 1 and moved[0].read_bytes() == garbage
    assert not (sd / "hubagent.db").exists()


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed")
def test_systemd_unit_verifies(tmp_path: Path) -> None:
    unit = (ROOT / "systemd" / "hubagent.service").read_text()
    # verify checks that ExecStart exists: point it at this checkout's venv.
    exe = Path(sys.executable).parent / "hubagent"
    unit = unit.replace("/opt/hubagent/.venv/bin/hubagent", str(exe))
    target = tmp_path / "hubagent.service"
    target.write_text(unit)
    proc = subprocess.run(["systemd-analyze", "verify", str(target)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "hubagent.service" not in proc.stderr, proc.stderr


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed")
def test_kiosk_unit_verifies(tmp_path: Path) -> None:
    unit = (ROOT / "systemd" / "hubagent-kiosk.service").read_text()
    # verify checks that the programs exist: cage is only on the kiosk Pi.
    assert "/usr/bin/cage -d -s -- /usr/bin/chromium --kiosk" in unit
    unit = unit.replace("/usr/bin/cage", shutil.which("true") or "/bin/true")
    target = tmp_path / "hubagent-kiosk.service"
    target.write_text(unit)
    proc = subprocess.run(["systemd-analyze", "verify", str(target)],
                          capture_output=True, text=True, timeout=60)
    assert "hubagent-kiosk.service" not in proc.stderr, proc.stderr
    assert "http://127.0.0.1:8080/kiosk" in unit
