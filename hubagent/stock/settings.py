"""``[stock]``: which bins are sellable and when lots count as expiring."""

from __future__ import annotations

from typing import Annotated

import msgspec

from hubagent.feature import Section

BinCode = Annotated[str, msgspec.Meta(pattern=r"^[A-Z0-9][A-Z0-9-]{0,23}$")]
"""A bin code as ``HA:BIN:<code>`` yields it (upper case)."""


class StockSettings(msgspec.Struct, forbid_unknown_fields=True, kw_only=True, frozen=True):
    """``[stock]``: the stock ledger's policy."""

    # Bins whose stock is not sellable: counted in on_hand, left out of `available`
    # in the retained stock summary and stock.get. Keep [scanning] quarantine_bin here.
    unsellable_bins: Annotated[list[BinCode], msgspec.Meta(max_length=100)] = \
        msgspec.field(default_factory=lambda: ["QUARANTINE"])
    # A lot whose expiry (else best-before) date is at most this many days away is
    # reported once as stock.expiring by the daily check; once past, as stock.expired.
    expiring_days: Annotated[int, msgspec.Meta(ge=0, le=365)] = 7
    # No expiry is decided while the wall clock reads a year before this (a Pi without
    # a real-time clock boots in 1970 until NTP sets the time).
    min_sane_year: Annotated[int, msgspec.Meta(ge=2020, le=2100)] = 2024


STOCK = Section("stock", StockSettings)
"""The ``[stock]`` section."""
