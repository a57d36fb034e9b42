"""``[staff]``: how staff prove who they are (importable without any extra)."""

from __future__ import annotations

from typing import Annotated

import msgspec

from hubagent.feature import Section


class StaffSettings(msgspec.Struct, forbid_unknown_fields=True, kw_only=True, frozen=True):
    """``[staff]``: badge and PIN rules for the staff registry (``staff.set``)."""

    # A scanned staff badge signs in only after the staff member's PIN is typed on the
    # keypad named like the scanner (or, on the staff page, given with the badge).
    require_pin: bool = False
    # After a badge scan, the PIN must be typed within this many seconds.
    pin_timeout_s: Annotated[float, msgspec.Meta(ge=5.0, le=600.0)] = 30.0


STAFF = Section("staff", StaffSettings)
"""The ``[staff]`` section."""
