"""The broker connection of central tools, and commands with replies.

The broker, TLS and credentials are set as for the hub: ``--mqtt HOST:PORT``
or a config file whose ``[mqtt]`` table has the hub's own fields (see
docs/config.md); the password comes from a systemd credential or an
environment variable, never from the file.
"""

from __future__ import annotations

import json
import logging
import secrets
import ssl
import threading
import tomllib
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import msgspec
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from hubagent.secrets import read_secret
from hubagent.settings import MqttSettings
from hubagent.sync.topics import Topics

# The largest Receive Maximum MQTT 5 allows: the broker streams to a client that
# only queues what it receives, instead of holding all but 20 in its own queue.
RECEIVE_MAXIMUM_ALL = 65_535

log = logging.getLogger(__name__)


class CentralConfigError(ValueError):
    """A bad ``--mqtt`` value or config file (the message names the field)."""


class CentralSettings(msgspec.Struct, forbid_unknown_fields=True, kw_only=True, frozen=True):
    """``[central]``: defaults for ``hubctl`` (command-line options win)."""

    # Database URL of the ingest: sqlite:///path or postgresql://...
    db: str = "sqlite:///central.db"
    # Shared-subscription group name (mode "shared").
    group: str = "hubctl-ingest"


class CentralFile(msgspec.Struct, forbid_unknown_fields=True, kw_only=True, frozen=True):
    """A ``hubctl`` config file: the hub's ``[mqtt]`` table plus ``[central]``."""

    mqtt: MqttSettings
    central: CentralSettings = msgspec.field(default_factory=CentralSettings)


@dataclass(frozen=True)
class Broker:
    """Where and how to connect."""

    settings: MqttSettings
    password: str | None = None

    @property
    def prefix(self) -> str:
        """Topic prefix (``hubs``)."""
        return self.settings.prefix

    def topics(self, hub: str) -> Topics:
        """The topics of one hub."""
        return Topics(self.settings.prefix, hub)


def parse_hostport(value: str) -> tuple[str, int]:
    """``HOST:PORT`` (as for ``hubagent run --mqtt``)."""
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise CentralConfigError(f"--mqtt: expected HOST:PORT, got {value!r}")
    return host, int(port)


def load_config(path: str | None, mqtt_arg: str | None) -> tuple[Broker, CentralSettings]:
    """The broker and central settings from a config file and/or ``--mqtt``."""
    if path is not None:
        try:
            doc = tomllib.loads(Path(path).read_text())
        except (OSError, tomllib.TOMLDecodeError) as e:
            raise CentralConfigError(f"--config {path}: {e}") from e
    else:
        doc = {}
    if mqtt_arg is not None:
        host, port = parse_hostport(mqtt_arg)
        doc["mqtt"] = {**doc.get("mqtt", {}), "host": host, "port": port}
    if "mqtt" not in doc:
        raise CentralConfigError("no broker: give --mqtt HOST:PORT or --config FILE with [mqtt]")
    try:
        cfg = msgspec.convert(doc, CentralFile)
    except msgspec.ValidationError as e:
        raise CentralConfigError(f"{path or '--mqtt'}: {e}") from e
    s = cfg.mqtt
    password = read_secret(s.password_credential, s.password_env)
    return Broker(s, password), cfg.central


def make_client(broker: Broker, client_id: str, *, session_expiry: int = 0) -> mqtt.Client:
    """A paho client for ``broker`` (not connected), with TLS and credentials set."""
    s = broker.settings
    v5 = s.protocol == "5"
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id,
                    protocol=mqtt.MQTTv5 if v5 else mqtt.MQTTv311,
                    clean_session=None if v5 else session_expiry == 0)
    if s.username is not None:
        c.username_pw_set(s.username, broker.password)
    if s.tls is not None:
        c.tls_set(ca_certs=s.tls.ca_file, certfile=s.tls.cert_file, keyfile=s.tls.key_file,
                  cert_reqs=ssl.CERT_REQUIRED)
        c.tls_insecure_set(s.tls.insecure)
    c.reconnect_delay_set(min_delay=max(1, int(s.reconnect_min_s)),
                          max_delay=max(1, int(s.reconnect_max_s)))
    c.max_inflight_messages_set(max(20, s.inflight))
    c.max_queued_messages_set(0)
    return c


def connect_async(client: mqtt.Client, broker: Broker, *, session_expiry: int = 0,
                  receive_maximum: int | None = None) -> None:
    """Start connecting in the background (paho's network thread).

    ``receive_maximum`` (MQTT 5) is how many QoS 1 messages the broker may
    have in flight to us; without it Mosquitto allows its
    ``max_inflight_messages`` (20) and queues the rest behind them.
    """
    s = broker.settings
    props = None
    clean: bool | Literal[3] = mqtt.MQTT_CLEAN_START_FIRST_ONLY
    if s.protocol == "5":
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = session_expiry
        if receive_maximum is not None:
            props.ReceiveMaximum = receive_maximum
        clean = session_expiry == 0
    client.connect_async(s.host, s.port, keepalive=s.keepalive_s, clean_start=clean,
                         properties=props)
    client.loop_start()


class Reply(Exception):
    """Raised for an error reply: ``code`` and ``message`` from the hub."""

    def __init__(self, code: str, message: str, reply: Mapping[str, Any]) -> None:
        super().__init__(f"{code}: {message}")
        self.code, self.message, self.reply = code, message, reply


class _Waiter:
    def __init__(self) -> None:
        self.done = threading.Event()
        self.reply: Any = None


