"""Hub health figures read from the real files they come from."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

from hubagent import telemetry
from hubagent.clock import ManualClock, rfc3339


def test_cpu_temperature_from_a_thermal_zone_file(tmp_path: Path) -> None:
    zone = tmp_path / "temp"
    zone.write_text("48312\n")
    assert telemetry.cpu_temperature(zone) == 48.3
    zone.write_text("garbage")
    assert telemetry.cpu_temperature(zone) is None
    assert telemetry.cpu_temperature(tmp_path / "absent") is None


def test_system_figures_of_this_machine(tmp_path: Path) -> None:
    figures = telemetry.system(tmp_path)
    assert 0 < figures["disk_free_mb"] <= figures["disk_total_mb"]
    assert figures["rss_mb"] > 1 and figures["load_1m"] >= 0


def test_age_of_an_rfc3339_time() -> None:
    clock = ManualClock(wall=datetime(2026, 11, 29, 12, 0, 0, 500_000, tzinfo=timezone.utc))
    then = rfc3339(clock.now() - timedelta(seconds=90))
    assert telemetry.age_s(then, clock.now()) == 90.0
    clock.advance(30.04)
    assert telemetry.age_s(then, clock.now()) == 120.0
    # A wall clock that jumped back behind the time gives 0, never a negative age.
    assert telemetry.age_s(then, datetime(1970, 1, 1, tzinfo=timezone.utc)) == 0.0
    assert telemetry.age_s(None, clock.now()) is None and telemetry.age_s("not a time", clock.now()) is None
