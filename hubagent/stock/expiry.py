"""The daily check of lot dates: ``stock.expiring`` and ``stock.expired``.

Each lot balance with a date (GS1 expiry, AI 17, else best-before, AI 15)
and stock on hand is reported once as ``stock.expiring`` when its date is at
most ``[stock] expiring_days`` away, and once as ``stock.expired`` when the
date has passed (goods expire at the end of their date). ``lot_notices``
remembers what was sent, in the same transaction as the event.

Today's date comes from the core clock (:mod:`hubagent.clock`). A Pi without
a real-time clock may read 1970 until NTP sets it: while the clock reads a
year before ``[stock] min_sane_year`` nothing is decided (no event, and
``expired_units`` is None) and the check catches up once the clock is set.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from hubagent.clock import Clock, Timer
from hubagent.errors import HubError
from hubagent.stock.settings import StockSettings
from hubagent.store.store import Store, Tx

log = logging.getLogger(__name__)

DAY_S = 24 * 3600.0
"""Seconds between two checks."""

_DATE = "COALESCE(NULLIF(expiry, ''), NULLIF(best_before, ''))"


class ExpiryCheck:
    """Runs at start and every day on the core clock; also callable directly."""

    def __init__(self, store: Store, clock: Clock, settings: StockSettings) -> None:
        self.store = store
        self.clock = clock
        self.settings = settings
        self._timer: Timer | None = None
        self.last_run: str | None = None

    def start(self) -> None:
        """Check now, then every :data:`DAY_S` seconds."""
        self._tick()

    def stop(self) -> None:
        """Cancel the next check."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _tick(self) -> None:
        self._timer = self.clock.call_later(DAY_S, self._tick)
        try:
            self.check()
        except HubError as e:  # a full disk must not stop tomorrow's check
            log.error("lot expiry check not recorded: %s", e)

    def today(self) -> dt.date | None:
        """Today's date by the core clock (UTC), or None while the clock is not sane."""
        now = self.clock.now()
        return now.date() if now.year >= self.settings.min_sane_year else None

    def check(self) -> tuple[int, int]:
        """Emit the notices due today; ``(expiring, expired)`` sent. (0, 0) on an insane clock."""
        today = self.today()
        if today is None:
            log.warning("wall clock reads %s: lot expiry not checked", self.clock.now().isoformat())
            return 0, 0
        horizon = today + dt.timedelta(days=self.settings.expiring_days)
        sent = [0, 0]
        with self.store.write() as tx:
            for row in _dated_lots(tx):
                date = dt.date.fromisoformat(row["date"])
                state = "expired" if date < today else "expiring" if date <= horizon else None
                if state is None or _noticed(tx, row, state):
                    continue
                data = {"sku": row["sku"], "bin": row["bin"], "lot": row["lot"] or None,
                        "expiry": row["expiry"] or None, "best_before": row["best_before"] or None,
                        "on_hand": row["on_hand"]}
                if state == "expiring":
                    data["days_left"] = (date - today).days
                    tx.emit("stock.expiring", data)
                else:
                    tx.emit("stock.expired", data)
                tx.execute("INSERT INTO lot_notices(sku, bin, lot, expiry, best_before, state, at) "
                           "VALUES (?, ?, ?, ?, ?, ?, ?)",
                           (row["sku"], row["bin"], row["lot"], row["expiry"], row["best_before"],
                            state, tx.now))
                sent[state == "expired"] += 1
        self.last_run = today.isoformat()
        return sent[0], sent[1]

    def expired_units(self) -> int | None:
        """Units on hand in lots past their date (None while the clock is not sane)."""
        today = self.today()
        if today is None:
            return None
        rows = self.store.query(f"SELECT COALESCE(SUM(on_hand), 0) AS n FROM lot_balances "
                                f"WHERE on_hand > 0 AND {_DATE} < ?", (today.isoformat(),))
        return int(rows[0]["n"])


def _dated_lots(tx: Tx) -> list[dict[str, Any]]:
    cur = tx.execute(f"SELECT sku, bin, lot, expiry, best_before, on_hand, {_DATE} AS date "
                     f"FROM lot_balances WHERE on_hand > 0 AND {_DATE} IS NOT NULL "
                     f"ORDER BY date, sku, bin, lot")
    cols = [c[0] for c in cur.description or ()]
    return [dict(zip(cols, r)) for r in cur.fetchall()]


def _noticed(tx: Tx, row: dict[str, Any], state: str) -> bool:
    return tx.execute("SELECT 1 FROM lot_notices WHERE sku=? AND bin=? AND lot=? AND expiry=? "
                      "AND best_before=? AND state=?",
                      (row["sku"], row["bin"], row["lot"], row["expiry"], row["best_before"],
                       state)).fetchone() is not None
