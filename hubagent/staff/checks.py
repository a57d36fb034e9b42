"""Config checks of the staff registry's settings against the devices."""

from __future__ import annotations

from typing import TYPE_CHECKING

from hubagent.scanning.roles import accepts
from hubagent.scanning.settings import ScannerSettings
from hubagent.staff.settings import STAFF

if TYPE_CHECKING:
    from hubagent.config import Config


def check_pin_keypads(cfg: "Config") -> None:
    """With ``[staff] require_pin``, each scanner that takes badges has a keypad of its name.

    The PIN of a badge scanned on scanner ``X`` is typed on keypad ``X``
    (keypads are read by the locker feature, so locker banks are needed too).
    """
    if not STAFF.of(cfg).require_pin:
        return
    keypads = {d.name for d in cfg.devices_of("keypads")}
    for d in cfg.devices_of("scanners"):
        role = d.settings.role if isinstance(d.settings, ScannerSettings) else None
        if not accepts(role, "staff"):
            continue
        if d.name not in keypads or not cfg.devices_of("lockers"):
            raise ValueError(f"staff.require_pin: scanner {d.name!r} takes staff badges but there is no "
                             f"[keypads.{d.name}] beside locker banks to type the PIN on (give the "
                             f"scanner role \"kiosk\", add the keypad, or set require_pin = false)")
