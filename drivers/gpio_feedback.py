"""Scan feedback on GPIO: a buzzer and green/red LEDs through gpiozero.

``signal()`` never blocks the caller: it leaves the pattern for a small
player thread and returns. The player turns each pattern (``[on, off, on,
...]`` seconds) into runs of equal on/off pairs and plays each run with
gpiozero's ``blink(on_time, off_time, n, background=True)`` on every output
the pattern uses, waiting on an Event for the run to finish. A newer signal
interrupts the one playing (staff scanning quickly want to hear the latest
result, not a queue of old ones).

Which outputs a pattern uses: OK and OPENED -> buzzer + green LED; ERROR,
WRONG, EXPIRED and LOCKED_OUT -> buzzer + red LED; ATTENTION and NOTHING ->
buzzer + both LEDs. Patterns sharing outputs differ in rhythm (settings
``<pattern>_pattern``). A signal's ``repeat`` plays the pattern that many
times; ``text`` is ignored (no display).
"""

from __future__ import annotations

import enum
import logging
import threading
from typing import Any

from gpiozero import LED, Buzzer, GPIOZeroError

from hubagent.devicekit import HealthReporter
from hubagent.events import EventSink, Health
from hubagent.ports import MAX_REPEAT, DeviceEnv, FeedbackPattern
from hubagent.scanning.settings import GpioFeedbackSettings

log = logging.getLogger(__name__)

ROLE = "feedback"


class _Output(enum.Enum):
    """The physical outputs a feedback station may have."""

    BUZZER = "buzzer"
    OK_LED = "ok_led"
    ERROR_LED = "error_led"


_USES: dict[FeedbackPattern, tuple[_Output, ...]] = {
    FeedbackPattern.OK: (_Output.BUZZER, _Output.OK_LED),
    FeedbackPattern.ERROR: (_Output.BUZZER, _Output.ERROR_LED),
    FeedbackPattern.ATTENTION: (_Output.BUZZER, _Output.OK_LED, _Output.ERROR_LED),
    FeedbackPattern.OPENED: (_Output.BUZZER, _Output.OK_LED),
    FeedbackPattern.WRONG: (_Output.BUZZER, _Output.ERROR_LED),
    FeedbackPattern.EXPIRED: (_Output.BUZZER, _Output.ERROR_LED),
    FeedbackPattern.LOCKED_OUT: (_Output.BUZZER, _Output.ERROR_LED),
    FeedbackPattern.NOTHING: (_Output.BUZZER, _Output.OK_LED, _Output.ERROR_LED),
}


def runs(steps: list[float]) -> list[tuple[float, float, int]]:
    """``[on, off, on, ...]`` as ``(on, off, n)`` runs of identical pairs (for blink)."""
    pairs = [(steps[i], steps[i + 1] if i + 1 < len(steps) else 0.0) for i in range(0, len(steps), 2)]
    out: list[tuple[float, float, int]] = []
    for on, off in pairs:
        if out and out[-1][:2] == (on, off):
            out[-1] = (on, off, out[-1][2] + 1)
        else:
            out.append((on, off, 1))
    return out


REPEAT_GAP_S = 0.4
"""Silence between two repetitions of a pattern that ends switched on."""


def repeated(steps: list[float], repeat: int) -> list[float]:
    """``steps`` played ``repeat`` times, with a gap where a repetition would run into the next."""
    out: list[float] = []
    for i in range(repeat):
        out.extend(steps)
        if len(steps) % 2 == 1 and i < repeat - 1:
            out.append(REPEAT_GAP_S)  # ends "on": without a gap two beeps would merge
    return out


class GpioFeedback(HealthReporter):
    """Buzzer/LED feedback (Feedback port)."""

    role = ROLE

    def __init__(self, name: str, settings: GpioFeedbackSettings, env: DeviceEnv) -> None:
        """Remember the settings; opens no pin."""
        self.name = name
        self._init_health(ROLE)
        self.settings = settings
        self.env = env
        self._patterns: dict[FeedbackPattern, list[float]] = {
            p: list(getattr(settings, f"{p.value}_pattern")) for p in FeedbackPattern}
        self._outputs: dict[_Output, Any] = {}
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._pending: tuple[FeedbackPattern, int] | None = None
        self._thread: threading.Thread | None = None

    def start(self, sink: EventSink) -> None:
        """Claim the pins and start the player; a pin problem is reported as FAULTED."""
        with self._lock:
            if self._thread is not None or self._stop.is_set():
                return
            self._sink = sink
        try:
            self._open_outputs()
        except (GPIOZeroError, OSError, ValueError) as err:
            self._close_outputs()
            self._set_status(Health.FAULTED, f"cannot claim pins: {err}")
            return
        self._thread = threading.Thread(target=self._play_loop, name=f"feedback-{self.name}", daemon=True)
        self._thread.start()
        self._set_status(Health.OK, "ready")

    def signal(self, pattern: FeedbackPattern, *, repeat: int = 1, text: str | None = None) -> None:
        """Play ``pattern`` ``repeat`` times soon; returns at once. Dropped (logged) if not running."""
        if self._thread is None or self._stop.is_set():
            log.debug("%s: not running, dropping %s", self.name, pattern)
            return
        with self._lock:
            self._pending = (pattern, max(1, min(repeat, MAX_REPEAT)))
        self._wake.set()

    def close(self) -> None:
        """Stop the player, switch everything off and release the pins. Never raises."""
        self._stop.set()
        self._wake.set()
        thread, self._thread = self._thread, None
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=5.0)
        self._close_outputs()
        self._set_status(Health.OFFLINE, "closed", report=False)

    # --- internals -------------------------------------------------------

    def _open_outputs(self) -> None:
        s = self.settings
        if s.buzzer_pin is not None:
            self._outputs[_Output.BUZZER] = Buzzer(s.buzzer_pin, active_high=s.active_high, initial_value=False)
        if s.ok_led_pin is not None:
            self._outputs[_Output.OK_LED] = LED(s.ok_led_pin, active_high=s.active_high, initial_value=False)
        if s.error_led_pin is not None:
            self._outputs[_Output.ERROR_LED] = LED(s.error_led_pin, active_high=s.active_high, initial_value=False)

    def _close_outputs(self) -> None:
        outputs, self._outputs = self._outputs, {}
        for device in outputs.values():
            try:
                device.off()
                device.close()
            except Exception:  # noqa: BLE001 - close must never raise
                log.debug("%s: closing output failed", self.name, exc_info=True)

    def _play_loop(self) -> None:
        """Wait for a signal, play it, repeat until closed."""
        while True:
            self._wake.wait()
            if self._stop.is_set():
                return
            with self._lock:
                pending, self._pending = self._pending, None
                self._wake.clear()
            if pending is not None:
                try:
                    self._play(*pending)
                except Exception:  # noqa: BLE001 - a pin error must not kill the player
                    log.exception("%s: playing %s failed", self.name, pending[0])

    def _play(self, pattern: FeedbackPattern, repeat: int = 1) -> None:
        """Blink the pattern's outputs run by run; stop early on a newer signal or close."""
        devices = [self._outputs[o] for o in _USES[pattern] if o in self._outputs]
        if not devices:
            return
        for on, off, n in runs(repeated(self._patterns[pattern], repeat)):
            for device in devices:
                device.blink(on_time=on, off_time=off, n=n, background=True)
            if self._wake.wait(n * (on + off)):
                break  # interrupted: a newer pattern or close()
        for device in devices:
            device.off()
