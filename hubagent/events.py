"""Immutable events that device threads hand to the core.

Library threads (serial readers, gpiozero callbacks, paho's network thread)
do exactly one thing: build one of these and pass it to the ``EventSink``
they were given. The core consumes them on its own thread, so everything
that writes the database happens in one place and in one order.

``at`` is the core clock's monotonic time at which the event reached the
core's entry (:meth:`hubagent.app.App.post` stamps it); a device leaves it
None, since only the core's :class:`~hubagent.clock.Clock` tells the time.
"""

from __future__ import annotations

import enum
from typing import Callable, Mapping

import msgspec


class Health(enum.Enum):
    """What a device says about itself."""

    OK = "ok"
    FAULTED = "faulted"
    OFFLINE = "offline"
    UNKNOWN = "unknown"


class DeviceStatus(msgspec.Struct, frozen=True):
    """A device's health with a human-readable detail (``paper out``, ...)."""

    health: Health
    detail: str = ""


class DeviceHealthChanged(msgspec.Struct, frozen=True):
    """A device changed health (unplugged, paper out, back online)."""

    role: str
    device: str
    status: DeviceStatus
    at: float | None = None


class RawScan(msgspec.Struct, frozen=True):
    """One complete read from a scanner, before interpretation.

    ``data`` is exactly what the scanner delivered between its framing
    (prefix, suffix and terminator removed). ``symbology`` is set by
    decoders that know it: an AIM identifier (``]d2``, from zxing-cpp) or a
    zbar type name (``QRCODE``); ``interpret()`` accepts both. Serial
    scanners may carry an AIM identifier inside ``data`` instead.
    """

    device: str
    data: bytes
    symbology: str | None = None
    at: float | None = None


class ScanRejectedAtDevice(msgspec.Struct, frozen=True):
    """The driver received bytes it could not frame (over-long line, noise)."""

    device: str
    reason: str
    detail: str = ""
    at: float | None = None


class DoorChanged(msgspec.Struct, frozen=True):
    """A locker door sensor settled (after debounce) in a new position."""

    bank: str
    compartment: str
    is_open: bool
    at: float | None = None


class CodeEntered(msgspec.Struct, frozen=True):
    """A customer or staff member entered a code on a keypad or touchscreen."""

    source: str
    code: str
    at: float | None = None


class PowerReading(msgspec.Struct, frozen=True):
    """A reading from a power source.

    ``flags`` are NUT ``ups.status`` words (``OL``, ``OB``, ``LB``, ...);
    GPIO sources map their pins onto the same words. ``reachable`` is false
    when the source cannot be read (NUT server down), and the figures are None.
    """

    source: str
    reachable: bool
    flags: frozenset[str] = frozenset()
    charge: float | None = None
    runtime: float | None = None
    input_voltage: float | None = None
    load: float | None = None
    detail: str = ""
    at: float | None = None


class Custom(msgspec.Struct, frozen=True):
    """An event of a kind a feature defines for itself."""

    kind: str
    data: Mapping[str, object]
    at: float | None = None


Event = (
    DeviceHealthChanged
    | RawScan
    | ScanRejectedAtDevice
    | DoorChanged
    | CodeEntered
    | PowerReading
    | Custom
)

EventSink = Callable[[Event], None]
"""Thread-safe: may be called from any thread; returns at once."""
