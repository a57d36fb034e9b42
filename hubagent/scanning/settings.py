"""Validated settings for scanners and scan feedback devices.

One msgspec Struct per driver name in :mod:`hubagent.registry`. The config
loader strips the ``driver`` key and converts the rest of the device's table
with ``msgspec.convert(table, XSettings, strict=True)``. This module imports
no hardware library: it is loaded while the configuration is checked.
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

from hubagent.feature import Section
from hubagent.scanning.roles import ScannerRole

Seconds = Annotated[float, msgspec.Meta(gt=0, le=3600)]
"""A positive duration in seconds."""

Terminator = Literal["\r\n", "\r", "\n", "\t"]
"""What a scanner sends after each code."""

MaxLength = Annotated[int, msgspec.Meta(ge=8, le=65536)]
"""The longest code accepted, in bytes."""

Pin = int | str
"""A gpiozero pin: a BCM number (17) or a name ("GPIO17", "BOARD11")."""

PatternStep = Annotated[float, msgspec.Meta(ge=0.0, le=5.0)]
"""One on or off duration of a feedback pattern, in seconds."""

Pattern = Annotated[list[PatternStep], msgspec.Meta(min_length=1, max_length=32)]
"""Alternating on/off durations, starting with "on": [on, off, on, ...]."""


class _Base(msgspec.Struct, forbid_unknown_fields=True, kw_only=True, frozen=True):
    """Common struct options for every settings struct here."""


def _check_framing(prefix: str, suffix: str, terminator: str) -> None:
    """Refuse prefixes/suffixes that would make the framing ambiguous."""
    for label, text in (("prefix", prefix), ("suffix", suffix)):
        if any(ch in text for ch in "\r\n") or terminator in text:
            raise ValueError(f"{label} must not contain the terminator or line breaks")


class SerialScannerSettings(_Base, frozen=True, kw_only=True):
    """A scanner that types into a serial port (USB CDC-ACM or RS-232)."""

    # What the scanner is for: "shelf" (stock flows, staff badges), "locker" (parcel loads,
    # pickup, return and staff codes) or "kiosk" (customer-facing: pickup and return codes
    # only); unset accepts every code. See docs/scan-codes.md.
    role: ScannerRole | None = None

    # pyserial URL or device path, e.g. "/dev/hubagent-scanner0" or "rfc2217://host:port".
    url: Annotated[str, msgspec.Meta(min_length=1)]
    # Line speed; USB CDC-ACM scanners ignore it, RS-232 scanners must match it.
    baud: Annotated[int, msgspec.Meta(ge=300, le=921600)] = 9600
    # Text the scanner is configured to send before each code; removed if present.
    prefix: str = ""
    # Text the scanner is configured to send after each code (before the terminator); removed if present.
    suffix: str = ""
    # End-of-code marker the scanner sends.
    terminator: Terminator = "\r"
    # Longer reads are rejected as "too_long" (a stuck or misconfigured scanner).
    max_length: MaxLength = 512
    # First wait before reopening an unplugged port; doubles on each failure.
    reopen_initial_s: Seconds = 0.5
    # Longest wait between reopen attempts.
    reopen_max_s: Seconds = 30.0
    # Name of the feedback device (section [feedback.NAME]) that beeps for this scanner.
    feedback: str | None = None

    def __post_init__(self) -> None:
        """Cross-field checks."""
        _check_framing(self.prefix, self.suffix, self.terminator)
        if self.reopen_initial_s > self.reopen_max_s:
            raise ValueError("reopen_initial_s must not exceed reopen_max_s")


class HidScannerSettings(_Base, frozen=True, kw_only=True):
    """A USB keyboard-wedge scanner read through the Linux input layer."""

    # What the scanner is for: "shelf" (stock flows, staff badges), "locker" (parcel loads,
    # pickup, return and staff codes) or "kiosk" (customer-facing: pickup and return codes
    # only); unset accepts every code. See docs/scan-codes.md.
    role: ScannerRole | None = None

    # Input device, preferably a stable /dev/input/by-id/... path.
    device: Annotated[str, msgspec.Meta(min_length=1)]
    # Keyboard layout the scanner is configured for.
    layout: Literal["us", "de", "fr", "uk"] = "us"
    # Take the device exclusively so scans do not also type into the console.
    grab: bool = True
    # Longer reads are rejected as "too_long".
    max_length: MaxLength = 512
    # First wait before reopening an unplugged device; doubles on each failure.
    reopen_initial_s: Seconds = 0.5
    # Longest wait between reopen attempts.
    reopen_max_s: Seconds = 30.0
    # Name of the feedback device that beeps for this scanner.
    feedback: str | None = None

    def __post_init__(self) -> None:
        """Cross-field checks."""
        if self.reopen_initial_s > self.reopen_max_s:
            raise ValueError("reopen_initial_s must not exceed reopen_max_s")


class CameraScannerSettings(_Base, frozen=True, kw_only=True):
    """A camera (or video file / stream) decoded with zbar or zxing-cpp."""

    # What the scanner is for: "shelf" (stock flows, staff badges), "locker" (parcel loads,
    # pickup, return and staff codes) or "kiosk" (customer-facing: pickup and return codes
    # only); unset accepts every code. See docs/scan-codes.md.
    role: ScannerRole | None = None

    # Camera index (0 for /dev/video0) or a file path / stream URL.
    source: int | str = 0
    # Requested capture width in pixels (cameras only; files keep their size).
    width: Annotated[int, msgspec.Meta(ge=16, le=7680)] = 640
    # Requested capture height in pixels.
    height: Annotated[int, msgspec.Meta(ge=16, le=4320)] = 480
    # Region of interest [x, y, w, h] in captured pixels; only this part is decoded.
    roi: Annotated[list[Annotated[int, msgspec.Meta(ge=0)]], msgspec.Meta(min_length=4, max_length=4)] | None = None
    # Shrink each frame by this factor before decoding (1.0 = full size); saves CPU.
    downscale: Annotated[float, msgspec.Meta(ge=1.0, le=8.0)] = 1.0
    # Frames decoded per second at most; the power policy may lower it on battery.
    max_fps: Annotated[float, msgspec.Meta(gt=0, le=120)] = 10.0
    # A code seen again within this many seconds of its last sighting is not reported again.
    dedupe_s: Annotated[float, msgspec.Meta(ge=0, le=600)] = 2.0
    # Decoder library: "zbar" (pyzbar) or "zxing" (zxing-cpp, also reads DataMatrix).
    decoder: Literal["zbar", "zxing"] = "zbar"
    # First wait before reopening a camera that failed; doubles on each failure.
    reopen_initial_s: Seconds = 1.0
    # Longest wait between reopen attempts.
    reopen_max_s: Seconds = 30.0
    # Name of the feedback device that beeps for this scanner.
    feedback: str | None = None

    def __post_init__(self) -> None:
        """Cross-field checks."""
        if isinstance(self.source, int) and not 0 <= self.source <= 63:
            raise ValueError("source camera index must be between 0 and 63")
        if isinstance(self.source, str) and not self.source.strip():
            raise ValueError("source must not be empty")
        if self.roi is not None and (self.roi[2] < 8 or self.roi[3] < 8):
            raise ValueError("roi width and height must be at least 8 pixels")
        if self.reopen_initial_s > self.reopen_max_s:
            raise ValueError("reopen_initial_s must not exceed reopen_max_s")


class SimScannerSettings(_Base, frozen=True, kw_only=True):
    """A simulated serial scanner on a pseudo-terminal."""

    # What the scanner is for: "shelf" (stock flows, staff badges), "locker" (parcel loads,
    # pickup, return and staff codes) or "kiosk" (customer-facing: pickup and return codes
    # only); unset accepts every code. See docs/scan-codes.md.
    role: ScannerRole | None = None

    # End-of-code marker the simulated scanner sends.
    terminator: Terminator = "\r"
    # Longer reads are rejected as "too_long".
    max_length: MaxLength = 512
    # Name of the feedback device that beeps for this scanner.
    feedback: str | None = None


class GpioFeedbackSettings(_Base, frozen=True):
    """A buzzer and LEDs on GPIO pins beside a scanner."""

    # Pin of the buzzer; none for a silent station.
    buzzer_pin: Pin | None = None
    # Pin of the green "ok" LED; none if absent.
    ok_led_pin: Pin | None = None
    # Pin of the red "error" LED; none if absent (errors then only beep).
    error_led_pin: Pin | None = None
    # True if a high pin level switches the buzzer/LED on.
    active_high: bool = True
    # Accepted scan: [on, off, on, ...] seconds.
    ok_pattern: Pattern = msgspec.field(default_factory=lambda: [0.08])
    # Refused scan: [on, off, on, ...] seconds.
    error_pattern: Pattern = msgspec.field(default_factory=lambda: [0.15, 0.1, 0.15, 0.1, 0.15])
    # Needs a look (e.g. "scan the bin next"): [on, off, on, ...] seconds.
    attention_pattern: Pattern = msgspec.field(default_factory=lambda: [0.4, 0.2, 0.4])
    # At a keypad, a door opens: [on, off, on, ...] seconds (buzzer and green LED).
    opened_pattern: Pattern = msgspec.field(default_factory=lambda: [0.08, 0.08, 0.08])
    # At a keypad, no such code (buzzer and red LED).
    wrong_pattern: Pattern = msgspec.field(default_factory=lambda: [0.6])
    # At a keypad, a right code past its deadline (buzzer and red LED).
    expired_pattern: Pattern = msgspec.field(default_factory=lambda: [0.3, 0.3, 0.3])
    # At a keypad, locked out: played once per started minute of the wait (buzzer and red LED).
    locked_out_pattern: Pattern = msgspec.field(default_factory=lambda: [1.0, 0.5])
    # At a keypad, a valid code with nothing to open now (buzzer and both LEDs).
    nothing_pattern: Pattern = msgspec.field(default_factory=lambda: [0.2, 0.1, 0.2, 0.1, 0.2])

    def __post_init__(self) -> None:
        """Cross-field checks."""
        pins = [p for p in (self.buzzer_pin, self.ok_led_pin, self.error_led_pin) if p is not None]
        if not pins:
            raise ValueError("at least one of buzzer_pin, ok_led_pin, error_led_pin is required")
        if len(set(pins)) != len(pins):
            raise ValueError("buzzer_pin, ok_led_pin and error_led_pin must differ")
        for label in ("ok_pattern", "error_pattern", "attention_pattern", "opened_pattern", "wrong_pattern",
                      "expired_pattern", "locked_out_pattern", "nothing_pattern"):
            pattern: list[float] = getattr(self, label)
            if sum(pattern[0::2]) <= 0:
                raise ValueError(f"{label} must switch on for some time")


class SimFeedbackSettings(_Base, frozen=True):
    """A feedback device that only records what it was asked to play."""

    # How many recent patterns to keep for status and tests.
    history: Annotated[int, msgspec.Meta(ge=1, le=10000)] = 50


Mode = Literal["receive", "pick", "count", "move", "return", "lookup"]
"""A scanning station's workflow (``HA:MODE:<mode>``, lower case here)."""

