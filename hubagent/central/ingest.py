"""``hubctl ingest``: every event of every hub into central's database, once.

One process, or several sharing the load in one of two modes:

- ``shared``: the events arrive on an MQTT v5 shared subscription
  (``$share/<group>/...``), so any process may get any hub's events; the
  cursors, gaps and acks are computed from the database.
- ``partition``: for brokers without shared subscriptions, process ``K``
  of ``N`` takes the hubs whose id hashes to ``K`` (CRC-32 modulo ``N``),
  found from their retained state, and subscribes to those hubs' topics only.

Every process also reads every (owned) hub's retained state, to know the
database id its events belong to and to notice restarts and new databases.

Threads: paho's network thread only queues messages; the main thread
stores them in batches (one transaction per batch) and acks; a worker
thread sends ``state.snapshot`` and ``events.replay`` and waits for replies.
"""

from __future__ import annotations

import json
import logging
import queue
import secrets
import threading
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as mqtt

from hubagent.central import books
from hubagent.central.books import HubState, Incoming
from hubagent.central.db import Database
from hubagent.central.link import (RECEIVE_MAXIMUM_ALL, Broker, Reply, Requester, connect_async,
                                   make_client)
from hubagent.clock import SYSTEM

log = logging.getLogger(__name__)

STATES = frozenset({"online", "alert", "offline", "lost"})
# Events parked per hub while its database id is unknown (the hub resends anyway).
_PARK_LIMIT = 10_000
# Seconds before asking again for subscriptions the broker refused.
_RESUBSCRIBE_S = 5.0


class IngestError(RuntimeError):
    """The ingest cannot run (broker refused us, bad options)."""


@dataclass(frozen=True)
class Options:
    """How an ingest process runs."""

    db_url: str
    mode: str = "single"  # single | shared | partition
    group: str = "hubctl-ingest"
    partition: tuple[int, int] = (0, 1)  # (K, N)
    gap_s: float = 3.0  # a gap open this long gets an events.replay
    retry_s: float = 10.0  # a replay or resync not finished by then is asked again
    command_timeout_s: float = 10.0
    batch_max: int = 2000
    session_expiry: int = 0  # > 0 keeps the broker session (and its queue) across restarts
    client_id: str | None = None
    workers: int = 4  # threads sending replays and snapshots


def partition_of(hub: str, n: int) -> int:
    """The partition (0..n-1) that owns ``hub``."""
    return zlib.crc32(hub.encode()) % n


