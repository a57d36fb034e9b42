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


class BankBusy(DeviceError):
    """A locker bank refused a pulse because another pulse is running on it.

    Banks share one lock supply, so a second solenoid at once would brown it
    out (see :class:`hubagent.ports.LockerBank`). Nothing was energised; the
    caller may try again once the running pulse ends.
    """

    def __init__(self, bank: str, pulsing: str | None = None) -> None:
        self.bank = bank
        self.pulsing = pulsing
        running = f": {pulsing} is pulsing" if pulsing else ""
        super().__init__(f"bank busy: locker bank {bank}{running}")


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


class LabelTooBig(InputError):
    """A laid-out label does not fit the printer's media; code ``label_too_big``.

    ``size`` is the label's (width, height) in dots, ``media`` the printer's
    printable (width, height), the height None for continuous paper. Raised
    by every :class:`hubagent.ports.Printer` through
    :func:`hubagent.ports.check_label_fits`, so drivers and simulators refuse
    the same labels with the same code.
    """

    CODE = "label_too_big"

    def __init__(self, size: tuple[int, int], media: tuple[int, int | None]) -> None:
        self.size = size
        self.media = media
        length = "continuous" if media[1] is None else str(media[1])
        super().__init__(self.CODE, f"label is {size[0]}x{size[1]} dots; media is {media[0]}x{length}")
