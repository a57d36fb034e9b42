"""CameraScanner on real video files (MJPG .avi, 640x480) read through cv2.VideoCapture."""

from __future__ import annotations

import io
import queue
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import segno
from barcode import get as get_barcode
from barcode.writer import ImageWriter
from PIL import Image

from hubagent.drivers.camera_scanner import CameraScanner, Deduper
from hubagent.errors import InputError
from hubagent.events import DeviceHealthChanged, Health, RawScan
from hubagent.ports import DeviceEnv
from hubagent.scanning.codes import ScanKind, interpret
from hubagent.scanning.settings import CameraScannerSettings

FPS = 10  # media frame rate of the generated videos: 10 frames = 1 s of media time
SIZE = (640, 480)


def on_canvas(img: Image.Image, angle: float = 0, at: tuple[int, int] | None = None) -> np.ndarray:
    """A 640x480 BGR frame with ``img`` (optionally rotated) on white."""
    img = img.convert("L")
    if angle:
        img = img.rotate(angle, expand=True, fillcolor=255)
    canvas = Image.new("L", SIZE, 255)
    pos = at or ((SIZE[0] - img.width) // 2, (SIZE[1] - img.height) // 2)
    canvas.paste(img, pos)
    return cv2.cvtColor(np.array(canvas), cv2.COLOR_GRAY2BGR)


def qr(text: str, scale: int = 6) -> Image.Image:
    buf = io.BytesIO()
    segno.make_qr(text).save(buf, kind="png", scale=scale, border=4)
    buf.seek(0)
    return Image.open(buf)


def linear(kind: str, text: str) -> Image.Image:
    code = get_barcode(kind, text, writer=ImageWriter())
    return code.render({"module_width": 0.3, "module_height": 12, "quiet_zone": 6.5,
                        "dpi": 150, "write_text": False})


def datamatrix_gs1(hri: str) -> Image.Image:
    import zxingcpp

    symbol = zxingcpp.create_barcode(hri, zxingcpp.BarcodeFormat.DataMatrix, gs1=True)
    return Image.fromarray(np.array(zxingcpp.write_barcode_to_image(symbol, scale=8)))


BLANK = on_canvas(Image.new("L", (10, 10), 255))


def write_video(path: Path, segments: list[tuple[np.ndarray, int]]) -> Path:
    """Write (frame, repeat) segments as an MJPG .avi at FPS."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), FPS, SIZE)
    assert writer.isOpened()
    for frame, repeat in segments:
        for _ in range(repeat):
            writer.write(frame)
    writer.release()
    return path


def run(path: Path, tmp_path: Path, **settings: Any) -> tuple[list[RawScan], CameraScanner]:
    """Play a file through the scanner until end of stream; return its scans."""
    settings.setdefault("max_fps", 120)
    dev = CameraScanner("cam", CameraScannerSettings(source=str(path), **settings), DeviceEnv("hub", tmp_path))
    q: queue.Queue = queue.Queue()
    dev.start(q.put)
    scans: list[RawScan] = []
    try:
        while True:
            event = q.get(timeout=30)
            if isinstance(event, RawScan):
                scans.append(event)
            elif isinstance(event, DeviceHealthChanged) and event.status.health is not Health.OK:
                assert "end of stream" in event.status.detail
                break
    finally:
        dev.close()
    return scans, dev


def test_qr_code128_ean13_and_rotated_qr_are_decoded(tmp_path: Path) -> None:
    video = write_video(tmp_path / "mix.avi", [
        (on_canvas(qr("HA:BIN:A-01")), 3), (BLANK, 2),
        (on_canvas(linear("code128", "ABC-123")), 3), (BLANK, 2),
        (on_canvas(linear("ean13", "400638133393")), 3), (BLANK, 2),
        (on_canvas(qr("HA:PCL:P-77"), angle=30), 3),
    ])
    scans, dev = run(video, tmp_path)
    assert [(s.data, s.symbology) for s in scans] == [
        (b"HA:BIN:A-01", "QRCODE"), (b"ABC-123", "CODE128"),
        (b"4006381333931", "EAN13"), (b"HA:PCL:P-77", "QRCODE")]
    assert [interpret(s.data, s.symbology).kind for s in scans] == [
        ScanKind.BIN, ScanKind.SKU, ScanKind.GTIN, ScanKind.PARCEL]
    assert dev.status().health is Health.OFFLINE
    assert dev.frames_read == 18


def test_code_held_counts_once_and_again_after_leaving_longer_than_window(tmp_path: Path) -> None:
    code = on_canvas(qr("HA:BIN:HOLD"))
    video = write_video(tmp_path / "hold.avi", [
        (code, 30),        # held 3 s: once
        (BLANK, 10),       # away 1 s (< 2 s window): still the same sighting
        (code, 5),
        (BLANK, 30),       # away 3 s (> window): counts again
        (code, 5),
    ])
    scans, _ = run(video, tmp_path, dedupe_s=2.0)
    assert [s.data for s in scans] == [b"HA:BIN:HOLD", b"HA:BIN:HOLD"]


def test_roi_excluding_the_code_sees_nothing_and_downscale_still_reads(tmp_path: Path) -> None:
    video = write_video(tmp_path / "corner.avi", [(on_canvas(qr("HA:DONE", scale=5), at=(380, 220)), 3)])
    scans, _ = run(video, tmp_path, roi=[0, 0, 300, 200])
    assert scans == []
    scans, _ = run(video, tmp_path, roi=[320, 200, 320, 280], downscale=1.5)
    assert [s.data for s in scans] == [b"HA:DONE"]


def test_gs1_datamatrix_with_zxing(tmp_path: Path) -> None:
    dm = datamatrix_gs1("(01)09506000134352(17)270630(10)B42(21)SN1")
    video = write_video(tmp_path / "dm.avi", [(on_canvas(dm), 3)])
    scans, _ = run(video, tmp_path, decoder="zxing")
    assert len(scans) == 1 and scans[0].symbology == "]d2"
    scan = interpret(scans[0].data, scans[0].symbology)
    assert (scan.gtin, scan.lot, scan.serial) == ("09506000134352", "B42", "SN1")


def test_missing_file_is_reported_and_thread_stops(tmp_path: Path) -> None:
    dev = CameraScanner("cam", CameraScannerSettings(source=str(tmp_path / "none.avi")), DeviceEnv("h", tmp_path))
    q: queue.Queue = queue.Queue()
    dev.start(q.put)
    event = q.get(timeout=10)
    assert isinstance(event, DeviceHealthChanged) and event.status.health is Health.OFFLINE
    dev.close()
    dev.close()


def test_set_max_fps_validates(tmp_path: Path) -> None:
    dev = CameraScanner("cam", CameraScannerSettings(source="x.avi"), DeviceEnv("h", tmp_path))
    dev.set_max_fps(2.5)
    assert dev.max_fps == 2.5
    for bad in (0, -1, 1000, float("nan")):
        with pytest.raises(InputError):
            dev.set_max_fps(bad)
    dev.close()


def test_deduper_window_semantics() -> None:
    d = Deduper(2.0)
    assert d.admit(b"A", 0.0)
    assert not d.admit(b"A", 1.9)
    assert not d.admit(b"A", 3.8)   # refreshed at 1.9, so still within the window
    assert d.admit(b"B", 3.9)
    assert d.admit(b"A", 6.0)       # away for more than 2 s


@pytest.mark.parametrize("bad", [
    {"source": -1}, {"source": " "}, {"roi": [0, 0, 4, 4]}, {"roi": [1, 2, 3]},
    {"decoder": "opencv"}, {"max_fps": 0}, {"downscale": 0.5}, {"colour": True},
])
def test_bad_settings_are_refused(bad: dict) -> None:
    import msgspec

    with pytest.raises(msgspec.ValidationError):
        msgspec.convert(bad, CameraScannerSettings, strict=True)


def test_bench_camera_compares_paths_on_the_same_frames(tmp_path: Path) -> None:
    from hubagent.bench.camera import bench_camera

    video = write_video(tmp_path / "bench.avi", [(on_canvas(qr("HA:BIN:B-1")), 2), (BLANK, 1)])
    result = bench_camera(video, min_seconds=0.01)
    assert result["frames"] == 3 and result["size"] == "640x480"
    assert result["scanner_codes_per_pass"] == result["raw_codes_per_pass"] == 2
    assert result["scanner_fps"] > 0 and result["raw_pyzbar_fps"] > 0
    small = [cv2.resize(on_canvas(qr("X-1")), (320, 240))]
    assert bench_camera(small, min_seconds=0.01)["raw_codes_per_pass"] == 1
    with pytest.raises(ValueError):
        bench_camera(tmp_path / "missing.avi")


def test_core_scanning_modules_import_no_hardware_library() -> None:
    import subprocess
    import sys

    code = ("import sys, hubagent.scanning.settings, hubagent.scanning.codes, "
            "hubagent.scanning.framing; "
            "bad = {'cv2', 'pyzbar', 'zxingcpp', 'serial', 'evdev', 'gpiozero', 'PIL'} & set(sys.modules); "
            "print(sorted(bad)); sys.exit(1 if bad else 0)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
