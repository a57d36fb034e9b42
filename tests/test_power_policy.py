"""The power policy as a pure table: readings and times in, decisions out."""

from __future__ import annotations

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hubagent.events import PowerReading
from hubagent.power.policy import (
    BeginShutdown,
    CancelShutdown,
    PowerPolicy,
    PowerState,
    SetCameraFps,
    StateChanged,
    classify,
)
from hubagent.power.settings import PowerPolicySettings

S = PowerState


def reading(flags: str = "OL", *, charge: float | None = 100, runtime: float | None = 1800,
            reachable: bool = True) -> PowerReading:
    return PowerReading(source="ups", reachable=reachable, flags=frozenset(flags.split()),
                        charge=charge, runtime=runtime)


def policy(**overrides: object) -> PowerPolicy:
    cfg = {"confirm_s": 0.0, **overrides}
    return PowerPolicy(msgspec.convert(cfg, PowerPolicySettings, strict=True))


def kinds(decisions: list[object]) -> list[str]:
    return [type(d).__name__ for d in decisions]


OB = reading("OB")
LB = reading("OB LB")
OL = reading("OL")
GONE = reading("", reachable=False, charge=None, runtime=None)


# -- classification -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("r", "cfg", "state"),
    [
        (reading("OL"), {}, S.MAINS),
        (reading("OL CHRG"), {}, S.MAINS),
        (reading("OB DISCHRG"), {}, S.ON_BATTERY),
        (reading("OB LB"), {}, S.LOW_BATTERY),
        (reading("OB", runtime=299), {}, S.LOW_BATTERY),
        (reading("OB", runtime=300), {}, S.ON_BATTERY),  # "under" is strict
        (reading("OB", runtime=100), {"low_runtime_s": 60}, S.ON_BATTERY),
        (reading("OB", charge=19), {"low_charge_pct": 20}, S.LOW_BATTERY),
        (reading("OB", charge=19), {}, S.ON_BATTERY),  # charge ignored unless configured
        (reading("OB", charge=None, runtime=None), {"low_charge_pct": 20}, S.ON_BATTERY),
        (reading("OL LB", runtime=10, charge=5), {"low_charge_pct": 20}, S.MAINS),  # recharging
        (reading("OL FSD"), {}, S.LOW_BATTERY),  # a NUT primary orders shutdown
        (reading("OL OB"), {}, S.ON_BATTERY),  # "OL without OB" is mains; this is not
        (reading("WAIT"), {}, S.UNKNOWN),
        (reading(""), {}, S.UNKNOWN),
        (reading("OB LB", reachable=False), {}, S.UNKNOWN),
    ],
)
def test_classify(r: PowerReading, cfg: dict[str, object], state: PowerState) -> None:
    assert classify(r, msgspec.convert(cfg, PowerPolicySettings, strict=True)) is state


# -- transitions and exactly once --------------------------------------------------------


def test_outage_to_low_battery_shuts_down_once() -> None:
    p = policy()
    assert p.observe(OL, 0) == [StateChanged(S.UNKNOWN, S.MAINS, OL)]
    assert p.observe(OB, 1) == [StateChanged(S.MAINS, S.ON_BATTERY, OB)]
    assert p.observe(OB, 2) == []  # no change, nothing to do
    d = p.observe(LB, 3)
    assert kinds(d) == ["StateChanged", "BeginShutdown"]
    assert "LB" in d[1].reason  # type: ignore[attr-defined]
    # Low readings keep coming, the state wobbles: never a second BeginShutdown.
    later = [p.observe(r, t) for t, r in enumerate([LB, OB, LB, reading("OB", runtime=5), GONE, LB], 4)]
    assert not any(isinstance(x, BeginShutdown) for ds in later for x in ds)
    assert p.shutdown_pending


def test_mains_return_cancels_and_rearms() -> None:
    p = policy()
    p.observe(OB, 0)
    assert BeginShutdown in map(type, p.observe(LB, 1))
    d = p.observe(OL, 2)
    assert d == [StateChanged(S.LOW_BATTERY, S.MAINS, OL), CancelShutdown("mains power returned")]
    assert not p.shutdown_pending
    # The next outage can shut down again.
    p.observe(OB, 3)
    assert kinds(p.observe(LB, 4)) == ["StateChanged", "BeginShutdown"]


def test_no_cancel_after_command_started() -> None:
    p = policy()
    p.observe(LB, 0)
    p.mark_command_started()
    assert p.observe(OL, 1) == [StateChanged(S.LOW_BATTERY, S.MAINS, OL)]
    assert p.shutdown_pending and p.command_started
    assert not any(isinstance(x, BeginShutdown) for x in p.observe(LB, 2))


def test_on_battery_to_mains_without_shutdown_cancels_nothing() -> None:
    p = policy()
    p.observe(OB, 0)
    assert p.observe(OL, 1) == [StateChanged(S.ON_BATTERY, S.MAINS, OL)]


def test_unknown_never_shuts_down() -> None:
    p = policy()
    p.observe(OB, 0)
    assert p.observe(GONE, 1) == [StateChanged(S.ON_BATTERY, S.UNKNOWN, GONE)]
    for t in range(2, 50):
        assert not any(isinstance(x, BeginShutdown) for x in p.observe(GONE, t) + p.tick(t + 0.5))
    assert p.state is S.UNKNOWN and not p.shutdown_pending


def test_unknown_does_not_cancel_a_running_shutdown() -> None:
    p = policy()
    p.observe(LB, 0)
    assert p.observe(GONE, 1) == [StateChanged(S.LOW_BATTERY, S.UNKNOWN, GONE)]
    assert p.shutdown_pending


