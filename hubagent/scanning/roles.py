"""Which codes a scanner accepts, by its role in config (``role`` on ``[scanners.NAME]``).

One table decides, before a scan is routed anywhere:

- ``kiosk`` - customer-facing: pickup and return codes only. Never a staff
  badge, a mode code or a parcel-load code, so nothing a customer shows it
  can sign anyone in, switch a workflow or open a compartment for loading.
- ``locker`` - at the lockers: parcel loads (``HA:PCL``, SSCC), pickup,
  return and staff codes, ``HA:CANCEL`` (signs staff out); no stock modes.
- ``shelf`` - the stock flows (modes, bins, items, quantities, counts,
  returns grading, the hub's return labels) and staff badges; no locker
  codes (parcel loads, pickups).

A scanner without a role accepts every code, as before roles existed.
"""

from __future__ import annotations

from typing import Literal

ScannerRole = Literal["shelf", "locker", "kiosk"]
"""The roles a scanner can have."""

ROLES: tuple[str, ...] = ("shelf", "locker", "kiosk")

_KIOSK = frozenset({"pickup", "return", "token"})
_LOCKER = frozenset({"parcel", "sscc", "pickup", "return", "staff", "cancel", "courier", "token"})
_SHELF_NEVER = frozenset({"parcel", "pickup", "courier", "token"})

REFUSAL = "not_allowed_here"
"""The ``scan.rejected`` reason for a code the scanner's role does not accept."""


def accepts(role: str | None, kind: str) -> bool:
    """Whether a scanner of ``role`` accepts a scan of ``kind`` (a ScanKind value)."""
    if role is None:
        return True
    if role == "kiosk":
        return kind in _KIOSK
    if role == "locker":
        return kind in _LOCKER
    if role == "shelf":
        return kind not in _SHELF_NEVER
    return False  # an unknown role accepts nothing (config validation keeps this unreachable)


def refusal(role: str | None, kind: str) -> str | None:
    """Why a scanner of ``role`` refuses a ``kind`` scan, or None when it accepts it."""
    if accepts(role, kind):
        return None
    return f"a {kind} code is not accepted by a {role} scanner"
