"""USB keyboard-wedge scanner read through the Linux input layer (evdev).

A keyboard-wedge scanner "types" each code followed by Enter. The reader
thread takes the device exclusively (``grab``) so scans do not also land on
the console, waits for key events with ``select`` (timeout, so ``close()``
is prompt) and hands them to :class:`KeyDecoder`, which is pure and knows
the keyboard layouts. Unplug is reported and the device reopened with
capped exponential backoff, like the serial scanner.
"""

from __future__ import annotations

import logging
import select

import evdev
from evdev import ecodes as e

from hubagent.devicekit import ThreadedDevice
from hubagent.errors import InputError
from hubagent.events import (
    Health,
    RawScan,
    ScanRejectedAtDevice,
)
from hubagent.ports import DeviceEnv
from hubagent.scanning.settings import HidScannerSettings

log = logging.getLogger(__name__)

ROLE = "scanners"
POLL_TIMEOUT_S = 0.25
"""How long one select() waits; bounds how long close() takes."""

KEY_DOWN, KEY_HOLD = 1, 2
GS = "\x1d"

# Each layout: key code -> (plain, shifted, AltGr). "\0" or "" means the key
# types nothing we accept (dead keys such as ^ on a German keyboard).
_Keys = dict[int, tuple[str, str, str]]

_LETTERS = "abcdefghijklmnopqrstuvwxyz"


def _letters(swaps: dict[str, str]) -> _Keys:
    """Letter keys by their US position, with a layout's swaps (QWERTZ, AZERTY)."""
    keys: _Keys = {}
    for letter in _LETTERS:
        typed = swaps.get(letter, letter)
        keys[getattr(e, f"KEY_{letter.upper()}")] = (typed, typed.upper(), "")
    return keys


def _row(codes: list[int], plain: str, shifted: str) -> _Keys:
    """Zip a row of key codes with its plain and shifted characters."""
    return {c: (p, s, "") for c, p, s in zip(codes, plain, shifted, strict=True)}


_DIGIT_KEYS = [e.KEY_1, e.KEY_2, e.KEY_3, e.KEY_4, e.KEY_5, e.KEY_6, e.KEY_7, e.KEY_8, e.KEY_9, e.KEY_0]
_PUNCT_KEYS = [e.KEY_MINUS, e.KEY_EQUAL, e.KEY_LEFTBRACE, e.KEY_RIGHTBRACE, e.KEY_SEMICOLON,
               e.KEY_APOSTROPHE, e.KEY_GRAVE, e.KEY_BACKSLASH, e.KEY_COMMA, e.KEY_DOT, e.KEY_SLASH,
               e.KEY_102ND]

_COMMON: _Keys = {
    e.KEY_SPACE: (" ", " ", ""),
    e.KEY_KP0: ("0", "0", ""), e.KEY_KP1: ("1", "1", ""), e.KEY_KP2: ("2", "2", ""),
    e.KEY_KP3: ("3", "3", ""), e.KEY_KP4: ("4", "4", ""), e.KEY_KP5: ("5", "5", ""),
    e.KEY_KP6: ("6", "6", ""), e.KEY_KP7: ("7", "7", ""), e.KEY_KP8: ("8", "8", ""),
    e.KEY_KP9: ("9", "9", ""), e.KEY_KPMINUS: ("-", "-", ""), e.KEY_KPPLUS: ("+", "+", ""),
    e.KEY_KPASTERISK: ("*", "*", ""), e.KEY_KPSLASH: ("/", "/", ""), e.KEY_KPDOT: (".", ".", ""),
}


def _layout(letters: _Keys, digits: tuple[str, str], punct: tuple[str, str], altgr: dict[int, str]) -> _Keys:
    """Assemble one layout table."""
    keys = dict(_COMMON)
    keys.update(letters)
    keys.update(_row(_DIGIT_KEYS, *digits))
    keys.update(_row(_PUNCT_KEYS, *punct))
    for code, char in altgr.items():
        plain, shifted, _ = keys.get(code, ("", "", ""))
        keys[code] = (plain, shifted, char)
    return keys


