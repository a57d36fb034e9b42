"""``Central``: a central-ops MQTT client for tests, speaking the hub contract.

It subscribes to ``{prefix}/{hub}/#`` and records what the hub publishes:
events (deduplicated by event id, duplicates counted), the retained state,
retained stock summaries and telemetry. It sends commands and waits for the
reply (MQTT v5: Response Topic + Correlation Data; MQTT 3.1.1: the
``{prefix}/{hub}/reply`` topic matched by command id), and acknowledges
events on ``{prefix}/{hub}/ack``.

Everything the hub sends that breaks the contract is recorded in
:meth:`Central.violations` rather than raised from a paho callback, so a
hub test can end with ``assert central.violations() == []``.
"""

from __future__ import annotations

import functools
import json
import logging
import re
import secrets
import socket
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Mapping
from datetime import datetime
from types import TracebackType
from typing import Any, Literal, ParamSpec, TypeVar

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

logger = logging.getLogger(__name__)

P = ParamSpec("P")
T = TypeVar("T")

STATES = frozenset({"online", "alert", "offline", "lost"})
# RFC 3339 timestamp in UTC: "Z" or "+00:00", optional fraction.
_RFC3339_UTC = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|\+00:00)$")
Protocol = Literal["5", "3.1.1"]


class ProtocolViolation(AssertionError):
    """The hub answered, but not as the MQTT contract says."""


def _guarded(method: Callable[P, None]) -> Callable[P, None]:
    """Wrap a paho callback so it never raises into the network loop."""

    @functools.wraps(method)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> None:
        try:
            method(*args, **kwargs)
        except Exception as e:  # a raising callback would kill paho's loop
            logger.exception("central callback %s failed", method.__name__)
            self = args[0]
            if isinstance(self, Central):
                self._violation("callback", f"{method.__name__} raised {e!r}")

    return wrapper


def is_rfc3339_utc(value: object) -> bool:
    """True if ``value`` is an RFC 3339 timestamp in UTC."""
    if not isinstance(value, str) or not _RFC3339_UTC.match(value):
        return False
    try:
        datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return False
    return True


def envelope_problems(env: object, kind: str) -> list[str]:
    """What is wrong with an event envelope received on ``events/{kind}``."""
    if not isinstance(env, dict):
        return ["envelope is not a JSON object"]
    problems = []
    if not isinstance(env.get("id"), str) or not env["id"]:
        problems.append("id must be a non-empty string")
    seq = env.get("seq")
    if not isinstance(seq, int) or isinstance(seq, bool) or seq < 1:
        problems.append("seq must be a positive integer")
    if env.get("kind") != kind:
        problems.append(f"kind {env.get('kind')!r} does not match topic kind {kind!r}")
    if not is_rfc3339_utc(env.get("at")):
        problems.append(f"at {env.get('at')!r} is not RFC 3339 UTC")
    if not isinstance(env.get("replayed"), bool):
        problems.append("replayed must be a boolean")
    if not isinstance(env.get("data"), dict):
        problems.append("data must be an object")
    return problems


def reply_problems(reply: object) -> list[str]:
    """What is wrong with a command reply."""
    if not isinstance(reply, dict):
        return ["reply is not a JSON object"]
    problems = []
    if "id" not in reply:
        problems.append("reply has no id")
    ok = reply.get("ok")
    if ok is True:
        if not isinstance(reply.get("result"), dict):
            problems.append("ok reply needs a result object")
    elif ok is False:
        err = reply.get("error")
        if not (isinstance(err, dict) and isinstance(err.get("code"), str)
                and isinstance(err.get("message"), str)):
            problems.append("error reply needs error {code: str, message: str}")
    else:
        problems.append("ok must be true or false")
    return problems


class _Pending:
    """A command waiting for its reply."""

    def __init__(self, command_id: object) -> None:
        self.command_id = command_id
        self.done = threading.Event()
        self.reply: Any = None
        self.problems: list[str] = []


