"""A protocol-level fleet simulator: N hubs on one broker, for tests and benchmarks.

Each simulated hub speaks the hub's side of docs/mqtt-api.md: retained
state (session, database id), events with a gap-free ``seq`` kept until
acknowledged, a window of unacknowledged events, resends on a duplicate
ack or an ack timeout, ``events.replay``, ``state.snapshot``,
``stock.count``/``stock.get``/``ping`` with MQTT v5 replies, retained
stock summaries, restarts after ``lost`` and new databases. Hubs share a
few MQTT connections (``per_connection`` hubs each), so 1,000 of them fit
on a small machine where 1,000 daemons would not; a connection's hubs
publish their own ``lost`` state when told to vanish, as a broker's last
will would.
"""

from __future__ import annotations

import json
import secrets
import threading
import uuid
from collections import deque
from collections.abc import Iterable, Mapping
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from hubagent.central.link import RECEIVE_MAXIMUM_ALL
from hubagent.clock import SYSTEM
from hubagent.sync.topics import Topics

SKUS = ("TEA-1", "COF-2", "RICE-5", "OIL-1", "SOAP-3")
BINS = ("A-01", "A-02", "B-01")


def _now() -> str:
    return SYSTEM.now().isoformat(timespec="milliseconds").replace("+00:00", "Z")