BinCode = Annotated[str, msgspec.Meta(pattern=r"^[A-Z0-9][A-Z0-9-]{0,23}$")]
"""A bin code as ``HA:BIN:<code>`` yields it (upper case)."""


class VariableMeasureLayout(_Base, frozen=True):
    """``[[scanning.variable_measure]]``: one variable-measure EAN-13 layout of the hub's region."""

    # First two digits of the EAN-13: "02" or "20".."29".
    prefix: Annotated[str, msgspec.Meta(pattern=r"^(02|2[0-9])$")]
    # Digits after the prefix that identify the item (the rest, before the check digit, is the value).
    item_digits: Annotated[int, msgspec.Meta(ge=1, le=8)]
    # What the value is: a weight in kg or a price in the hub's currency.
    kind: Literal["weight", "price"]
    # Decimal places of the value (weight in grams: 3).
    decimals: Annotated[int, msgspec.Meta(ge=0, le=5)] = 0
    # A price/weight check digit sits between item and value (4- or 5-digit values only).
    value_check: bool = False

    @property
    def value_digits(self) -> int:
        """Digits of the value."""
        return 10 - self.item_digits - (1 if self.value_check else 0)

    def __post_init__(self) -> None:
        """Cross-field checks."""
        if self.value_digits < 1:
            raise ValueError("item_digits leaves no digits for the value")
        if self.value_check and self.value_digits not in (4, 5):
            raise ValueError("value_check needs a value of 4 or 5 digits")


