"""Scanning benchmarks: scan-to-feedback latency and camera decode rate.

Latency is measured through the daemon's own code path: an in-process
:class:`~hubagent.app.App` (temporary state directory, a simulated scanner
on a real pseudo-terminal running the production serial read loop, a
simulated feedback device) on an asyncio loop in a background thread. Each
sample runs from just before the code's bytes are written to the pty until
the feedback device records the pattern, which happens after the scan's
transaction (a receive movement, fsynced) has committed.

Camera decode rate compares the camera scanner's decode path with a bare
pyzbar loop on the same generated 640x480 frames
(:func:`hubagent.bench.camera.bench_camera`). OpenCV is imported only here.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from hubagent.bench.corethread import CoreThread
from hubagent.bench.rows import Row, percentile
from hubagent.clock import SYSTEM

LATENCY_TARGET_S = 0.010
FPS_RATIO_TARGET = 0.9
FEEDBACK_TIMEOUT_S = 5.0


def _bench_app(state: Path, samples: int) -> Any:
    from hubagent.app import build_app
    from hubagent.config import from_dict

    return build_app(from_dict({
        "hub": {"id": "bench", "state_dir": str(state)},
        "scanners": {"bench": {"driver": "sim", "feedback": "bench"}},
        "feedback": {"bench": {"driver": "sim", "history": min(10000, samples + 10)}},
        "scanning": {"dedupe_s": 0.0},
    }, "<bench>"))


def _one(scanner: Any, feedback: Any, code: str) -> float:
    """Seconds from writing ``code`` to the pty until feedback was recorded."""
    seen = len(feedback.history())
    started = SYSTEM.time()
    scanner.sim_command("scan", {"code": code})
    deadline = SYSTEM.monotonic() + FEEDBACK_TIMEOUT_S
    while True:
        history = feedback.history()
        if len(history) > seen:
            return float(history[seen][0]) - started
        if SYSTEM.monotonic() > deadline:
            raise TimeoutError(f"no feedback for {code!r} within {FEEDBACK_TIMEOUT_S} s")
        time.sleep(0.0002)  # measuring only: the sample is the device's own timestamp


def scan_latency(samples: int) -> list[float]:
    """Scan-to-feedback seconds for ``samples`` receive scans (see module docstring)."""
    with tempfile.TemporaryDirectory(prefix="hubagent-bench-") as tmp:
        app = _bench_app(Path(tmp), samples)
        core = CoreThread(app)
        try:
            items = [{"sku": "BENCH-A", "name": "A"}, {"sku": "BENCH-B", "name": "B"}]
            reply = core.call(lambda: app.commands.handle(
                "catalog.upsert", json.dumps({"id": "bench", "items": items}).encode(), "local"))
            if not reply.get("ok"):
                raise RuntimeError(f"catalog for the benchmark refused: {reply}")
            scanner, feedback = app.device("scanners", "bench"), app.device("feedback", "bench")
            for code in ("HA:MODE:RECEIVE", "HA:BIN:BENCH-1"):
                _one(scanner, feedback, code)
            return [_one(scanner, feedback, ("BENCH-A", "BENCH-B")[i % 2]) for i in range(samples)]
        finally:
            core.close()


def _video(path: Path) -> Path:
    """A short 640x480 MJPG video: frames with a QR code, every third one blank."""
    import cv2
    import numpy as np

    symbol = cv2.QRCodeEncoder.create().encode("HA:BIN:BENCH-1")
    symbol = cv2.resize(symbol, (symbol.shape[1] * 6, symbol.shape[0] * 6), interpolation=cv2.INTER_NEAREST)
    frame = np.full((480, 640), 255, dtype=np.uint8)
    y, x = (480 - symbol.shape[0]) // 2, (640 - symbol.shape[1]) // 2
    frame[y:y + symbol.shape[0], x:x + symbol.shape[1]] = symbol
    coded = cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR)
    blank = np.full((480, 640, 3), 255, dtype=np.uint8)
    writer = cv2.VideoWriter(os.fspath(path), cv2.VideoWriter.fourcc(*"MJPG"), 10.0, (640, 480))
    if not writer.isOpened():
        raise RuntimeError("OpenCV cannot write an MJPG video here")
    for i in range(30):
        writer.write(coded if i % 3 else blank)
    writer.release()
    return path


def camera_rows(quick: bool) -> list[Row]:
    """Decode fps of the camera path vs raw pyzbar on the same frames."""
    from hubagent.bench.camera import bench_camera

    with tempfile.TemporaryDirectory(prefix="hubagent-bench-") as tmp:
        result = bench_camera(_video(Path(tmp) / "bench.avi"), min_seconds=0.5 if quick else 2.0)
    ratio = result["ratio"] or 0.0
    note = (f"{result['frames']} frames {result['size']}; codes per pass "
            f"{result['scanner_codes_per_pass']} vs {result['raw_codes_per_pass']}")
    return [
        Row(name="camera decode, scanner path", value=result["scanner_fps"], unit="fps", met=None,
            note=note),
        Row(name="camera decode, raw pyzbar", value=result["raw_pyzbar_fps"], unit="fps", met=None),
        Row(name="camera decode, scanner / raw", value=ratio, unit="ratio",
            target=f">= {FPS_RATIO_TARGET}", met=ratio >= FPS_RATIO_TARGET),
    ]


def bench(quick: bool) -> list[Row]:
    """Scan-to-feedback latency p50/p99 and camera decode fps (``hubagent bench``)."""
    n = 60 if quick else 300
    samples = scan_latency(n)
    p50, p99 = percentile(samples, 50), percentile(samples, 99)
    note = f"{n} receive scans, pty write to feedback, each one committed (fsync) first"
    rows = [
        Row(name="scan to feedback, p50", value=p50 * 1000, unit="ms", target="-", met=None, note=note),
        Row(name="scan to feedback, p99", value=p99 * 1000, unit="ms",
            target=f"< {LATENCY_TARGET_S * 1000:.0f} ms", met=p99 < LATENCY_TARGET_S),
    ]
    return rows + camera_rows(quick)
