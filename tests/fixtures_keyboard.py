"""A keyboard for the HID keypad driver on a machine without /dev/uinput."""

from __future__ import annotations

import errno
import os
import threading

from evdev import InputEvent, ecodes

DOWN, UP = 1, 0


class FakeKeyboard:
    """Stands in for ``evdev.InputDevice`` (this machine has no /dev/uinput).

    A real pipe provides the file descriptor the driver selects on, so the
    driver's own blocking read loop, grab and unplug handling all run.
    """

    opened: list["FakeKeyboard"] = []

    def __init__(self, path: str) -> None:
        if not os.path.exists(path):
            raise FileNotFoundError(errno.ENOENT, "No such file or directory", path)
        self.path = path
        self._r, self._w = os.pipe()
        os.set_blocking(self._r, False)
        self._events: list[InputEvent] = []
        self._lock = threading.Lock()
        self.unplugged = False
        self.grabbed = False
        self.closed = False
        FakeKeyboard.opened.append(self)

    @property
    def fd(self) -> int:
        """The descriptor the driver selects on."""
        return self._r

    def grab(self) -> None:
        """Take the device exclusively."""
        self.grabbed = True

    def ungrab(self) -> None:
        """Release the grab."""
        self.grabbed = False

    def close(self) -> None:
        """Close the device."""
        self.closed = True
        for fd in (self._r, self._w):
            os.close(fd)

    def read(self) -> list[InputEvent]:
        """The events typed since the last read (BlockingIOError when none)."""
        os.read(self._r, 4096)  # BlockingIOError when nothing arrived, like evdev
        if self.unplugged:
            raise OSError(errno.ENODEV, "No such device")
        with self._lock:
            events, self._events = self._events, []
        return events

    def type(self, names: list[str]) -> None:
        """Press and release each key (evdev names), then wake the reader."""
        with self._lock:
            for name in names:
                code = getattr(ecodes, name)
                self._events.append(InputEvent(1, 0, ecodes.EV_KEY, code, DOWN))
                self._events.append(InputEvent(1, 1000, ecodes.EV_KEY, code, UP))
                self._events.append(InputEvent(1, 1000, ecodes.EV_SYN, 0, 0))
        os.write(self._w, b".")

    def unplug(self) -> None:
        """Pull the keyboard out: the next read fails with ENODEV."""
        self.unplugged = True
        os.write(self._w, b".")