class Requester:
    """Commands to hubs, each answered on our own response topic (MQTT v5).

    Replies are matched by Correlation Data. Call :meth:`on_message` for
    every message on :attr:`reply_topic` (subscribe to it first).
    """

    def __init__(self, client: mqtt.Client, broker: Broker, client_id: str) -> None:
        if broker.settings.protocol != "5":
            raise CentralConfigError("mqtt.protocol: hubctl needs MQTT 5 for command replies")
        self.client, self.broker = client, broker
        self.reply_topic = f"central/replies/{client_id}"
        self._lock = threading.Lock()
        self._waiting: dict[bytes, _Waiter] = {}

    def on_message(self, msg: mqtt.MQTTMessage) -> None:
        """A reply arrived: wake its waiter (late and foreign replies are dropped)."""
        corr = getattr(msg.properties, "CorrelationData", None)
        with self._lock:
            waiter = self._waiting.get(bytes(corr)) if corr is not None else None
        if waiter is None:
            log.debug("reply with no waiter on %s", msg.topic)
            return
        try:
            waiter.reply = json.loads(msg.payload)
        except ValueError:
            waiter.reply = {"ok": False, "error": {"code": "bad_reply",
                                                   "message": "reply is not JSON"}}
        waiter.done.set()

    def send(self, hub: str, name: str, args: Mapping[str, Any] | None = None, *,
             command_id: str | None = None, timeout: float = 10.0, retries: int = 0,
             expiry: int | None = None) -> dict[str, Any]:
        """Send a command and return its reply (``{"id", "ok", ...}``).

        A retry resends the same ``id``: the hub runs a command once per id
        and answers a repeat with the first reply, so retrying is safe.
        Raises TimeoutError when no reply came after the last try.
        """
        cid = command_id or f"hubctl-{uuid.uuid4().hex}"
        payload = json.dumps({"id": cid, **(args or {})}).encode()
        topic = f"{self.broker.topics(hub).base}/cmd/{name}"
        for attempt in range(retries + 1):
            corr = secrets.token_bytes(16)
            waiter = _Waiter()
            props = Properties(PacketTypes.PUBLISH)
            props.ResponseTopic = self.reply_topic
            props.CorrelationData = corr
            if expiry is not None:
                props.MessageExpiryInterval = expiry
            with self._lock:
                self._waiting[corr] = waiter
            try:
                self.client.publish(topic, payload, qos=1, properties=props)
                if waiter.done.wait(timeout):
                    reply: dict[str, Any] = waiter.reply
                    return reply
            finally:
                with self._lock:
                    self._waiting.pop(corr, None)
            log.info("no reply from %s to %s (id %s), try %d of %d", hub, name, cid,
                     attempt + 1, retries + 1)
        raise TimeoutError(f"no reply from hub {hub} to {name} (id {cid}) "
                           f"within {timeout} s x {retries + 1}")

    def call(self, hub: str, name: str, args: Mapping[str, Any] | None = None,
             **kw: Any) -> dict[str, Any]:
        """:meth:`send`, returning the result of an ok reply or raising :class:`Reply`."""
        reply = self.send(hub, name, args, **kw)
        if reply.get("ok") is True and isinstance(reply.get("result"), dict):
            result: dict[str, Any] = reply["result"]
            return result
        err: dict[str, Any] = reply["error"] if isinstance(reply.get("error"), dict) else {}
        raise Reply(str(err.get("code", "bad_reply")), str(err.get("message", reply)), reply)


class Session:
    """A connected client with a :class:`Requester`, for short-lived CLI commands."""

    def __init__(self, broker: Broker, on_message: Callable[[mqtt.MQTTMessage], None] | None = None,
                 subscriptions: list[str] | None = None) -> None:
        self.broker = broker
        self.client_id = f"hubctl-{secrets.token_hex(4)}"
        self.client = make_client(broker, self.client_id)
        self.requester = Requester(self.client, broker, self.client_id)
        self._on_message = on_message
        self._subs = [self.requester.reply_topic, *(subscriptions or [])]
        self._ready = threading.Event()
        self.subscribed = threading.Event()
        self._error: str | None = None
        self.client.on_connect = self._connected
        self.client.on_message = self._message
        self.client.on_subscribe = self._suback

    def _connected(self, client: mqtt.Client, userdata: Any, flags: Any, rc: Any,
                   props: Any = None) -> None:
        if rc.is_failure:
            self._error = f"broker refused the connection: {rc}"
            self._ready.set()
            return
        client.subscribe([(t, 1) for t in self._subs])

    def _suback(self, client: mqtt.Client, userdata: Any, mid: int, rcs: Any,
                props: Any = None) -> None:
        bad = [str(rc) for rc in rcs if rc.is_failure]
        if bad:
            self._error = f"broker refused a subscription: {', '.join(bad)}"
        self._ready.set()
        self.subscribed.set()

    def _message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        if msg.topic == self.requester.reply_topic:
            self.requester.on_message(msg)
        elif self._on_message is not None:
            try:
                self._on_message(msg)
            except Exception:  # a raising callback would stop paho's loop
                log.exception("message on %s not handled", msg.topic)

    def __enter__(self) -> Session:
        connect_async(self.client, self.broker)
        if not self._ready.wait(15):
            self.close()
            s = self.broker.settings
            raise ConnectionError(f"cannot reach the broker at {s.host}:{s.port}")
        if self._error:
            self.close()
            raise ConnectionError(self._error)
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Disconnect and stop the network thread."""
        self.client.disconnect()
        self.client.loop_stop()
