"""Feeding the outbox to the broker: the send-ahead window, acks and resends (core thread).

The pump decides *what* goes out; the link's event stream
(:mod:`hubagent.sync.stream`) decides *when*: the pump appends events to the
stream's feed in batches, and paho's network thread takes them from there,
one per PUBACK. The *send-ahead* window counts events handed over but not
yet acknowledged by central (at most ``[mqtt] max_unacked``): it adapts like TCP's
congestion window, shrinking when events are lost and growing again with
every acked event, so a broker that drops queued messages is not flooded
with events it will drop again.

A lost event is detected two ways: central acknowledges the same seq again
while later events were sent (a *duplicate ack*: it received something
after a gap), or the first unacknowledged event was sent longer ago than the
retransmission timeout: the smoothed round trip (send to ack) plus four
times its mean deviation, as TCP computes it, at least half a second and at
most ``ack_timeout_s``. Either way the pump rewinds to
the first unacknowledged seq and sends from there again (central
deduplicates by id). A duplicate ack halves the window; after a timeout it
restarts small and doubles per acknowledged round trip up to half of what
it was (TCP's slow start), because a broker that drops messages
(``max_queued_messages``) drops whatever exceeds its queue.

Central's acks are applied in memory at once (they open the window) and
written to the database at most every ``ACK_PERSIST_S`` seconds, or as soon
as central has caught up: an ack lost in a power cut only means some events
are sent again, while an fsync per ack would stall the pump. Rows beyond
retention are deleted when central has caught up, or every ``PRUNE_S``
while a backlog drains, at most ``PRUNE_ROWS`` at a time: deletes take
core-thread time from the drain, and fewer, larger ones rewrite fewer
pages of the SD card.

Rows are read from SQLite in batches, each MQTT payload built around the
stored JSON text (no parse and re-dump).
"""

from __future__ import annotations

import logging
from collections import deque
from typing import Protocol, Sequence

from hubagent.clock import Clock
from hubagent.store.store import Store
from hubagent.sync import outbox
from hubagent.sync.outbox import Outgoing

log = logging.getLogger(__name__)

# Default largest send-ahead window ([mqtt] max_unacked: events published but
# not acknowledged by central). Mosquitto's default max_queued_messages is
# 1000: with more than that unacknowledged, a lagging subscriber loses messages.
MAX_WINDOW = 1000
# Smallest send-ahead window after a loss.
MIN_WINDOW = 2
# Repeated acks below what was sent before a duplicate-ack resend.
DUP_ACKS = 2
# Longest delay before an ack received is written to the database.
ACK_PERSIST_S = 0.5
# Longest delay between prunes of acknowledged rows while a backlog drains,
# and the most rows one prune deletes (about 50 ms on a 2-core x86 VM).
PRUNE_S = 5.0
PRUNE_ROWS = 5_000
# Bounds of the retransmission timeout (the upper one is ack_timeout_s).
MIN_RTO = 0.5


class Feed(Protocol):
    """Where the pump hands events over: one connection's event stream."""

    def room(self) -> int:
        """How many more events it takes now."""

    def send(self, events: Sequence[Outgoing]) -> bool:
        """Take ``events`` (in seq order); False if the connection is gone."""

    def clear(self) -> None:
        """Drop events taken but not handed to the broker yet."""

    def pending(self) -> int:
        """Events taken and not yet PUBACKed."""


