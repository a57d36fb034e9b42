"""The one owner of the paho-mqtt client.

paho's network thread does one thing in each callback: hand an immutable
message to the core (``post``) and return, with every exception caught,
because an exception in a paho callback kills its network loop. Only the
PUBACK callback does more: it also hands paho the next outbox
event from the event stream (:mod:`hubagent.sync.stream`). The loop itself
runs in a thread of ours that restarts it if it dies anyway, so the link
survives whatever a callback or the broker does, and every socket write
happens on that thread.

Session: MQTT v5 with an explicit session expiry and ``clean_start``
false (or 3.1.1 with ``clean_session`` false and a stable client id), so
commands queued by the broker while the hub was away are delivered.
Inbound messages are acknowledged (``manual_ack``) only after the core has
committed their effect.
"""

from __future__ import annotations

import functools
import logging
import socket
import ssl
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.properties import Properties
from paho.mqtt.packettypes import PacketTypes

from hubagent.settings import MqttSettings
from hubagent.sync.stream import EventStream

log = logging.getLogger(__name__)

Post = Callable[[Callable[[], None]], None]

# Event publishes handed to paho without a PUBACK, in multiples of [mqtt]
# inflight: paho sends the next queued one as soon as a PUBACK frees a slot.
HANDOFF_FACTOR = 2
# Events the core reads from the outbox ahead of paho (one query per half).
STREAM_AHEAD = 512


@dataclass(frozen=True)
class Inbound:
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
                 event_topic: Callable[[str], str]) -> None:
        self._s = settings
        self._post = post
        self._listener = listener
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.v5 = settings.protocol == "5"
        self.connected = False
        # The broker acknowledged the command and ack subscriptions of this
        # connection: until then a command published by central is lost.
        self.subscribed = False
        self.connects = 0
        # Event publishes the broker acknowledged without a failure code.
        self.event_pubacks = 0
        self.client = self._make_client(client_id, password, will)
        self.stream = EventStream(self.client, event_topic,
                                  handoff=settings.inflight * HANDOFF_FACTOR, ahead=STREAM_AHEAD)
        self.stream.on_low = lambda: self._post(listener.stream_low)
        self.stream.on_refused = lambda seq, why: self._post(lambda: listener.refused(seq, why))

    # -- construction --------------------------------------------------------
    def _make_client(self, client_id: str, password: str | None,
                     will: tuple[str, bytes]) -> mqtt.Client:
        s = self._s
        # Reconnects are ours (see _run): paho's own retry swallows the reason a connect failed.
        kwargs: dict[str, Any] = {"manual_ack": True, "reconnect_on_failure": False}
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
        c.on_socket_register_write = self._on_register_write
        return c

    def _connect_properties(self) -> Properties | None:
        if not self.v5:
            return None
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = self._s.session_expiry_s
        return props

    # -- lifecycle -----------------------------------------------------------
    def start(self) -> None:
        """Begin connecting in the background; never blocks on the network."""
        kwargs: dict[str, Any] = {}
        if self.v5:
            kwargs = {"clean_start": False, "properties": self._connect_properties()}
        # paho creates the socket pair that wakes its select for packets
        # queued by other threads in loop() or loop_start(), not in
        # loop_forever(); one loop() call before connecting creates it (and
        # returns at once: there is no connection to serve yet).
        self.client.loop(timeout=0.0)
        self.client.connect_async(self._s.host, self._s.port, self._s.keepalive_s, **kwargs)
        self._thread = threading.Thread(target=self._run, name="mqtt", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        backoff = self._s.reconnect_min_s
        while not self._stop.is_set():
            connects = self.connects
            try:
                self.client.reconnect()
            except OSError as e:  # TLS errors included: the listener names the cause
                self._post(functools.partial(self._listener.connect_failed, e))
            else:
                try:
                    self.client.loop_forever()  # returns when the connection ends
                except Exception:
                    # Should not happen (callbacks are wrapped), but if paho's
                    # loop dies the hub must not silently go deaf.
                    log.exception("MQTT network loop failed; restarting it")
            if self._stop.is_set():
                return
            if self.connects != connects:
                backoff = self._s.reconnect_min_s
            self._stop.wait(backoff)
            backoff = min(backoff * 2, self._s.reconnect_max_s)

    def stop(self, final: tuple[str, bytes] | None = None, timeout: float = 3.0) -> None:
        """Publish ``final`` (the clean ``offline`` state) if connected, then disconnect."""
        self._stop.set()
        if final is not None and self.connected:
            info = self.client.publish(final[0], final[1], qos=1, retain=True)
            try:
                info.wait_for_publish(timeout)
            except (RuntimeError, ValueError) as e:
                log.warning("could not publish the offline state: %s", e)
        self.client.disconnect()
        if self._thread is not None:
            self._thread.join(timeout)

    # -- core-thread API -----------------------------------------------------
    def publish(self, topic: str, payload: bytes, qos: int = 1, retain: bool = False,
                properties: Properties | None = None) -> int | None:
        """Queue a publish; returns its mid, or None if not connected."""
        if not self.connected:
            return None
        info = self.client.publish(topic, payload, qos=qos, retain=retain, properties=properties)
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            log.debug("publish to %s not queued: %s", topic, mqtt.error_string(info.rc))
            return None
        return info.mid

    def ack(self, msg: Inbound) -> None:
        """Acknowledge an inbound message to the broker (after commit)."""
        if msg.qos > 0:
            self.client.ack(msg.mid, msg.qos)

    def subscribe(self, topics: list[str]) -> None:
        """Subscribe (QoS 1) to each topic filter."""
        if topics:
            self.client.subscribe([(t, 1) for t in topics])

    # -- paho callbacks (network thread): copy, post, never raise ------------
    @staticmethod
    def _on_register_write(client: mqtt.Client, userdata: Any, sock: Any) -> None:
        """paho queued a packet: leave the write to the network thread.

        Without this callback, paho (driven by ``loop_forever`` in a thread
        of ours) writes each packet at once from whichever thread queued it.
        Two threads writing one socket can interleave a partly sent packet
        with another and corrupt the stream, and on the network thread it
        meant a send per event while it read a run of PUBACKs. With it, the
        network thread writes everything: queued packets together after each
        run of reads, and packets from other threads as soon as paho's
        wake-up socket pair (see :meth:`start`) breaks its select.
        """

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any,
                    reason_code: Any, properties: Any) -> None:
        try:
            if reason_code.is_failure:
                code, name = int(reason_code.value), str(reason_code)
                self._post(lambda: self._listener.connect_refused(code, name))
                return
            _no_delay(client)
            epoch = self.stream.new_epoch()
            self.subscribed = False
            self.connected = True
            self.connects += 1
            present = bool(getattr(flags, "session_present", False))
            self._post(lambda: self._listener.connected(present, epoch))
        except Exception:
            log.exception("on_connect failed")

    def _on_disconnect(self, client: mqtt.Client, userdata: Any, flags: Any,
                       reason_code: Any, properties: Any) -> None:
        try:
            was = self.connected
            self.connected = self.subscribed = False
            self.stream.new_epoch()
            if was:
                reason = str(reason_code)
                self._post(lambda: self._listener.disconnected(reason))
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
                received=time.monotonic(),
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


def _no_delay(client: mqtt.Client) -> None:
    """Turn Nagle's algorithm off: a reply or PUBACK must not wait for a TCP ack."""
    sock = client.socket()
    if not isinstance(sock, socket.socket):  # None before connecting; TLS sockets are socket.socket too
        return
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except (OSError, AttributeError) as e:
        log.debug("could not set TCP_NODELAY: %s", e)
