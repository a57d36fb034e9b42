"""Camera barcode scanner: OpenCV capture, zbar (or zxing-cpp) decoding.

One thread reads frames from ``cv2.VideoCapture(source)`` (a camera index,
a video file or a stream URL), at most ``max_fps`` per second (it sleeps
until the next frame slot on a ``threading.Event``, never spins), crops the
region of interest, downscales, converts to grey and decodes. A code held
in front of the camera is reported once: :class:`Deduper` suppresses a value
seen again within ``dedupe_s`` of its last sighting.

Time for the dedupe window is the media clock for files (so a recorded
video behaves the same however fast it is decoded) and the monotonic clock
for live cameras and streams. A file that ends is reported (OFFLINE, "end of
stream") and the thread stops; a live camera that fails is reopened with
capped exponential backoff.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Callable

import cv2
import msgspec

from hubagent.devicekit import ThreadedDevice
from hubagent.errors import InputError
from hubagent.events import Health, RawScan
from hubagent.ports import DeviceEnv
from hubagent.scanning.settings import CameraScannerSettings

log = logging.getLogger(__name__)

ROLE = "scanners"
MIN_FPS, MAX_FPS = 0.1, 120.0


class Decoded(msgspec.Struct, frozen=True):
    """One code found in a frame."""

    data: bytes
    symbology: str


class FrameDecoder:
    """Crop, shrink, grey and decode one frame (the camera's decode path)."""

    def __init__(self, decoder: str = "zbar", roi: list[int] | None = None, downscale: float = 1.0) -> None:
        """Prepare the decoder library (imported here, not at module import)."""
        self._roi = tuple(roi) if roi else None
        self._downscale = downscale
        self._decode: Callable[[Any], list[Decoded]]
        if decoder == "zbar":
            self._decode = _zbar_decoder()
        elif decoder == "zxing":
            self._decode = _zxing_decoder()
        else:
            raise ValueError(f"unknown decoder {decoder!r} (zbar, zxing)")

    def prepare(self, frame: Any) -> Any:
        """The grey, cropped, downscaled image that is decoded."""
        if self._roi is not None:
            x, y, w, h = self._roi
            frame = frame[y:y + h, x:x + w]
            if frame.size == 0:
                raise InputError("bad_roi", f"roi {list(self._roi)} is outside the frame")
        if self._downscale > 1.0:
            height, width = frame.shape[:2]
            size = (max(1, int(width / self._downscale)), max(1, int(height / self._downscale)))
            frame = cv2.resize(frame, size, interpolation=cv2.INTER_AREA)
        if frame.ndim == 3:
            frame = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
        return frame

    def decode(self, frame: Any) -> list[Decoded]:
        """Every code in ``frame`` (a BGR or grey numpy image)."""
        return self._decode(self.prepare(frame))


def _zbar_decoder() -> Callable[[Any], list[Decoded]]:
    """pyzbar: 1D codes and QR; symbology is zbar's type name (``QRCODE``, ``EAN13``)."""
    from pyzbar import pyzbar

    def decode(grey: Any) -> list[Decoded]:
        return [Decoded(r.data, r.type) for r in pyzbar.decode(grey)]

    return decode


def _zxing_decoder() -> Callable[[Any], list[Decoded]]:
    """zxing-cpp: also DataMatrix; symbology is the AIM identifier (``]d2``)."""
    import zxingcpp

    def decode(grey: Any) -> list[Decoded]:
        found = zxingcpp.read_barcodes(grey, text_mode=zxingcpp.TextMode.Plain)
        return [Decoded(bytes(r.bytes), r.symbology_identifier or str(r.format)) for r in found if r.valid]

    return decode


class Deduper:
    """Report a value once while it stays in view.

    A value is suppressed if it was last seen at most ``window_s`` ago;
    every sighting (reported or not) refreshes its time, so a code held in
    front of the camera for a minute counts once, and counts again only
    after it has been out of view for longer than the window.
    """

    def __init__(self, window_s: float) -> None:
        """Suppress repeats within ``window_s`` seconds."""
        self._window = window_s
        self._last_seen: dict[bytes, float] = {}

    def admit(self, value: bytes, now: float) -> bool:
        """Record a sighting at ``now``; True if it should be reported."""
        last = self._last_seen.get(value)
        self._last_seen[value] = now
        if len(self._last_seen) > 256:
            self._forget_before(now - self._window)
        return last is None or now - last > self._window

    def _forget_before(self, cutoff: float) -> None:
        """Drop values not seen since ``cutoff`` (keeps memory bounded)."""
        self._last_seen = {v: t for v, t in self._last_seen.items() if t >= cutoff}


class CameraScanner(ThreadedDevice):
    """A camera (or video file / stream) as a scanner; delivers RawScan events."""

    role = ROLE

    def __init__(self, name: str, settings: CameraScannerSettings, env: DeviceEnv) -> None:
        """Remember the settings; opens nothing."""
        self.name = name
        self._init_worker(ROLE, f"camera-{name}")
        self.settings = settings
        self.env = env
        self.feedback = settings.feedback
        self._max_fps = settings.max_fps
        self._is_file = isinstance(settings.source, str) and "://" not in settings.source
        self.frames_read = 0
        """Frames read so far (for status and benchmarks)."""

    # --- Device protocol -------------------------------------------------

    def close(self) -> None:
        """Stop the capture thread and release the camera. Idempotent; never raises."""
        self._stop_worker()
        if self.status().health is not Health.OFFLINE:
            self._set_status(Health.OFFLINE, "closed", report=False)

    def set_max_fps(self, fps: float) -> None:
        """Change the frame-rate cap now (the power policy slows it on battery)."""
        if not isinstance(fps, (int, float)) or not MIN_FPS <= fps <= MAX_FPS:
            raise InputError("bad_fps", f"max_fps must be between {MIN_FPS} and {MAX_FPS}, not {fps!r}")
        self._max_fps = float(fps)

    @property
    def max_fps(self) -> float:
        """The current frame-rate cap."""
        return self._max_fps

    # --- capture thread --------------------------------------------------

    def _run(self) -> None:
        """Open, capture until failure or end of file, reopen cameras with backoff."""
        try:
            decoder = FrameDecoder(self.settings.decoder, self.settings.roi, self.settings.downscale)
        except ImportError as err:
            self._set_status(Health.FAULTED, f"decoder {self.settings.decoder} not installed: {err}")
            return
        delay = self.settings.reopen_initial_s
        while not self._stop.is_set():
            capture = self._open()
            if capture is not None:
                delay = self.settings.reopen_initial_s
                try:
                    ended = self._capture(capture, decoder)
                finally:
                    capture.release()
                if ended:
                    return
            if self._is_file:
                return  # a file that cannot be opened will not appear by waiting
            self._stop.wait(delay)
            delay = min(delay * 2, self.settings.reopen_max_s)

    def _open(self) -> Any:
        """Open the source, or report why not and return None."""
        source = self.settings.source
        capture = cv2.VideoCapture(source)
        if not capture.isOpened():
            capture.release()
            self._set_status(Health.OFFLINE, f"cannot open video source {source!r}")
            return None
        if not self._is_file:
            capture.set(cv2.CAP_PROP_FRAME_WIDTH, self.settings.width)
            capture.set(cv2.CAP_PROP_FRAME_HEIGHT, self.settings.height)
            # Keep only the newest frame: we read slower than the camera delivers.
            capture.set(cv2.CAP_PROP_BUFFERSIZE, 1)
        self._set_status(Health.OK, f"capturing {source!r} with {self.settings.decoder}")
        return capture

    def _capture(self, capture: Any, decoder: FrameDecoder) -> bool:
        """Read and decode frames; True at the end of a file, False on a camera failure."""
        dedupe = Deduper(self.settings.dedupe_s)
        next_slot = time.monotonic()
        while not self._stop.is_set():
            wait = next_slot - time.monotonic()
            if wait > 0 and self._stop.wait(wait):
                break
            next_slot = max(next_slot + 1.0 / self._max_fps, time.monotonic())
            ok, frame = capture.read()
            if not ok or frame is None:
                return self._source_ended()
            self.frames_read += 1
            now = capture.get(cv2.CAP_PROP_POS_MSEC) / 1000.0 if self._is_file else time.monotonic()
            self._decode_frame(decoder, dedupe, frame, now)
        return True

    def _source_ended(self) -> bool:
        """Report the end of a file or the failure of a camera."""
        if self._is_file:
            self._set_status(Health.OFFLINE, f"end of stream after {self.frames_read} frames")
            return True
        self._set_status(Health.FAULTED, "camera stopped delivering frames")
        return False

    def _decode_frame(self, decoder: FrameDecoder, dedupe: Deduper, frame: Any, now: float) -> None:
        """Decode one frame and report new codes; a bad frame is logged, not fatal."""
        try:
            found = decoder.decode(frame)
        except Exception:  # noqa: BLE001 - one bad frame must not stop the camera
            log.exception("%s: frame not decodable", self.name)
            return
        for code in found:
            if code.data and dedupe.admit(code.data, now):
                self._emit(RawScan(self.name, code.data, code.symbology))