class Ingest:
    """One ingest process. :meth:`run` blocks until :meth:`stop`."""

    def __init__(self, broker: Broker, options: Options) -> None:
        if options.mode not in ("single", "shared", "partition"):
            raise IngestError(f"--mode: unknown mode {options.mode!r}")
        k, n = options.partition
        if options.mode == "partition" and not 0 <= k < n:
            raise IngestError(f"--partition: expected K/N with 0 <= K < N, got {k}/{n}")
        if broker.settings.protocol != "5":
            raise IngestError("mqtt.protocol: the ingest needs MQTT 5 (command replies)")
        self.broker, self.opt = broker, options
        self.prefix = broker.prefix
        self.client_id = options.client_id or f"hubctl-ingest-{secrets.token_hex(4)}"
        self.db = Database(options.db_url)
        self._inbox: queue.SimpleQueue[mqtt.MQTTMessage] = queue.SimpleQueue()
        self._work: queue.SimpleQueue[tuple[Any, ...]] = queue.SimpleQueue()
        self._stop = threading.Event()
        self._dbids: dict[str, str] = {}
        self._parked: dict[str, list[Incoming]] = {}
        self._subscribed_hubs: set[str] = set()
        self._ready = threading.Event()
        self._fatal: str | None = None
        self.stored = 0  # events stored by this process
        self._db_failures = 0
        self._resubscribe_at: float | None = None
        self.client = make_client(broker, self.client_id, session_expiry=options.session_expiry)
        self.requester = Requester(self.client, broker, self.client_id)
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = self._on_subscribe
        self.client.on_message = self._on_message

    # -- ownership and topics --------------------------------------------------
    def owns(self, hub: str) -> bool:
        """True if this process handles ``hub``."""
        if self.opt.mode != "partition":
            return True
        k, n = self.opt.partition
        return partition_of(hub, n) == k

    def _hub_topics(self, hub: str) -> list[str]:
        base = f"{self.prefix}/{hub}"
        return [f"{base}/events/#", f"{base}/telemetry"]

    def _subscriptions(self) -> list[str]:
        p = self.prefix
        subs = [self.requester.reply_topic, f"{p}/+/state"]
        if self.opt.mode == "single":
            subs += [f"{p}/+/events/#", f"{p}/+/telemetry"]
        elif self.opt.mode == "shared":
            g = self.opt.group
            subs += [f"$share/{g}/{p}/+/events/#", f"$share/{g}/{p}/+/telemetry"]
        else:
            for hub in sorted(self._subscribed_hubs):
                subs += self._hub_topics(hub)
        return subs

    # -- paho callbacks (network thread) ----------------------------------------
    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, rc: Any,
                    props: Any = None) -> None:
        if rc.is_failure:
            log.error("broker refused the connection: %s", rc)
            return
        shared = getattr(props, "SharedSubscriptionAvailable", 1)
        if self.opt.mode == "shared" and shared == 0:
            self._fatal = ("the broker offers no shared subscriptions "
                           "(SharedSubscriptionAvailable = 0): use --mode partition")
            self._stop.set()
            return
        client.subscribe([(t, 1) for t in self._subscriptions()])
        log.info("connected as %s (%s mode)", self.client_id, self.opt.mode)

    def _on_subscribe(self, client: mqtt.Client, userdata: Any, mid: int, rcs: Any,
                      props: Any = None) -> None:
        bad = [str(rc) for rc in rcs if rc.is_failure]
        if bad:
            log.error("broker refused subscriptions: %s", ", ".join(bad))
            if not self._ready.is_set():
                self._fatal = f"broker refused subscriptions: {', '.join(bad)}"
                self._stop.set()
            else:
                # After a reconnect (ejabberd refuses every subscription after an
                # in-node restart until the node is restarted): ask again, and say so.
                self._resubscribe_at = SYSTEM.monotonic() + _RESUBSCRIBE_S
        self._ready.set()

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        if msg.topic == self.requester.reply_topic:
            self.requester.on_message(msg)
            return
        if self.opt.mode == "partition" and msg.topic.endswith("/state"):
            hub = self._split(msg.topic)[0]
            if hub and self.owns(hub) and hub not in self._subscribed_hubs:
                # A hub of ours, discovered from its retained state: take its topics.
                self._subscribed_hubs.add(hub)
                client.subscribe([(t, 1) for t in self._hub_topics(hub)])
        self._inbox.put(msg)

    # -- running ---------------------------------------------------------------
    def run(self, ready: Callable[[], None] | None = None) -> int:
        """Connect, then store and ack until stopped; returns the exit status."""
        self.db.migrate()
        # The broker streams events to us as fast as they come (paho's thread
        # only queues them): with Mosquitto's default 20 in flight, a burst from
        # a large fleet would overflow its per-client queue and be dropped.
        connect_async(self.client, self.broker, session_expiry=self.opt.session_expiry,
                      receive_maximum=RECEIVE_MAXIMUM_ALL)
        # A few workers: a hub that does not answer holds one up for the command timeout.
        workers = [threading.Thread(target=self._work_loop, name=f"ingest-resync-{i}", daemon=True)
                   for i in range(self.opt.workers)]
        for worker in workers:
            worker.start()
        next_claim = 0.0
        announced = False
        try:
            while not self._stop.is_set():
                if not announced and self._ready.is_set() and self._fatal is None:
                    announced = True
                    if ready is not None:
                        ready()
                batch = self._take()
                if batch:
                    self._handle_safely(batch)
                now = SYSTEM.monotonic()
                if self._resubscribe_at is not None and now >= self._resubscribe_at:
                    self._resubscribe_at = None
                    self.client.subscribe([(t, 1) for t in self._subscriptions()])
                if now >= next_claim:
                    next_claim = now + min(1.0, self.opt.gap_s / 2)
                    try:
                        self._claim()
                    except Exception as e:  # the database is down: the next batch reconnects
                        log.error("replay/resync scan failed: %s", e)
        finally:
            self._stop.set()
            self.client.disconnect()
            self.client.loop_stop()
            for worker in workers:
                worker.join(self.opt.command_timeout_s + 2)
            self.db.close()
        if self._fatal:
            raise IngestError(self._fatal)
        return 0

    def stop(self) -> None:
        """Ask :meth:`run` to return (from a signal handler or another thread)."""
        self._stop.set()

    def _take(self) -> list[mqtt.MQTTMessage]:
        """The next batch: wait for one message (at most a tick), take what else is there."""
        try:
            first = self._inbox.get(timeout=min(1.0, self.opt.gap_s / 2))
        except queue.Empty:
            return []
        batch = [first]
        while len(batch) < self.opt.batch_max:
            try:
                batch.append(self._inbox.get_nowait())
            except queue.Empty:
                break
        return batch

    # -- one batch ------------------------------------------------------------------
    def _split(self, topic: str) -> tuple[str | None, str, str]:
        """``(hub, kind, rest)`` of a topic under our prefix."""
        head = self.prefix + "/"
        if not topic.startswith(head):
            return None, "", ""
        parts = topic[len(head):].split("/", 2)
        if len(parts) < 2:
            return None, "", ""
        return parts[0], parts[1], parts[2] if len(parts) > 2 else ""

    def _handle_safely(self, batch: list[mqtt.MQTTMessage]) -> None:
        """Store a batch; on a database error drop it (nothing was acked: the hubs
        send it again), reconnect and go on."""
        try:
            self._handle(batch)
            self._db_failures = 0
        except Exception as e:
            self._db_failures += 1
            log.error("batch of %d messages not stored (%s); the hubs will resend it",
                      len(batch), e, exc_info=self._db_failures == 1)
            self._stop.wait(min(10.0, 0.1 * 2 ** self._db_failures))
            try:
                self.db.close()
            except Exception:  # already broken
                pass
            try:
                self.db = Database(self.opt.db_url)
            except Exception as e2:
                log.error("database unavailable: %s", e2)

    def _handle(self, batch: list[mqtt.MQTTMessage]) -> None:
        states: list[HubState] = []
        events: list[Incoming] = []
        telemetry: dict[str, Any] = {}
        for msg in batch:
            hub, kind, rest = self._split(msg.topic)
            if hub is None or not self.owns(hub):
                continue
            if kind == "state":
                st = _parse_state(hub, msg.payload)
                if st is not None:
                    states.append(st)
                    if st.db is not None:
                        self._dbids[hub] = st.db
                        events.extend(self._parked.pop(hub, []))
            elif kind == "events":
                ev = self._parse_event(hub, rest, msg.payload)
                if ev is not None:
                    events.append(ev)
            elif kind == "telemetry":
                try:
                    telemetry[hub] = json.loads(msg.payload)
                except ValueError:
                    log.warning("hub %s: telemetry is not JSON", hub)
        if not (states or events or telemetry):
            return
        with self.db.tx() as tx:
            # Rows are locked in one order (hubs by id, then cursors by hub) in
            # every transaction, so two processes never deadlock on them.
            resync = []
            for hub in sorted({st.hub for st in states} | set(telemetry)):
                for st in (s for s in states if s.hub == hub):  # in arrival order
                    if books.record_state(tx, st):
                        resync.append(hub)
                if hub in telemetry:
                    books.record_telemetry(tx, hub, telemetry[hub])
            cursors = books.store_events(tx, events)
        self.stored += sum(c.new for c in cursors)
        for c in cursors:
            if c.upto > 0 and self._dbids.get(c.hub) == c.db:
                self._ack(c.hub, c.upto)
        if resync:
            log.info("resync wanted for %s", ", ".join(resync))
            try:
                self._claim()
            except Exception as e:
                log.error("replay/resync scan failed: %s", e)

    def _parse_event(self, hub: str, kind: str, payload: bytes) -> Incoming | None:
        try:
            env = json.loads(payload)
            seq, eid = env["seq"], env["id"]
            if not isinstance(seq, int) or isinstance(seq, bool) or seq < 1:
                raise ValueError(f"seq {seq!r} is not a positive integer")
            if not isinstance(eid, str) or not eid:
                raise ValueError("id is not a non-empty string")
        except (ValueError, KeyError, TypeError) as e:
            log.warning("hub %s: unusable event on events/%s: %s", hub, kind, e)
            return None
        at = env.get("at") if isinstance(env.get("at"), str) else None
        dbid = self._dbids.get(hub) or self._known_db(hub)
        ev = Incoming(hub, dbid or "", seq, eid, str(env.get("kind", kind)), at, env.get("data"))
        if dbid is None:
            parked = self._parked.setdefault(hub, [])
            if len(parked) < _PARK_LIMIT:
                parked.append(ev)
            return None
        return ev

    def _known_db(self, hub: str) -> str | None:
        rows = self.db.read("SELECT db FROM hubs WHERE hub = ?", (hub,))
        if rows and rows[0][0]:
            self._dbids[hub] = str(rows[0][0])
            return self._dbids[hub]
        return None

    def _ack(self, hub: str, upto: int) -> None:
        self.client.publish(self.broker.topics(hub).ack,
                            json.dumps({"upto_seq": upto}).encode(), qos=1)

    # -- replays and resyncs ----------------------------------------------------------
    def _claim(self) -> None:
        for hub, reason in books.claim_resyncs(self.db, self.opt.retry_s, owns=self.owns):
            self._work.put(("resync", hub, reason))
        for hub, dbid, from_seq, limit in books.claim_gaps(self.db, self.opt.gap_s,
                                                           self.opt.retry_s, owns=self.owns):
            self._work.put(("replay", hub, dbid, from_seq, limit))

    def _work_loop(self) -> None:
        db = Database(self.opt.db_url)
        try:
            while not self._stop.is_set():
                try:
                    item = self._work.get(timeout=1.0)
                except queue.Empty:
                    continue
                try:
                    if item[0] == "resync":
                        self._resync(db, item[1], item[2])
                    else:
                        self._replay(db, item[1], item[3], item[4])
                except (TimeoutError, Reply) as e:
                    # Tried again once the claim expires (retry_s).
                    log.warning("%s of hub %s failed: %s", item[0], item[1], e)
                except Exception:
                    log.exception("%s of hub %s failed", item[0], item[1])
                    db.close()
                    db = Database(self.opt.db_url)
        finally:
            db.close()

    def _resync(self, db: Database, hub: str, reason: str) -> None:
        log.info("resync of hub %s (%s): taking state.snapshot", hub, reason)
        snap = self.requester.call(hub, "state.snapshot", timeout=self.opt.command_timeout_s,
                                   command_id=f"resync-{hub}-{secrets.token_hex(6)}")
        with db.tx() as tx:
            cur = books.apply_snapshot(tx, hub, reason, snap)
        if cur.upto > 0:
            self._ack(hub, cur.upto)
        last = int(snap["last_seq"])
        if cur.upto < last:
            self._replay(db, hub, cur.upto + 1, min(10_000, last - cur.upto))

    def _replay(self, db: Database, hub: str, from_seq: int, limit: int) -> None:
        log.info("hub %s: events.replay from %d (limit %d)", hub, from_seq, limit)
        result = self.requester.call(hub, "events.replay", {"from_seq": from_seq, "limit": limit},
                                     timeout=self.opt.command_timeout_s)
        missing = result.get("missing_before")
        if isinstance(missing, int) and missing > from_seq:
            with db.tx() as tx:
                books.want_resync(tx, hub, "pruned")


def _parse_state(hub: str, payload: bytes) -> HubState | None:
    """A retained state message, or None (an empty payload clears it)."""
    if not payload:
        return None
    try:
        doc = json.loads(payload)
        state = doc["state"]
        if state not in STATES:
            raise ValueError(f"state {state!r} is not one of {sorted(STATES)}")
    except (ValueError, KeyError, TypeError) as e:
        log.warning("hub %s: unusable state message: %s", hub, e)
        return None
    session = doc.get("session")
    alerts = doc.get("alerts") if isinstance(doc.get("alerts"), list) else []
    return HubState(hub, state, session if isinstance(session, int) else None,
                    doc.get("db") if isinstance(doc.get("db"), str) else None,
                    doc.get("version") if isinstance(doc.get("version"), str) else None,
                    doc.get("since") if isinstance(doc.get("since"), str) else None,
                    tuple(str(a) for a in alerts))
