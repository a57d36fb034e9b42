"""Feeding the outbox to the broker: windows, acks and resends (core thread only).

Two windows bound what is out at once. The *hand-off* window counts
publishes without a PUBACK: ``HANDOFF_FACTOR`` times ``[mqtt] inflight``.
paho itself keeps ``inflight`` of them on the wire and queues the rest,
sending the next one from its own thread as each PUBACK arrives, so the core
thread refills paho in batches (when half the hand-off window is free)
rather than once per PUBACK, and paho's memory queue stays small. The
*send-ahead* window counts events published but not yet acknowledged by
central (at most ``MAX_WINDOW``): it adapts like TCP's congestion window,
shrinking when events are lost and growing again with every acked event, so
a broker that drops queued messages is not flooded with events it will drop
again.

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
are sent again, while an fsync per ack would stall the pump.

Rows are read from SQLite in batches into a small read-ahead buffer, with
each MQTT payload built around the stored JSON text (no parse and re-dump).
"""

from __future__ import annotations

import logging
import time
from collections import deque
from typing import Callable

from hubagent.store.store import Store
from hubagent.sync import outbox
from hubagent.sync.outbox import Outgoing

log = logging.getLogger(__name__)

# Events read from the database per query.
READ_BATCH = 256
# Publishes handed to paho without a PUBACK, in multiples of [mqtt] inflight.
HANDOFF_FACTOR = 8
# Largest send-ahead window (events published but not acknowledged by
# central). Mosquitto's default max_queued_messages is 1000: with more than
# that unacknowledged, a subscriber that lags behind loses messages.
MAX_WINDOW = 1000
# Smallest send-ahead window after a loss.
MIN_WINDOW = 2
# Repeated acks below what was sent before a duplicate-ack resend.
DUP_ACKS = 2
# Longest delay before an ack received is written to the database.
ACK_PERSIST_S = 0.5
# Bounds of the retransmission timeout (the upper one is ack_timeout_s).
MIN_RTO = 0.5

Publish = Callable[[Outgoing], "int | None"]


class Pump:
    """The outbox cursor, its windows and the resend decisions."""

    def __init__(self, store: Store, inflight: int, ack_timeout_s: float) -> None:
        self._store = store
        self._inflight_max = inflight * HANDOFF_FACTOR
        self._ack_timeout = ack_timeout_s
        self.cursor = 0
        self.acked = 0
        self.inflight: dict[int, int] = {}
        self.window = float(MAX_WINDOW)
        self._threshold = float(MAX_WINDOW)
        self.srtt: float | None = None
        self._rttvar = 0.0
        # (seq, monotonic time) of each publish not yet acked, oldest first.
        self._sent: deque[tuple[int, float]] = deque()
        self.refused = 0
        self.resends = 0
        self._buffer: deque[Outgoing] = deque()
        self._persisted = 0
        self._last_persist = 0.0
        self._keep = 0
        self._dup_acks = 0
        self._last_progress = time.monotonic()
        self._last_rewind = 0.0

    # -- connection events ---------------------------------------------------
    def reset(self) -> None:
        """A new connection: forget in-flight mids and send from the first unacked seq."""
        self.inflight.clear()
        self.flush(force=True)
        self.acked = self._persisted = outbox.acked_seq(self._store)
        self._rewind_to(self.acked)
        self._last_progress = time.monotonic()

    def disconnected(self) -> None:
        """PUBACKs of the old connection will never come."""
        self.inflight.clear()

    # -- sending -------------------------------------------------------------
    def run(self, publish: Publish) -> int:
        """Publish while both windows have room; returns how many were published."""
        sent = 0
        now = time.monotonic()
        while len(self.inflight) < self._inflight_max and self.cursor < self.acked + self.window:
            if not self._buffer and not self._refill():
                break
            ev = self._buffer[0]
            mid = publish(ev)
            if mid is None:
                break
            self._buffer.popleft()
            self.inflight[mid] = ev.seq
            self.cursor = ev.seq
            self._sent.append((ev.seq, now))
            sent += 1
        return sent

    def _refill(self) -> bool:
        room = min(READ_BATCH, int(self.acked + self.window - self.cursor))
        if room <= 0:
            return False
        self._buffer.extend(outbox.pending_payloads(self._store, self.cursor, room))
        return bool(self._buffer)

    def wants_more(self) -> bool:
        """Whether enough of the hand-off window is free to be worth a refill."""
        return len(self.inflight) <= self._inflight_max // 2

    def puback(self, mid: int, ok: bool) -> int | None:
        """Free a slot; returns the seq of a publish the broker refused, else None."""
        seq = self.inflight.pop(mid, None)
        if seq is not None and not ok:
            # Refused (e.g. ACL): not delivered. It stays in the outbox and
            # is sent again when central's ack stalls below it.
            self.refused += 1
            return seq
        return None

    # -- central's acks --------------------------------------------------------
    def ack(self, upto: int, keep: int) -> bool:
        """Apply ``{"upto_seq": upto}``; True if it resent (a duplicate ack)."""
        before = self.acked
        self._keep = keep
        # Central cannot acknowledge what the hub has not allocated: clamp.
        self.acked = max(before, min(upto, self._store.last_seq()))
        now = time.monotonic()
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
        now = time.monotonic() if now is None else now
        if force or self.acked >= self.cursor or now - self._last_persist >= ACK_PERSIST_S:
            self._persisted = outbox.acknowledge(self._store, self.acked, self._keep)
            self._last_persist = now

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
        self.window = min(float(MAX_WINDOW), self.window)

    def rto(self) -> float:
        """The retransmission timeout now."""
        if self.srtt is None:
            return self._ack_timeout
        return min(self._ack_timeout, max(MIN_RTO, self.srtt + 4 * self._rttvar))

    def check_timeout(self) -> bool:
        """Resend from the first unacked seq if it has waited longer than the RTO."""
        now = time.monotonic()
        self.flush(now)
        if self.cursor <= self.acked:
            self._last_progress = now
            return False
        oldest = self._sent[0][1] if self._sent else self._last_progress
        if now - max(oldest, self._last_progress) <= self.rto():
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

    def _loss(self) -> None:
        self.resends += 1
        self._dup_acks = 0
        self._rewind_to(self.acked)

    def _rewind_to(self, seq: int) -> None:
        self.cursor = seq
        self._buffer.clear()
        self._sent.clear()
        self._last_rewind = time.monotonic()

    # -- figures -------------------------------------------------------------
    def unpublished(self, last_seq: int) -> int:
        """Events committed but not yet PUBACKed on this connection."""
        return last_seq - self.cursor + len(self.inflight)
