"""How a feature declares itself to the composition root.

Each feature package exposes one :class:`Feature`: the config sections it
owns and their settings types, its schema migrations, its checks across
config sections, and a build function. :data:`hubagent.features.FEATURES`
lists them; :func:`hubagent.app.build_app` builds them in that order, and
:mod:`hubagent.config` and :mod:`hubagent.store.migrations` read the same
list, so a new feature is its own package plus one line there.

A build function takes its dependencies by keyword: the :class:`~hubagent.app.App`
(store, commands, devices, events, alerts), the core
:class:`~hubagent.clock.Clock`, and the :class:`Interfaces` offered by the
features built before it. It returns what it offers in turn.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Generic, Protocol, TypeVar

import msgspec
import msgspec.structs

from hubagent.interfaces import (
    BadgePins,
    ClockTrustView,
    LabelQueue,
    LockerDesk,
    LockParking,
    PrintPause,
    StockSummary,
    ScanCounts,
    StaffDirectory,
    StaffRecords,
    Uplink,
)

if TYPE_CHECKING:
    from hubagent.app import App
    from hubagent.clock import Clock
    from hubagent.config import Config

S = TypeVar("S")

Migration = tuple[str, str]
"""A named schema migration: ``(name, sql)``; never edited after release."""

ConfigCheck = Callable[["Config"], None]
"""A check across config sections; raises ``ValueError("dotted.key: reason")``."""


class Section(msgspec.Struct, Generic[S], frozen=True):
    """A config section a feature owns, with the msgspec Struct that validates it."""

    name: str
    type: type[S]

    def of(self, config: "Config") -> S:
        """This section's validated settings (its defaults when absent from the file)."""
        value = config.sections[self.name]
        if not isinstance(value, self.type):
            raise TypeError(f"config section [{self.name}] is not a {self.type.__name__}")
        return value


class Interfaces(msgspec.Struct, frozen=True):
    """What the features built so far offer the next ones (None: not offered)."""

    uplink: Uplink | None = None
    staff: StaffDirectory | None = None
    labels: LabelQueue | None = None
    print_pause: PrintPause | None = None
    lock_parking: LockParking | None = None
    locker_desk: LockerDesk | None = None
    scan_counts: ScanCounts | None = None
    stock_summary: StockSummary | None = None
    clock_trust: ClockTrustView | None = None
    staff_records: StaffRecords | None = None
    badge_pins: BadgePins | None = None

    def merged(self, offered: "Interfaces") -> "Interfaces":
        """These interfaces plus ``offered``; offering one twice is a wiring error."""
        have = msgspec.structs.asdict(self)
        changes = {name: new for name, new in msgspec.structs.asdict(offered).items()
                   if new is not None}
        for name in changes:
            if have[name] is not None:
                raise ValueError(f"two features offer {name!r}")
        return msgspec.structs.replace(self, **changes)


class Built(msgspec.Struct, frozen=True):
    """What a build function returns: its service (if any) and the interfaces it offers."""

    service: object | None = None
    offers: Interfaces = Interfaces()


class Build(Protocol):
    """A feature's build function: typed dependencies by keyword, opens nothing."""

    def __call__(self, *, app: "App", clock: "Clock", uses: Interfaces) -> Built:
        """Create the feature's service and register its commands, events and hooks."""
        ...


class Feature(msgspec.Struct, frozen=True):
    """One feature of a hub, as the composition root sees it."""

    name: str
    build: Build
    sections: tuple[Section[Any], ...] = ()
    migrations: tuple[Migration, ...] = ()
    checks: tuple[ConfigCheck, ...] = ()
