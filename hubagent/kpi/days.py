"""Local days: the hub's time zone decides which day an event belongs to."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError


def zone(name: str) -> ZoneInfo:
    """The IANA time zone ``name``; ValueError naming it when unknown."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {name!r} (an IANA name such as Europe/Berlin)") from None


def parse_utc(at: str) -> datetime:
    """An RFC 3339 time as stored by the hub (``...Z``), aware."""
    return datetime.fromisoformat(at.replace("Z", "+00:00")).astimezone(timezone.utc)


def local_day(at: str | datetime, tz: ZoneInfo) -> str:
    """The local calendar day (``YYYY-MM-DD``) of a moment."""
    moment = parse_utc(at) if isinstance(at, str) else at
    return moment.astimezone(tz).date().isoformat()


def window(today: str, days: int) -> list[str]:
    """The ``days`` local days ending with ``today`` (oldest first)."""
    end = date.fromisoformat(today)
    return [(end - timedelta(days=n)).isoformat() for n in range(days - 1, -1, -1)]


def clock_sane(now: datetime, min_year: int) -> bool:
    """Whether the wall clock can be used for day-based figures (a Pi without RTC boots in 1970)."""
    return now.year >= min_year
