"""Hub health figures read from the real files they come from."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

from hubagent import telemetry


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
    then = (datetime.now(timezone.utc) - timedelta(seconds=90)).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    assert 89 <= (telemetry.age_s(then) or 0) <= 95
    assert telemetry.age_s(None) is None and telemetry.age_s("not a time") is None
