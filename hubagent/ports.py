"""One small interface per hardware role, and what an implementation owes it.

Real drivers (``hubagent.drivers``) and simulators (``hubagent.sim``)
implement these; the core only ever talks to these protocols. The
contract suite (``tests/contract/``) runs the same tests against every
simulator and every real driver of a role, so "MUST" below is checked, not
hoped for.

Every device (:class:`Device`):

* MUST be built as ``DriverClass(name, settings, env)`` from its validated
  settings struct and a :class:`DeviceEnv`, opening nothing;
* ``start(sink)`` MUST open the hardware and begin delivering events to
  ``sink`` from its own thread (or from the caller's thread, for devices
  that only report their health); it MUST NOT block and MUST NOT raise for
  a device that is merely absent: it reports ``Health.OFFLINE`` (or
  ``FAULTED``) in a :class:`~hubagent.events.DeviceHealthChanged` and
  retries where the role allows;
* ``status()`` MUST be cheap and thread-safe;
* ``close()`` MUST release the hardware, switch every output off, be
  idempotent and never raise, also before ``start`` and after a failed start;
* a device MAY deliver :class:`~hubagent.events.DeviceHealthChanged` events
  whenever its health changes; it MUST NOT let a failing sink kill its thread.

Errors: implementations raise the project's tree (:mod:`hubagent.errors`),
never a hardware library's exception: :class:`~hubagent.errors.DeviceUnavailable`
when the device is absent, :class:`~hubagent.errors.DeviceError` when it
failed, :class:`~hubagent.errors.InputError` for a request no device of the
role could carry out, and the typed errors named on each role.

Simulated devices additionally implement :class:`SimControl`, the string
adapter of the ``hubagent sim`` command line over their typed test verbs.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol, runtime_checkable

import msgspec

from hubagent.errors import LabelTooBig
from hubagent.events import DeviceStatus, EventSink

if TYPE_CHECKING:
    from hubagent.printing.model import Label


class DeviceEnv(msgspec.Struct, frozen=True):
    """What the composition root gives every device besides its settings."""

    hub_id: str
    state_dir: Path


@runtime_checkable
class Device(Protocol):
    """What every device offers, whatever its role (see the module docstring)."""

    name: str

    def start(self, sink: EventSink) -> None:
        """Open the hardware and start delivering events to ``sink``; never blocks."""

    def status(self) -> DeviceStatus:
        """Current health; cheap and thread-safe."""

    def close(self) -> None:
        """Release the hardware and switch outputs off. Idempotent; never raises."""


class Scanner(Device, Protocol):
    """Delivers :class:`~hubagent.events.RawScan` events, one per code read.

    An implementation MUST deliver each code read as one ``RawScan`` with
    the bytes as read (no decoding, no judging: the core interprets them),
    in the order read, and MUST deliver a read it cannot frame (too long,
    garbled) as one :class:`~hubagent.events.ScanRejectedAtDevice` with a
    stable ``reason`` rather than drop it silently. After an unplug it MUST
    report FAULTED or OFFLINE and, once the device is back, OK again
    without a restart. It MUST NOT deliver anything after ``close()``.

    ``feedback`` names the ``[feedback.NAME]`` device that answers this
    scanner's scans, or is None.
    """

    feedback: str | None


@runtime_checkable
class RateLimited(Protocol):
    """A device whose frame rate can be lowered to save power (cameras).

    ``set_max_fps`` MUST take effect without a restart and MUST raise
    :class:`~hubagent.errors.InputError` (code ``bad_fps``) outside the
    supported range, leaving the rate unchanged. ``max_fps`` MUST read back
    the cap in force.
    """

    @property
    def max_fps(self) -> float:
        """The frame-rate cap in force."""

    def set_max_fps(self, fps: float) -> None:
        """Cap the processing rate; InputError("bad_fps") outside the supported range."""


class FeedbackPattern(enum.Enum):
    """What feedback means to the person at a scanner or keypad.

    ``OK``, ``ERROR`` and ``ATTENTION`` answer scans at a shelf; the rest
    answer a code or token at the locker, one pattern per outcome, so a
    customer hears (or reads) which it was.
    """

    OK = "ok"
    ERROR = "error"
    ATTENTION = "attention"
    OPENED = "opened"          # a door opens for you
    WRONG = "wrong"            # no such code
    EXPIRED = "expired"        # the code was right but is past its deadline
    LOCKED_OUT = "locked_out"  # too many wrong codes: wait (repeat/text carry how long)
    NOTHING = "nothing"        # a valid code with nothing to open right now


MAX_REPEAT = 15
"""Most repetitions of one signal (a lock-out's wait in minutes is at most 15)."""


@runtime_checkable
class Feedback(Device, Protocol):
    """A buzzer, LEDs and/or a small display beside a scanner or keypad.

    ``signal`` MUST return at once (the core thread calls it) and MUST NOT
    raise for a device that is not running, closed or faulted: feedback is
    a courtesy, the outcome is recorded elsewhere. Every implementation
    MUST play each :class:`FeedbackPattern` distinguishably, ``repeat``
    times in a row (1 to :data:`MAX_REPEAT`; the caller clamps). ``text``
    (at most 32 characters) is for a device with a display; one without
    MAY ignore it. A newer signal MAY cut short the one playing.
    ``close()`` MUST leave every output off.
    """

    def signal(self, pattern: FeedbackPattern, *, repeat: int = 1, text: str | None = None) -> None:
        """Play ``pattern`` ``repeat`` times (showing ``text`` if it can) without blocking the caller."""


class PrinterState(enum.Enum):
    """What a two-way printer reports; one-way printers stay UNKNOWN."""

    ONLINE = "online"
    PAPER_OUT = "paper_out"
    COVER_OPEN = "cover_open"
    OFFLINE = "offline"
    UNKNOWN = "unknown"


def check_label_fits(label: "Label", width_dots: int, height_dots: int | None) -> None:
    """Raise :class:`~hubagent.errors.LabelTooBig` when ``label`` exceeds the media.

    ``height_dots`` is None for continuous paper (receipt rolls), where only
    the width counts. Every printer calls this first in ``print_label``.
    """
    too_long = height_dots is not None and label.height > height_dots
    if label.width > width_dots or too_long:
        raise LabelTooBig((label.width, label.height), (width_dots, height_dots))


class Printer(Device, Protocol):
    """A label or receipt printer.

    ``language`` is "escpos" or "zpl"; ``dpi``, ``width_dots`` and
    ``height_dots`` (None for continuous paper) tell the layout engine the
    printable area. The driver owns the encoding for its language: the core
    hands it a laid-out label (``hubagent.printing``'s label model) and
    never builds printer bytes itself.

    ``print_label`` MUST refuse a label that does not fit the media with
    :class:`~hubagent.errors.LabelTooBig` (through :func:`check_label_fits`)
    before sending anything, ``copies < 1`` with InputError("bad_copies"),
    and MUST raise :class:`~hubagent.errors.DeviceUnavailable` when the
    printer is absent, unreachable or closed. It MAY raise
    :class:`~hubagent.errors.DeviceError` when it knows the printer cannot
    print (paper out, cover open); a printer that buffers jobs MAY accept
    them instead. It MAY block while the bytes are sent (the core calls it
    from the printer's own worker thread).

    ``printer_state`` MUST NOT raise: over a two-way link it MUST report
    PAPER_OUT / COVER_OPEN / OFFLINE as the printer says (and the health
    FAULTED or OFFLINE with them); a printer that cannot tell answers
    UNKNOWN.
    """

    language: str
    dpi: int
    width_dots: int
    height_dots: int | None

    def printer_state(self) -> PrinterState:
        """Ask the printer (where it can answer) whether it can print now; never raises."""

    def print_label(self, label: "Label", copies: int = 1) -> None:
        """Encode and send one label. Raises LabelTooBig/DeviceUnavailable/DeviceError."""


Size = Literal["S", "M", "L"]
"""Compartment sizes, smallest first."""


class CompartmentInfo(msgspec.Struct, frozen=True):
    """What the core needs to know about one compartment of a bank.

    ``size`` is matched against parcel sizes when allocating; ``max_pulse_s``
    is the longest time the bank will hold its lock energised (a longer
    ``pulse`` is cut to it); ``door_open_limit_s`` is how long its door may
    stand open before the core raises an alarm. ``chilled`` marks a
    refrigerated compartment: only parcels asking for one are put there.
    """

    size: Size
    max_pulse_s: float
    door_open_limit_s: float
    chilled: bool = False


@runtime_checkable
class LockerBank(Device, Protocol):
    """A bank of compartments, each with a lock output and a door input.

    Delivers :class:`~hubagent.events.DoorChanged` events, one per
    debounced change of a door (never one for chatter that settles back).

    An implementation MUST:

    * describe its compartments in ``layout()`` (fixed for its lifetime,
      readable before ``start``), so the core never reads a driver's settings;
    * create every lock output de-energised and leave them so after
      ``release_all()`` and ``close()``;
    * time each pulse itself (the lock is de-energised after
      ``min(seconds, max_pulse_s)`` even if the core stalls);
    * refuse a second pulse on the same bank while one runs (the locks
      share a supply) with :class:`~hubagent.errors.BankBusy`, energising
      nothing;
    * refuse an unknown compartment or a non-positive length with
      InputError (``unknown_compartment``, ``bad_pulse``), and a pulse on a
      bank that is not running with :class:`~hubagent.errors.DeviceUnavailable`;
    * report FAULTED when a lock will not de-energise.

    It MAY answer ``door_open``/``energised``/``occupied`` on a faulted bank
    whose pins are still readable.
    """

    def layout(self) -> Mapping[str, CompartmentInfo]:
        """The compartments of this bank by name, in configuration order."""

    def compartments(self) -> list[str]:
        """Names of the compartments in this bank (the keys of ``layout()``)."""

    def pulse(self, compartment: str, seconds: float) -> None:
        """Energise one lock for ``min(seconds, max_pulse_s)``; BankBusy if one runs."""

    def release_all(self) -> None:
        """De-energise every lock output now and cancel a running pulse."""

    def door_open(self, compartment: str) -> bool:
        """Current debounced door position."""

    def energised(self, compartment: str) -> bool:
        """Whether the lock output is active right now."""

    def occupied(self, compartment: str) -> bool | None:
        """Occupancy sensor reading, or None when the compartment has none."""


class PowerSource(Device, Protocol):
    """Delivers :class:`~hubagent.events.PowerReading` events.

    An implementation MUST deliver a reading soon after ``start`` (the
    core's power state is unknown until then) and one whenever the UPS
    state changes, with NUT status words in ``flags`` (``OL`` on mains,
    ``OB`` on battery, ``LB`` low battery); figures it cannot tell are None.
    When the UPS cannot be read it MUST deliver one ``reachable=False``
    reading per outage and report OFFLINE or FAULTED, and report OK again
    with a fresh reading once it can. It MAY repeat an unchanged reading
    as a heartbeat.
    """


class CodeInput(Device, Protocol):
    """A keypad or touchscreen; delivers :class:`~hubagent.events.CodeEntered`.

    An implementation MUST deliver each code entered as one
    ``CodeEntered`` with the keys as typed (the core checks codes), MUST
    NOT deliver an entry longer than its ``max_length``, and MUST NOT
    deliver anything after ``close()``.
    """


@runtime_checkable
class SimControl(Protocol):
    """The ``hubagent sim`` adapter of a simulated device.

    Simulators offer typed test verbs (``SimPrinter.paper_out()``,
    ``SimLockerBank.open_door(compartment)``, ``SimPowerSource.mains_lost()``,
    ``SimScanner.scan(code)``, ``SimKeypad.enter(code)``); ``sim_command``
    only maps a verb name and JSON arguments from the command line onto them.
    """

    def sim_command(self, verb: str, args: Mapping[str, Any]) -> dict[str, Any]:
        """Carry out ``verb``; raise InputError for an unknown verb or bad args."""