class Central:
    """Central ops, as seen by one hub: records, commands, acknowledges.

    ``protocol`` is ``"5"`` (default) or ``"3.1.1"``. ``auto_ack`` acks the
    highest gap-free seq (counted from ``first_seq``) after each batch of
    events, a batch being what arrives within ``ack_delay`` seconds; it also
    re-acks when only duplicates arrive, so a hub that missed an ack stops
    resending. ``slow`` is a delay in seconds in the message handler (it may
    be changed at any time), which holds up PUBACKs so the broker's queue
    for this client fills; ``receive_maximum`` (v5) limits how many QoS 1
    messages the broker may have in flight to us, making that quicker.
    """

    def __init__(
        self,
        host: str,
        port: int,
        hub: str,
        *,
        prefix: str = "hubs",
        protocol: Protocol = "5",
        client_id: str | None = None,
        username: str | None = None,
        password: str | None = None,
        auto_ack: bool = False,
        ack_delay: float = 0.1,
        first_seq: int = 1,
        slow: float = 0.0,
        receive_maximum: int | None = None,
        reply_topic: str | None = None,
    ) -> None:
        if protocol not in ("5", "3.1.1"):
            raise ValueError(f"protocol must be '5' or '3.1.1', not {protocol!r}")
        if not hub or any(c in hub for c in "/+#"):
            raise ValueError(f"invalid hub id {hub!r}")
        self.host, self.port, self.hub, self.prefix = host, port, hub, prefix
        self.protocol = protocol
        self.slow = slow
        self.auto_ack = auto_ack
        self.ack_delay = ack_delay
        self.first_seq = first_seq
        self.receive_maximum = receive_maximum
        self.client_id = client_id or f"central-{hub}-{secrets.token_hex(3)}"
        # One reply topic per client: two Centrals watching one hub must not
        # see (and flag) each other's replies.
        self.reply_topic = reply_topic or f"central/replies/{hub}/{self.client_id}"
        self._cond = threading.Condition()
        self._events: dict[str, dict[str, Any]] = {}
        self._by_seq: dict[int, str] = {}
        self._dups: Counter[str] = Counter()
        self._deliveries: list[dict[str, Any]] = []
        self._state: dict[str, Any] | None = None
        self._states: list[dict[str, Any]] = []
        self._stock: dict[str, dict[str, Any]] = {}
        self._telemetry: list[dict[str, Any]] = []
        self._replies: list[Any] = []
        self._violations: list[tuple[str, str]] = []
        self._pending: dict[object, _Pending] = {}
        self._connected = False
        self._connects = 0
        self._acked = first_seq - 1
        self._ack_wanted = threading.Event()
        self._closing = threading.Event()
        self._ack_thread: threading.Thread | None = None
        self._client = self._make_client(username, password)

    @classmethod
    def on(cls, broker: Any, hub: str, **options: Any) -> Central:
        """A Central for anything with ``host`` and ``port`` (a MosquittoBroker); not connected."""
        return cls(broker.host, broker.port, hub, **options)

    # -- topics --------------------------------------------------------------

    def topic(self, suffix: str) -> str:
        """``{prefix}/{hub}/{suffix}``."""
        return f"{self.prefix}/{self.hub}/{suffix}"

    @property
    def v5(self) -> bool:
        """True when speaking MQTT v5."""
        return self.protocol == "5"

    # -- connection ----------------------------------------------------------

    def _make_client(self, username: str | None, password: str | None) -> mqtt.Client:
        """Build the paho client with our callbacks."""
        proto = mqtt.MQTTv5 if self.v5 else mqtt.MQTTv311
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=self.client_id,
                             protocol=proto)
        if username is not None:
            client.username_pw_set(username, password)
        # Reconnect fast after broker restarts: tests wait for it.
        client.reconnect_delay_set(min_delay=1, max_delay=2)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        client.on_subscribe = self._on_subscribe
        return client

    def connect(self, timeout: float = 10.0) -> Central:
        """Connect, subscribe and wait until subscribed. Returns self."""
        props = None
        if self.v5:
            props = Properties(PacketTypes.CONNECT)
            if self.receive_maximum is not None:
                props.ReceiveMaximum = self.receive_maximum
        self._client.connect_async(self.host, self.port, keepalive=30, properties=props)
        self._client.loop_start()
        if self.auto_ack:
            self._ack_thread = threading.Thread(target=self._ack_loop, daemon=True,
                                                name=f"{self.client_id}-ack")
            self._ack_thread.start()
        self.wait_connected(timeout)
        return self

    def wait_connected(self, timeout: float = 10.0) -> None:
        """Wait until connected and subscribed (again, after a broker restart)."""
        self.wait_for(lambda: self._connected, timeout, what="connection to the broker")

    @property
    def connected(self) -> bool:
        """True while connected and subscribed."""
        with self._cond:
            return self._connected

    @property
    def connect_count(self) -> int:
        """How many times the connection (re)established."""
        with self._cond:
            return self._connects

    def close(self) -> None:
        """Disconnect and stop the network and ack threads. Idempotent."""
        if self._closing.is_set():
            return
        self._closing.set()
        self._ack_wanted.set()
        try:
            self._client.disconnect()
        except Exception:  # close never raises
            logger.exception("disconnect failed")
        self._client.loop_stop()
        if self._ack_thread is not None:
            self._ack_thread.join(5)

    def __enter__(self) -> Central:
        return self.connect()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @_guarded
    def _on_connect(self, client: mqtt.Client, userdata: object, flags: Any,
                    reason_code: Any, properties: Any) -> None:
        """Subscribe (QoS 1) on every (re)connect; clean sessions forget subscriptions."""
        if reason_code.is_failure:
            self._violation("connect", f"broker refused connection: {reason_code}")
            return
        sock = client.socket()
        if sock is not None:  # acks and commands are tiny: do not let Nagle hold them
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        subs = [(self.topic("#"), 1)]
        if self.v5:
            subs.append((self.reply_topic, 1))
        client.subscribe(subs)

    @_guarded
    def _on_subscribe(self, client: mqtt.Client, userdata: object, mid: int,
                      reason_codes: list[Any], properties: Any) -> None:
        """Mark the client usable once the broker granted the subscriptions."""
        refused = [str(rc) for rc in reason_codes if rc.is_failure]
        if refused:
            self._violation("subscribe", f"subscription refused: {refused}")
            return
        with self._cond:
            self._connected = True
            self._connects += 1
            self._cond.notify_all()

    @_guarded
    def _on_disconnect(self, client: mqtt.Client, userdata: object, flags: Any,
                       reason_code: Any, properties: Any) -> None:
        """Note the disconnect; paho's loop reconnects by itself."""
        with self._cond:
            self._connected = False
            self._cond.notify_all()

    # -- receiving -----------------------------------------------------------

    @_guarded
    def _on_message(self, client: mqtt.Client, userdata: object,
                    msg: mqtt.MQTTMessage) -> None:
        """Dispatch one message by topic."""
        if self.slow > 0:
            time.sleep(self.slow)  # deliberately hold up the PUBACK
        topic = msg.topic
        if self.v5 and topic == self.reply_topic:
            self._on_reply(msg, by_correlation=True)
            return
        base = f"{self.prefix}/{self.hub}/"
        if not topic.startswith(base):
            self._violation("topic", f"unexpected topic {topic!r}")
            return
        rest = topic[len(base):]
        head, _, tail = rest.partition("/")
        if head == "events" and tail:
            self._on_event(tail, msg.payload)
        elif rest == "state":
            self._on_state(msg)
        elif head == "stock" and tail:
            self._on_stock(tail, msg.payload)
        elif rest == "telemetry":
            self._on_telemetry(msg.payload)
        elif rest == "restock":
            doc = self._decode("restock", msg.payload) if msg.payload else None
            with self._cond:
                self._restock = doc
                self._cond.notify_all()
        elif rest == "reply":
            self._on_reply(msg, by_correlation=False)
        elif head in ("cmd", "ack"):
            pass  # our own commands and acks, echoed by the wildcard subscription
        else:
            self._violation("topic", f"unexpected topic {topic!r}")

    def _decode(self, where: str, payload: bytes) -> Any:
        """Parse JSON, recording a violation (and returning None) if it is not."""
        try:
            return json.loads(payload.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as e:
            self._violation(where, f"payload is not UTF-8 JSON: {e}: {payload[:80]!r}")
            return None

    def _on_event(self, kind: str, payload: bytes) -> None:
        """Record one event, deduplicating by id."""
        env = self._decode(f"events/{kind}", payload)
        if env is None:
            return
        problems = envelope_problems(env, kind)
        for p in problems:
            self._violation(f"events/{kind}", p)
        if not isinstance(env, dict) or not isinstance(env.get("id"), str) \
                or not isinstance(env.get("seq"), int):
            return
        with self._cond:
            self._deliveries.append(env)
            event_id, seq = env["id"], env["seq"]
            if event_id in self._events:
                self._dups[event_id] += 1
                first = self._events[event_id]
                changed = [k for k in ("seq", "kind", "at", "data") if first.get(k) != env.get(k)]
                if changed:
                    self._violation_locked("events", f"event {event_id} resent with "
                                           f"different {', '.join(changed)}")
            elif seq in self._by_seq:
                self._violation_locked("events", f"seq {seq} reused by {event_id} "
                                       f"(was {self._by_seq[seq]})")
            else:
                self._events[event_id] = env
                self._by_seq[seq] = event_id
            self._cond.notify_all()
        self._ack_wanted.set()

    def _on_state(self, msg: mqtt.MQTTMessage) -> None:
        """Record the hub state; an empty retained payload clears it."""
        if not msg.payload:
            with self._cond:
                self._state = None
                self._cond.notify_all()
            return
        state = self._decode("state", msg.payload)
        if state is None:
            return
        if not isinstance(state, dict) or state.get("state") not in STATES:
            self._violation("state", f"bad state message {state!r}")
            return
        if not isinstance(state.get("session"), int):
            self._violation("state", f"session must be an integer in {state!r}")
        with self._cond:
            self._state = state
            self._states.append(state)
            self._cond.notify_all()

    def _on_stock(self, sku: str, payload: bytes) -> None:
        """Record a retained on-hand summary; an empty payload removes it."""
        with self._cond:
            if not payload:
                self._stock.pop(sku, None)
                self._cond.notify_all()
                return
        summary = self._decode(f"stock/{sku}", payload)
        if summary is None:
            return
        if not isinstance(summary, dict):
            self._violation(f"stock/{sku}", "stock summary is not an object")
            return
        with self._cond:
            self._stock[sku] = summary
            self._cond.notify_all()

    def _on_telemetry(self, payload: bytes) -> None:
        """Record one telemetry sample."""
        sample = self._decode("telemetry", payload)
        if sample is None:
            return
        if not isinstance(sample, dict):
            self._violation("telemetry", "telemetry is not an object")
            return
        with self._cond:
            self._telemetry.append(sample)
            self._cond.notify_all()

    def _on_reply(self, msg: mqtt.MQTTMessage, *, by_correlation: bool) -> None:
        """Match a reply to its pending command, by correlation data or by id."""
        reply = self._decode("reply", msg.payload)  # records its own violation
        problems = reply_problems(reply) if reply is not None else []
        with self._cond:
            self._replies.append(reply)
            if by_correlation:
                corr = getattr(msg.properties, "CorrelationData", None)
                key: object = ("corr", bytes(corr)) if corr is not None else None
                if key is None:
                    problems.append("v5 reply without correlation data")
            else:
                key = ("id", _hashable(reply.get("id")) if isinstance(reply, dict) else None)
            if self.v5 and not by_correlation:
                # Our v5 commands carry a Response Topic; replying here instead is a
                # hub bug. Replies to commands sent without one (send_raw) are fine.
                if any(("id", _hashable(w.command_id)) == key for w in self._pending.values()):
                    problems.append("v5 command answered on the 3.1.1 reply topic")
                for problem in problems:
                    self._violation_locked("reply", problem)
                self._cond.notify_all()
                return
            pending = self._pending.get(key) if key is not None else None
            if pending is None and by_correlation:
                # Our own reply topic: a reply nobody waits for came too late.
                self._violation_locked("reply", f"reply matches no command: {reply!r}"[:300])
            elif pending is None:
                pass  # the shared 3.1.1 reply topic: may answer another central
            else:
                if isinstance(reply, dict) and pending.command_id is not None \
                        and reply.get("id") != pending.command_id:
                    problems.append(f"reply id {reply.get('id')!r} is not the "
                                    f"command id {pending.command_id!r}")
                pending.reply = reply
                pending.problems = problems if reply is not None else ["reply is not UTF-8 JSON"]
                pending.done.set()
            for problem in problems:
                self._violation_locked("reply", problem)
            self._cond.notify_all()

    # -- accessors -----------------------------------------------------------

    def events(self, kind: str | None = None) -> list[dict[str, Any]]:
        """Unique events received, in seq order, optionally of one kind."""
        with self._cond:
            evs = sorted(self._events.values(), key=lambda e: e["seq"])
        return [dict(e) for e in evs if kind is None or e.get("kind") == kind]

    def raw_events(self, kind: str | None = None) -> list[dict[str, Any]]:
        """Every event envelope received, duplicates included, in arrival order."""
        with self._cond:
            return [dict(e) for e in self._deliveries if kind is None or e.get("kind") == kind]

    def replayed_events(self) -> list[dict[str, Any]]:
        """Deliveries marked ``"replayed": true``, in arrival order."""
        return [e for e in self.raw_events() if e.get("replayed") is True]

    def seqs(self) -> list[int]:
        """Seqs of the unique events received, ascending."""
        with self._cond:
            return sorted(self._by_seq)

    def duplicates(self) -> int:
        """How many deliveries repeated an event id already received."""
        with self._cond:
            return sum(self._dups.values())

    def gap_free_upto(self) -> int:
        """Highest N such that every seq from ``first_seq`` to N arrived."""
        with self._cond:
            n = self.first_seq - 1
            while n + 1 in self._by_seq:
                n += 1
            return n

    def state(self) -> dict[str, Any] | None:
        """The latest hub state message (None if none or cleared)."""
        with self._cond:
            return self._state

    def states(self) -> list[str]:
        """Every state value seen, in arrival order, e.g. ``["online", "lost"]``."""
        with self._cond:
            return [s["state"] for s in self._states]

    def stock(self, sku: str) -> dict[str, Any] | None:
        """The latest on-hand summary for ``sku``, or None."""
        with self._cond:
            return self._stock.get(sku)

    def stock_all(self) -> dict[str, dict[str, Any]]:
        """Every on-hand summary, by SKU."""
        with self._cond:
            return dict(self._stock)

    def restock(self) -> dict[str, Any] | None:
        """The hub's retained restock windows, as last received."""
        with self._cond:
            return getattr(self, "_restock", None)

    def telemetry(self) -> list[dict[str, Any]]:
        """Telemetry samples in arrival order."""
        with self._cond:
            return list(self._telemetry)

    def replies(self) -> list[Any]:
        """Every reply received (parsed, or None if unparsable), in arrival order."""
        with self._cond:
            return list(self._replies)

    def violations(self) -> list[tuple[str, str]]:
        """Contract violations seen, as ``(where, what)`` pairs."""
        with self._cond:
            return list(self._violations)

    def acked(self) -> int:
        """The highest ``upto_seq`` this client has sent."""
        with self._cond:
            return self._acked

    def _violation(self, where: str, what: str) -> None:
        with self._cond:
            self._violation_locked(where, what)

    def _violation_locked(self, where: str, what: str) -> None:
        logger.warning("hub %s contract violation at %s: %s", self.hub, where, what)
        self._violations.append((where, what))
        self._cond.notify_all()

    # -- waiting -------------------------------------------------------------

    def wait_for(self, predicate: Callable[[], T], timeout: float = 10.0,
                 what: str | None = None) -> T:
        """Wait until ``predicate()`` is truthy and return its value.

        The predicate is re-evaluated whenever a message arrives (and at
        least every 0.5 s). Raises TimeoutError naming ``what`` otherwise.
        """
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                value = predicate()
                if value:
                    return value
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"timed out after {timeout} s waiting for "
                                       f"{what or predicate!r}; {self._summary()}")
                self._cond.wait(min(left, 0.5))

    def wait_for_events(self, n: int, timeout: float = 10.0,
                        kind: str | None = None) -> list[dict[str, Any]]:
        """Wait until at least ``n`` unique events (of ``kind``) arrived; return them."""
        def enough() -> list[dict[str, Any]]:
            evs = self.events(kind)
            return evs if len(evs) >= n else []

        return self.wait_for(enough, timeout, what=f"{n} events of kind {kind or 'any'}")

    def wait_for_state(self, state: str, timeout: float = 10.0) -> dict[str, Any]:
        """Wait until the hub state is ``state``; return the state message."""
        return self.wait_for(
            lambda: s if (s := self.state()) and s.get("state") == state else None,
            timeout, what=f"state {state!r}")

    def _summary(self) -> str:
        """One line on what was received, for timeout messages (lock held)."""
        return (f"events={len(self._events)} seqs={sorted(self._by_seq)[-10:]} "
                f"dups={sum(self._dups.values())} state={self._state} "
                f"connected={self._connected} violations={self._violations[-5:]}")

    # -- sending -------------------------------------------------------------

    def command(self, name: str, args: Mapping[str, Any] | None = None, *,
                id: str | None = None, expiry: int | None = None,
                timeout: float = 10.0) -> dict[str, Any]:
        """Send command ``name`` and return the hub's reply.

        ``id`` defaults to a fresh UUID; ``expiry`` sets the v5 Message
        Expiry Interval in seconds. Raises TimeoutError if no reply arrives
        and ProtocolViolation if the reply breaks the contract.
        """
        command_id = id if id is not None else str(uuid.uuid4())
        payload = {"id": command_id, **(args or {})}
        return self._request(name, json.dumps(payload).encode(), command_id, expiry, timeout)

    def command_raw(self, name: str, payload: bytes, *, expiry: int | None = None,
                    timeout: float = 10.0, command_id: object = None) -> dict[str, Any]:
        """Send arbitrary bytes as command ``name`` and return the reply.

        For malformed payloads. In v5 the reply is matched by correlation
        data; in 3.1.1 by ``command_id`` (the id the hub can be expected to
        echo: None when the payload has no usable id).
        """
        return self._request(name, payload, command_id, expiry, timeout)

    def _request(self, name: str, payload: bytes, command_id: object,
                 expiry: int | None, timeout: float) -> dict[str, Any]:
        """Publish a command and wait for its reply."""
        pending = _Pending(command_id)
        props = None
        if self.v5:
            corr = secrets.token_bytes(16)
            key: object = ("corr", corr)
            props = Properties(PacketTypes.PUBLISH)
            props.ResponseTopic = self.reply_topic
            props.CorrelationData = corr
            if expiry is not None:
                props.MessageExpiryInterval = expiry
        else:
            if expiry is not None:
                raise ValueError("message expiry needs MQTT v5")
            key = ("id", _hashable(command_id))
        with self._cond:
            if key in self._pending:
                raise ValueError(f"a command with id {command_id!r} is already pending")
            self._pending[key] = pending
        try:
            self._publish(self.topic(f"cmd/{name}"), payload, props, qos=1, retain=False)
            if not pending.done.wait(timeout):
                raise TimeoutError(f"no reply to {name} (id {command_id!r}) within {timeout} s")
        finally:
            with self._cond:
                self._pending.pop(key, None)
        if pending.problems:
            raise ProtocolViolation(f"bad reply to {name}: {pending.problems}: {pending.reply!r}")
        return pending.reply  # type: ignore[no-any-return]

    def send_raw(self, topic: str, payload: bytes, properties: Properties | None = None,
                 *, qos: int = 1, retain: bool = False) -> None:
        """Publish anything anywhere, waiting until the broker has it (QoS 1)."""
        self._publish(topic, payload, properties, qos=qos, retain=retain)

    def ack(self, upto_seq: int) -> None:
        """Acknowledge every event up to and including ``upto_seq``."""
        payload = json.dumps({"upto_seq": upto_seq}).encode()
        with self._cond:  # before publishing: the hub may see the ack before our PUBACK
            self._acked = max(self._acked, upto_seq)
        self._publish(self.topic("ack"), payload, None, qos=1, retain=False)

    def _publish(self, topic: str, payload: bytes, props: Properties | None,
                 *, qos: int, retain: bool) -> None:
        """Publish and wait for the broker to take it."""
        info = self._client.publish(topic, payload, qos=qos, retain=retain, properties=props)
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            raise ConnectionError(f"publish to {topic} failed: {mqtt.error_string(info.rc)}")
        # In slices, so close() is not held up by a publish the broker never
        # confirms once we have disconnected.
        deadline = time.monotonic() + 10
        while not info.is_published():
            if self._closing.is_set():
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"broker did not take the publish to {topic}")
            info.wait_for_publish(timeout=0.1)

    def _ack_loop(self) -> None:
        """Auto-ack: after each batch of events, ack the highest gap-free seq."""
        while not self._closing.is_set():
            self._ack_wanted.wait()
            if self._closing.is_set():
                return
            if self._closing.wait(self.ack_delay):  # let the rest of the batch arrive
                return
            self._ack_wanted.clear()
            upto = self.gap_free_upto()
            # Re-ack an unchanged seq too: the hub resending means it missed our ack.
            if upto >= self.first_seq:
                try:
                    self.ack(upto)
                except Exception:  # disconnected: ack again after the next batch
                    logger.warning("auto-ack of %s failed", upto, exc_info=True)


def _hashable(value: object) -> object:
    """A dict key for a command id of any JSON type."""
    return value if isinstance(value, (str, int, float, bool, type(None))) else repr(value)
