"""The one owner of the paho-mqtt client, driven by a network thread of ours.

paho runs on its documented external-event-loop API: this module's
network thread selects on paho's socket (registered through
``on_socket_open`` / ``on_socket_close``, with write interest through
``on_socket_register_write`` / ``on_socket_unregister_write``) and on a
wake-up socket pair, and calls ``loop_read``, ``loop_write`` and
``loop_misc``. Only that thread ever calls into paho: the core thread
queues its publishes, acks and subscriptions as small jobs and wakes it.
So every socket write happens on one thread, packets queued while it
reads a run of PUBACKs go out together, and the event stream's order on
the wire needs no lock of paho's (:mod:`hubagent.sync.stream`).

The thread also reconnects, with capped, jittered backoff
(:class:`~hubagent.sync.netloop.Backoff`), and sleeps in ``select`` with
nothing to do: it wakes for traffic, for a job from the core, for the
next reconnect attempt, or a quarter of the keep-alive interval (so paho
can send its PINGREQ in time).

paho's callbacks run on the network thread and do one thing: hand an
immutable message to the core (``post``) and return, with every exception
caught. Each outcome of a connection (accepted, refused, failed to open,
lost) and of a publish is reported in one place (``_connected_ok``,
``_refused``, ``_connect_failed``, ``_lost``, ``_on_publish``), so other
code can hook there.

Session: MQTT v5 with an explicit session expiry and ``clean_start``
false (or 3.1.1 with ``clean_session`` false and a stable client id), so
commands queued by the broker while the hub was away are delivered.
Inbound messages are acknowledged (``manual_ack``) only after the core has
committed their effect.
"""

from __future__ import annotations

import functools
import logging
import select
import selectors
import socket
import ssl
import threading
from collections import deque
from typing import Any, Callable

import msgspec
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.properties import Properties
from paho.mqtt.packettypes import PacketTypes

from hubagent.clock import Clock
from hubagent.settings import MqttSettings
from hubagent.sync.netloop import Backoff, Wakeup
from hubagent.sync.stream import EventStream

log = logging.getLogger(__name__)

Post = Callable[[Callable[[], None]], None]
Job = Callable[[], None]

# Event publishes handed to paho without a PUBACK, in multiples of [mqtt]
# inflight: paho sends the next queued one as soon as a PUBACK frees a slot.
HANDOFF_FACTOR = 2
# Events the core reads from the outbox ahead of paho (one query per half).
STREAM_AHEAD = 512
# Most packets read in one turn of the network loop (a burst of commands).
READ_BURST = 256


class Inbound(msgspec.Struct, frozen=True):
    """A message from the broker, copied out of paho's objects."""

    topic: str
    payload: bytes
    qos: int
    mid: int
    response_topic: str | None
    correlation: bytes | None
    expiry_s: int | None
    received: float


class LinkListener:
    """What the link reports to the core (all called on the core thread)."""

    def connected(self, session_present: bool, epoch: int) -> None:
        """The broker accepted connection ``epoch`` (what :meth:`EventStream.send` takes)."""

    def connect_failed(self, exc: BaseException) -> None:
        """Connecting raised ``exc`` (TLS, network); the link retries by itself."""

    def connect_refused(self, code: int, name: str) -> None:
        """The broker answered CONNECT with failure reason ``code`` (paho's ``name``)."""

    def subscribed(self, refused: list[str]) -> None:
        """The broker answered a SUBSCRIBE; ``refused`` names the failure reason codes."""

    def disconnected(self, reason: str) -> None:
        """The connection is gone; the link reconnects by itself."""

    def stream_low(self) -> None:
        """The event stream's feed is half empty: append more."""

    def refused(self, seq: int, reason: str) -> None:
        """The broker refused the event ``seq`` (a PUBACK with a failure reason; 0: not an event)."""

    def message(self, msg: Inbound) -> None:
        """A message arrived; the core must call :meth:`MqttLink.ack` after commit."""


