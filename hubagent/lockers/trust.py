"""Whether the wall clock can be trusted for expiry, in either direction.

A Raspberry Pi without a real-time clock may boot in 1970, or with a clock
years ahead (a bad RTC battery, a bad NTP answer). Deciding expiry on such a
clock expires real parcels or keeps deadlines that never come. The rule:

* **behind**: the wall clock reads a year before ``min_sane_year``, or earlier
  than the *floor* (the latest wall time the hub trusted, kept in the
  database) by more than ``clock_jump_tolerance_s``;
* **ahead at start**: the wall clock reads more than ``clock_max_offline_s``
  past the floor (a hub is not switched off that long without someone
  noticing);
* **a jump while running**: the wall clock moved more than
  ``clock_jump_tolerance_s`` away from where the monotonic clock says it
  should be. A jump forward is suspect; a jump back to at or after the floor
  is a correction and is trusted again.

A suspect clock is trusted again when the kernel reports it synchronised by
NTP (``adjtimex``: not ``STA_UNSYNC``), when central confirms it
(``clock.confirm`` with central's time, within the tolerance), or when it
comes back to where the monotonic clock says it should be. While it is not
trusted the hub takes no expiry decision: codes keep working, nothing
expires, no deadline is computed, and ``expires_at`` in commands is not
compared with the clock. Lock-outs use the monotonic clock only.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import enum
import logging
from datetime import datetime, timedelta, timezone
from typing import Any, Callable

import msgspec

log = logging.getLogger(__name__)

FLOOR_KEY = "clock_floor"
"""``meta`` key of the latest wall time the hub trusted (RFC 3339)."""
FLOOR_WRITE_S = 3600.0
"""The floor is written at most this often while trusted (SD-card writes)."""


class Trust(str, enum.Enum):
    """What the hub makes of its wall clock."""

    TRUSTED = "trusted"
    BEHIND = "behind"    # before min_sane_year or before the floor
    AHEAD = "ahead"      # too far past the floor at start, or jumped forward


class TrustLimits(msgspec.Struct, frozen=True):
    """The tolerances of :class:`ClockTrust` (from ``[locker_policy]``)."""

    min_sane_year: int = 2024
    max_offline_s: float = 30 * 86400.0
    jump_tolerance_s: float = 300.0


class _Timex(ctypes.Structure):
    # struct timex from <sys/timex.h>: modes, then longs; only status matters here.
    _fields_ = [("modes", ctypes.c_uint), ("offset", ctypes.c_long), ("freq", ctypes.c_long),
                ("maxerror", ctypes.c_long), ("esterror", ctypes.c_long), ("status", ctypes.c_int),
                ("pad", ctypes.c_byte * 200)]


_STA_UNSYNC = 0x0040


def kernel_ntp_synced() -> bool | None:
    """Whether the kernel says NTP has set the clock (``adjtimex``); None where it cannot tell."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        tx = _Timex()
        state = libc.adjtimex(ctypes.byref(tx))
    except (OSError, AttributeError):
        return None
    if state < 0:
        return None
    return not (tx.status & _STA_UNSYNC) and state != 5  # 5 = TIME_ERROR: not synchronised


class ClockTrust:
    """Tracks whether the wall clock may be used for expiry decisions (core thread)."""

    def __init__(self, wall: Callable[[], datetime], monotonic: Callable[[], float], limits: TrustLimits,
                 *, floor: datetime | None, ntp_synced: Callable[[], bool | None] = kernel_ntp_synced) -> None:
        """Judge the clock at start against ``floor`` (None on a first start)."""
        self.wall, self.monotonic, self.limits = wall, monotonic, limits
        self.floor = floor
        self.ntp_synced = ntp_synced
        self.confirmed_by: str | None = None
        self.state = Trust.TRUSTED
        self._anchor = (wall(), monotonic())
        self.state = self._judge(self._anchor[0], start=True)
        self._floor_written = float("-inf")
        if self.state is not Trust.TRUSTED:
            log.warning("wall clock %s is not trusted (%s of the last trusted time %s): no expiry decisions "
                        "until NTP or central confirms it", self._anchor[0].isoformat(), self.state.value,
                        floor.isoformat() if floor else "none")

    def _judge(self, now: datetime, *, start: bool) -> Trust:
        tol = timedelta(seconds=self.limits.jump_tolerance_s)
        if now.year < self.limits.min_sane_year:
            return Trust.BEHIND
        if self.floor is not None and now < self.floor - tol:
            return Trust.BEHIND
        if start and self.floor is not None and now > self.floor + timedelta(seconds=self.limits.max_offline_s):
            return Trust.TRUSTED if self.ntp_synced() else Trust.AHEAD
        return Trust.TRUSTED

    def check(self) -> Trust:
        """Re-judge the clock now (cheap: call before each decision)."""
        now, mono = self.wall(), self.monotonic()
        expected = self._anchor[0] + timedelta(seconds=mono - self._anchor[1])
        drift = (now - expected).total_seconds()
        if abs(drift) > self.limits.jump_tolerance_s:
            before = self.state
            self._anchor = (now, mono)
            if drift > 0 and before is Trust.TRUSTED and not self.ntp_synced():
                self.state = Trust.AHEAD  # a trusted clock jumping forward is suspect until confirmed
            else:
                # A correction of a suspect clock: judged as at start, against the floor.
                self.state = self._judge(now, start=True)
            log.warning("wall clock jumped %+.0f s: now %s (%s, was %s)", drift, now.isoformat(),
                        self.state.value, before.value)
        elif self.state is not Trust.TRUSTED and now.year >= self.limits.min_sane_year and self.ntp_synced():
            self.state = self._judge(now, start=False)
        if self.state is Trust.TRUSTED and (self.floor is None or now > self.floor):
            self.floor = now
        return self.state

    def trusted(self) -> bool:
        """Whether expiry may be decided now."""
        return self.check() is Trust.TRUSTED

    def confirm(self, central_now: datetime, by: str) -> float:
        """Central's time: trust the clock if it agrees within the tolerance; the offset in seconds."""
        now = self.wall()
        offset = (now - central_now).total_seconds()
        self._anchor = (now, self.monotonic())
        if abs(offset) <= self.limits.jump_tolerance_s and now.year >= self.limits.min_sane_year:
            self.state, self.confirmed_by = Trust.TRUSTED, by
            self.floor = now  # central vouches for it, even before an old floor
        else:
            self.state = Trust.AHEAD if offset > 0 else Trust.BEHIND
            self.floor = central_now  # a floor taken from the wrong clock must not outlive it
        return offset

    def floor_due(self) -> str | None:
        """The floor to persist now (RFC 3339), at most every :data:`FLOOR_WRITE_S`; else None."""
        mono = self.monotonic()
        if self.state is not Trust.TRUSTED or self.floor is None or mono - self._floor_written < FLOOR_WRITE_S:
            return None
        self._floor_written = mono
        return self.floor.astimezone(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")

    def status(self) -> dict[str, Any]:
        """For ``hubagent status``."""
        return {"state": self.state.value, "floor": self.floor.isoformat() if self.floor else None,
                "confirmed_by": self.confirmed_by}
