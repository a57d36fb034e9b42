"""USB keypad or touchscreen keyboard through the Linux input layer (evdev).

The device is grabbed so keystrokes never reach a console or a login
prompt. Characters are decoded by the scanner driver's
:class:`~hubagent.drivers.hid_scanner.KeyDecoder` (layouts, Shift, AltGr);
:class:`KeypadDecoder` adds what a keypad used by strangers needs: Esc and
Backspace clear the entry, an abandoned entry is dropped after
``idle_reset_s``, and Tab can be the terminator. Each code is sent as one
:class:`~hubagent.events.CodeEntered`.
"""

from __future__ import annotations

import enum
import logging
import os
import select
import threading
from typing import Any

from hubagent.devicekit import HealthReporter
from hubagent.drivers.hid_scanner import KeyDecoder
from hubagent.errors import DeviceError, InputError
from hubagent.events import CodeEntered, DeviceStatus, EventSink, Health
from hubagent.lockers.settings import HidKeypadSettings
from hubagent.ports import DeviceEnv

log = logging.getLogger(__name__)

ROLE = "keypads"

# Linux input codes (linux/input-event-codes.h, a fixed ABI).
EV_KEY = 1
KEY_ESC, KEY_BACKSPACE, KEY_TAB, KEY_ENTER, KEY_KPENTER = 1, 14, 15, 28, 96
_KEY_DOWN = 1  # 0 is up, 2 is auto-repeat
_CLEAR = frozenset({KEY_ESC, KEY_BACKSPACE})
_ENTER = frozenset({KEY_ENTER, KEY_KPENTER})


class KeypadDecoder:
    """Turns key events into whole codes. Pure; one per keypad.

    Backspace clears the whole entry rather than one key, because the
    shared KeyDecoder has no editing; a customer simply retypes the code.
    """

    def __init__(self, layout: str, max_length: int, terminator: str, idle_reset_s: float) -> None:
        """``terminator`` is "enter" (Enter or keypad Enter) or "tab"."""
        if terminator not in ("enter", "tab"):
            raise ValueError(f"unknown terminator {terminator!r}")
        self.layout = layout
        self.max_length = max_length
        self.terminator = terminator
        self.idle_reset_s = idle_reset_s
        self.rejected = 0
        """Entries dropped because they were longer than ``max_length``."""
        self._last_key_at: float | None = None
        self._decoder = KeyDecoder(layout, max_length)

    def feed(self, type_: int, code: int, value: int, at: float) -> str | None:
        """Take one input event (``at`` in seconds); the code when it ended one."""
        if type_ != EV_KEY:
            return None
        if value == _KEY_DOWN:
            if self._last_key_at is not None and at - self._last_key_at > self.idle_reset_s:
                self._reset()  # the previous person walked away mid-code
            self._last_key_at = at
            if code in _CLEAR:
                self._reset()
                return None
        if self.terminator == "tab":
            if code in _ENTER:
                return None
            if code == KEY_TAB:
                code = KEY_ENTER
        try:
            return self._decoder.feed(type_, code, value)
        except InputError:
            self.rejected += 1
            log.warning("keypad entry longer than %d keys dropped", self.max_length)
            return None

    def _reset(self) -> None:
        self._decoder = KeyDecoder(self.layout, self.max_length)


class _State(enum.Enum):
    NEW = "new"
    RUNNING = "running"
    CLOSED = "closed"


class HidKeypad(HealthReporter):
    """A :class:`~hubagent.ports.CodeInput` reading an evdev keyboard device."""

    def __init__(self, name: str, settings: HidKeypadSettings, env: DeviceEnv) -> None:
        """Remember the configuration; opens nothing."""
        self.name = name
        self._init_health(ROLE)
        self.settings = settings
        self.env = env
        self._lock = threading.Lock()
        self._state = _State.NEW
        self._stop = threading.Event()
        self._wake_r, self._wake_w = -1, -1
        self._thread: threading.Thread | None = None

    def start(self, sink: EventSink) -> None:
        """Start the reader thread; an absent device is reported OFFLINE and retried."""
        with self._lock:
            if self._state is not _State.NEW:
                raise DeviceError(f"keypad {self.name} already started")
            self._state, self._sink = _State.RUNNING, sink
            self._wake_r, self._wake_w = os.pipe()
            self._thread = threading.Thread(target=self._run, name=f"keypad-{self.name}", daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Stop reading and release the grab. Idempotent; never raises."""
        with self._lock:
            if self._state is _State.CLOSED:
                return
            started = self._state is _State.RUNNING
            self._state = _State.CLOSED
            self._status = DeviceStatus(Health.OFFLINE, "closed")
        self._stop.set()
        if not started:
            return
        try:
            os.write(self._wake_w, b"x")
        except OSError:
            pass
        if self._thread is not None:
            self._thread.join(timeout=2.0)
        for fd in (self._wake_r, self._wake_w):
            try:
                os.close(fd)
            except OSError:
                pass

    def _run(self) -> None:
        decoder = KeypadDecoder(self.settings.layout, self.settings.max_length,
                                self.settings.terminator, self.settings.idle_reset_s)
        while not self._stop.is_set():
            device = self._open()
            if device is None:
                if self._stop.wait(self.settings.retry_s):
                    return
                continue
            try:
                self._read(device, decoder)
            except OSError as e:  # unplugged: ENODEV
                self._set_status(Health.OFFLINE, f"read failed: {e}")
            finally:
                _close_device(device)

    def _open(self) -> Any | None:
        try:
            import evdev

            device = evdev.InputDevice(self.settings.device)
            if self.settings.grab:
                try:
                    device.grab()
                except OSError:
                    device.close()
                    raise
        except (OSError, ImportError) as e:
            self._set_status(Health.OFFLINE, f"cannot open {self.settings.device}: {e}")
            return None
        self._set_status(Health.OK, f"reading {self.settings.device}")
        return device

    def _read(self, device: Any, decoder: KeypadDecoder) -> None:
        while not self._stop.is_set():
            readable, _, _ = select.select([device.fd, self._wake_r], [], [])
            if self._wake_r in readable:
                return
            try:
                events = list(device.read())
            except BlockingIOError:
                continue
            for ev in events:
                code = decoder.feed(ev.type, ev.code, ev.value, ev.timestamp())
                if code is not None:
                    self._emit(CodeEntered(self.name, code))

    def _set_status(self, health: Health, detail: str, *, report: bool = True) -> None:
        if self._state is _State.CLOSED:
            return
        if health is not Health.OK and self.status().detail != detail:
            log.warning("keypad %s: %s", self.name, detail)
        super()._set_status(health, detail, report=report)


def _close_device(device: Any) -> None:
    for action in (device.ungrab, device.close):
        try:
            action()
        except Exception:  # already gone with the unplugged device
            pass
