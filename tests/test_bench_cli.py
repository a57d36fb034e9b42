"""``hubagent bench`` as a user runs it: from any directory, with ``--json``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path


def test_bench_runs_beside_a_folder_named_hubagent_and_reports_json(tmp_path: Path) -> None:
    # A checkout's parent, or any folder holding one, must not shadow the installed package.
    (tmp_path / "hubagent").mkdir()
    (tmp_path / "hubagent" / "__init__.py").write_text("raise SystemExit('the wrong hubagent')\n")
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    # The console script, as a user types it (``python -m`` would itself put the
    # current directory first on sys.path).
    script = Path(sys.executable).with_name("hubagent")
    out = subprocess.run([str(script), "bench", "--only", "writes", "--quick", "--json"],
                         cwd=tmp_path, capture_output=True, text=True, timeout=300, env=env)
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    rows = {r["name"]: r for r in report["benchmarks"]["writes"]["rows"]}
    frames = rows["one movement at a time: WAL frames"]
    assert frames["value"] > 1 and frames["target"] == "<= 5"
    # Read-only commands write nothing at all: measured, not assumed.
    reads = rows["read-only commands (ping, stock.get): bytes"]
    assert reads["value"] == 0 and reads["met"] is True
