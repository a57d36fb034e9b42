"""One small interface per hardware role.

Real drivers (``hubagent.drivers``) and simulators (``hubagent.sim``)
implement these; the core only ever talks to these protocols. Every device:

* is built as ``DriverClass(name, settings, env)`` from its validated
  settings struct and a :class:`DeviceEnv`, opening nothing;
* ``start(sink)`` opens the hardware and begins delivering events to
  ``sink`` from its own thread; it must not block and must not raise for a
  device that is merely absent (it reports ``Health.OFFLINE`` and retries);
* ``status()`` is cheap and thread-safe;
* ``close()`` releases the hardware, is idempotent and never raises.

Simulated devices additionally implement :class:`SimControl`.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Protocol, runtime_checkable

from hubagent.events import DeviceStatus, EventSink

if TYPE_CHECKING:
    from hubagent.printing.model import Label


@dataclass(frozen=True)
class DeviceEnv:
    """What the composition root gives every device besides its settings."""

    hub_id: str
    state_dir: Path


@runtime_checkable
class Device(Protocol):
    """What every device offers, whatever its role."""

    name: str

    def start(self, sink: EventSink) -> None:
        """Open the hardware and start delivering events to ``sink``."""

    def status(self) -> DeviceStatus:
        """Current health."""

    def close(self) -> None:
        """Release the hardware. Idempotent; never raises."""


class Scanner(Device, Protocol):
    """Delivers :class:`~hubagent.events.RawScan` events.

    ``feedback`` names the ``[feedback.NAME]`` device that answers this
    scanner's scans, or is None.
    """

    feedback: str | None


@runtime_checkable
class RateLimited(Protocol):
    """A device whose frame rate can be lowered to save power (cameras)."""

    def set_max_fps(self, fps: float) -> None:
        """Cap the processing rate; raises InputError outside the supported range."""

    @property
    def max_fps(self) -> float:
        """The current cap in frames per second."""


class FeedbackPattern(enum.Enum):
    """What a scan's feedback means to the person holding the scanner."""

    OK = "ok"
    ERROR = "error"
    ATTENTION = "attention"


class Feedback(Device, Protocol):
    """A buzzer and/or LED beside a scanner."""

    def signal(self, pattern: FeedbackPattern) -> None:
        """Play ``pattern`` without blocking the caller."""


class PrinterState(enum.Enum):
    """What a two-way printer reports; one-way printers stay UNKNOWN."""

    ONLINE = "online"
    PAPER_OUT = "paper_out"
    COVER_OPEN = "cover_open"
    OFFLINE = "offline"
    UNKNOWN = "unknown"


class Printer(Device, Protocol):
    """A label or receipt printer.

    ``language`` is "escpos" or "zpl"; ``dpi`` and ``width_dots`` tell the
    layout engine the printable area. The driver owns the encoding for its
    language: the core hands it a laid-out label (``hubagent.printing``'s
    label model) and never builds printer bytes itself.
    """

    language: str
    dpi: int
    width_dots: int

    def printer_state(self) -> PrinterState:
        """Ask the printer (where it can answer) whether it can print now."""

    def print_label(self, label: "Label", copies: int = 1) -> None:
        """Encode and send one label. Raises DeviceUnavailable/DeviceError."""


class LockerBank(Device, Protocol):
    """A bank of compartments, each with a lock output and a door input.

    Delivers :class:`~hubagent.events.DoorChanged` events. ``pulse`` must
    be hardware-timed by the driver (the lock is de-energised after
    ``seconds`` even if the core stalls) and must refuse a second pulse on
    the same bank while one is running (shared supply).
    """

    def compartments(self) -> list[str]:
        """Names of the compartments in this bank."""

    def pulse(self, compartment: str, seconds: float) -> None:
        """Energise one lock for ``seconds``; raises DeviceError if busy."""

    def release_all(self) -> None:
        """De-energise every lock output now."""

    def door_open(self, compartment: str) -> bool:
        """Current debounced door position."""

    def energised(self, compartment: str) -> bool:
        """Whether the lock output is active right now."""

    def occupied(self, compartment: str) -> bool | None:
        """Occupancy sensor reading, or None when the compartment has none."""


class PowerSource(Device, Protocol):
    """Delivers :class:`~hubagent.events.PowerReading` events."""


class CodeInput(Device, Protocol):
    """A keypad or touchscreen; delivers :class:`~hubagent.events.CodeEntered`."""


@runtime_checkable
class SimControl(Protocol):
    """Test verbs of a simulated device (``scan``, ``paper-out``, ``open``...)."""

    def sim_command(self, verb: str, args: Mapping[str, Any]) -> dict[str, Any]:
        """Carry out ``verb``; raise InputError for an unknown verb or bad args."""
