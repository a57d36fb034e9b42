"""The composition root: config in, a running hub out.

:func:`build_app` turns a validated :class:`~hubagent.config.Config` into
device instances (through the registry), the store, the command registry
and the feature services, and hands them to each other by keyword. The
:class:`App` owns the lifecycle and the core thread: device threads only
``post`` events; everything that reads or writes the database runs here,
on the asyncio loop, one thing at a time. Time and timers come from the
app's :class:`~hubagent.clock.Clock` (the real one unless a test passes a
:class:`~hubagent.clock.ManualClock`).
"""

from __future__ import annotations

import asyncio
import fcntl
import logging
from collections import defaultdict
from pathlib import Path
from typing import IO, Any, Awaitable, Callable, Mapping, TypeVar

import msgspec
import msgspec.structs

from hubagent import __version__, registry
from hubagent.clock import LoopClock, ManualClock
from hubagent.commands import Commands, InboxWindow
from hubagent.config import Config
from hubagent.errors import DiskFull, HubError, InputError
from hubagent.events import DeviceHealthChanged, DeviceStatus, Event, Health
from hubagent.feature import Interfaces
from hubagent.features import all_migrations
from hubagent.interfaces import ScanHandler, ScanLookup
from hubagent.ports import Device, DeviceEnv, SimControl
from hubagent.store import checking as store_checking
from hubagent.store.space import Space
from hubagent.store.store import Store

log = logging.getLogger(__name__)

StatusProvider = Callable[[], object]
"""Returns one JSON-able section of ``hubagent status``."""
EventHandler = Callable[[Any], None]
Hook = Callable[[], Awaitable[None] | None]
E = TypeVar("E", bound=Event)
T = TypeVar("T")


class DeviceEntry(msgspec.Struct, frozen=True):
    """A built device and where it came from."""

    role: str
    name: str
    driver: str
    device: Device


