"""Handing outbox events to paho without a core-thread round trip per PUBACK.

The core thread reads events from SQLite in batches and appends them to
the stream's *feed*, then wakes the link's network thread. That thread is
the only one that calls paho's ``publish`` for events: it moves events from
the feed into paho while the hand-off has room, and takes the next one
inside the PUBACK callback of an earlier one, so a draining backlog keeps
the wire busy without the core thread: two Python threads trading the GIL
for every event cost more than the sending itself. The core is woken when
the feed is half empty, or when the broker refuses a publish.

Order: one thread publishes, taking events from the front of the feed, so
they reach the wire in seq order. The stream's own lock guards the feed
and the bookkeeping the two threads share; paho is never called by the
core thread.

Replays (``events.replay``) go the same way in their own queue: windowed
by PUBACKs like the live stream, and the command's reply is published
only once the broker has acknowledged every replayed event before it, so
central reads the reply after the events.

Every connection has an *epoch*: what the core appended for an earlier
connection is refused, and a new connection starts with an empty feed, so
nothing stale goes out after a reconnect (the core rewinds to central's
last ack and streams from there; a replay cut off by a disconnect gets no
reply, and central repeats the command).
"""

from __future__ import annotations

import itertools
import threading
from collections import deque
from typing import Callable, Sequence

import msgspec
import paho.mqtt.client as mqtt
from paho.mqtt.properties import Properties

from hubagent.sync.outbox import Outgoing

Topic = Callable[[str], str]


class Replay(msgspec.Struct):
    """Replayed events to publish, then the reply of the command that asked for them."""

    events: deque[Outgoing]
    reply_topic: str
    reply: bytes
    reply_props: Properties | None = None
    mids: set[int] = msgspec.field(default_factory=set)


class EventStream:
    """The feed of prepared events and the publishes paho has not PUBACKed yet."""

    def __init__(self, client: mqtt.Client, topic: Topic, handoff: int, ahead: int) -> None:
        self._client = client
        self._topic = topic
        self._lock = threading.Lock()
        # Publishes handed to paho without a PUBACK: paho keeps [mqtt]
        # inflight of them on the wire and the rest queued, so the next one
        # leaves as soon as a PUBACK frees a slot.
        self._handoff = handoff
        # Events the core prepares ahead; it is woken at half of this.
        self.ahead = ahead
        self._feed: deque[Outgoing] = deque()
        self._mids: dict[int, int] = {}
        self._replays: deque[Replay] = deque()
        # The connection the feed and mids belong to, and the newest one
        # (``next()`` on a count is atomic).
        self._epoch = 0
        self._epochs = itertools.count(1)
        self._newest = 0
        self._low_posted = False
        self.on_low: Callable[[], None] = lambda: None
        self.on_refused: Callable[[int, str], None] = lambda seq, reason: None
        # Wakes the network thread (set by the link).
        self.wake: Callable[[], None] = lambda: None

    # -- network thread ------------------------------------------------------
    def new_epoch(self) -> int:
        """A connection came or went (paho callbacks); returns its epoch."""
        self._newest = next(self._epochs)
        return self._newest

    def _current(self) -> None:
        """Drop the feed, hand-off and replays of an old connection (lock held)."""
        if self._epoch != self._newest:
            self._epoch = self._newest
            self._feed.clear()
            self._mids.clear()
            self._replays.clear()
            self._low_posted = False

    def puback(self, mid: int, ok: bool, reason: str) -> bool:
        """paho's PUBACK callback (network thread); False if ``mid`` is not a stream publish."""
        with self._lock:
            self._current()
            seq = self._mids.pop(mid, None)
            if seq is None:
                return self._replay_puback(mid)
            if not ok:
                self.on_refused(seq, reason)
            self._pull()
            if len(self._feed) <= self.ahead // 2 and not self._low_posted:
                self._low_posted = True
                self.on_low()
            return True

    def pull(self) -> None:
        """Hand paho what the core appended (network thread, each loop turn)."""
        if not self._feed and not self._replays:
            return
        with self._lock:
            self._current()
            self._pull()
            self._pull_replay()

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

    def _replay_puback(self, mid: int) -> bool:
        """A PUBACK of a replayed event or of a replay's reply (lock held)."""
        if not self._replays or mid not in self._replays[0].mids:
            return False
        job = self._replays[0]
        job.mids.discard(mid)
        self._pull_replay()
        return True

    def _pull_replay(self) -> None:
        """Hand paho the current replay's events, then its reply (lock held)."""
        while self._replays and self._client.is_connected():
            job = self._replays[0]
            while job.events and len(job.mids) < self._handoff:
                ev = job.events[0]
                info = self._client.publish(self._topic(ev.kind), ev.payload, qos=1)
                if info.rc != mqtt.MQTT_ERR_SUCCESS:
                    return
                job.events.popleft()
                job.mids.add(info.mid)
            if job.events or job.mids:
                return  # the reply waits for the last PUBACK
            self._client.publish(job.reply_topic, job.reply, qos=1, properties=job.reply_props)
            self._replays.popleft()

    # -- core thread ---------------------------------------------------------
    def send(self, epoch: int, events: Sequence[Outgoing]) -> bool:
        """Append ``events`` for connection ``epoch``; False if that connection is gone."""
        with self._lock:
            self._current()
            if epoch != self._epoch:
                return False
            self._feed.extend(events)
            self._low_posted = False
        self.wake()
        return True

    def replay(self, epoch: int, job: Replay) -> bool:
        """Queue a replay for connection ``epoch``; False if that connection is gone."""
        with self._lock:
            self._current()
            if epoch != self._epoch:
                return False
            self._replays.append(job)
        self.wake()
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

    @property
    def epoch(self) -> int:
        """The newest connection's epoch."""
        return self._newest


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
