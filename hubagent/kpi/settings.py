"""``[kpi]``: the default window of the figures (importable without the feature).

Which bins are sellable is ``[stock] unsellable_bins``, shared with the stock summary.
"""

from __future__ import annotations

from typing import Annotated

import msgspec
from msgspec import Meta

class KpiSettings(msgspec.Struct, forbid_unknown_fields=True, kw_only=True, frozen=True):
    """``[kpi]``: the hub's figures."""

    # Default window of kpi.get and of the telemetry's KPI block, in local days.
    window_days: Annotated[int, Meta(ge=1, le=90)] = 14