class ScanningSettings(_Base, frozen=True):
    """``[scanning]``: how scans become stock movements (the shelf workflows)."""

    # The same code read twice in a row on one scanner within this many seconds is refused as "double_scan" (0 = off).
    dedupe_s: Annotated[float, msgspec.Meta(ge=0, le=60)] = 1.0
    # Bin that damaged returns are booked into.
    quarantine_bin: BinCode = "QUARANTINE"
    # Mode of a scanner that has never been switched (a scanned mode survives restarts).
    default_mode: Mode = "lookup"
    # Largest quantity one receive scan may book (a mistyped HA:QTY is refused above it).
    max_receive_qty: Annotated[int, msgspec.Meta(ge=1, le=9999)] = 999
    # Printer name for a shelf label on every lookup scan; empty = no label.
    lookup_prints_label: str = ""
    # A half-finished selection (bin, quantity, condition) is forgotten after this many idle seconds.
    session_timeout_s: Annotated[float, msgspec.Meta(gt=0, le=86400)] = 300.0
    # Sim feedback patterns listed per scanner in `hubagent status`.
    status_history: Annotated[int, msgspec.Meta(ge=0, le=50)] = 5
    # Every movement needs a staff member signed in on the scanner (HA:STAFF:<badge>);
    # item scans and HA:DONE without one are refused as "no_staff".
    require_staff: bool = False
    # Most scan.rejected events one scanner records per minute (a burst of as many is allowed);
    # beyond, rejections still beep and count, and the next event recorded says how many were not.
    rejected_events_per_min: Annotated[int, msgspec.Meta(ge=1, le=6000)] = 60
    # A count differing from the ledger by more than this many units (per SKU) beeps attention.
    count_tolerance: Annotated[int, msgspec.Meta(ge=0, le=1_000_000)] = 5
    # Variable-measure EAN-13 layouts (weight or price in the code) used in the hub's region.
    variable_measure: Annotated[list[VariableMeasureLayout], msgspec.Meta(max_length=11)] = \
        msgspec.field(default_factory=list)

    def __post_init__(self) -> None:
        """Cross-field checks."""
        prefixes = [x.prefix for x in self.variable_measure]
        if len(set(prefixes)) != len(prefixes):
            raise ValueError("variable_measure: each prefix may have one layout")


ScannerSettings = SerialScannerSettings | HidScannerSettings | CameraScannerSettings | SimScannerSettings
"""The settings of any scanner driver (each names its ``feedback`` device)."""

SCANNING = Section("scanning", ScanningSettings)
"""The ``[scanning]`` section."""