def test_leaving_low_for_battery_keeps_the_shutdown() -> None:
    # Load dropped, runtime estimate rose: still on battery, still shutting down.
    p = policy()
    p.observe(LB, 0)
    assert p.observe(OB, 1) == [StateChanged(S.LOW_BATTERY, S.ON_BATTERY, OB)]
    assert p.shutdown_pending


# -- debouncing --------------------------------------------------------------------------


def test_flapping_within_confirm_does_nothing() -> None:
    p = policy(confirm_s=5)
    p.observe(OL, 0)
    assert p.tick(5) == [StateChanged(S.UNKNOWN, S.MAINS, OL)]
    for t in range(6, 40, 2):  # OB for 1 s, OL for 1 s, ...
        assert p.observe(OB, t) == []
        assert p.observe(OL, t + 1) == []
        assert p.tick(t + 1.5) == []
    assert p.state is S.MAINS


def test_persisting_reading_is_confirmed_by_tick() -> None:
    p = policy(confirm_s=5)
    p.observe(OL, 0)
    p.tick(5)
    assert p.observe(OB, 10) == []
    assert p.next_deadline() == 15
    assert p.tick(14.9) == []
    assert p.tick(15) == [StateChanged(S.MAINS, S.ON_BATTERY, OB)]
    assert p.next_deadline() is None


def test_low_battery_flap_does_not_shut_down() -> None:
    p = policy(confirm_s=3)
    p.observe(OB, 0)
    p.tick(3)
    assert p.observe(LB, 4) == []
    assert p.observe(OB, 5) == []
    assert p.tick(100) == []
    assert not p.shutdown_pending


def test_brief_mains_return_does_not_cancel() -> None:
    p = policy(confirm_s=3)
    p.observe(LB, 0)
    assert BeginShutdown in map(type, p.tick(3))
    assert p.observe(OL, 4) == []
    assert p.observe(LB, 5) == []  # back to low within confirm_s
    assert p.tick(20) == []
    assert p.shutdown_pending


def test_clock_going_back_restarts_confirmation() -> None:
    p = policy(confirm_s=5)
    p.observe(OL, 1000)
    p.tick(1005)
    assert p.observe(OB, 1010) == []
    # A caller handing in a clock that stepped back must not confirm early...
    assert p.observe(OB, 200) == []
    assert p.tick(204) == []
    # ...nor never: the window restarted at the step.
    assert p.tick(205) == [StateChanged(S.MAINS, S.ON_BATTERY, OB)]


def test_reading_timestamps_are_not_used() -> None:
    # Readings built with wall-clock or nonsense ``at`` values change nothing.
    p = policy(confirm_s=5)
    odd = PowerReading(source="ups", reachable=True, flags=frozenset({"OB"}), at=-1e12)
    p.observe(OL, 0)
    p.tick(5)
    assert p.observe(odd, 6) == []
    assert p.tick(11) == [StateChanged(S.MAINS, S.ON_BATTERY, odd)]


# -- camera -------------------------------------------------------------------------------


def test_camera_fps_lowered_on_battery_and_restored_on_mains() -> None:
    p = policy(camera_fps_on_battery=2.5)
    p.observe(OL, 0)
    assert SetCameraFps(2.5) in p.observe(OB, 1)
    assert not any(isinstance(x, SetCameraFps) for x in p.observe(LB, 2))  # already lowered
    assert not any(isinstance(x, SetCameraFps) for x in p.observe(GONE, 3))
    assert SetCameraFps(None) in p.observe(OL, 4)


def test_camera_untouched_when_not_configured() -> None:
    p = policy()
    decisions = p.observe(OL, 0) + p.observe(OB, 1) + p.observe(OL, 2)
    assert not any(isinstance(x, SetCameraFps) for x in decisions)


# -- property: exactly once per outage ------------------------------------------------------

READINGS = st.sampled_from([OL, OB, LB, GONE, reading("OB", runtime=10), reading("WAIT")])


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(READINGS, st.floats(0, 10)), max_size=40), st.floats(0, 5))
def test_begin_and_cancel_alternate(steps: list[tuple[PowerReading, float]], confirm: float) -> None:
    """BeginShutdown never repeats without a CancelShutdown between, and only after low."""
    p = policy(confirm_s=confirm)
    now = 0.0
    shutdown_open = False
    for r, dt in steps:
        now += dt
        for d in p.observe(r, now) + p.tick(now + dt / 2):
            if isinstance(d, BeginShutdown):
                assert not shutdown_open
                assert p.state is S.LOW_BATTERY
                shutdown_open = True
            elif isinstance(d, CancelShutdown):
                assert shutdown_open and p.state is S.MAINS
                shutdown_open = False
        now += dt / 2
    assert p.shutdown_pending == shutdown_open


# -- the [power_policy] settings ---------------------------------------------------------


def test_policy_settings_defaults() -> None:
    s = msgspec.convert({}, PowerPolicySettings, strict=True)
    assert s.shutdown_command == ("systemctl", "poweroff")
    assert s.low_runtime_s == 300 and s.low_charge_pct is None


@pytest.mark.parametrize(
    ("cfg", "where"),
    [
        ({"low_charge_pct": 120}, "low_charge_pct"),
        ({"shutdown_command": []}, "shutdown_command"),
        ({"shutdown_command": ["", "x"]}, "program"),
        ({"shutdown_command": "systemctl poweroff"}, "shutdown_command"),  # must be a list
        ({"confirm_s": -1}, "confirm_s"),
        ({"confirm": 3}, "confirm"),  # unknown key
    ],
)
def test_policy_settings_errors_are_clear(cfg: dict[str, object], where: str) -> None:
    with pytest.raises(msgspec.ValidationError, match=where):
        msgspec.convert(cfg, PowerPolicySettings, strict=True)
