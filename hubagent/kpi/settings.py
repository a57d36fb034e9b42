"""``[kpi]``: what counts as sellable, and the default window (importable without the feature)."""

from __future__ import annotations

from typing import Annotated

import msgspec
from msgspec import Meta

BinCode = Annotated[str, Meta(pattern=r"^[A-Za-z0-9][A-Za-z0-9.-]{0,23}$")]


class KpiSettings(msgspec.Struct, forbid_unknown_fields=True, kw_only=True, frozen=True):
    """``[kpi]``: the hub's figures."""

    # Bins whose stock is not sellable (damaged returns wait there).
    unsellable_bins: tuple[BinCode, ...] = ("QUARANTINE",)
    # Default window of kpi.get and of the telemetry's KPI block, in local days.
    window_days: Annotated[int, Meta(ge=1, le=90)] = 14
