"""A UPS read from a NUT ``upsd`` server: the ``nut`` power source.

One thread polls the server every ``poll_s`` (waiting on a stop Event, so
``close()`` interrupts it at once) and emits a :class:`PowerReading` when
anything changed, and at least every ``report_every_polls`` polls so the
core can tell a quiet UPS from a dead thread. When the server cannot be
read it emits one ``reachable=False`` reading per outage, reports
``Health.OFFLINE`` and reconnects with a doubling backoff capped at
``reconnect_max_s``; on recovery it reports ``Health.OK`` and a fresh reading.
"""

from __future__ import annotations

import logging
import math
import os
import threading
from collections.abc import Mapping

import msgspec.structs

from hubagent.devicekit import HealthReporter
from hubagent.drivers.nut_client import NutClient, NutConnectionError, NutError, NutServerError
from hubagent.events import EventSink, Health, PowerReading
from hubagent.ports import DeviceEnv
from hubagent.power.settings import NutPowerSettings

log = logging.getLogger(__name__)

ROLE = "power"
_FIGURES = {
    "charge": "battery.charge",
    "runtime": "battery.runtime",
    "input_voltage": "input.voltage",
    "load": "ups.load",
}


def _number(raw: str | None) -> float | None:
    """A finite float from a NUT value, or None for absent or garbage values."""
    if raw is None:
        return None
    try:
        value = float(raw.strip())
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def reading_from_vars(source: str, variables: Mapping[str, str]) -> PowerReading:
    """Build a reading from a ``LIST VAR`` answer; garbage figures become None."""
    status = variables.get("ups.status", "")
    # Status words are upper-case tokens (OL OB LB CHRG ...); drop anything else.
    flags = frozenset(w for w in status.split() if w.isascii() and w.isalnum() and len(w) <= 16)
    def figure(attr: str) -> float | None:
        return _number(variables.get(_FIGURES[attr]))

    detail = "" if flags else f"no usable ups.status ({status[:40]!r})"
    return PowerReading(source=source, reachable=True, flags=flags, detail=detail, charge=figure("charge"),
                        runtime=figure("runtime"), input_voltage=figure("input_voltage"), load=figure("load"))


def _same(a: PowerReading | None, b: PowerReading) -> bool:
    """Whether two readings say the same thing (ignoring when they were taken)."""
    if a is None:
        return False
    return msgspec.structs.replace(a, at=b.at) == b


class NutPowerSource(HealthReporter):
    """PowerSource port over a NUT server (see module docstring)."""

    def __init__(self, name: str, settings: NutPowerSettings, env: DeviceEnv) -> None:
        self.name = name
        self._init_health(ROLE)
        self._settings = settings
        self._env = env
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    # -- Device port --------------------------------------------------------

    def start(self, sink: EventSink) -> None:
        """Start the polling thread; never blocks, never raises for an absent server."""
        if self._thread is not None:
            return
        self._sink = sink
        self._thread = threading.Thread(target=self._run, name=f"nut-power-{self.name}", daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Stop the thread and drop the connection. Idempotent; never raises."""
        self._stop.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=self._settings.timeout_s * 3 + 1)
            if thread.is_alive():
                log.warning("power %s: poller did not stop in time", self.name)

    # -- thread -------------------------------------------------------------

    def _run(self) -> None:
        s = self._settings
        client = NutClient(s.host, s.port, timeout=s.timeout_s)
        last: PowerReading | None = None
        polls_since_emit = 0
        failures = 0
        try:
            while not self._stop.is_set():
                try:
                    reading = self._poll(client)
                except NutError as e:
                    client.close()
                    failures += 1
                    if failures == 1:  # once per outage
                        last = self._outage(e)
                        polls_since_emit = 0
                    delay = min(s.reconnect_max_s, s.poll_s * 2 ** min(failures - 1, 16))
                    self._stop.wait(delay)
                    continue
                except Exception:  # a bug must not kill the power watch
                    log.exception("power %s: unexpected error while polling", self.name)
                    client.close()
                    self._stop.wait(s.reconnect_max_s)
                    continue
                self._set_status(Health.OK, f"{s.ups}@{s.host}:{s.port}")
                failures = 0
                polls_since_emit += 1
                if not _same(last, reading) or polls_since_emit >= s.report_every_polls:
                    self._emit(reading)
                    last, polls_since_emit = reading, 0
                self._stop.wait(s.poll_s)
        finally:
            client.logout()

    def _poll(self, client: NutClient) -> PowerReading:
        if not client.connected:
            client.connect()
            if self._settings.username:
                client.login(self._settings.username, self._password())
        return reading_from_vars(self.name, client.list_vars(self._settings.ups))

    def _password(self) -> str:
        env = self._settings.password_env
        password = os.environ.get(env)
        if password is None:
            # Reported like an ERR so the outage logic handles it; the name is safe to show.
            raise NutServerError("NO-PASSWORD", f"environment variable {env} is not set", "login")
        return password

    def _outage(self, error: NutError) -> PowerReading:
        if isinstance(error, NutConnectionError):
            health, detail = Health.OFFLINE, str(error)
        elif isinstance(error, NutServerError) and error.code in ("DATA-STALE", "DRIVER-NOT-CONNECTED"):
            health, detail = Health.OFFLINE, f"UPS driver: {error.code}"
        else:  # UNKNOWN-UPS, ACCESS-DENIED, garbage replies: fixing needs a person
            health, detail = Health.FAULTED, str(error)
        log.warning("power %s: cannot read UPS: %s", self.name, error)
        self._set_status(health, detail)
        reading = PowerReading(source=self.name, reachable=False, detail=detail)
        self._emit(reading)
        return reading
