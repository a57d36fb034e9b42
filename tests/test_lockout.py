"""AttemptLimiter: growing, capped, per-source lock-outs that always end; brute force against it."""

from __future__ import annotations

import pytest

from hubagent.lockers.codes import hash_code, verify
from hubagent.lockers.lockout import AttemptLimiter, Lockout

SECRET = b"k" * 32


def fail(limiter: AttemptLimiter, source: str, now: float, times: int) -> Lockout | None:
    result = None
    for _ in range(times):
        result = limiter.failure(source, now)
    return result


def test_lockout_engages_after_max_failures_and_ends() -> None:
    limiter = AttemptLimiter(max_failures=3, base_lockout_s=30, max_lockout_s=900)
    assert fail(limiter, "kp", 100.0, 2) is None
    assert limiter.check("kp", 100.0) == 0.0
    lockout = limiter.failure("kp", 101.0)
    assert lockout == Lockout("kp", level=1, duration_s=30.0, until=131.0, failures=3)
    assert limiter.check("kp", 101.0) == pytest.approx(30.0)
    assert limiter.check("kp", 120.0) == pytest.approx(11.0)
    assert limiter.check("kp", 131.0) == 0.0


def test_lockouts_double_and_are_capped() -> None:
    limiter = AttemptLimiter(max_failures=2, base_lockout_s=30, max_lockout_s=200)
    now, durations = 0.0, []
    for _ in range(6):
        lockout = fail(limiter, "kp", now, 2)
        assert lockout is not None
        durations.append(lockout.duration_s)
        now = lockout.until
    assert durations == [30, 60, 120, 200, 200, 200]


def test_failures_during_a_lockout_do_not_extend_it() -> None:
    limiter = AttemptLimiter(max_failures=1, base_lockout_s=30, max_lockout_s=900)
    limiter.failure("kp", 0.0)
    assert limiter.failure("kp", 10.0) is None
    assert limiter.check("kp", 30.0) == 0.0


def test_success_resets_and_sources_are_independent() -> None:
    limiter = AttemptLimiter(max_failures=2, base_lockout_s=30, max_lockout_s=900)
    assert fail(limiter, "door", 0.0, 2) is not None
    assert limiter.check("touch", 0.0) == 0.0  # another keypad keeps working
    assert limiter.failure("touch", 0.0) is None
    limiter.success("door", 40.0)
    lockout = fail(limiter, "door", 40.0, 2)
    assert lockout is not None and lockout.level == 1  # back to the base lock-out


def test_a_quiet_spell_forgets_old_failures() -> None:
    limiter = AttemptLimiter(max_failures=2, base_lockout_s=30, max_lockout_s=900, forget_after_s=3600)
    fail(limiter, "kp", 0.0, 2)
    limiter.failure("kp", 100.0)
    lockout = limiter.failure("kp", 100.0 + 30 + 4000)  # the earlier typo is long forgotten
    assert lockout is None
    lockout = limiter.failure("kp", 4200.0)
    assert lockout is not None and lockout.level == 1


@pytest.mark.parametrize("kwargs", [{"max_failures": 0}, {"base_lockout_s": 0},
                                    {"base_lockout_s": 100, "max_lockout_s": 50},
                                    {"forget_after_s": 10}])
def test_nonsense_limits_are_rejected(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        AttemptLimiter(**kwargs)  # type: ignore[arg-type]


def test_brute_force_ten_thousand_wrong_codes() -> None:
    real = "493817"
    stored = hash_code(SECRET, real, "pickup")
    limiter = AttemptLimiter()
    now, successes, checked, refused = 1000.0, 0, 0, 0
    lockouts: list[Lockout] = []
    guesses = (f"{n:06d}" for n in range(1_000_000) if f"{n:06d}" != real)
    for _, guess in zip(range(10_000), guesses):
        wait = limiter.check("door-keypad", now)
        if wait > 0:  # the attacker is refused, waits it out, then carries on
            refused += 1
            now += wait
            assert limiter.check("door-keypad", now) == 0.0  # a lock-out always ends
        checked += 1
        if verify(SECRET, guess, "pickup", stored):
            successes += 1
            limiter.success("door-keypad", now)
        elif (lockout := limiter.failure("door-keypad", now)) is not None:
            lockouts.append(lockout)
        now += 2.0  # one guess every two seconds
    assert successes == 0
    assert len(lockouts) == 10_000 // 5
    assert [lo.duration_s for lo in lockouts[:7]] == [30, 60, 120, 240, 480, 900, 900]
    assert max(lo.duration_s for lo in lockouts) == 900
    assert now - 1000.0 > 1_700_000  # 10,000 guesses cost the attacker weeks, not minutes
    assert limiter.check("staff-touch", now - 1.0) == 0.0  # other sources untouched throughout
    # After the last lock-out ends the customer's real code still works.
    now = lockouts[-1].until
    assert limiter.check("door-keypad", now) == 0.0
    assert verify(SECRET, real, "pickup", stored)
    limiter.success("door-keypad", now)
    assert limiter.failure("door-keypad", now) is None
