"""What a keypad's feedback device plays for each code attempt.

A keypad names its ``[feedback.NAME]`` device in its settings
(``feedback = "NAME"``). Each outcome has its own pattern: a door opens
(``OPENED``), no such code (``WRONG``), a right code past its deadline
(``EXPIRED``), locked out (``LOCKED_OUT``, repeated once per started minute
of the wait, with the wait as text for a display) and a valid code with
nothing to open now (``NOTHING``). The last signals per keypad are kept for
``hubagent status``, whatever the device.
"""

from __future__ import annotations

import collections
import logging
import math
from typing import TYPE_CHECKING, Any

from hubagent.lockers.settings import feedback_of
from hubagent.ports import MAX_REPEAT, Feedback, FeedbackPattern

if TYPE_CHECKING:
    from hubagent.app import App
    from hubagent.lockers.inputs import Attempt

log = logging.getLogger(__name__)

RECENT = 5
"""Signals per keypad kept for status."""

_BY_REASON = {"expired": FeedbackPattern.EXPIRED, "token_expired": FeedbackPattern.EXPIRED}


def signal_for(attempt: "Attempt") -> tuple[FeedbackPattern, int, str]:
    """The pattern, its repetitions and a display text (at most 32 characters) for ``attempt``."""
    # Outcomes by value: importing the enum would tie this module and inputs in a cycle.
    outcome = attempt.outcome.value
    if outcome == "opened":
        door = attempt.compartment or ""
        return FeedbackPattern.OPENED, 1, f"Door {door} is open"[:32]
    if outcome == "locked_out":
        wait = attempt.retry_in_s or 0.0
        return FeedbackPattern.LOCKED_OUT, locked_out_repeat(wait), f"Locked: wait {math.ceil(wait)} s"
    if outcome == "nothing":
        return FeedbackPattern.NOTHING, 1, "Nothing to open now"
    pattern = _BY_REASON.get(attempt.reason, FeedbackPattern.WRONG)
    if pattern is FeedbackPattern.EXPIRED:
        return pattern, 1, "Code expired"
    if attempt.retry_in_s:  # this failure engaged a lock-out
        wait = attempt.retry_in_s
        return FeedbackPattern.LOCKED_OUT, locked_out_repeat(wait), f"Locked: wait {math.ceil(wait)} s"
    return pattern, 1, "Wrong code"


def locked_out_repeat(wait_s: float) -> int:
    """One repetition per started minute of the wait (1..15)."""
    return max(1, min(MAX_REPEAT, math.ceil(wait_s / 60.0)))


class KeypadFeedback:
    """Plays each keypad's outcome on the feedback device the keypad names."""

    def __init__(self, app: "App") -> None:
        """Read which feedback device each keypad names; opens nothing."""
        self.app = app
        self.device_of: dict[str, str] = {}
        for keypad in app.config.devices_of("keypads"):
            name = feedback_of(keypad.settings)
            if name is not None:
                self.device_of[keypad.name] = name
        self.recent: dict[str, collections.deque[dict[str, Any]]] = {}

    def play(self, keypad: str, attempt: "Attempt") -> None:
        """Signal ``attempt``'s pattern on ``keypad``'s feedback device; never raises."""
        pattern, repeat, text = signal_for(attempt)
        self.recent.setdefault(keypad, collections.deque(maxlen=RECENT)).append(
            {"pattern": pattern.value, "repeat": repeat, "text": text,
             "at": self.app.clock.now().isoformat(timespec="seconds")})
        name = self.device_of.get(keypad)
        if name is None:
            return
        try:
            device = self.app.device("feedback", name)
            if isinstance(device, Feedback):
                device.signal(pattern, repeat=repeat, text=text)
        except Exception:  # noqa: BLE001 - feedback is a courtesy; the attempt is recorded already
            log.exception("keypad %s: feedback %s failed", keypad, name)

    def status(self) -> dict[str, Any]:
        """Per keypad: its feedback device and the last signals, newest last."""
        keypads = set(self.device_of) | set(self.recent)
        return {k: {"feedback": self.device_of.get(k), "recent": list(self.recent.get(k, ()))}
                for k in sorted(keypads)}
