"""Settings structs for the printer drivers (``[printers.<name>]`` tables).

Imported while the configuration is checked, so this module imports no
hardware or imaging library.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import msgspec

from hubagent.feature import Section

if TYPE_CHECKING:
    from hubagent.config import Config

_Port = Annotated[int, msgspec.Meta(ge=1, le=65535)]
_Dpi = Annotated[int, msgspec.Meta(ge=100, le=600)]
_Mm = Annotated[float, msgspec.Meta(gt=10.0, le=1000.0)]
_UsbId = Annotated[int, msgspec.Meta(ge=0, le=0xFFFF)]
_Timeout = Annotated[float, msgspec.Meta(gt=0.0, le=120.0)]
_Interval = Annotated[float, msgspec.Meta(ge=0.0, le=3600.0)]


class EscposPrinterSettings(msgspec.Struct, forbid_unknown_fields=True, kw_only=True, frozen=True):
    """An ESC/POS receipt or label printer driven through python-escpos."""

    connection: Literal["usb", "serial", "network", "file", "cups"]  # how the printer is reached
    usb_vendor_id: _UsbId | None = None  # USB idVendor (connection = "usb"), e.g. 0x04b8
    usb_product_id: _UsbId | None = None  # USB idProduct (connection = "usb")
    serial_url: str = ""  # serial device path, e.g. /dev/ttyUSB0 (connection = "serial")
    baudrate: Annotated[int, msgspec.Meta(ge=1200, le=921600)] = 9600  # serial line speed
    host: str = ""  # printer host name or IP address (connection = "network")
    port: _Port = 9100  # raw TCP port (connection = "network")
    device: str = ""  # existing device file to write to, e.g. /dev/usb/lp0 (connection = "file")
    cups_printer: str = ""  # CUPS queue name (connection = "cups")
    timeout: _Timeout = 10.0  # seconds to wait for the printer before reporting it unavailable
    profile: str = "default"  # python-escpos capability profile name (decides cut support)
    paper_width_mm: Annotated[float, msgspec.Meta(ge=20.0, le=120.0)] = 72.0  # printable width
    dpi: _Dpi = 203  # print head resolution in dots per inch
    cutter: bool = False  # the printer has an auto-cutter: cut after every label
    native_codes: bool = False  # use printer barcode/QR commands (not supported yet: raster only)
    codepage: str = "AUTO"  # code page for native text; unused while labels are raster-only
    status_interval: _Interval = 30.0  # seconds between status polls (two-way links only; 0 = never)

    def __post_init__(self) -> None:
        """Check that the chosen connection has what it needs."""
        if self.connection == "usb" and (self.usb_vendor_id is None or self.usb_product_id is None):
            raise ValueError("connection 'usb' needs usb_vendor_id and usb_product_id")
        if self.connection == "serial" and not self.serial_url:
            raise ValueError("connection 'serial' needs serial_url")
        if self.connection == "network" and not self.host:
            raise ValueError("connection 'network' needs host")
        if self.connection == "file" and not self.device:
            raise ValueError("connection 'file' needs device")
        if self.native_codes:
            raise ValueError("native_codes is not supported yet; labels are printed as raster")

    @property
    def width_dots(self) -> int:
        """Printable width in dots."""
        return int(self.paper_width_mm * self.dpi / 25.4 + 1e-6)


class ZplPrinterSettings(msgspec.Struct, forbid_unknown_fields=True, kw_only=True, frozen=True):
    """A Zebra-style ZPL label printer on raw TCP or a device file."""

    host: str = ""  # printer host name or IP address (raw TCP); or set device
    port: _Port = 9100  # raw TCP port
    device: str = ""  # existing device file to write to instead of TCP, e.g. /dev/usb/lp0
    timeout: _Timeout = 5.0  # seconds for connect, send and status replies
    dpi: Literal[203, 300] = 203  # print head resolution (ZPL printers are 8 or 12 dots/mm)
    width_mm: _Mm = 101.6  # label width (4 inch)
    height_mm: _Mm = 152.4  # label length (6 inch)
    native_codes: bool = False  # use ^BC/^BQ instead of raster (not supported yet: raster only)
    compress: bool = True  # send ^GFA data with ZPL run-length compression (smaller jobs)
    status_interval: _Interval = 30.0  # seconds between ~HS polls over TCP (0 = never)

    def __post_init__(self) -> None:
        """Exactly one of host and device must be set."""
        if bool(self.host) == bool(self.device):
            raise ValueError("set exactly one of host (raw TCP) and device (file)")
        if self.native_codes:
            raise ValueError("native_codes is not supported yet; labels are printed as raster")

    @property
    def width_dots(self) -> int:
        """Label width in dots."""
        return int(self.width_mm * self.dpi / 25.4 + 1e-6)


class SimPrinterSettings(msgspec.Struct, forbid_unknown_fields=True, kw_only=True, frozen=True):
    """A simulated printer: captures the exact bytes and writes PNG previews."""

    language: Literal["escpos", "zpl"] = "zpl"  # which real driver's bytes to produce
    dpi: Literal[203, 300] = 203  # resolution of the simulated head
    width_mm: _Mm = 101.6  # printable width (label width for zpl, paper width for escpos)
    height_mm: _Mm = 152.4  # label length (zpl only; escpos paper is continuous)
    cutter: bool = True  # escpos only: append a cut after every label
    preview_dir: str = "previews"  # where PNG previews go, relative to the state dir
    keep_jobs: Annotated[int, msgspec.Meta(ge=1, le=10000)] = 200  # captured jobs kept in memory

    def __post_init__(self) -> None:
        """The preview directory must stay inside the state dir."""
        if self.preview_dir.startswith("/") or ".." in self.preview_dir.split("/"):
            raise ValueError("preview_dir must be a relative path inside the state dir")

    @property
    def width_dots(self) -> int:
        """Printable width in dots."""
        return int(self.width_mm * self.dpi / 25.4 + 1e-6)


_Name = Annotated[str, msgspec.Meta(pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]{0,31}$")]
_Backoff = Annotated[float, msgspec.Meta(gt=0.0, le=3600.0)]


class PrintingSettings(msgspec.Struct, forbid_unknown_fields=True, kw_only=True, frozen=True):
    """``[printing]``: which printer prints what, and how the print queue retries.

    Jobs wait for an offline or faulted printer indefinitely (they are never
    dropped for that); only a job that cannot succeed by retrying fails.
    """

    # Printer for templates not in `templates`; "" means the first printer in the file.
    default_printer: _Name | Literal[""] = ""
    # Template name -> printer name, e.g. { pickup = "receipt", picklist = "receipt" }.
    templates: dict[str, _Name] = {}
    # The hub's own template files (*.toml); they add to or override the built-ins by file name.
    # A relative path is relative to the state directory; "" means built-ins only.
    templates_dir: str = ""
    # First wait after a failed send or a printer that is not ready; doubles on each retry ...
    retry_min_s: _Backoff = 1.0
    # ... up to this; a printer coming back online ends the wait at once.
    retry_max_s: _Backoff = 30.0
    # Sends ending in a device error (not "unavailable") before the job fails; 0 = retry forever.
    max_attempts: Annotated[int, msgspec.Meta(ge=0, le=1000)] = 10
    # Jobs waiting (all printers) before new ones are refused with "queue_full".
    max_queue: Annotated[int, msgspec.Meta(ge=1, le=100_000)] = 500
    # Most copies one job may ask for.
    max_copies: Annotated[int, msgspec.Meta(ge=1, le=1000)] = 20
    # Finished jobs kept for print.reprint and status (older ones are pruned at start-up).
    keep_finished: Annotated[int, msgspec.Meta(ge=10, le=1_000_000)] = 2000
    # At shutdown, how long to wait for a label that is being sent before leaving it "interrupted".
    stop_wait_s: Annotated[float, msgspec.Meta(ge=0.0, le=120.0)] = 15.0
    # TrueType/OpenType file label text is drawn with; "" = the bundled Noto Sans
    # (Latin, Greek, Cyrillic, €). A relative path is relative to the state directory.
    font: str = ""
    # ISO 4217 code of prices on labels that name no currency (decides the decimals: EUR 2, JPY 0).
    currency: Annotated[str, msgspec.Meta(pattern=r"^[A-Z]{3}$")] = "EUR"

    def __post_init__(self) -> None:
        """The backoff range must be a range."""
        if self.retry_min_s > self.retry_max_s:
            raise ValueError("retry_min_s must not exceed retry_max_s")


def font_path(settings: PrintingSettings, state_dir: Path) -> str:
    """The configured font file as a path ("" = the default font)."""
    if not settings.font:
        return ""
    path = Path(settings.font)
    return str(path if path.is_absolute() else state_dir / path)


def check_printing(config: "Config") -> None:
    """``[printing]`` may name only configured printers, a font file that exists and a known currency.

    A ``hubagent.config`` cross-check; raises ValueError("printing.<key>: reason").
    """
    from hubagent.printing.fonts import check_font_file
    from hubagent.printing.money import MINOR_UNITS

    names = [d.name for d in config.devices_of("printers")]
    settings = PRINTING.of(config)
    known = ", ".join(names) or "none"
    if settings.default_printer and settings.default_printer not in names:
        raise ValueError(f"printing.default_printer: no printer named {settings.default_printer!r} "
                         f"(configured: {known})")
    for template, printer in settings.templates.items():
        if printer not in names:
            raise ValueError(f"printing.templates.{template}: no printer named {printer!r} (configured: {known})")
    if settings.currency not in MINOR_UNITS:
        raise ValueError(f"printing.currency: {settings.currency!r} is not an ISO 4217 currency code")
    font = font_path(settings, config.state_dir)
    problem = check_font_file(Path(font)) if font else None
    if problem:
        raise ValueError(f"printing.font: {font}: {problem}")


PRINTING = Section("printing", PrintingSettings)
"""The ``[printing]`` section."""