LAYOUTS: dict[str, _Keys] = {
    "us": _layout(_letters({}), ("1234567890", "!@#$%^&*()"),
                  ("-=[];'`\\,./<", "_+{}:\"~|<>?>"), {}),
    "uk": _layout(_letters({}), ("1234567890", "!\"£$%^&*()"),
                  ("-=[];'`#,./\\", "_+{}:@¬~<>?|"), {e.KEY_4: "€"}),
    # German QWERTZ: ´ and ^ are dead keys ("" below).
    "de": _layout(_letters({"y": "z", "z": "y"}), ("1234567890", "!\"§$%&/()="),
                  ("ß\0ü+öä\0#,.-<", "?\0Ü*ÖÄ°';:_>"),
                  {e.KEY_Q: "@", e.KEY_7: "{", e.KEY_8: "[", e.KEY_9: "]", e.KEY_0: "}",
                   e.KEY_MINUS: "\\", e.KEY_RIGHTBRACE: "~", e.KEY_102ND: "|", e.KEY_E: "€",
                   e.KEY_M: "µ"}),
    # French AZERTY: digits need Shift; ^ and ¨ are dead keys.
    "fr": _layout(_letters({"q": "a", "a": "q", "w": "z", "z": "w", "m": ","}),
                  ("&é\"'(-è_çà", "1234567890"),
                  (")=\0$mù²*;:!<", "°+\0£M%\0µ./§>"),
                  {e.KEY_3: "#", e.KEY_4: "{", e.KEY_5: "[", e.KEY_6: "|", e.KEY_8: "\\",
                   e.KEY_9: "^", e.KEY_0: "@", e.KEY_MINUS: "]", e.KEY_EQUAL: "}", e.KEY_E: "€"}),
}
"""Supported layouts: key code -> (plain, shifted, AltGr)."""

# French AZERTY: the M key sits where US has ";", and the US "M" key types ",".
LAYOUTS["fr"][e.KEY_M] = (",", "?", "")

_SHIFT = {e.KEY_LEFTSHIFT, e.KEY_RIGHTSHIFT}
_CTRL = {e.KEY_LEFTCTRL, e.KEY_RIGHTCTRL}
_ENTER = {e.KEY_ENTER, e.KEY_KPENTER}


class KeyDecoder:
    """Turns key events into lines of text, as the scanner's keyboard layout types them.

    Pure: no device, no clock. Only key-down events type (auto-repeat and
    key-up are ignored); Shift/AltGr/Ctrl are tracked from down and up
    events; Caps Lock toggles on its key-down and only affects letters.
    Enter ends a line. Ctrl+] types GS (0x1D), the usual way wedge scanners
    send the GS1 FNC1 separator.
    """

    def __init__(self, layout: str = "us", max_length: int = 512) -> None:
        """Decode for ``layout`` (see :data:`LAYOUTS`)."""
        if layout not in LAYOUTS:
            raise ValueError(f"unknown layout {layout!r} (known: {', '.join(sorted(LAYOUTS))})")
        self._keys = LAYOUTS[layout]
        self._max_length = max_length
        self._line: list[str] = []
        self._overflow = False
        self._shift: set[int] = set()
        self._ctrl: set[int] = set()
        self._altgr = False
        self._caps = False

    def feed(self, type_: int, code: int, value: int) -> str | None:
        """Take one input event; return the line when Enter completes one.

        Raises InputError("too_long") at Enter if the line exceeded
        ``max_length`` (the line is dropped and decoding resynchronises).
        """
        if type_ != e.EV_KEY:
            return None
        if self._modifier(code, value):
            return None
        if value != KEY_DOWN:
            return None
        if code in _ENTER:
            return self._finish()
        if code == e.KEY_CAPSLOCK:
            self._caps = not self._caps
            return None
        char = self._char(code)
        if char:
            self._type(char)
        return None

    def _modifier(self, code: int, value: int) -> bool:
        """Track modifier keys; True if ``code`` is one."""
        pressed = value != 0
        if code in _SHIFT:
            (self._shift.add if pressed else self._shift.discard)(code)
        elif code in _CTRL:
            (self._ctrl.add if pressed else self._ctrl.discard)(code)
        elif code == e.KEY_RIGHTALT:
            self._altgr = pressed
        else:
            return False
        return True

    def _char(self, code: int) -> str:
        """The character this key types now, or "" for none."""
        if self._ctrl:
            return GS if code == e.KEY_RIGHTBRACE else ""
        plain, shifted, alt = self._keys.get(code, ("", "", ""))
        if self._altgr:
            return alt
        char = shifted if self._shift else plain
        if self._caps and plain.isalpha() and len(plain) == 1:
            char = plain if self._shift else plain.upper()
        return "" if char == "\0" else char

    def _type(self, char: str) -> None:
        if len(self._line) >= self._max_length:
            self._overflow = True
            return
        self._line.append(char)

    def _finish(self) -> str | None:
        """End the line at Enter."""
        line, overflow = "".join(self._line), self._overflow
        self._line, self._overflow = [], False
        if overflow:
            raise InputError("too_long", f"more than {self._max_length} characters before Enter")
        return line or None