class App:
    """A running hub: devices, store, commands, features and their lifecycle."""

    def __init__(self, config: Config, *, simulated: bool = False, clock: LoopClock | ManualClock | None = None) -> None:
        """An app for ``config``; builds nothing yet (see :func:`build_app`)."""
        self.config = config
        self.simulated = simulated
        self.hub_id = config.hub.id
        self.version = __version__
        # The one clock and scheduler of the core (a ManualClock in tests);
        # attached to the loop while the app runs.
        self.clock: LoopClock | ManualClock = clock if clock is not None else LoopClock()
        self.store = Store(config.state_dir / config.store.file, all_migrations(config.features),
                           reserve_bytes=config.store.reserve_kb * 1024, clock=self.clock)
        max_payload = config.mqtt.max_payload if config.mqtt else 256 * 1024
        self.commands = Commands(self.store, max_payload, clock=self.clock, window=inbox_window(config))
        self.devices: dict[tuple[str, str], DeviceEntry] = {}
        self.alerts: dict[str, str] = {}
        # The services the features built, one per type (see service()).
        self._services: dict[type, object] = {}
        self.interfaces = Interfaces()
        """What the built features offer each other (set by build_app)."""
        # When each alert was raised (wall clock), for "since 14:02".
        self.alert_since: dict[str, str] = {}
        # Scan kinds (hubagent.scanning.codes.ScanKind values) that another
        # feature handles, e.g. lockers claim "parcel", "pickup", "return".
        self.scan_handlers: dict[str, ScanHandler] = {}
        # Offered every read before it is interpreted (see look_up_scans).
        self.scan_lookups: list[ScanLookup] = []
        self.started_at = self.clock.monotonic()
        self.loop: asyncio.AbstractEventLoop | None = None
        self._handlers: dict[type, list[EventHandler]] = defaultdict(list)
        self._status: dict[str, StatusProvider] = {}
        self._snapshot: dict[str, StatusProvider] = {}
        self._start_hooks: list[Hook] = []
        self._stop_hooks: list[Hook] = []
        self._alert_listeners: list[Callable[[], None]] = []
        self._health: dict[tuple[str, str], DeviceStatus] = {}
        self._lock: IO[bytes] | None = None
        self.on(DeviceHealthChanged, self._on_health)
        self.store.on_space(self._on_space)
        # Told what the hub waits for before it is up (systemd's STATUS=).
        self.waiting: Callable[[str], None] = lambda text: None

    # -- wiring used by features -----------------------------------------
    def on(self, event_type: type[E], handler: Callable[[E], None]) -> None:
        """Call ``handler(event)`` on the core thread for each event of a type."""
        self._handlers[event_type].append(handler)

    def add_status(self, name: str, provider: StatusProvider) -> None:
        """Add a section to ``hubagent status``."""
        self._status[name] = provider

    def add_snapshot(self, name: str, provider: StatusProvider) -> None:
        """Add a section to the ``state.snapshot`` reply (central's resync)."""
        self._snapshot[name] = provider

    def snapshot_parts(self) -> dict[str, Any]:
        """Every feature's ``state.snapshot`` section."""
        return {name: provider() for name, provider in self._snapshot.items()}

    def on_start(self, hook: Hook) -> None:
        """Run ``hook`` after devices and store are up (in registration order)."""
        self._start_hooks.append(hook)

    def on_stop(self, hook: Hook) -> None:
        """Run ``hook`` at shutdown, before devices close (in reverse order)."""
        self._stop_hooks.append(hook)

    def on_alerts_changed(self, fn: Callable[[], None]) -> None:
        """Call ``fn()`` whenever the set of alerts changes."""
        self._alert_listeners.append(fn)

    def set_alert(self, key: str, detail: str | None) -> None:
        """Raise (detail given) or clear (None) an alert; drives hub state."""
        before = dict(self.alerts)
        if detail is None:
            self.alerts.pop(key, None)
            self.alert_since.pop(key, None)
        else:
            self.alerts[key] = detail
            self.alert_since.setdefault(key, self.clock.now().isoformat(timespec="seconds"))
        if before != self.alerts:
            for fn in self._alert_listeners:
                fn()

    def claim_scans(self, kind: str, handler: ScanHandler) -> None:
        """Route scans of ``kind`` to ``handler`` instead of the stock workflows."""
        if kind in self.scan_handlers:
            raise ValueError(f"scans of kind {kind!r} are already claimed")
        self.scan_handlers[kind] = handler

    def look_up_scans(self, lookup: ScanLookup) -> None:
        """Offer every read first to ``lookup(data, symbology, scanner)``.

        It returns a FeedbackPattern when the read was its business (a
        barcode it knows, such as a parcel's tracking number) and None to
        let the read take its normal course; it must be cheap.
        """
        self.scan_lookups.append(lookup)

    def add_service(self, service: object) -> None:
        """Keep a feature's service, found again by its type with :meth:`service`."""
        if type(service) in self._services:
            raise ValueError(f"a {type(service).__name__} is already built")
        self._services[type(service)] = service

    def service(self, kind: type[T]) -> T | None:
        """The built service of type ``kind`` (None when its feature is not configured)."""
        found = self._services.get(kind)
        return found if isinstance(found, kind) else None

    def devices_of(self, role: str) -> list[DeviceEntry]:
        """Built devices of one role."""
        return [e for (r, _), e in self.devices.items() if r == role]

    def device(self, role: str, name: str) -> Device:
        """One device by role and name (KeyError if absent)."""
        return self.devices[(role, name)].device

    # -- events ------------------------------------------------------------
    def post(self, event: Event) -> None:
        """Thread-safe entry for device threads: queue the event for the core.

        An event without a time is stamped with the clock's monotonic time
        here, as it arrives; it is dropped while the core is not running.
        """
        if event.at is None:
            event = msgspec.structs.replace(event, at=self.clock.monotonic())
        self.clock.call_from_thread(lambda: self.dispatch(event))

    def dispatch(self, event: Any) -> None:
        """Hand one event to its handlers (core thread); never raises."""
        for handler in self._handlers.get(type(event), ()):
            try:
                handler(event)
            except DiskFull:
                pass  # the store logged it once and raised the disk_full alert
            except Exception:
                log.exception("handler for %s failed", type(event).__name__)

    def _on_health(self, ev: DeviceHealthChanged) -> None:
        key = (ev.role, ev.device)
        self._health[key] = ev.status
        level = logging.INFO if ev.status.health is Health.OK else logging.WARNING
        log.log(level, "%s %s: %s %s", ev.role, ev.device, ev.status.health.value, ev.status.detail)
        faulted = ev.status.health in (Health.FAULTED, Health.OFFLINE)
        self.set_alert(f"device:{ev.role}/{ev.device}",
                       f"{ev.status.health.value}: {ev.status.detail}" if faulted else None)

    def _on_space(self, space: Space) -> None:
        self.set_alert("disk_full", self.store.full_detail if space is Space.FULL else None)
        if space is Space.FULL and self.loop is not None:
            self._space_timer()

    def _space_timer(self) -> None:
        """While the disk is full, look for free space every ``space_check_s``."""
        if self.loop is None or self.loop.is_closed():
            return

        def check() -> None:
            if self.store.check_space() is Space.FULL:
                self._space_timer()

        self.clock.call_later(self.config.store.space_check_s, check)

    async def _open_store(self) -> None:
        """Open the store; on a disk too full even for that, wait for space (no crash loop)."""
        told = False
        while True:
            try:
                self.store.open()
                return
            except DiskFull as e:
                if not told:
                    log.error("%s; waiting for disk space", e)
                    told = True
                self.set_alert("disk_full", f"{e}; the hub waits for space")
                self.waiting(f"waiting for disk space on {self.config.state_dir}")
                await self._sleep(self.config.store.space_check_s)

    async def _sleep(self, seconds: float) -> None:
        """Wait ``seconds`` on the core clock (the loop keeps running meanwhile)."""
        done = asyncio.Event()
        timer = self.clock.call_later(seconds, done.set)
        try:
            await done.wait()
        finally:
            timer.cancel()

    # -- lifecycle ---------------------------------------------------------
    def build_devices(self) -> None:
        """Construct every configured device (opens nothing)."""
        env = DeviceEnv(hub_id=self.hub_id, state_dir=self.config.state_dir)
        for dc in self.config.devices:
            dev = registry.build(dc.spec, dc.name, dc.settings, env)
            self.devices[(dc.role, dc.name)] = DeviceEntry(dc.role, dc.name, dc.spec.name, dev)

    async def start(self) -> None:
        """Open the store, start devices, then run feature start hooks."""
        self.loop = asyncio.get_running_loop()
        self.clock.attach(self.loop)
        self.config.state_dir.mkdir(parents=True, exist_ok=True)
        self._lock = _lock_state_dir(self.config.state_dir)
        await self._open_store()
        if self.store.check_pending:
            store_checking.start(self.store.path, self.clock, self.set_alert)
        if self.store.space is Space.OK:
            self.set_alert("disk_full", None)
        for entry in self.devices.values():
            entry.device.start(self.post)
        for hook in self._start_hooks:
            try:
                result = hook()
                if asyncio.iscoroutine(result):
                    await result
            except DiskFull as e:
                # Degraded start on a full disk: the feature runs, but what it
                # wanted to record at start waits for space (logged once here).
                log.warning("a feature could not record its start: %s", e)
        log.info("hub %s ready: %d device(s), %s", self.hub_id, len(self.devices),
                 "simulated" if self.simulated else "hardware")

    async def stop(self) -> None:
        """Stop features, close every device, close the store. Never raises."""
        for hook in reversed(self._stop_hooks):
            try:
                result = hook()
                if asyncio.iscoroutine(result):
                    await result
            except Exception:
                log.exception("stop hook failed")
        for entry in self.devices.values():
            try:
                entry.device.close()
            except Exception:
                log.exception("closing %s %s failed", entry.role, entry.name)
        try:
            self.store.close()
        except Exception:
            log.exception("closing the store failed")
        if self._lock is not None:
            self._lock.close()
            self._lock = None
        self.clock.detach()
        log.info("hub %s stopped", self.hub_id)

    # -- queries -----------------------------------------------------------
    def device_status(self) -> list[dict[str, Any]]:
        """Every device with its health."""
        out = []
        for (role, name), entry in self.devices.items():
            try:
                st = entry.device.status()
            except Exception as e:  # a broken status() must not break status
                st = DeviceStatus(Health.UNKNOWN, f"status failed: {e}")
            out.append({"role": role, "name": name, "driver": entry.driver,
                        "health": st.health.value, "detail": st.detail})
        return out

    def status(self) -> dict[str, Any]:
        """Everything ``hubagent status`` shows."""
        out: dict[str, Any] = {
            "hub": self.hub_id,
            "version": self.version,
            "simulated": self.simulated,
            "uptime_s": round(self.clock.monotonic() - self.started_at, 1),
            "state": "alert" if self.alerts else "ok",
            "alerts": dict(self.alerts),
            "alerts_since": dict(self.alert_since),
            "devices": self.device_status(),
            "last_seq": self.store.last_seq(),
        }
        for name, provider in self._status.items():
            try:
                out[name] = provider()
            except Exception as e:
                log.exception("status section %s failed", name)
                out[name] = {"error": str(e)}
        return out

    def sim_command(self, role: str, name: str | None, verb: str,
                    args: Mapping[str, Any]) -> dict[str, Any]:
        """Route ``hubagent sim ...`` to a simulated device."""
        candidates = [e for e in self.devices_of(role) if isinstance(e.device, SimControl)]
        if name is not None:
            candidates = [e for e in candidates if e.name == name]
        if not candidates:
            which = f"{role} {name!r}" if name else f"any {role}"
            raise InputError("no_sim_device", f"no simulated device for {which}")
        if name is None and len(candidates) > 1:
            names = ", ".join(e.name for e in candidates)
            raise InputError("ambiguous", f"several simulated {role}: {names}; name one")
        device = candidates[0].device
        assert isinstance(device, SimControl)
        return device.sim_command(verb, args)