class MqttLink:
    """Owns the paho client, its network thread and reconnection."""

    def __init__(self, settings: MqttSettings, client_id: str, password: str | None,
                 will: tuple[str, bytes], post: Post, listener: LinkListener,
                 event_topic: Callable[[str], str], clock: Clock) -> None:
        self._s = settings
        self._post_to_core = post
        # What the network thread has for the core, handed over once per turn
        # of its loop: the commands read in one turn reach the core together
        # and commit as one group (one fsync), instead of the core waking for
        # the first one while the rest are still being read.
        self._for_core: list[Callable[[], None]] = []
        self._listener = listener
        self._clock = clock
        self._thread: threading.Thread | None = None
        self.v5 = settings.protocol == "5"
        self.connected = False
        # The broker acknowledged the command and ack subscriptions of this
        # connection: until then a command published by central is lost.
        self.subscribed = False
        self.connects = 0
        # Event publishes the broker acknowledged without a failure code.
        self.event_pubacks = 0
        # Jobs from the core for the network thread (deque appends and
        # pops are atomic), and what wakes it for them.
        self._jobs: deque[Job] = deque()
        self._wake = Wakeup()
        self._sel = selectors.DefaultSelector()
        self._sel.register(self._wake, selectors.EVENT_READ)
        self._sock: Any = None
        # paho has bytes to write (its register/unregister callbacks), and
        # whether the selector watches the socket for writability.
        self._write_wanted = False
        self._watching_writes = False
        self._stopping = False
        self._final: mqtt.MQTTMessageInfo | None = None
        self._stop_by = 0.0
        self.backoff = Backoff(settings.reconnect_min_s, settings.reconnect_max_s)
        self.client = self._make_client(client_id, password, will)
        self.stream = EventStream(self.client, event_topic,
                                  handoff=settings.inflight * HANDOFF_FACTOR, ahead=STREAM_AHEAD)
        self.stream.on_low = lambda: self._post(listener.stream_low)
        self.stream.on_refused = lambda seq, why: self._post(lambda: listener.refused(seq, why))
        self.stream.wake = self._wake.set

    # -- construction --------------------------------------------------------
    def _make_client(self, client_id: str, password: str | None,
                     will: tuple[str, bytes]) -> mqtt.Client:
        s = self._s
        kwargs: dict[str, Any] = {"manual_ack": True}
        if self.v5:
            kwargs["protocol"] = mqtt.MQTTv5
        else:
            kwargs.update(protocol=mqtt.MQTTv311, clean_session=False)
        c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, **kwargs)
        if s.username is not None:
            c.username_pw_set(s.username, password)
        if s.tls is not None:
            c.tls_set(ca_certs=s.tls.ca_file, certfile=s.tls.cert_file,
                      keyfile=s.tls.key_file, cert_reqs=ssl.CERT_REQUIRED)
            c.tls_insecure_set(s.tls.insecure)
        c.will_set(will[0], will[1], qos=1, retain=True)
        c.max_inflight_messages_set(s.inflight)
        c.on_connect = self._on_connect
        c.on_disconnect = self._on_disconnect
        c.on_publish = self._on_publish
        c.on_message = self._on_message
        c.on_subscribe = self._on_subscribe
        c.on_socket_open = self._on_socket_open
        c.on_socket_close = self._on_socket_close
        c.on_socket_register_write = self._on_register_write
        c.on_socket_unregister_write = self._on_unregister_write
        return c

    def _connect_properties(self) -> Properties | None:
        if not self.v5:
            return None
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = self._s.session_expiry_s
        # Without it Mosquitto sends 20 commands and waits for their PUBACKs,
        # which go out only after the commit: groups of a handful of commands.
        props.ReceiveMaximum = self._s.receive_maximum
        return props

    # -- lifecycle -----------------------------------------------------------
    def start(self) -> None:
        """Begin connecting in the background; never blocks on the network."""
        kwargs: dict[str, Any] = {}
        if self.v5:
            kwargs = {"clean_start": False, "properties": self._connect_properties()}
        # Only records where to connect; the network thread opens the socket.
        self.client.connect_async(self._s.host, self._s.port, self._s.keepalive_s, **kwargs)
        self._thread = threading.Thread(target=self._run, name="mqtt", daemon=True)
        self._thread.start()

    def stop(self, final: tuple[str, bytes] | None = None, timeout: float = 3.0) -> None:
        """Publish ``final`` (the clean ``offline`` state) if connected, then disconnect."""
        self._submit(lambda: self._begin_stop(final, timeout))
        if self._thread is not None:
            self._thread.join(timeout + 1.0)

    # -- core-thread API -----------------------------------------------------
    def _submit(self, job: Job) -> None:
        """Run ``job`` on the network thread (any thread may call this)."""
        self._jobs.append(job)
        self._wake.set()

    def publish(self, topic: str, payload: bytes, qos: int = 1, retain: bool = False,
                properties: Properties | None = None) -> bool:
        """Queue a publish for this connection; False if not connected."""
        if not self.connected:
            return False
        self._submit(lambda: self._publish_now(topic, payload, qos, retain, properties))
        return True

    def ack(self, msg: Inbound) -> None:
        """Acknowledge an inbound message to the broker (after commit)."""
        if msg.qos > 0:
            self._submit(lambda: self._ack_now(msg))

    def subscribe(self, topics: list[str]) -> None:
        """Subscribe (QoS 1) to each topic filter."""
        if topics:
            self._submit(lambda: self._subscribe_now(topics))

    # -- network thread: jobs ------------------------------------------------
    def _publish_now(self, topic: str, payload: bytes, qos: int, retain: bool,
                     properties: Properties | None) -> None:
        if not self.client.is_connected():
            return  # queued for a connection that is gone: paho would resend it on the next
        info = self.client.publish(topic, payload, qos=qos, retain=retain, properties=properties)
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            log.debug("publish to %s not queued: %s", topic, mqtt.error_string(info.rc))

    def _ack_now(self, msg: Inbound) -> None:
        if self.client.is_connected():
            self.client.ack(msg.mid, msg.qos)

    def _subscribe_now(self, topics: list[str]) -> None:
        if self.client.is_connected():
            self.client.subscribe([(t, 1) for t in topics])

    def _begin_stop(self, final: tuple[str, bytes] | None, timeout: float) -> None:
        self._stopping = True
        self._stop_by = self._clock.monotonic() + timeout
        if final is not None and self.client.is_connected():
            self._final = self.client.publish(final[0], final[1], qos=1, retain=True)

    # -- network thread: the loop --------------------------------------------
    def _run(self) -> None:
        next_attempt = self._clock.monotonic()
        try:
            while True:
                now = self._clock.monotonic()
                if self._stopping and self._stop_done(now):
                    break
                if self._sock is None and not self._stopping and now >= next_attempt:
                    if not self._open():
                        next_attempt = self._clock.monotonic() + self.backoff.next()
                    continue
                timeout = self._timeout(now, next_attempt)
                try:
                    self._turn(timeout)
                except Exception:
                    # Should not happen (callbacks are wrapped), but the hub
                    # must not silently go deaf: drop the connection and retry.
                    log.exception("MQTT network loop failed; reconnecting")
                    self._drop()
                    self._lost("network loop failed")
                if self._sock is None and not self._stopping and next_attempt <= now:
                    next_attempt = self._clock.monotonic() + self.backoff.next()
                self._hand_over()
        finally:
            self._hand_over()
            self._sel.close()
            self._wake.close()

    def _timeout(self, now: float, next_attempt: float) -> float:
        if self._sock is None:
            return max(0.0, next_attempt - now) if not self._stopping else 0.05
        pending = self._sock.pending() if isinstance(self._sock, ssl.SSLSocket) else 0
        if pending or self._stopping:
            return 0.0 if pending else 0.05
        # paho sends a PINGREQ once the keep-alive interval has passed since
        # the last packet; looking a quarter-interval late keeps it well
        # within the broker's 1.5x allowance.
        return self._s.keepalive_s / 4

    def _turn(self, timeout: float) -> None:
        """One select and the work it found."""
        if self._sock is not None and self.client.want_write():
            self.client.loop_write()  # e.g. the CONNECT queued by reconnect()
        self._watch_writes()
        ready = self._sel.select(timeout)
        woken = False
        readable = writable = False
        for key, events in ready:
            if key.fileobj is self._wake:
                woken = True
            else:
                readable = readable or bool(events & selectors.EVENT_READ)
                writable = writable or bool(events & selectors.EVENT_WRITE)
        if isinstance(self._sock, ssl.SSLSocket) and self._sock.pending():
            readable = True
        if woken:
            self._wake.clear()
        self._run_jobs()
        if readable and self._sock is not None:
            self._read_burst()
        if self._sock is not None:
            self.stream.pull()
        if self._sock is not None and (writable or self.client.want_write()):
            self.client.loop_write()
        if self._sock is not None:
            self.client.loop_misc()
        self._watch_writes()

    def _post(self, fn: Callable[[], None]) -> None:
        """Queue ``fn`` for the core; the network thread hands the queue over per turn."""
        if threading.current_thread() is self._thread:
            self._for_core.append(fn)
        else:
            self._post_to_core(fn)

    def _hand_over(self) -> None:
        """Give the core, in one loop callback and in order, what this turn produced."""
        if not self._for_core:
            return
        batch, self._for_core = self._for_core, []

        def deliver() -> None:
            for fn in batch:
                try:
                    fn()
                except Exception:
                    log.exception("MQTT callback failed in the core")
        self._post_to_core(deliver)

    def _read_burst(self) -> None:
        """Read what the socket holds now, up to READ_BURST packets.

        paho's ``loop_read`` reads only as many packets as it has messages in
        flight (one when idle), so a burst of commands would take a turn each.
        """
        for _ in range(READ_BURST):
            self.client.loop_read()
            sock = self._sock
            if sock is None:
                return
            if isinstance(sock, ssl.SSLSocket) and sock.pending():
                continue
            try:
                more, _, _ = select.select([sock], [], [], 0)
            except (OSError, ValueError):  # closed under us: the next turn notices
                return
            if not more:
                return

    def _run_jobs(self) -> None:
        while self._jobs:
            job = self._jobs.popleft()
            try:
                job()
            except Exception:
                log.exception("MQTT job failed")

    def _stop_done(self, now: float) -> bool:
        """While stopping: True once the final state is out (or time is up) and we disconnected."""
        final = self._final
        if self._sock is not None and final is not None and not final.is_published() \
                and now < self._stop_by:
            return False
        if self._sock is not None:
            self.client.disconnect()
            try:
                self.client.loop_write()  # the DISCONNECT packet; paho then closes the socket
            except Exception:
                log.debug("could not send DISCONNECT", exc_info=True)
        if self._final is not None and not self._final.is_published():
            log.warning("could not publish the offline state before disconnecting")
        return True

    def _open(self) -> bool:
        """Open a connection (blocks up to paho's connect timeout); False if it failed."""
        try:
            self.client.reconnect()
            return True
        except (OSError, ssl.SSLError, ValueError) as e:
            self._connect_failed(e)
            self._drop()
            return False

    def _drop(self) -> None:
        """Close a half-open or broken socket without paho's help."""
        sock, self._sock = self._sock, None
        if sock is not None:
            try:
                self._sel.unregister(sock)
            except (KeyError, ValueError):
                pass

    # -- paho socket callbacks (network thread) ------------------------------
    def _on_socket_open(self, client: mqtt.Client, userdata: Any, sock: Any) -> None:
        """A new connection's socket: Nagle off, and watch it for reads."""
        _no_delay(sock)
        self._drop()
        self._sock = sock
        self._write_wanted = self._watching_writes = False
        self._sel.register(sock, selectors.EVENT_READ)

    def _on_socket_close(self, client: mqtt.Client, userdata: Any, sock: Any) -> None:
        if sock is self._sock:
            self._drop()

    def _on_register_write(self, client: mqtt.Client, userdata: Any, sock: Any) -> None:
        """paho has packets to write: the loop writes them at the end of its turn."""
        if sock is self._sock:
            self._write_wanted = True

    def _on_unregister_write(self, client: mqtt.Client, userdata: Any, sock: Any) -> None:
        if sock is self._sock:
            self._write_wanted = False

    def _watch_writes(self) -> None:
        """Select for writability only while paho has bytes the socket did not take.

        Changed only when that changes, not for every packet queued and
        written in one turn: a system call saved per turn of a busy drain.
        """
        if self._sock is not None and self._write_wanted != self._watching_writes:
            self._watching_writes = self._write_wanted
            events = selectors.EVENT_READ | (selectors.EVENT_WRITE if self._write_wanted else 0)
            self._sel.modify(self._sock, events)

    # -- outcomes of a connection (network thread): one place each -----------
    def _connected_ok(self, session_present: bool) -> None:
        """The broker accepted the connection."""
        self.backoff.reset()
        epoch = self.stream.new_epoch()
        self.subscribed = False
        self.connected = True
        self.connects += 1
        self._post(lambda: self._listener.connected(session_present, epoch))

    def _refused(self, code: int, name: str) -> None:
        """The broker answered the CONNECT with a refusal (credentials, not authorised...)."""
        self._post(lambda: self._listener.connect_refused(code, name))

    def _connect_failed(self, error: BaseException) -> None:
        """The connection could not be opened (refused, unreachable, TLS failure)."""
        # The listener names the cause, once per cause (hubagent.sync.health).
        log.debug("could not connect to %s:%d: %s", self._s.host, self._s.port, error)
        self._post(functools.partial(self._listener.connect_failed, error))

    def _lost(self, reason: str) -> None:
        """An established (or attempted) connection is gone; the loop reconnects."""
        was = self.connected
        self.connected = self.subscribed = False
        self.stream.new_epoch()
        if was:
            self._post(lambda: self._listener.disconnected(reason))

    # -- paho callbacks (network thread): copy, post, never raise ------------
    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any,
                    reason_code: Any, properties: Any) -> None:
        try:
            if reason_code.is_failure:
                self._refused(int(reason_code.value), str(reason_code))
                return
            self._connected_ok(bool(getattr(flags, "session_present", False)))
        except Exception:
            log.exception("on_connect failed")

    def _on_disconnect(self, client: mqtt.Client, userdata: Any, flags: Any,
                       reason_code: Any, properties: Any) -> None:
        try:
            self._lost(str(reason_code))
        except Exception:
            log.exception("on_disconnect failed")

    def _on_subscribe(self, client: mqtt.Client, userdata: Any, mid: int,
                      reason_codes: Any, properties: Any) -> None:
        try:
            refused = [_reason(rc) for rc in reason_codes if rc.is_failure]
            self._post(lambda: self._listener.subscribed(refused))
            if not refused:
                self.subscribed = True
        except Exception:
            log.exception("on_subscribe failed")

    def _on_publish(self, client: mqtt.Client, userdata: Any, mid: int,
                    reason_code: Any, properties: Any) -> None:
        try:
            # A PUBACK with a failure reason (e.g. not authorized) still
            # fires this callback: such a message was not delivered.
            ok = not reason_code.is_failure
            reason = "" if ok else _reason(reason_code)
            if self.stream.puback(mid, ok, reason):
                if ok:
                    self.event_pubacks += 1
            elif not ok:
                self._post(lambda: self._listener.refused(0, reason))
        except Exception:
            log.exception("on_publish failed")

    def _on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        try:
            props = getattr(message, "properties", None)
            msg = Inbound(
                topic=message.topic,
                payload=bytes(message.payload),
                qos=message.qos,
                mid=message.mid,
                response_topic=getattr(props, "ResponseTopic", None) if props else None,
                correlation=getattr(props, "CorrelationData", None) if props else None,
                expiry_s=getattr(props, "MessageExpiryInterval", None) if props else None,
                received=self._clock.monotonic(),
            )
            self._post(lambda: self._listener.message(msg))
        except Exception:
            # E.g. a topic that is not UTF-8. Acknowledge it so it does not
            # hold a slot of the broker's in-flight window for ever.
            log.exception("on_message failed; message dropped")
            try:
                client.ack(message.mid, message.qos)
            except Exception:
                log.exception("could not acknowledge a dropped message")


def _reason(reason_code: Any) -> str:
    """A reason code as logs and alerts show it: ``0x87 Not authorized``."""
    return f"0x{int(reason_code.value):02X} {reason_code}"


def _no_delay(sock: Any) -> None:
    """Turn Nagle's algorithm off: a reply or PUBACK must not wait for a TCP ack."""
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except (OSError, AttributeError) as e:
        log.debug("could not set TCP_NODELAY: %s", e)
