"""The Scanner port's contract, run on the simulator and on the serial driver.

Rows: ``sim`` (SimScanner: its own pty), ``serial-pty`` (SerialScanner on a
pseudo-terminal the test writes into), ``serial-hw`` (SerialScanner on a
real port named by HUBAGENT_CONTRACT_SERIAL, fed through a null-modem peer
named by HUBAGENT_CONTRACT_SERIAL_PEER).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from contract_kit import Events, env_value, hardware_row
from fixtures_pty import Pty
from hubagent.errors import InputError
from hubagent.events import Event, Health, RawScan, ScanRejectedAtDevice
from hubagent.ports import DeviceEnv, Scanner

MAX_LENGTH = 64
TERMINATOR = "\r\n"
CODES = [
    b"4006381333931",  # EAN-13
    b"036000291452",  # UPC-A
    b"96385074",  # EAN-8
    b"010950110153000317\x1d10ABC123\x1d17261231",  # GS1 element string: GTIN, lot, expiry
    b"HA:BIN:A-01-3",  # the hub's own shelf label
]


class ScannerRig:
    """One scanner implementation and the hand that scans into it."""

    can_unplug = True

    def __init__(self, device: Scanner) -> None:
        self.device = device

    def scan(self, code: bytes) -> None:
        """A person scans ``code``: it arrives with the terminator."""
        self.send(code + TERMINATOR.encode())

    def send(self, raw: bytes) -> None:
        """Raw bytes arrive on the line (noise, runaway reads)."""
        raise NotImplementedError

    def unplug(self) -> None:
        """Pull the cable."""
        raise NotImplementedError

    def replug(self) -> None:
        """Plug it back in."""
        raise NotImplementedError

    def cleanup(self) -> None:
        """Close the device and whatever stands in for the world."""
        self.device.close()


class SimRig(ScannerRig):
    """SimScanner, driven through its typed verbs."""

    def __init__(self, env: DeviceEnv) -> None:
        from hubagent.scanning.settings import SimScannerSettings
        from hubagent.sim.scanner import SimScanner

        self.sim = SimScanner("front", SimScannerSettings(terminator=TERMINATOR, max_length=MAX_LENGTH), env)
        super().__init__(self.sim)

    def send(self, raw: bytes) -> None:
        self.sim.send_bytes(raw)

    def unplug(self) -> None:
        self.sim.unplug()

    def replug(self) -> None:
        self.sim.replug()


class PtyRig(ScannerRig):
    """The serial driver on a pseudo-terminal."""

    def __init__(self, env: DeviceEnv) -> None:
        from hubagent.drivers.serial_scanner import SerialScanner
        from hubagent.scanning.settings import SerialScannerSettings

        self.pty = Pty(env.state_dir / "scanner0")
        settings = SerialScannerSettings(url=str(self.pty.link), terminator=TERMINATOR, max_length=MAX_LENGTH,
                                         reopen_initial_s=0.05, reopen_max_s=0.2)
        self.serial = SerialScanner("front", settings, env)
        super().__init__(self.serial)

    def send(self, raw: bytes) -> None:
        from hubagent.drivers.serial_scanner import ReaderState

        # Bytes that arrive before the port is open are flushed by the open, as on
        # a real port: wait for the reader (unless it is closed for good).
        if self.serial.state is not ReaderState.CLOSED:
            self.serial.wait_ready(10.0)
        if self.pty.master is not None:
            self.pty.write(raw)

    def unplug(self) -> None:
        self.pty.unplug()

    def replug(self) -> None:
        self.pty.plug()

    def cleanup(self) -> None:
        super().cleanup()
        self.pty.unplug()


class HardwareRig(ScannerRig):
    """The serial driver on a real port, fed through a null-modem cable from its peer."""

    can_unplug = False

    def __init__(self, env: DeviceEnv) -> None:
        import serial

        from hubagent.drivers.serial_scanner import SerialScanner
        from hubagent.scanning.settings import SerialScannerSettings

        settings = SerialScannerSettings(url=env_value("serial"), terminator=TERMINATOR, max_length=MAX_LENGTH,
                                         baud=9600)
        self.serial = SerialScanner("front", settings, env)
        self.peer = serial.serial_for_url(env_value("serial_peer"), baudrate=9600, timeout=1.0)
        super().__init__(self.serial)

    def send(self, raw: bytes) -> None:
        self.serial.wait_ready(10.0)
        self.peer.write(raw)
        self.peer.flush()

    def cleanup(self) -> None:
        super().cleanup()
        self.peer.close()


@pytest.fixture(params=["sim", "serial-pty", hardware_row("serial-hw", "serial", "serial_peer")])
def rig(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ScannerRig]:
    """Each scanner implementation in turn, not started."""
    env = DeviceEnv("hub-contract", tmp_path)
    made: ScannerRig = {"sim": SimRig, "serial-pty": PtyRig, "serial-hw": HardwareRig}[request.param](env)
    try:
        yield made
    finally:
        made.cleanup()


def started(rig: ScannerRig) -> Events:
    """Start the rig's scanner and wait until it reports OK."""
    events = Events()
    rig.device.start(events)
    events.health(Health.OK)
    return events


