"""What one scanning station is in the middle of, and how a scan step ends.

A :class:`Session` is the per-scanner working state of the shelf workflows:
the mode (persisted), the signed-in staff member (persisted), the open
delivery or pick it works on (persisted), and the half-finished selection
(bin, destination bin, pending quantity, return grading, count tallies),
which lives in memory only: a restart, or ``session_timeout_s`` without a
scan, forgets it and staff scan the bin again.

A workflow step either returns an :class:`Outcome` (the scan was recorded;
the pattern says how to beep) or raises :class:`Refused` (nothing was
recorded; the reason becomes a ``scan.rejected`` event).
"""

from __future__ import annotations

import enum

import msgspec

from hubagent.ports import FeedbackPattern


class Mode(enum.Enum):
    """The workflow a scanner is in (``HA:MODE:<mode>``)."""

    RECEIVE = "receive"
    PICK = "pick"
    COUNT = "count"
    MOVE = "move"
    RETURN = "return"
    LOOKUP = "lookup"


class Session(msgspec.Struct):
    """Working state of one scanner (see the module docstring)."""

    mode: Mode
    staff: str | None = None
    delivery: str | None = None
    pick: str | None = None
    bin: str | None = None
    dest: str | None = None
    qty: int | None = None
    condition: str | None = None
    ref: str | None = None
    counts: dict[str, int] = msgspec.field(default_factory=dict)
    touched: float | None = None
    # A registered badge scanned on a hub that requires a PIN: whose PIN is
    # awaited on the keypad of the same name, and since when (memory only).
    pin_staff: str | None = None
    pin_since: float | None = None

    def persisted(self) -> tuple[str, str | None, str | None, str | None]:
        """The part that is stored in ``scan_stations`` (survives a restart)."""
        return (self.mode.value, self.staff, self.delivery, self.pick)

    def has_selection(self) -> bool:
        """Whether a half-finished selection is held (what HA:CANCEL clears first)."""
        return any(v is not None for v in (self.bin, self.dest, self.qty, self.condition, self.ref)) \
            or bool(self.counts) or self.delivery is not None or self.pick is not None

    def clear_selection(self) -> None:
        """Forget bin, destination, quantity, grading and count tallies."""
        self.bin = self.dest = self.qty = self.condition = self.ref = None
        self.counts = {}

    def clear_task(self) -> None:
        """Forget the selection and the delivery/pick this scanner was on."""
        self.clear_selection()
        self.delivery = self.pick = None

    def expire(self, now: float, timeout: float) -> bool:
        """Forget the selection if idle for more than ``timeout`` s; True if it did."""
        if self.touched is None or now - self.touched <= timeout:
            return False
        had = self.has_selection()
        self.clear_selection()
        return had


class Outcome(msgspec.Struct, frozen=True):
    """A recorded scan: how to signal it and a short note for status."""

    pattern: FeedbackPattern
    note: str


class Refused(Exception):
    """The scan was understood but cannot be carried out; nothing is recorded.

    ``reason`` is stable and machine-readable (``wrong_item``, ``no_bin``,
    ...); ``pattern`` is ERROR for a wrong scan and ATTENTION for "scan
    something else first".
    """

    def __init__(self, reason: str, message: str,
                 pattern: FeedbackPattern = FeedbackPattern.ERROR) -> None:
        self.reason = reason
        self.message = message
        self.pattern = pattern
        super().__init__(f"{reason}: {message}")


def ok(note: str) -> Outcome:
    """A plain accepted scan."""
    return Outcome(FeedbackPattern.OK, note)


def attention(note: str) -> Outcome:
    """Recorded, but worth a look (over-receipt, a short pick closed)."""
    return Outcome(FeedbackPattern.ATTENTION, note)


def first_needed(reason: str, message: str) -> Refused:
    """Refusal meaning "scan something else first" (ATTENTION feedback)."""
    return Refused(reason, message, FeedbackPattern.ATTENTION)
