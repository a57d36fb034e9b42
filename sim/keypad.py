"""Simulated keypad: :meth:`SimKeypad.enter` (``hubagent sim code``) types a whole code and presses Enter."""

from __future__ import annotations

import logging
import threading
from typing import Any, Mapping

from hubagent.devicekit import emit_safely
from hubagent.errors import CommandError, InputError
from hubagent.events import CodeEntered, DeviceHealthChanged, DeviceStatus, EventSink, Health
from hubagent.lockers.settings import SimKeypadSettings
from hubagent.ports import DeviceEnv

log = logging.getLogger(__name__)


class SimKeypad:
    """A :class:`~hubagent.ports.CodeInput` driven by :meth:`enter`.

    Like a real keypad it delivers what was typed without judging it (the
    core checks codes); it only refuses what no keypad could produce: more
    than ``max_length`` keys or control characters.
    """

    def __init__(self, name: str, settings: SimKeypadSettings, env: DeviceEnv) -> None:
        """Remember the configuration; opens nothing."""
        self.name = name
        self.settings = settings
        self.env = env
        self._lock = threading.Lock()
        self._sink: EventSink | None = None
        self._closed = False
        self._plugged = True

    def start(self, sink: EventSink) -> None:
        """Accept ``code`` commands from now on."""
        with self._lock:
            self._sink = sink

    def status(self) -> DeviceStatus:
        """OK while started, OFFLINE once closed."""
        with self._lock:
            if self._closed:
                return DeviceStatus(Health.OFFLINE, "closed")
            if self._sink is None:
                return DeviceStatus(Health.UNKNOWN, "not started")
            if not self._plugged:
                return DeviceStatus(Health.OFFLINE, "unplugged")
            return DeviceStatus(Health.OK, "simulated keypad")

    def close(self) -> None:
        """Stop accepting codes. Idempotent; never raises."""
        with self._lock:
            self._closed = True
            self._sink = None

    def unplug(self) -> None:
        """Pull the keypad's cable: OFFLINE (reported) and nothing can be typed."""
        self._set_plugged(False)

    def replug(self) -> None:
        """Plug it back in: OK again (reported)."""
        self._set_plugged(True)

    def _set_plugged(self, plugged: bool) -> None:
        with self._lock:
            changed, self._plugged = self._plugged != plugged, plugged
            sink = self._sink
        if changed and sink is not None:
            emit_safely(sink, DeviceHealthChanged("keypads", self.name, self.status()), f"keypad {self.name}")

    def enter(self, code: str) -> None:
        """Type ``code`` and press Enter: one CodeEntered.

        InputError("bad_code") for what no keypad could type (too many keys,
        control characters); CommandError("not_started") when not running.
        """
        if not isinstance(code, str) or not code:
            raise InputError("bad_args", "code needs {\"code\": \"<keys typed>\"}")
        if len(code) > self.settings.max_length:
            raise InputError("bad_code", f"a keypad takes at most {self.settings.max_length} keys")
        if not code.isprintable():
            raise InputError("bad_code", "a keypad cannot type control characters")
        with self._lock:
            sink, plugged = self._sink, self._plugged
        if sink is None:
            raise CommandError("not_started", f"keypad {self.name} is not running")
        if not plugged:
            raise InputError("unplugged", f"keypad {self.name} is unplugged")
        emit_safely(sink, CodeEntered(self.name, code), f"keypad {self.name}")

    def sim_command(self, verb: str, args: Mapping[str, Any]) -> dict[str, Any]:
        """``code`` with ``{"code": "123456"}`` calls :meth:`enter`; InputError otherwise."""
        if verb != "code":
            raise InputError("unknown_verb", "keypad sim verbs are: code")
        code = args.get("code") if isinstance(args, Mapping) else None
        if not isinstance(code, str):
            raise InputError("bad_args", "code needs {\"code\": \"<keys typed>\"}")
        self.enter(code)
        return {"source": self.name, "code": code}