def is_read(event: Event) -> bool:
    return isinstance(event, RawScan | ScanRejectedAtDevice)


def test_codes_arrive_in_order_as_raw_scans(rig: ScannerRig) -> None:
    events = started(rig)
    for code in CODES:
        rig.scan(code)
    reads = [events.next(is_read, "a read") for _ in CODES]
    assert [(type(r), r.device, r.data) for r in reads] == [(RawScan, "front", c) for c in CODES]
    assert rig.device.status().health is Health.OK


def test_an_overlong_read_is_rejected_with_a_reason_not_dropped(rig: ScannerRig) -> None:
    events = started(rig)
    rig.scan(b"9" * (MAX_LENGTH * 2))  # a scanner stuck in continuous mode
    rig.scan(CODES[0])
    rejected = events.next(is_read, "the rejection")
    assert isinstance(rejected, ScanRejectedAtDevice)
    assert (rejected.device, rejected.reason) == ("front", "too_long")
    after = events.next(is_read, "the next good read")
    assert isinstance(after, RawScan) and after.data == CODES[0]


def test_a_failing_sink_does_not_stop_delivery(rig: ScannerRig) -> None:
    events = Events()

    def flaky(event: Event) -> None:
        if isinstance(event, RawScan) and event.data == b"BOOM":
            raise RuntimeError("a bug in the core's sink")
        events(event)

    rig.device.start(flaky)
    events.health(Health.OK)
    rig.scan(b"BOOM")
    rig.scan(CODES[1])
    assert events.next(is_read, "the read after the failing one").data == CODES[1]


def test_unplugging_is_reported_and_reading_resumes_after_replugging(rig: ScannerRig) -> None:
    if not rig.can_unplug:
        pytest.skip("this rig cannot pull its cable")
    events = started(rig)
    rig.unplug()
    events.health(Health.FAULTED, Health.OFFLINE)
    rig.replug()
    events.health(Health.OK)
    rig.scan(CODES[2])
    assert events.next(is_read, "a read after replugging").data == CODES[2]


def test_close_is_idempotent_reports_offline_and_ends_delivery(rig: ScannerRig) -> None:
    events = started(rig)
    rig.device.close()
    rig.device.close()
    assert rig.device.status().health is Health.OFFLINE
    with contextlib.suppress(InputError, OSError):  # a closed simulator refuses; a pty still takes bytes
        rig.scan(CODES[0])
    events.none(is_read, "read after close")


def test_close_before_start_never_raises(rig: ScannerRig) -> None:
    rig.device.close()
    rig.device.close()

