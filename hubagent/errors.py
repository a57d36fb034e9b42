"""The project's exception tree.

Drivers translate library errors into these (``raise DeviceError(...) from e``)
so the core never needs to know which hardware library is underneath.
"""

from __future__ import annotations


class HubError(Exception):
    """Base of every error hubagent raises on purpose."""


class ConfigError(HubError):
    """The configuration file is unreadable or invalid.

    ``path`` is the file, ``key`` the dotted key at fault (empty when the
    whole file is at fault) and ``reason`` what is wrong with it.
    """

    def __init__(self, path: str, key: str, reason: str) -> None:
        self.path = path
        self.key = key
        self.reason = reason
        where = f"{path}: {key}" if key else path
        super().__init__(f"{where}: {reason}")


class DeviceError(HubError):
    """A device failed; the device is faulted until it recovers."""


class DeviceUnavailable(DeviceError):
    """The device is absent or not reachable right now (unplugged, off)."""


class StoreError(HubError):
    """The local database cannot be used."""


class DatabaseCorrupt(StoreError):
    """The database file is damaged; it has been moved aside to ``quarantined``."""

    def __init__(self, message: str, quarantined: str | None) -> None:
        self.quarantined = quarantined
        super().__init__(message)


class DiskFull(StoreError):
    """The state directory has no room left; nothing was half-written."""


class InputError(HubError):
    """Input from outside (scanner bytes, payload, field values) is invalid.

    ``code`` is a stable machine-readable reason, ``message`` says what was wrong.
    """

    def __init__(self, code: str, message: str) -> None:
        self.code = code
        self.message = message
        super().__init__(f"{code}: {message}")


class CommandError(InputError):
    """A command cannot be carried out; becomes an ``ok: false`` reply."""
