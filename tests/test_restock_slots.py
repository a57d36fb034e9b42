"""Receiving hours cut into slots: weekdays, holidays, DST, past and outside the hours."""

from __future__ import annotations

from datetime import date, datetime, timezone

import msgspec
import pytest

from hubagent.kpi.days import zone
from hubagent.restock.settings import RestockSettings
from hubagent.restock.slots import SlotError, resolve, slots_on, upcoming

BERLIN = zone("Europe/Berlin")
SETTINGS = msgspec.convert({
    "hours": [{"days": ["mon", "tue", "wed", "thu", "fri", "sat"], "start": "08:00", "end": "12:00"}],
    "slot_minutes": 30, "capacity": 2, "holidays": ["2026-12-25"],
}, RestockSettings)


def test_slots_of_a_day_sunday_and_holiday() -> None:
    monday = slots_on(date(2026, 11, 30), SETTINGS, BERLIN)
    assert [s.name for s in monday] == [f"2026-11-30T{h:02d}:{m:02d}" for h in range(8, 12) for m in (0, 30)]
    assert monday[0].start.utcoffset().total_seconds() == 3600  # CET
    assert slots_on(date(2026, 11, 29), SETTINGS, BERLIN) == []  # Sunday
    assert slots_on(date(2026, 12, 25), SETTINGS, BERLIN) == []  # holiday (a Friday)


def test_dst_days_keep_local_hours() -> None:
    summer = slots_on(date(2026, 7, 1), SETTINGS, BERLIN)[0]
    assert summer.name == "2026-07-01T08:00" and summer.start.utcoffset().total_seconds() == 7200


def test_resolve_refuses_past_outside_and_malformed() -> None:
    now = datetime(2026, 11, 30, 9, 10, tzinfo=timezone.utc)  # 10:10 in Berlin
    assert resolve("2026-11-30T10:30", now, SETTINGS, BERLIN).end.astimezone(timezone.utc).hour == 10  # 11:00 CET
    for name, code in [("2026-11-30T09:30", "past"), ("2026-11-30T12:00", "outside_hours"),
                       ("2026-11-30T08:15", "outside_hours"), ("2026-11-29T09:00", "outside_hours"),
                       ("2026-12-25T09:00", "outside_hours"), ("30.11.2026 09:00", "bad_slot"),
                       ("2027-06-01T09:00", "outside_hours")]:
        with pytest.raises(SlotError) as e:
            resolve(name, now, SETTINGS, BERLIN)
        assert e.value.code == code, name


def test_upcoming_starts_after_now() -> None:
    now = datetime(2026, 11, 30, 10, 40, tzinfo=timezone.utc)  # 11:40 local: only 12:00? none left today
    names = [s.name for s in upcoming(now, 2, SETTINGS, BERLIN)]
    assert names[0] == "2026-12-01T08:00" and len(names) == 8


def test_bad_settings_name_the_problem() -> None:
    with pytest.raises(msgspec.ValidationError, match="start 12:00 must be before end 08:00"):
        msgspec.convert({"hours": [{"days": ["mon"], "start": "12:00", "end": "08:00"}]}, RestockSettings)
    with pytest.raises(msgspec.ValidationError, match="holiday"):
        msgspec.convert({"holidays": ["25.12.2026"]}, RestockSettings)
