"""The Printer port's contract, run on the simulator and on both real drivers.

Rows: ``sim-escpos`` and ``sim-zpl`` (SimPrinter in each language),
``escpos-file`` (EscposPrinter writing through python-escpos to a device
file), ``escpos-tcp`` (EscposPrinter to a raw-TCP printer on 127.0.0.1 that
answers real-time status), ``zpl-file`` and ``zpl-tcp`` (ZplPrinter to a
device file and to a raw-TCP printer answering ``~HS``), and the real-hardware
rows ``escpos-hw`` (HUBAGENT_CONTRACT_ESCPOS = ``network:HOST[:PORT]``,
``file:/dev/usb/lp0`` or ``usb:VENDOR:PRODUCT`` in hex) and ``zpl-hw``
(HUBAGENT_CONTRACT_ZPL = ``HOST[:PORT]`` or a device path). The hardware rows
print real labels.

What was printed is read back from the bytes the printer received, decoded
by the project's independent decoders and compared with the rendered label.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest
from PIL import Image, ImageChops

from contract_kit import env_value, hardware_row, until
from fixtures_printer import FakePrinter, hs_reply
from hubagent.errors import DeviceUnavailable, InputError, LabelTooBig
from hubagent.events import Health
from hubagent.ports import DeviceEnv, Printer, PrinterState
from hubagent.printing.model import Label
from hubagent.printing.render import render
from hubagent.printing.templates import load_templates

BIN_FIELDS = {"bin": "A-01-3", "zone": "Chilled"}
ESCPOS_STATUS_OK = {1: 0x12, 2: 0x12, 4: 0x12}  # DLE EOT n -> status byte of a ready printer


class PrinterRig:
    """One printer implementation and the world at its other end."""

    can_switch_off = True
    can_paper_out = False
    can_read_jobs = True

    def __init__(self, printer: Printer) -> None:
        self.printer = printer

    def jobs(self) -> list[bytes]:
        """The jobs the printer received so far."""
        raise NotImplementedError

    def wait_jobs(self, n: int) -> list[bytes]:
        """The jobs received, once there are at least ``n`` (a socket printer gets them a moment later)."""
        until(lambda: len(self.jobs()) >= n, f"{n} job(s) at the printer")
        return self.jobs()

    def switch_off(self) -> None:
        """Unplug or switch off the printer."""
        raise NotImplementedError

    def switch_on(self) -> None:
        """Plug it back in."""
        raise NotImplementedError

    def paper_out(self) -> None:
        """The roll runs out."""
        raise NotImplementedError

    def paper_in(self) -> None:
        """A new roll is loaded."""
        raise NotImplementedError

    def cleanup(self) -> None:
        """Close the printer and its world."""
        self.printer.close()


class SimRig(PrinterRig):
    """SimPrinter through its typed verbs; its captured jobs are what was sent."""

    can_paper_out = True

    def __init__(self, env: DeviceEnv, language: str) -> None:
        from hubagent.printing.settings import SimPrinterSettings
        from hubagent.sim.printer import SimPrinter

        width = 72.0 if language == "escpos" else 101.6
        settings = msgspec.convert({"language": language, "width_mm": width, "height_mm": 152.4},
                                   SimPrinterSettings, strict=True)
        self.sim = SimPrinter("label", settings, env)
        super().__init__(self.sim)

    def jobs(self) -> list[bytes]:
        return [job.data for job in self.sim.jobs()]

    def switch_off(self) -> None:
        self.sim.switch_off()

    def switch_on(self) -> None:
        self.sim.switch_on()

    def paper_out(self) -> None:
        self.sim.paper_out()

    def paper_in(self) -> None:
        self.sim.paper_in()


class FileRig(PrinterRig):
    """A driver writing to a device file; unplugging removes the device node."""

    def __init__(self, env: DeviceEnv, language: str) -> None:
        self.path = env.state_dir / "lp0"
        self.path.touch()
        self._jobs: list[bytes] = []
        super().__init__(_driver(env, language, connection="file", device=str(self.path)))

    def jobs(self) -> list[bytes]:
        # Each job opens the device anew; collect what the last one wrote.
        data = self.path.read_bytes() if self.path.exists() else b""
        if data and (not self._jobs or self._jobs[-1] != data):
            self._jobs.append(data)
        return list(self._jobs)

    def switch_off(self) -> None:
        self.path.unlink()

    def switch_on(self) -> None:
        self.path.touch()


class TcpRig(PrinterRig):
    """A driver sending to a raw-TCP printer on 127.0.0.1 that answers status queries."""

    can_paper_out = True

    def __init__(self, env: DeviceEnv, language: str) -> None:
        self.language = language
        self.server: FakePrinter | None = FakePrinter()
        self.port = self.server.port
        self._old_jobs: list[bytes] = []
        super().__init__(_driver(env, language, connection="network", host="127.0.0.1", port=self.port))

    def jobs(self) -> list[bytes]:
        current = list(self.server.jobs) if self.server is not None else []
        return self._old_jobs + current

    def switch_off(self) -> None:
        assert self.server is not None
        self._old_jobs += self.server.jobs
        self.server.shutdown()
        self.server.server_close()
        self.server = None

    def switch_on(self) -> None:
        self.server = FakePrinter(self.port)

    def paper_out(self) -> None:
        assert self.server is not None
        self.server.hs = hs_reply(paper_out=True)
        self.server.escpos_status[4] = 0x72  # paper end sensor

    def paper_in(self) -> None:
        assert self.server is not None
        self.server.hs = hs_reply()
        self.server.escpos_status.update(ESCPOS_STATUS_OK)

    def cleanup(self) -> None:
        super().cleanup()
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()


class HardwareRig(PrinterRig):
    """A real printer: what it printed is on paper, not readable here."""

    can_switch_off = False
    can_read_jobs = False

    def __init__(self, env: DeviceEnv, language: str) -> None:
        spec = env_value(language)
        if language == "zpl":
            table: dict[str, Any] = {"device": spec} if spec.startswith("/") else _host(spec)
        else:
            kind, _, rest = spec.partition(":")
            if kind == "network":
                table = {"connection": "network", **_host(rest)}
            elif kind == "usb":
                vendor, _, product = rest.partition(":")
                table = {"connection": "usb", "usb_vendor_id": int(vendor, 16),
                         "usb_product_id": int(product, 16)}
            else:
                table = {"connection": "file", "device": rest}
        super().__init__(_driver(env, language, **table))


def _host(spec: str) -> dict[str, Any]:
    host, _, port = spec.partition(":")
    return {"host": host, "port": int(port or 9100)}


def _driver(env: DeviceEnv, language: str, **table: Any) -> Printer:
    if language == "zpl":
        from hubagent.drivers.zpl_printer import ZplPrinter
        from hubagent.printing.settings import ZplPrinterSettings

        table.pop("connection", None)
        settings = msgspec.convert({**table, "timeout": 1.0, "status_interval": 0}, ZplPrinterSettings, strict=True)
        return ZplPrinter("label", settings, env)
    from hubagent.drivers.escpos_printer import EscposPrinter
    from hubagent.printing.settings import EscposPrinterSettings

    settings_e = msgspec.convert({**table, "timeout": 1.0, "status_interval": 0, "cutter": True,
                                  "paper_width_mm": 72.0}, EscposPrinterSettings, strict=True)
    return EscposPrinter("label", settings_e, env)


ROWS = {
    "sim-escpos": lambda env: SimRig(env, "escpos"),
    "sim-zpl": lambda env: SimRig(env, "zpl"),
    "escpos-file": lambda env: FileRig(env, "escpos"),
    "escpos-tcp": lambda env: TcpRig(env, "escpos"),
    "zpl-file": lambda env: FileRig(env, "zpl"),
    "zpl-tcp": lambda env: TcpRig(env, "zpl"),
    "escpos-hw": lambda env: HardwareRig(env, "escpos"),
    "zpl-hw": lambda env: HardwareRig(env, "zpl"),
}


@pytest.fixture(params=["sim-escpos", "sim-zpl", "escpos-file", "escpos-tcp", "zpl-file", "zpl-tcp",
                        hardware_row("escpos-hw", "escpos"), hardware_row("zpl-hw", "zpl")])
def rig(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[PrinterRig]:
    """Each printer implementation in turn, not started."""
    made: PrinterRig = ROWS[request.param](DeviceEnv("hub-contract", tmp_path))
    try:
        yield made
    finally:
        made.cleanup()


def bin_label(printer: Printer) -> Label:
    return load_templates()["bin"].layout(BIN_FIELDS, printer.dpi, printer.width_dots)


def decoded(printer: Printer, data: bytes) -> tuple[Image.Image, int]:
    """The first label image in ``data`` and the number of copies, by the independent decoders."""
    from hubagent.sim import escpos_decode, zpl_decode

    if printer.language == "zpl":
        [label] = zpl_decode.decode(data)
        return label.image, label.copies
    job = escpos_decode.decode(data, printer.width_dots)
    return job.pages[0], job.cuts


def same(a: Image.Image, b: Image.Image) -> bool:
    return ImageChops.difference(a.convert("L"), b.convert("L")).getbbox() is None


def test_a_label_arrives_as_the_rendered_image(rig: PrinterRig) -> None:
    rig.printer.start(lambda event: None)
    label = bin_label(rig.printer)
    rig.printer.print_label(label, copies=2)
    assert rig.printer.status().health is Health.OK
    if not rig.can_read_jobs:
        return  # printed on paper: a person checks it
    [job] = rig.wait_jobs(1)
    image, copies = decoded(rig.printer, job)
    assert copies == 2
    assert same(image.crop((0, 0, label.width, label.height)), render(label))


def test_a_label_too_big_for_the_media_is_refused_before_anything_is_sent(rig: PrinterRig) -> None:
    rig.printer.start(lambda event: None)
    p = rig.printer
    oversize = [Label("too-wide", p.width_dots + 8, 100, p.dpi, ())]
    if p.height_dots is not None:
        oversize.append(Label("too-long", 100, p.height_dots + 8, p.dpi, ()))
    for label in oversize:
        with pytest.raises(LabelTooBig) as err:
            p.print_label(label)
        assert err.value.code == "label_too_big"
        assert err.value.size == (label.width, label.height)
    if rig.can_read_jobs:
        assert rig.jobs() == []


def test_fewer_than_one_copy_is_refused(rig: PrinterRig) -> None:
    rig.printer.start(lambda event: None)
    with pytest.raises(InputError) as err:
        rig.printer.print_label(bin_label(rig.printer), copies=0)
    assert err.value.code == "bad_copies"


def test_an_absent_printer_is_unavailable_and_prints_again_once_back(rig: PrinterRig) -> None:
    if not rig.can_switch_off:
        pytest.skip("this rig cannot unplug its printer")
    rig.printer.start(lambda event: None)
    label = bin_label(rig.printer)
    rig.switch_off()
    with pytest.raises(DeviceUnavailable):
        rig.printer.print_label(label)
    assert rig.printer.status().health is Health.OFFLINE
    assert isinstance(rig.printer.printer_state(), PrinterState)  # never raises
    rig.switch_on()
    rig.printer.print_label(label)
    assert rig.printer.status().health is Health.OK
    assert len(rig.wait_jobs(1)) == 1


def test_starting_with_the_printer_absent_reports_offline_not_an_exception(rig: PrinterRig) -> None:
    if not rig.can_switch_off:
        pytest.skip("this rig cannot unplug its printer")
    rig.switch_off()
    rig.printer.start(lambda event: None)
    assert rig.printer.status().health is Health.OFFLINE


def test_paper_out_is_reported_and_clears(rig: PrinterRig) -> None:
    if not rig.can_paper_out:
        pytest.skip("a one-way link cannot tell paper out")
    rig.printer.start(lambda event: None)
    rig.paper_out()
    assert rig.printer.printer_state() is PrinterState.PAPER_OUT
    assert rig.printer.status().health is Health.FAULTED
    rig.paper_in()
    assert rig.printer.printer_state() is PrinterState.ONLINE
    assert rig.printer.status().health is Health.OK


def test_close_is_idempotent_and_a_closed_printer_is_unavailable(rig: PrinterRig) -> None:
    rig.printer.start(lambda event: None)
    rig.printer.close()
    rig.printer.close()
    with pytest.raises(DeviceUnavailable):
        rig.printer.print_label(bin_label(rig.printer))
    if rig.can_read_jobs:
        assert rig.jobs() == []


def test_close_before_start_never_raises(rig: PrinterRig) -> None:
    rig.printer.close()
    rig.printer.close()
