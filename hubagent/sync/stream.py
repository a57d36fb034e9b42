"""Handing outbox events to paho without a core-thread round trip per PUBACK.

The core thread reads events from SQLite in batches and appends them to
the stream's *feed*. paho's network thread takes the next one from the feed
inside the PUBACK callback of an earlier one, so a draining backlog keeps
the wire busy without the core thread: two Python threads trading the GIL
for every event cost more than the sending itself. The core is woken when
the feed is half empty, or when the broker refuses a publish.

Order: an event leaves the feed and becomes a paho publish under paho's own
out-message lock (an ``RLock`` paho already holds while it runs the PUBACK
callback), so the two threads cannot interleave two events out of seq
order. paho takes its callback lock inside that one, never around it, so
nothing here takes the out-message lock from a callback that paho runs
under its callback lock alone (connect, disconnect, QoS 0 publishes).

Every connection has an *epoch*: what the core appended for an earlier
connection is refused, and a new connection starts with an empty feed, so
nothing stale goes out after a reconnect (the core rewinds to central's
last ack and streams from there).
"""

from __future__ import annotations

import itertools
from collections import deque
from typing import Any, Callable, Sequence

import paho.mqtt.client as mqtt

from hubagent.sync.outbox import Outgoing

Topic = Callable[[str], str]


def paho_lock(client: mqtt.Client) -> Any:
    """paho's out-message lock (held by paho around its PUBACK callback)."""
    lock = getattr(client, "_out_message_mutex", None)
    if lock is None or not hasattr(lock, "acquire"):
        raise RuntimeError("this paho-mqtt has no out-message lock; hubagent needs paho-mqtt 2.x")
    return lock


class EventStream:
    """The feed of prepared events and the publishes paho has not PUBACKed yet."""

    def __init__(self, client: mqtt.Client, topic: Topic, handoff: int, ahead: int) -> None:
        self._client = client
        self._topic = topic
        self._lock = paho_lock(client)
        # Publishes handed to paho without a PUBACK: paho keeps [mqtt]
        # inflight of them on the wire and the rest queued, so the next one
        # leaves as soon as a PUBACK frees a slot.
        self._handoff = handoff
        # Events the core prepares ahead; it is woken at half of this.
        self.ahead = ahead
        self._feed: deque[Outgoing] = deque()
        self._mids: dict[int, int] = {}
        # The connection the feed and mids belong to, and the newest one
        # (``next()`` on a count is atomic, so it needs no lock).
        self._epoch = 0
        self._epochs = itertools.count(1)
        self._newest = 0
        self._low_posted = False
        self.on_low: Callable[[], None] = lambda: None
        self.on_refused: Callable[[int, str], None] = lambda seq, reason: None

    # -- network thread ------------------------------------------------------
    def new_epoch(self) -> int:
        """A connection came or went (paho callbacks, no lock taken); returns its epoch."""
        self._newest = next(self._epochs)
        return self._newest

    def _current(self) -> None:
        """Drop the feed and hand-off of an old connection (lock held)."""
        if self._epoch != self._newest:
            self._epoch = self._newest
            self._feed.clear()
            self._mids.clear()
            self._low_posted = False

    def puback(self, mid: int, ok: bool, reason: str) -> bool:
        """paho's PUBACK callback (its lock held); False if ``mid`` is not a stream event."""
        if mid not in self._mids:
            return False  # e.g. a QoS 0 publish, whose callback runs without the lock
        with self._lock:
            self._current()
            seq = self._mids.pop(mid, None)
            if seq is None:
                return False
            if not ok:
                self.on_refused(seq, reason)
            self._pull()
            if len(self._feed) <= self.ahead // 2 and not self._low_posted:
                self._low_posted = True
                self.on_low()
            return True

    def _pull(self) -> None:
        """Hand paho events from the feed while the hand-off has room (lock held)."""
        if not self._client.is_connected():
            return  # paho would keep them and send them again after a reconnect
        while self._feed and len(self._mids) < self._handoff:
            ev = self._feed[0]
            info = self._client.publish(self._topic(ev.kind), ev.payload, qos=1)
            if info.rc != mqtt.MQTT_ERR_SUCCESS:
                return  # the connection just went; the next one starts afresh
            self._feed.popleft()
            self._mids[info.mid] = ev.seq

    # -- core thread ---------------------------------------------------------
    def send(self, epoch: int, events: Sequence[Outgoing]) -> bool:
        """Append ``events`` for connection ``epoch``; False if that connection is gone."""
        with self._lock:
            self._current()
            if epoch != self._epoch:
                return False
            self._feed.extend(events)
            self._low_posted = False
            self._pull()
            return True

    def room(self) -> int:
        """How many more events the feed takes now."""
        return max(0, self.ahead - len(self._feed))

    def clear(self, epoch: int) -> None:
        """Drop what is still in the feed (a rewind streams it again, in order)."""
        with self._lock:
            self._current()
            if epoch == self._epoch:
                self._feed.clear()
                self._low_posted = False

    def depth(self) -> tuple[int, int]:
        """(events in the feed, publishes handed to paho without a PUBACK)."""
        with self._lock:
            self._current()
            return len(self._feed), len(self._mids)


class ConnectionFeed:
    """The stream as the pump sees it for one connection (its epoch)."""

    def __init__(self, stream: EventStream, epoch: int) -> None:
        self._stream = stream
        self._epoch = epoch

    def room(self) -> int:
        """How many more events can be appended now."""
        return self._stream.room()

    def send(self, events: Sequence[Outgoing]) -> bool:
        """Append events; False if this connection is gone."""
        return self._stream.send(self._epoch, events)

    def clear(self) -> None:
        """Drop what paho has not been handed yet."""
        self._stream.clear(self._epoch)

    def pending(self) -> int:
        """Events appended but not PUBACKed yet."""
        feed, handed = self._stream.depth()
        return feed + handed
