"""What a started hub has imported: only what its configured features use now.

Biip (its GS1 prefix table is about 20 MB) loads on the first scan, Pillow
on the first label; a hub that has done neither has neither in memory.
Each case runs in a fresh interpreter so nothing imported by other tests
counts.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

_PROGRAM = """
import asyncio, json, sys
from hubagent.cli import sim_config, _web_override
from hubagent.app import build_app

app = build_app(_web_override(sim_config("imports", None, sys.argv[1]), None, True), simulated=True)
heavy = ("biip", "PIL", "numpy", "sqlite_utils", "cv2", "pyzbar")

def loaded():
    return sorted(m for m in heavy if m in sys.modules)

async def main():
    await app.start()
    out = {"started": loaded()}
    if sys.argv[2] == "scan":
        from hubagent.scanning.codes import interpret
        out["scan"] = interpret(b"4006381333931").kind.name
    out["after"] = loaded()
    await app.stop()
    print(json.dumps(out))

asyncio.run(main())
"""


def _run(tmp_path: Path, then: str) -> dict[str, object]:
    out = subprocess.run([sys.executable, "-P", "-c", _PROGRAM, str(tmp_path / "state"), then],
                         check=True, capture_output=True, text=True, timeout=120)
    result: dict[str, object] = json.loads(out.stdout.strip().splitlines()[-1])
    return result


def test_a_started_sim_hub_has_not_imported_biip_or_pillow(tmp_path: Path) -> None:
    result = _run(tmp_path, "nothing")
    assert result["started"] == []
    assert result["after"] == []


def test_the_first_scan_loads_biip_and_reads_the_code(tmp_path: Path) -> None:
    result = _run(tmp_path, "scan")
    assert result["started"] == []
    assert result["scan"] == "GTIN"
    assert result["after"] == ["biip"]
