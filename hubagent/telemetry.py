"""Hub health figures for telemetry and ``hubagent status``.

Cheap reads only (a statvfs, two small files under /proc and /sys, one
grouped count): telemetry runs every minute on a Raspberry Pi.
"""

from __future__ import annotations

import os
import shutil
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hubagent.feature import Built, Feature, Interfaces
from hubagent.interfaces import ScanCounts

if TYPE_CHECKING:
    from hubagent.app import App
    from hubagent.clock import Clock

# The SoC sensor on a Raspberry Pi (and most Linux boards); absent in VMs.
THERMAL_ZONE = Path("/sys/class/thermal/thermal_zone0/temp")


def cpu_temperature(path: Path = THERMAL_ZONE) -> float | None:
    """CPU temperature in °C where the kernel exposes it, else None."""
    try:
        return round(int(path.read_text().strip()) / 1000, 1)
    except (OSError, ValueError):
        return None


def rss_mb() -> float | None:
    """Resident memory of this process in MB (Linux), else None."""
    try:
        pages = int(Path("/proc/self/statm").read_text().split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return round(pages * os.sysconf("SC_PAGE_SIZE") / 2**20, 1)


def system(state_dir: Path) -> dict[str, Any]:
    """Disk, CPU temperature, load and memory of the hub."""
    free: int | None
    total: int | None
    try:
        disk = shutil.disk_usage(state_dir)
        free, total = round(disk.free / 2**20), round(disk.total / 2**20)
    except OSError:
        free = total = None
    return {"disk_free_mb": free, "disk_total_mb": total, "cpu_temp_c": cpu_temperature(),
            "load_1m": round(os.getloadavg()[0], 2), "rss_mb": rss_mb()}


def age_s(rfc3339: str | None, now: datetime) -> float | None:
    """Seconds from an RFC 3339 UTC time to the wall time ``now``, or None."""
    if not rfc3339:
        return None
    try:
        then = datetime.fromisoformat(rfc3339.replace("Z", "+00:00"))
    except ValueError:
        return None
    return round(max(0.0, (now - then).total_seconds()), 1)


def counts(app: "App", scans: ScanCounts | None = None) -> dict[str, Any]:
    """Movements by type (ledger) and scans since start (per scanner totals)."""
    rows = app.store.query("SELECT type, COUNT(*) AS n FROM movements GROUP BY type")
    out: dict[str, Any] = {"movements": {r["type"]: r["n"] for r in rows}}
    out["returns"] = out["movements"].get("return", 0)
    if scans is not None:
        out["scans_accepted"], out["scans_rejected"] = scans.totals()
    return out


def build(*, app: "App", clock: "Clock", uses: Interfaces) -> Built:
    """Add system figures and counts to telemetry and status."""
    scans = uses.scan_counts
    if uses.uplink is not None:
        uses.uplink.add_telemetry(lambda: {"system": system(app.config.state_dir),
                                           "counts": counts(app, scans)})
    app.add_status("system", lambda: system(app.config.state_dir))
    return Built()


FEATURE = Feature("telemetry", build)
