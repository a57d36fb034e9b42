"""Limit code guessing per input source with growing, always-ending lock-outs.

A six-digit code has a million values; at five guesses per lock-out and
lock-outs doubling up to 15 minutes, guessing one takes years. Each input
device has its own state, keyed by its identity - its role and name
(:func:`input_key`: ``keypad:front``, ``scanner:front``, ``kiosk:kiosk``,
``web:192.0.2.7``) - so a locked-out keypad never stops another device,
not even a scanner that shares its name. Pure: the caller passes a monotonic ``now`` and calls from
one thread (the core's).
"""

from __future__ import annotations

import msgspec


INPUT_ROLES = ("keypad", "scanner", "kiosk", "web")
"""Kinds of input device a code can come from."""


def input_key(role: str, name: str) -> str:
    """The lock-out identity of input device ``name`` of kind ``role`` (``keypad:front``)."""
    if role not in INPUT_ROLES:
        raise ValueError(f"input role {role!r} is not one of {', '.join(INPUT_ROLES)}")
    return f"{role}:{name}"


class Lockout(msgspec.Struct, frozen=True):
    """A lock-out that just engaged; raise an alarm with it."""

    source: str
    level: int
    """1 for the first lock-out since the source was last reset, then 2, 3..."""
    duration_s: float
    until: float
    """Monotonic time at which the source may try again."""
    failures: int
    """Failures since the source was last reset, this one included."""


class _SourceState(msgspec.Struct):
    failures: int = 0  # Failures since the last lock-out ended (or reset).
    total: int = 0  # Failures since the last reset.
    level: int = 0  # Lock-outs since the last reset.
    locked_until: float = 0.0
    last_failure: float = 0.0


class AttemptLimiter:
    """Allows ``max_failures`` wrong codes per source, then locks it out.

    The n-th lock-out lasts ``base_lockout_s * 2**(n-1)``, at most
    ``max_lockout_s``. A success resets the source; so does a quiet spell of
    ``forget_after_s`` without failures, so occasional typos over a week do
    not add up to long lock-outs.
    """

    def __init__(self, max_failures: int = 5, base_lockout_s: float = 30.0,
                 max_lockout_s: float = 900.0, forget_after_s: float = 3600.0) -> None:
        """Validate the limits; ValueError if they make no sense."""
        if max_failures < 1:
            raise ValueError("max_failures must be at least 1")
        if not 0 < base_lockout_s <= max_lockout_s:
            raise ValueError("need 0 < base_lockout_s <= max_lockout_s")
        if forget_after_s < max_lockout_s:
            raise ValueError("forget_after_s must be at least max_lockout_s")
        self.max_failures = max_failures
        self.base_lockout_s = base_lockout_s
        self.max_lockout_s = max_lockout_s
        self.forget_after_s = forget_after_s
        self._sources: dict[str, _SourceState] = {}

    def check(self, source: str, now: float) -> float:
        """Seconds ``source`` is still locked out; 0.0 if it may try a code."""
        state = self._current(source, now)
        if state is None:
            return 0.0
        return max(0.0, state.locked_until - now)

    def failure(self, source: str, now: float) -> Lockout | None:
        """Record a wrong code; the new :class:`Lockout` if this one engaged it.

        A failure reported while the source is locked out changes nothing
        (the caller should not have checked a code then).
        """
        if self.check(source, now) > 0:
            return None
        state = self._current(source, now) or self._sources.setdefault(source, _SourceState())
        state.failures += 1
        state.total += 1
        state.last_failure = now
        if state.failures < self.max_failures:
            return None
        state.level += 1
        state.failures = 0
        # Clamp the exponent: a determined attacker reaches level 1000+ and 2.0**1000 overflows.
        duration = min(self.base_lockout_s * 2.0 ** min(state.level - 1, 60), self.max_lockout_s)
        state.locked_until = now + duration
        return Lockout(source, state.level, duration, state.locked_until, state.total)

    def success(self, source: str, now: float) -> None:
        """A right code: forget the source's failures and lock-out level."""
        self._sources.pop(source, None)

    def _current(self, source: str, now: float) -> _SourceState | None:
        state = self._sources.get(source)
        if state is None:
            return None
        quiet_since = max(state.last_failure, state.locked_until)
        if now >= state.locked_until and now - quiet_since >= self.forget_after_s:
            del self._sources[source]
            return None
        return state
