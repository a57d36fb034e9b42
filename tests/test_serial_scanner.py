"""SerialScanner and SimScanner on real pseudo-terminals (the real pyserial read loop)."""

from __future__ import annotations

import queue
import time
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

from hubagent.drivers.serial_scanner import SerialScanner
from hubagent.errors import InputError
from hubagent.events import DeviceHealthChanged, Health, RawScan, ScanRejectedAtDevice
from hubagent.ports import DeviceEnv
from hubagent.scanning.settings import SerialScannerSettings, SimScannerSettings
from hubagent.sim.scanner import SimScanner

from fixtures_pty import Pty
from hubproc import next_matching

TIMEOUT = 10.0


def next_event(q: queue.Queue, want: Callable[[Any], bool]) -> Any:
    """The next event matching ``want``, skipping others; fails after TIMEOUT."""
    return next_matching(q, want, TIMEOUT, "expected event")


def is_scan(e: Any) -> bool:
    return isinstance(e, (RawScan, ScanRejectedAtDevice))


def health(h: Health) -> Callable[[Any], bool]:
    return lambda e: isinstance(e, DeviceHealthChanged) and e.status.health is h


@pytest.fixture
def env(tmp_path: Path) -> DeviceEnv:
    return DeviceEnv(hub_id="test-hub", state_dir=tmp_path)


@pytest.fixture
def pty(tmp_path: Path) -> Iterator[Pty]:
    p = Pty(tmp_path / "scanner0")
    yield p
    p.unplug()


@pytest.fixture
def scanner(pty: Pty, env: DeviceEnv) -> Iterator[tuple[SerialScanner, queue.Queue]]:
    settings = SerialScannerSettings(url=str(pty.link), terminator="\r\n", max_length=32,
                                     prefix="@", reopen_initial_s=0.05, reopen_max_s=0.2)
    dev = SerialScanner("front", settings, env)
    q: queue.Queue = queue.Queue()
    dev.start(q.put)
    next_event(q, health(Health.OK))
    yield dev, q
    dev.close()


def test_codes_arrive_as_raw_scans(pty: Pty, scanner: tuple[SerialScanner, queue.Queue]) -> None:
    dev, q = scanner
    pty.write(b"@4006381333931\r\nHA:BIN:A-0")
    pty.write(b"1\r\n")
    first, second = next_event(q, is_scan), next_event(q, is_scan)
    assert (first.device, first.data) == ("front", b"4006381333931")
    assert second.data == b"HA:BIN:A-01"
    assert dev.status().health is Health.OK


def test_noise_overlong_and_non_utf8(pty: Pty, scanner: tuple[SerialScanner, queue.Queue]) -> None:
    dev, q = scanner
    pty.write(b"\x00\x00\r\n" + b"9" * 100 + b"\r\n" + b"\xff\xfeAB\r\nGOOD-1\r\n")
    rejected = next_event(q, is_scan)
    assert isinstance(rejected, ScanRejectedAtDevice) and rejected.reason == "too_long"
    raw = next_event(q, is_scan)
    assert raw.data == b"\xff\xfeAB"  # delivered as is; interpretation rejects it later
    assert next_event(q, is_scan).data == b"GOOD-1"


def test_sink_failure_does_not_stop_the_reader(pty: Pty, env: DeviceEnv) -> None:
    q: queue.Queue = queue.Queue()

    def flaky(event: Any) -> None:
        if isinstance(event, RawScan) and event.data == b"BOOM":
            raise RuntimeError("sink bug")
        q.put(event)

    dev = SerialScanner("s", SerialScannerSettings(url=str(pty.link)), env)
    dev.start(flaky)
    try:
        assert dev.wait_ready(TIMEOUT)
        pty.write(b"BOOM\rAFTER\r")
        assert next_event(q, is_scan).data == b"AFTER"
    finally:
        dev.close()


def test_unplug_then_replug_reports_faulted_then_ok(pty: Pty, scanner: tuple[SerialScanner, queue.Queue]) -> None:
    dev, q = scanner
    pty.unplug()
    next_event(q, health(Health.FAULTED))
    next_event(q, health(Health.OFFLINE))  # retried while absent
    assert dev.status().health is Health.OFFLINE
    pty.plug()
    next_event(q, health(Health.OK))
    pty.write(b"BACK-1\r\n")
    assert next_event(q, is_scan).data == b"BACK-1"


def test_absent_port_is_offline_not_an_exception(tmp_path: Path, env: DeviceEnv) -> None:
    dev = SerialScanner("ghost", SerialScannerSettings(url=str(tmp_path / "nope")), env)
    q: queue.Queue = queue.Queue()
    dev.start(q.put)
    next_event(q, health(Health.OFFLINE))
    started = time.monotonic()
    dev.close()
    dev.close()  # idempotent
    assert time.monotonic() - started < 5.0  # did not hang on the backoff wait
    assert dev.status().health is Health.OFFLINE


def test_sim_scanner_uses_the_serial_path(env: DeviceEnv) -> None:
    sim = SimScanner("sim0", SimScannerSettings(terminator="\r\n"), env)
    q: queue.Queue = queue.Queue()
    sim.start(q.put)
    try:
        sim.sim_command("scan", {"code": "FIRST-1"})  # waits until the reader is ready
        assert next_event(q, is_scan).data == b"FIRST-1"
        assert "/dev/pts/" in sim.status().detail
        sim.sim_command("scan", {"code": "HA:MODE:PICK"})
        assert next_event(q, is_scan).data == b"HA:MODE:PICK"
        sim.sim_command("bytes", {"hex": "00ff41 0d0a"})
        assert next_event(q, is_scan).data == b"\xffA"
        sim.sim_command("unplug", {})
        next_event(q, health(Health.FAULTED))
        with pytest.raises(InputError):
            sim.sim_command("scan", {"code": "X"})
        sim.sim_command("replug", {})
        next_event(q, health(Health.OK))
        sim.sim_command("scan", {"code": "AGAIN-1"})
        assert next_event(q, is_scan).data == b"AGAIN-1"
    finally:
        sim.close()
        sim.close()
    assert not Path(sim.path).exists()


@pytest.mark.parametrize("verb,args", [
    ("scan", {}), ("scan", {"code": 5}), ("bytes", {"hex": "zz"}), ("bytes", {}), ("fly", {}),
])
def test_sim_scanner_bad_verbs_give_input_errors(env: DeviceEnv, verb: str, args: dict) -> None:
    sim = SimScanner("sim1", SimScannerSettings(), env)
    try:
        with pytest.raises(InputError):
            sim.sim_command(verb, args)
    finally:
        sim.close()


@pytest.mark.parametrize("bad", [
    {},                                                   # url missing
    {"url": ""},
    {"url": "/dev/x", "baud": 12},
    {"url": "/dev/x", "terminator": "\x03"},
    {"url": "/dev/x", "suffix": "A\r"},                   # would split every code
    {"url": "/dev/x", "terminator": "\t", "prefix": "\t"},
    {"url": "/dev/x", "reopen_initial_s": 60, "reopen_max_s": 5},
    {"url": "/dev/x", "parity": "N"},                     # unknown field
    {"url": "/dev/x", "max_length": "512"},               # strict: no string-to-int
])
def test_bad_serial_settings_refused(bad: dict) -> None:
    import msgspec

    with pytest.raises(msgspec.ValidationError):
        msgspec.convert(bad, SerialScannerSettings, strict=True)
