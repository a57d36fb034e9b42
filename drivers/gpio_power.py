"""A UPS HAT's power-fail and low-battery pins: the ``gpio`` power source.

The pins are mapped onto NUT status words so the policy treats every source
alike: power-fail inactive -> ``OL``, active -> ``OB``; low-battery active
adds ``LB``. A HAT tells nothing about charge or runtime, so those are None.
Active-high pins get the internal pull-down and active-low pins the pull-up,
which suits both push-pull and open-collector HAT outputs.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from hubagent.devicekit import HealthReporter
from hubagent.errors import DeviceError
from hubagent.events import EventSink, Health, PowerReading
from hubagent.ports import DeviceEnv
from hubagent.power.settings import GpioPowerSettings

log = logging.getLogger(__name__)

ROLE = "power"


class GpioPowerSource(HealthReporter):
    """PowerSource port over gpiozero ``DigitalInputDevice`` pins."""

    def __init__(self, name: str, settings: GpioPowerSettings, env: DeviceEnv) -> None:
        self.name = name
        self._init_health(ROLE)
        self._settings = settings
        self._env = env
        self._lock = threading.Lock()  # orders readings from concurrent pin callbacks
        self._fail: Any = None
        self._low: Any = None
        self._closed = False

    def start(self, sink: EventSink) -> None:
        """Claim the pins, report the current state and follow pin changes."""
        if self._fail is not None:
            return
        self._sink = sink
        try:
            self._open_pins()
        except DeviceError as e:
            log.error("power %s: %s", self.name, e)
            self._set_status(Health.FAULTED, str(e))
            self.close()
            return
        self._set_status(Health.OK, "pins claimed")
        self._report()

    def close(self) -> None:
        """Release the pins. Idempotent; never raises."""
        self._closed = True
        for dev in (self._fail, self._low):
            if dev is None:
                continue
            try:
                dev.close()
            except Exception:  # closing must never raise
                log.debug("power %s: error releasing a pin", self.name, exc_info=True)
        self._fail = self._low = None

    def _open_pins(self) -> None:
        from gpiozero import DigitalInputDevice  # lazy: only hubs with a HAT load gpiozero
        from gpiozero.exc import GPIOZeroError

        s = self._settings
        bounce = s.debounce_s or None
        try:
            self._fail = DigitalInputDevice(
                s.power_fail_pin, pull_up=not s.power_fail_active_high, bounce_time=bounce
            )
            if s.low_battery_pin is not None:
                self._low = DigitalInputDevice(
                    s.low_battery_pin, pull_up=not s.low_battery_active_high, bounce_time=bounce
                )
        except (GPIOZeroError, OSError, ValueError) as e:
            raise DeviceError(f"cannot claim power pins: {e}") from e
        for dev in (self._fail, self._low):
            if dev is not None:
                dev.when_activated = self._on_change
                dev.when_deactivated = self._on_change

    def _on_change(self) -> None:
        # Runs on gpiozero's callback thread: build one reading, hand it over.
        try:
            self._report()
        except Exception:
            log.exception("power %s: cannot report pin change", self.name)

    def _report(self) -> None:
        with self._lock:
            fail, low = self._fail, self._low
            if self._closed or fail is None:
                return
            flags = {"OB"} if fail.is_active else {"OL"}
            if low is not None and low.is_active:
                flags.add("LB")
            self._emit(PowerReading(source=self.name, reachable=True, flags=frozenset(flags)))