def inbox_window(config: Config) -> InboxWindow:
    """The dedup window: ``[store] inbox_keep_s``, never shorter than the MQTT session."""
    keep_s = float(config.store.inbox_keep_s)
    if config.mqtt is not None:
        keep_s = max(keep_s, float(config.mqtt.session_expiry_s))
    return InboxWindow(keep_s=keep_s, keep_min=config.store.inbox_keep_min)


def _lock_state_dir(state_dir: Path) -> IO[bytes]:
    """Hold an exclusive lock so two daemons never share one database."""
    f = open(state_dir / "hubagent.lock", "ab")
    try:
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        f.close()
        raise HubError(f"another hubagent is already running on {state_dir}") from None
    return f


def build_app(config: Config, *, simulated: bool = False, clock: LoopClock | ManualClock | None = None) -> App:
    """Build the app and every feature from config (opens nothing).

    ``clock`` is the core's time and timers: the real one by default, a
    :class:`~hubagent.clock.ManualClock` in tests of timeouts.

    Each feature of ``config.features`` (:data:`hubagent.features.FEATURES`
    unless the config says otherwise) is built in order and
    gets, by keyword, the app, the clock and the interfaces offered by the
    features built before it.
    """
    app = App(config, simulated=simulated, clock=clock)
    app.build_devices()
    for feature in config.features:
        built = feature.build(app=app, clock=app.clock, uses=app.interfaces)
        if built.service is not None:
            app.add_service(built.service)
        app.interfaces = app.interfaces.merged(built.offers)
    return app