class Pump:
    """The outbox cursor, the send-ahead window and the resend decisions."""

    def __init__(self, store: Store, ack_timeout_s: float, max_window: int,
                 clock: Clock) -> None:
        self._store = store
        self._clock = clock
        self._ack_timeout = ack_timeout_s
        self._max_window = float(max_window)
        self._feed: Feed | None = None
        self.cursor = 0
        self.acked = 0
        self.window = self._max_window
        self._threshold = self._max_window
        self.srtt: float | None = None
        self._rttvar = 0.0
        # (last seq, monotonic time) of each batch handed over and not yet
        # acked, oldest first.
        self._sent: deque[tuple[int, float]] = deque()
        self.refused = 0
        self.resends = 0
        self._persisted = 0
        self._last_persist = 0.0
        self._last_prune = self._clock.monotonic()
        self._keep = 0
        self._dup_acks = 0
        self._last_progress = self._clock.monotonic()
        self._last_rewind = 0.0

    # -- connection events ---------------------------------------------------
    def reset(self, feed: Feed) -> None:
        """A new connection: send to ``feed``, from the first unacked seq."""
        self._feed = feed
        self.flush(force=True)
        self.acked = self._persisted = outbox.acked_seq(self._store)
        self._rewind_to(self.acked)
        self._last_progress = self._clock.monotonic()

    def disconnected(self) -> None:
        """Nothing can be sent until the next :meth:`reset`."""
        self._feed = None

    # -- sending -------------------------------------------------------------
    def run(self) -> int:
        """Hand the feed what it has room for within the window; returns how many."""
        feed = self._feed
        if feed is None:
            return 0
        room = min(feed.room(), int(self.acked + self.window - self.cursor))
        if room <= 0:
            return 0
        events = outbox.pending_payloads(self._store, self.cursor, room)
        if not events or not feed.send(events):
            return 0
        self.cursor = events[-1].seq
        self._sent.append((self.cursor, self._clock.monotonic()))
        return len(events)

    def note_refused(self, seq: int) -> None:
        """The broker refused ``seq``: it is resent when central's ack stalls below it."""
        self.refused += 1

    # -- central's acks --------------------------------------------------------
    def ack(self, upto: int, keep: int) -> bool:
        """Apply ``{"upto_seq": upto}``; True if it resent (a duplicate ack)."""
        before = self.acked
        self._keep = keep
        # Central cannot acknowledge what the hub has not allocated: clamp.
        self.acked = max(before, min(upto, self._store.last_seq()))
        now = self._clock.monotonic()
        if self.acked > before:
            self._last_progress = now
            self._dup_acks = 0
            self._measure(now)
            self._grow(self.acked - before)
            if self.acked > self.cursor:
                # Acked past what this connection sent (sent by an earlier
                # run): nothing below is worth sending.
                self._rewind_to(self.acked)
            self.flush(now)
            return False
        if self.cursor <= self.acked:
            return False
        self._dup_acks += 1
        # Not again within a round trip of the last resend: it has not had
        # time to arrive, and central repeats its ack for every batch.
        gap = max(MIN_RTO / 2, self.srtt or 0.0)
        if self._dup_acks >= DUP_ACKS and now - self._last_rewind >= gap:
            log.info("central still acks seq %d although %d was sent; resending from %d",
                     self.acked, self.cursor, self.acked + 1)
            self._threshold = max(float(MIN_WINDOW), self.window / 2)
            self.window = self._threshold
            self._loss()
            return True
        return False

    def flush(self, now: float | None = None, force: bool = False) -> None:
        """Write the acked seq (and prune) if due, caught up, or ``force``d."""
        if self.acked <= self._persisted:
            return
        now = self._clock.monotonic() if now is None else now
        caught_up = self.acked >= self.cursor
        if force or caught_up or now - self._last_persist >= ACK_PERSIST_S:
            prune = force or caught_up or now - self._last_prune >= PRUNE_S
            self._persisted = outbox.acknowledge(self._store, self.acked, self._keep,
                                                 PRUNE_ROWS if prune else 0)
            self._last_persist = now
            if prune:
                self._last_prune = now

    def _measure(self, now: float) -> None:
        """Take a round-trip sample from the newest publish the ack covers."""
        sample = None
        while self._sent and self._sent[0][0] <= self.acked:
            sample = now - self._sent.popleft()[1]
        if sample is None:
            return
        if self.srtt is None:
            self.srtt, self._rttvar = sample, sample / 2
        else:  # Jacobson/Karels, as TCP does
            self._rttvar = 0.75 * self._rttvar + 0.25 * abs(self.srtt - sample)
            self.srtt = 0.875 * self.srtt + 0.125 * sample

    def _grow(self, acked: int) -> None:
        if self.window < self._threshold:
            self.window += acked  # slow start: doubles per round trip
        else:
            self.window += acked / self.window  # then one more per round trip
        self.window = min(self._max_window, self.window)

    def rto(self) -> float:
        """The retransmission timeout now."""
        if self.srtt is None:
            return self._ack_timeout
        return min(self._ack_timeout, max(MIN_RTO, self.srtt + 4 * self._rttvar))

    def check_timeout(self) -> bool:
        """Resend from the first unacked seq if it has waited longer than the RTO."""
        now = self._clock.monotonic()
        self.flush(now)
        if self.cursor <= self.acked:
            self._last_progress = now
            return False
        oldest = self._sent[0][1] if self._sent else self._last_progress
        if now - max(oldest, self._last_progress) < self.rto():
            return False
        log.warning("no ack from central for seq %d after %.1f s; resending from there",
                    self.acked + 1, now - oldest)
        # Half of what was out, but not of a burst far beyond the window
        # (a flight that was mostly dropped says nothing about capacity).
        self._threshold = max(float(MIN_WINDOW), min(self.window, self.cursor - self.acked) / 2)
        self.window = float(MIN_WINDOW)
        self._loss()
        self._last_progress = now
        return True

    def deadline(self) -> float | None:
        """When :meth:`check_timeout` would resend (monotonic), or None with nothing unacked."""
        if self.cursor <= self.acked:
            return None
        oldest = self._sent[0][1] if self._sent else self._last_progress
        return max(oldest, self._last_progress) + self.rto()

    def _loss(self) -> None:
        self.resends += 1
        self._dup_acks = 0
        self._rewind_to(self.acked)

    def _rewind_to(self, seq: int) -> None:
        self.cursor = seq
        self._sent.clear()
        if self._feed is not None:
            self._feed.clear()
        self._last_rewind = self._clock.monotonic()

    # -- figures -------------------------------------------------------------
    def unpublished(self, last_seq: int) -> int:
        """Events committed but not yet PUBACKed on this connection."""
        pending = self._feed.pending() if self._feed is not None else 0
        return last_seq - self.cursor + pending
