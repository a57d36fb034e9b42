"""Benchmark of the camera scanner's decode path (for ``hubagent bench``).

Measures decoded frames per second at 640x480 through
:class:`~hubagent.drivers.camera_scanner.FrameDecoder` (crop, downscale,
grey, decode: what the camera thread does per frame) against a bare
``pyzbar.decode`` loop on the same frames, so the overhead of our path and
the effect of ``downscale``/``roi`` are visible. OpenCV and pyzbar are
imported only when the benchmark runs.
"""

from __future__ import annotations

import os
import time
from typing import Any

BENCH_SIZE = (640, 480)
"""Frames are resized to this before timing (the hub's default capture size)."""


def bench_camera(frames: list[Any] | str | os.PathLike[str], *, decoder: str = "zbar",
                 downscale: float = 1.0, roi: list[int] | None = None,
                 max_frames: int = 300, min_seconds: float = 1.0) -> dict[str, Any]:
    """Decode FPS of the camera decode path vs raw pyzbar on the same frames.

    ``frames`` is a list of BGR/grey numpy images or the path of a video
    file (read with ``cv2.VideoCapture``, at most ``max_frames``). Each path
    is run over the frames repeatedly for at least ``min_seconds``.
    Returns frames, fps of both paths, their ratio and the codes found per
    pass (equal counts mean the paths agree).
    """
    import cv2

    from hubagent.drivers.camera_scanner import FrameDecoder

    images = _load(frames, max_frames, cv2)
    if not images:
        raise ValueError("no frames to benchmark")
    ours = FrameDecoder(decoder, roi, downscale)
    ours_fps, ours_found = _time(lambda img: len(ours.decode(img)), images, min_seconds)
    raw = _raw_pyzbar(cv2)
    raw_fps, raw_found = _time(raw, images, min_seconds)
    return {
        "frames": len(images),
        "size": f"{BENCH_SIZE[0]}x{BENCH_SIZE[1]}",
        "decoder": decoder,
        "downscale": downscale,
        "roi": roi,
        "scanner_fps": round(ours_fps, 2),
        "raw_pyzbar_fps": round(raw_fps, 2),
        "ratio": round(ours_fps / raw_fps, 3) if raw_fps else None,
        "scanner_codes_per_pass": ours_found,
        "raw_codes_per_pass": raw_found,
    }


def _load(frames: list[Any] | str | os.PathLike[str], max_frames: int, cv2: Any) -> list[Any]:
    """Frames as 640x480 images."""
    if isinstance(frames, (str, os.PathLike)):
        capture = cv2.VideoCapture(os.fspath(frames))
        if not capture.isOpened():
            raise ValueError(f"cannot open video {os.fspath(frames)!r}")
        images: list[Any] = []
        try:
            while len(images) < max_frames:
                ok, frame = capture.read()
                if not ok:
                    break
                images.append(frame)
        finally:
            capture.release()
    else:
        images = list(frames)[:max_frames]
    return [img if (img.shape[1], img.shape[0]) == BENCH_SIZE else cv2.resize(img, BENCH_SIZE)
            for img in images]


def _raw_pyzbar(cv2: Any) -> Any:
    """The baseline: grey conversion (pyzbar needs it too) and pyzbar.decode."""
    from pyzbar import pyzbar

    def decode(img: Any) -> int:
        grey = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY) if img.ndim == 3 else img
        return len(pyzbar.decode(grey))

    return decode


def _time(decode: Any, images: list[Any], min_seconds: float) -> tuple[float, int]:
    """Frames per second over whole passes lasting at least ``min_seconds``."""
    found_first_pass = sum(decode(img) for img in images)  # also warms up
    done, started = 0, time.perf_counter()
    while True:
        for img in images:
            decode(img)
        done += len(images)
        elapsed = time.perf_counter() - started
        if elapsed >= min_seconds:
            return done / elapsed, found_first_pass
