"""``[restock]``: receiving hours, slot length and capacity (importable without the feature)."""

from __future__ import annotations

import re
from datetime import date, time
from typing import Annotated, Literal

import msgspec
from msgspec import Meta

Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
WEEKDAYS: tuple[Weekday, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
HHMM = r"^([01][0-9]|2[0-3]):[0-5][0-9]$"


class Opening(msgspec.Struct, forbid_unknown_fields=True, kw_only=True, frozen=True):
    """One span of receiving hours on some weekdays (local time)."""

    days: tuple[Weekday, ...]
    start: Annotated[str, Meta(pattern=HHMM)]
    end: Annotated[str, Meta(pattern=HHMM)]

    def __post_init__(self) -> None:
        if not self.days:
            raise ValueError("days must name at least one weekday")
        if self.start >= self.end:
            raise ValueError(f"start {self.start} must be before end {self.end}")

    @property
    def start_time(self) -> time:
        """``start`` as a time."""
        return time.fromisoformat(self.start)

    @property
    def end_time(self) -> time:
        """``end`` as a time."""
        return time.fromisoformat(self.end)


class RestockSettings(msgspec.Struct, forbid_unknown_fields=True, kw_only=True, frozen=True):
    """``[restock]``: when the hub receives deliveries, and how many at once."""

    # Receiving hours, e.g. [{days = ["mon", "tue"], start = "08:00", end = "12:00"}].
    hours: tuple[Opening, ...] = ()
    # Length of one slot in minutes; the hours are cut into slots from their start.
    slot_minutes: Annotated[int, Meta(ge=5, le=480)] = 30
    # Deliveries one slot takes.
    capacity: Annotated[int, Meta(ge=1, le=100)] = 2
    # Closed days (local dates), e.g. ["2026-12-25"].
    holidays: tuple[str, ...] = ()
    # How many days ahead the free windows are published.
    publish_days: Annotated[int, Meta(ge=1, le=60)] = 7
    # A claim that has not arrived this long after its slot ends is a no-show.
    grace_minutes: Annotated[int, Meta(ge=0, le=1440)] = 30
    # How far ahead a slot can be claimed.
    max_days_ahead: Annotated[int, Meta(ge=1, le=365)] = 60

    def __post_init__(self) -> None:
        for day in self.holidays:
            if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", day):
                raise ValueError(f"holiday {day!r} must be a date like 2026-12-25")
            date.fromisoformat(day)

    @property
    def enabled(self) -> bool:
        """Whether the hub offers restock windows at all."""
        return bool(self.hours)