class SimHub:
    """One simulated hub (all state guarded by the fleet's lock)."""

    def __init__(self, hub: str, prefix: str, conn: int) -> None:
        self.hub, self.topics, self.conn = hub, Topics(prefix, hub), conn
        self.db = uuid.uuid4().hex
        self.session = 1
        self.state = "online"
        self.events: list[dict[str, Any]] = []  # seq n is events[n - 1]
        self.acked = 0
        self.cursor = 0  # highest seq sent since the last (re)start or resend
        self.sent_at: deque[tuple[int, float]] = deque()
        self.last_progress = SYSTEM.monotonic()
        self.last_resend = 0.0
        self.ledger: dict[tuple[str, str], int] = {}
        self.replies: dict[str, dict[str, Any]] = {}
        self.commands: list[str] = []
        self.resends = 0
        self.window = 1 << 30  # events out unacknowledged: shrinks after a loss
        self.rto = 0.0  # current ack timeout (backs off while nothing is acknowledged)
        self._job = 0

    @property
    def last_seq(self) -> int:
        """The highest seq allocated."""
        return len(self.events)

    def next_event(self) -> dict[str, Any]:
        """Allocate the next event: mostly stock moves, some print, parcel and power events."""
        n = self.last_seq + 1
        pick = n % 10
        if pick == 7:
            self._job += 1
            kind, data = "print.queued", {"job": f"j{self._job}", "printer": "label",
                                          "template": "parcel", "copies": 1, "origin": "feature"}
        elif pick == 8:
            kind, data = "print.done", {"job": f"j{self._job}", "printer": "label",
                                        "template": "parcel", "copies": 1, "attempts": 1}
        elif pick == 9:
            stage = (n // 10) % 3
            parcel = f"P{n // 30}"
            kind = ("parcel.assigned", "parcel.stored", "parcel.picked_up")[stage]
            data = {"parcel": parcel, "bank": "main", "compartment": str(n // 30 % 8 + 1),
                    "size": "M", "expires_at": None}
        elif n % 500 == 1:
            kind, data = "power.changed", {"from": "unknown", "to": "mains", "source": "ups",
                                           "flags": ["OL"], "charge": 100, "runtime": 1800,
                                           "input_voltage": 230, "load": 12}
        else:
            sku, bin_ = SKUS[n % len(SKUS)], BINS[(n // 3) % len(BINS)]
            delta = 5 if n % 4 else -2
            key = (sku, bin_)
            self.ledger[key] = self.ledger.get(key, 0) + delta
            kind, data = "stock.moved", {
                "movement": n, "type": "receive" if delta > 0 else "pick", "sku": sku,
                "bin": bin_, "delta": delta, "on_hand": self.ledger[key],
                "negative": self.ledger[key] < 0, "reason": None, "ref": None,
                "actor": None, "device": "sim", "group": None}
        ev = {"id": uuid.uuid4().hex, "seq": n, "kind": kind, "at": _now(), "data": data}
        self.events.append(ev)
        return ev

    def state_payload(self, state: str | None = None) -> bytes:
        """The retained state message."""
        return json.dumps({"state": state or self.state, "session": self.session,
                           "db": self.db, "version": "sim", "since": _now(),
                           "alerts": []}).encode()


class Fleet:
    """N simulated hubs ``<name>-0000`` ... on one broker. Use as a context manager.

    ``resend=False`` makes the hubs rely on central's ``events.replay``
    alone to fill gaps (no resend on duplicate acks or timeouts).
    """

    def __init__(self, host: str, port: int, n: int, *, prefix: str = "hubs",
                 name: str = "sim", per_connection: int = 250, max_unacked: int = 1000,
                 ack_timeout_s: float = 2.0, resend: bool = True,
                 username: str | None = None, password: str | None = None) -> None:
        self.host, self.port, self.prefix = host, port, prefix
        self.max_unacked, self.ack_timeout_s, self.resend = max_unacked, ack_timeout_s, resend
        self._credentials = (username, password)
        self.hubs = [SimHub(f"{name}-{i:04d}", prefix, i // per_connection) for i in range(n)]
        self.by_id = {h.hub: h for h in self.hubs}
        self._lock = threading.RLock()
        self._acked_cond = threading.Condition(self._lock)
        self._stop = threading.Event()
        self._tick: threading.Thread | None = None
        self.ack_lags: list[float] = []  # seconds from sending a seq to its first ack
        groups = (n + per_connection - 1) // per_connection
        tag = secrets.token_hex(3)
        self._clients = [self._make_client(f"fleet-{name}-{tag}-{g}", g) for g in range(groups)]
        self._connected = [threading.Event() for _ in range(groups)]
        self._last_mid: dict[int, int | None] = {}

    # -- connections ---------------------------------------------------------------
    def _make_client(self, client_id: str, group: int) -> mqtt.Client:
        c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
        if self._credentials[0] is not None:
            c.username_pw_set(*self._credentials)
        c.max_inflight_messages_set(200)
        c.max_queued_messages_set(0)
        c.reconnect_delay_set(1, 2)
        c.user_data_set(group)
        c.on_connect = self._on_connect
        c.on_subscribe = self._on_subscribe
        c.on_message = self._on_message
        return c

    def _group(self, group: int) -> list[SimHub]:
        return [h for h in self.hubs if h.conn == group]

    def _on_connect(self, client: mqtt.Client, group: int, flags: Any, rc: Any,
                    props: Any = None) -> None:
        if rc.is_failure:
            return
        subs = []
        for h in self._group(group):
            subs += [(h.topics.ack, 1), (h.topics.commands, 1)]
        for i in range(0, len(subs), 100):  # keep each SUBSCRIBE packet small
            _, mid = client.subscribe(subs[i:i + 100])
            self._last_mid[group] = mid

    def _on_subscribe(self, client: mqtt.Client, group: int, mid: int, rcs: Any,
                      props: Any = None) -> None:
        if mid != self._last_mid.get(group):
            return  # announce once every subscription of the connection is in place
        with self._lock:
            for h in self._group(group):
                if h.state in ("online", "alert"):
                    self._publish(h, h.topics.state, h.state_payload(), retain=True)
                h.cursor = h.acked  # a new connection sends everything unacknowledged
                self._pump(h)
        self._connected[group].set()

    def _on_message(self, client: mqtt.Client, group: int, msg: mqtt.MQTTMessage) -> None:
        hub_id = msg.topic[len(self.prefix) + 1:].split("/", 1)[0]
        with self._lock:
            h = self.by_id.get(hub_id)
            if h is None or h.state == "lost":
                return
            if msg.topic == h.topics.ack:
                self._on_ack(h, msg.payload)
            else:
                name = h.topics.command_name(msg.topic)
                if name is not None:
                    self._on_command(h, name, msg)

    def _publish(self, h: SimHub, topic: str, payload: bytes, *, retain: bool = False,
                 props: Properties | None = None) -> None:
        self._clients[h.conn].publish(topic, payload, qos=1, retain=retain, properties=props)

    # -- events ------------------------------------------------------------------------
    def _send(self, h: SimHub, ev: Mapping[str, Any], replayed: bool = False) -> None:
        body = {**ev, "replayed": replayed}
        self._publish(h, h.topics.event(str(ev["kind"])), json.dumps(body).encode())

    def _pump(self, h: SimHub) -> None:
        """Send what the window allows."""
        if h.state == "lost":
            return
        end = min(h.last_seq, h.acked + min(self.max_unacked, h.window))
        now = SYSTEM.monotonic()
        while h.cursor < end:
            h.cursor += 1
            self._send(h, h.events[h.cursor - 1])
            h.sent_at.append((h.cursor, now))

    def _on_ack(self, h: SimHub, payload: bytes) -> None:
        try:
            upto = int(json.loads(payload)["upto_seq"])
        except (ValueError, KeyError, TypeError):
            return
        upto = min(upto, h.last_seq)
        now = SYSTEM.monotonic()
        if upto > h.acked:
            h.acked = upto
            h.last_progress = now
            # As the hub does: after a loss, double the window per acked round trip.
            h.window = min(self.max_unacked, h.window * 2)
            h.rto = self.ack_timeout_s
            while h.sent_at and h.sent_at[0][0] <= upto:
                seq, at = h.sent_at.popleft()
                if seq == upto:
                    self.ack_lags.append(now - at)
            h.cursor = max(h.cursor, h.acked)
            self._pump(h)
            self._acked_cond.notify_all()
        elif upto == h.acked and h.cursor > h.acked and self.resend:
            self._resend(h, now)

    def _resend(self, h: SimHub, now: float, timeout: bool = False) -> None:
        # At most once per quarter ack timeout: a batch of duplicate acks is one loss.
        if now - h.last_resend < self.ack_timeout_s / 4:
            return
        h.last_resend = now
        h.resends += 1
        # Resend a few, not the whole window, so a loaded central is not flooded;
        # a timeout also doubles the next one.
        h.window = 8
        if timeout:
            h.rto = min(30.0, max(h.rto, self.ack_timeout_s) * 2)
        h.sent_at.clear()
        h.cursor = h.acked
        self._pump(h)

    def record(self, per_hub: int = 1, hubs: Iterable[str] | None = None) -> None:
        """Record ``per_hub`` new events on each hub (all by default) and send them."""
        with self._lock:
            for h in (self.by_id[x] for x in hubs) if hubs is not None else self.hubs:
                for _ in range(per_hub):
                    h.next_event()
                self._pump(h)

    def _tick_loop(self, rate_per_hub: float) -> None:
        """Timeouts (and, with a rate, new events) every 0.1 s."""
        carry = 0.0
        while not self._stop.wait(0.1):
            now = SYSTEM.monotonic()
            with self._lock:
                if rate_per_hub > 0:
                    carry += rate_per_hub * 0.1
                    whole, carry = int(carry), carry - int(carry)
                    if whole:
                        for h in self.hubs:
                            for _ in range(whole):
                                h.next_event()
                            self._pump(h)
                if self.resend:
                    for h in self.hubs:
                        if h.cursor > h.acked and \
                                now - h.last_progress > max(h.rto, self.ack_timeout_s):
                            h.last_progress = now
                            self._resend(h, now, timeout=True)

    # -- commands ----------------------------------------------------------------------
    def _on_command(self, h: SimHub, name: str, msg: mqtt.MQTTMessage) -> None:
        try:
            cmd = json.loads(msg.payload)
            cid = cmd["id"]
        except (ValueError, KeyError, TypeError):
            return
        h.commands.append(name)
        if cid in h.replies:
            reply = {**h.replies[cid], "duplicate": True}
        else:
            reply = self._run(h, name, cmd)
            h.replies[cid] = reply
        props = Properties(PacketTypes.PUBLISH)
        rt = getattr(msg.properties, "ResponseTopic", None)
        corr = getattr(msg.properties, "CorrelationData", None)
        if corr is not None:
            props.CorrelationData = corr
        self._publish(h, rt or h.topics.reply, json.dumps(reply).encode(), props=props)

    def _run(self, h: SimHub, name: str, cmd: Mapping[str, Any]) -> dict[str, Any]:
        cid = cmd["id"]
        if name == "ping":
            result: dict[str, Any] = {"pong": True, "hub": h.hub, "version": "sim",
                                      "time": _now(), "last_seq": h.last_seq}
        elif name == "state.snapshot":
            result = {"last_seq": h.last_seq, "acked_seq": h.acked,
                      "oldest_retained_seq": 1 if h.events else None,
                      "balances": [{"sku": s, "bin": b, "on_hand": q}
                                   for (s, b), q in sorted(h.ledger.items()) if q != 0]}
        elif name == "events.replay":
            start, limit = int(cmd.get("from_seq", 1)), int(cmd.get("limit", 10_000))
            evs = h.events[max(start, 1) - 1:max(start, 1) - 1 + limit]
            for ev in evs:
                self._send(h, ev, replayed=True)
            result = {"from_seq": start, "count": len(evs),
                      "to_seq": evs[-1]["seq"] if evs else None, "last_seq": h.last_seq,
                      "oldest_retained_seq": 1 if h.events else None, "missing_before": None}
        elif name == "stock.get":
            sku = str(cmd.get("sku"))
            bins = {b: q for (s, b), q in h.ledger.items() if s == sku and q}
            result = {"sku": sku, "on_hand": sum(bins.values()), "bins": bins}
        elif name == "stock.count":
            sku, bin_, counted = str(cmd.get("sku")), str(cmd.get("bin")), int(cmd["counted"])
            delta = counted - h.ledger.get((sku, bin_), 0)
            h.ledger[(sku, bin_)] = counted
            ev = {"id": uuid.uuid4().hex, "seq": h.last_seq + 1, "kind": "stock.moved",
                  "at": _now(), "data": {"movement": h.last_seq + 1, "type": "count",
                                         "sku": sku, "bin": bin_, "delta": delta,
                                         "on_hand": counted, "negative": counted < 0,
                                         "reason": cmd.get("reason"), "ref": cid,
                                         "actor": None, "device": None, "group": None}}
            h.events.append(ev)
            self._pump(h)
            result = {"movement": ev["seq"], "seq": ev["seq"], "delta": delta, "on_hand": counted}
        else:
            return {"id": cid, "ok": False, "error": {"code": "unknown_command",
                                                      "message": f"no command {name!r}"}}
        return {"id": cid, "ok": True, "result": result}

    # -- lifecycle and faults ------------------------------------------------------------
    def start(self, timeout: float = 30.0, rate_per_hub: float = 0.0) -> Fleet:
        """Connect every connection, publish retained state, start the timer thread."""
        for c in self._clients:
            props = Properties(PacketTypes.CONNECT)
            props.SessionExpiryInterval = 0
            # One connection carries the acks and commands of many hubs: let the
            # broker stream them rather than queue (and drop) behind 20 in flight.
            props.ReceiveMaximum = RECEIVE_MAXIMUM_ALL
            c.connect_async(self.host, self.port, keepalive=30, clean_start=True,
                            properties=props)
            c.loop_start()
        deadline = SYSTEM.monotonic() + timeout
        for ev in self._connected:
            if not ev.wait(max(0.0, deadline - SYSTEM.monotonic())):
                self.close()
                raise TimeoutError(f"fleet not connected to {self.host}:{self.port}")
        self._tick = threading.Thread(target=self._tick_loop, args=(rate_per_hub,),
                                      name="fleet-tick", daemon=True)
        self._tick.start()
        return self

    def publish_stock(self, hubs: Iterable[str] | None = None) -> None:
        """Publish retained stock summaries ``hubs/{hub}/stock/{sku}`` from each ledger."""
        with self._lock:
            for h in (self.by_id[x] for x in hubs) if hubs is not None else self.hubs:
                skus = sorted({s for s, _ in h.ledger})
                for sku in skus:
                    bins = {b: q for (s, b), q in sorted(h.ledger.items()) if s == sku}
                    doc = {"sku": sku, "name": sku, "on_hand": sum(bins.values()),
                           "bins": bins, "seq": h.last_seq}
                    self._publish(h, h.topics.stock(sku), json.dumps(doc).encode(), retain=True)

    def vanish(self, hub: str) -> None:
        """The hub disappears: its ``lost`` state is published (as its last will would be)."""
        with self._lock:
            h = self.by_id[hub]
            h.state = "lost"
            self._publish(h, h.topics.state, h.state_payload("lost"), retain=True)

    def restart(self, hub: str) -> None:
        """A new session: state online with ``session`` + 1, unacknowledged events sent again."""
        with self._lock:
            h = self.by_id[hub]
            h.session += 1
            h.state = "online"
            self._publish(h, h.topics.state, h.state_payload(), retain=True)
            h.cursor = h.acked
            h.sent_at.clear()
            self._pump(h)

    def new_database(self, hub: str, keep_stock: bool = True) -> str:
        """The hub's database was quarantined and replaced: new db id, seq restarts at 1.

        ``keep_stock`` keeps the ledger balances (a database rebuilt from a
        count) without events for them; otherwise the new database is empty.
        """
        with self._lock:
            h = self.by_id[hub]
            h.db = uuid.uuid4().hex
            h.events, h.acked, h.cursor = [], 0, 0
            h.sent_at.clear()
            if not keep_stock:
                h.ledger = {}
            h.session += 1
            h.state = "online"
            self._publish(h, h.topics.state, h.state_payload(), retain=True)
            return h.db

    # -- observation ---------------------------------------------------------------------
    def total_events(self) -> int:
        """Events allocated across the fleet."""
        with self._lock:
            return sum(h.last_seq for h in self.hubs)

    def all_acked(self) -> bool:
        """True when every hub's last event is acknowledged."""
        with self._lock:
            return all(h.acked == h.last_seq for h in self.hubs)

    def wait_all_acked(self, timeout: float) -> bool:
        """Wait until every event of every hub is acknowledged; False on timeout."""
        deadline = SYSTEM.monotonic() + timeout
        with self._acked_cond:
            while not self.all_acked():
                left = deadline - SYSTEM.monotonic()
                if left <= 0:
                    return False
                self._acked_cond.wait(min(left, 0.5))
        return True

    def close(self) -> None:
        """Stop the timer and disconnect (retained states stay as they are)."""
        self._stop.set()
        if self._tick is not None:
            self._tick.join(5)
        for c in self._clients:
            c.disconnect()
            c.loop_stop()

    def __enter__(self) -> Fleet:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()
