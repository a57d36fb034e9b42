"""Cutting receiving hours into slots, in the hub's local time.

A slot is named by its local start, ``YYYY-MM-DDTHH:MM`` (no offset: the
hub's time zone is part of the contract, and a local name survives a DST
change). Pure functions: the calendar, no database.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import msgspec

from hubagent.restock.settings import WEEKDAYS, RestockSettings

SLOT_NAME = "%Y-%m-%dT%H:%M"


class Slot(msgspec.Struct, frozen=True):
    """One receiving slot: its local name and its start and end as aware times."""

    name: str
    start: datetime
    end: datetime


class SlotError(ValueError):
    """Why a slot name is not a slot this hub offers (``code``: past, outside_hours, bad_slot)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def slots_on(day: date, settings: RestockSettings, tz: ZoneInfo) -> list[Slot]:
    """Every slot of one local day (none on a holiday or a closed weekday)."""
    if day.isoformat() in settings.holidays:
        return []
    weekday = WEEKDAYS[day.weekday()]
    step = timedelta(minutes=settings.slot_minutes)
    out: list[Slot] = []
    for opening in settings.hours:
        if weekday not in opening.days:
            continue
        start = datetime.combine(day, opening.start_time, tz)
        end_of_opening = datetime.combine(day, opening.end_time, tz)
        while start + step <= end_of_opening:
            out.append(Slot(start.strftime(SLOT_NAME), start, start + step))
            start += step
    return sorted(out, key=lambda s: s.start)


def upcoming(now: datetime, days: int, settings: RestockSettings, tz: ZoneInfo) -> list[Slot]:
    """Slots that have not started yet, from today for ``days`` local days."""
    today = now.astimezone(tz).date()
    out: list[Slot] = []
    for n in range(days):
        out += [s for s in slots_on(today + timedelta(days=n), settings, tz) if s.start > now]
    return out


def resolve(name: str, now: datetime, settings: RestockSettings, tz: ZoneInfo) -> Slot:
    """The slot called ``name``; SlotError if it is malformed, past or outside the hours."""
    try:
        wanted = datetime.strptime(name, SLOT_NAME)
    except ValueError:
        raise SlotError("bad_slot", f"slot {name!r} must look like 2026-12-01T08:30 (local time)") from None
    day = wanted.date()
    for slot in slots_on(day, settings, tz):
        if slot.name == name:
            if slot.end <= now:
                raise SlotError("past", f"slot {name} is over")
            if slot.start > now + timedelta(days=settings.max_days_ahead):
                raise SlotError("outside_hours", f"slot {name} is more than {settings.max_days_ahead} days ahead")
            return slot
    if day.isoformat() in settings.holidays:
        raise SlotError("outside_hours", f"{day} is a holiday: the hub receives nothing")
    raise SlotError("outside_hours", f"{name} is not the start of a receiving slot "
                                     f"({settings.slot_minutes}-minute slots within the receiving hours)")