class HidScanner(ThreadedDevice):
    """A keyboard-wedge scanner; delivers RawScan / ScanRejectedAtDevice."""

    role = ROLE

    def __init__(self, name: str, settings: HidScannerSettings, env: DeviceEnv) -> None:
        """Remember the settings; opens nothing."""
        self.name = name
        self._init_worker(ROLE, f"hid-{name}")
        self.settings = settings
        self.env = env
        self.feedback = settings.feedback
    def close(self) -> None:
        """Stop the reader and release the device. Idempotent; never raises."""
        self._stop_worker()
        self._set_status(Health.OFFLINE, "closed", report=False)

    def _run(self) -> None:
        """Open, read until failure, wait with backoff, repeat until closed."""
        delay = self.settings.reopen_initial_s
        while not self._stop.is_set():
            device = self._open()
            if device is None:
                self._stop.wait(delay)
                delay = min(delay * 2, self.settings.reopen_max_s)
                continue
            delay = self.settings.reopen_initial_s
            try:
                self._read_until_failure(device)
            finally:
                _close_quietly(device)

    def _open(self) -> evdev.InputDevice | None:
        """Open (and grab) the device, or report why not."""
        try:
            device = evdev.InputDevice(self.settings.device)
        except OSError as err:
            self._set_status(Health.OFFLINE, f"cannot open {self.settings.device}: {err}")
            return None
        if self.settings.grab:
            try:
                device.grab()
            except OSError as err:
                # EBUSY: another program (or a console) holds it exclusively.
                device.close()
                self._set_status(Health.FAULTED, f"cannot grab {self.settings.device}: {err}")
                return None
        self._set_status(Health.OK, f"reading {device.name!r} ({self.settings.layout} layout)")
        return device

    def _read_until_failure(self, device: evdev.InputDevice) -> None:
        """Wait for events with select(); decode them; return on failure or close."""
        decoder = KeyDecoder(self.settings.layout, self.settings.max_length)
        while not self._stop.is_set():
            try:
                ready, _, _ = select.select([device.fd], [], [], POLL_TIMEOUT_S)
                events = list(device.read()) if ready else []
            except BlockingIOError:
                continue
            except OSError as err:
                self._set_status(Health.FAULTED, f"read failed: {err}")
                return
            for event in events:
                self._decode(decoder, event)

    def _decode(self, decoder: KeyDecoder, event: evdev.InputEvent) -> None:
        """Feed one event; emit a scan or a rejection when a line ends."""
        try:
            line = decoder.feed(event.type, event.code, event.value)
        except InputError as err:
            self._emit(ScanRejectedAtDevice(self.name, err.code, err.message))
            return
        if line is not None:
            self._emit(RawScan(self.name, line.encode("utf-8")))

def _close_quietly(device: evdev.InputDevice) -> None:
    """Ungrab and close; a vanished device may refuse both."""
    for action in (device.ungrab, device.close):
        try:
            action()
        except OSError:
            pass
