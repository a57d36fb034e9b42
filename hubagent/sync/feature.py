"""Sync with central ops: outbox out, commands in, hub state, telemetry.

Everything here runs on the core thread; :class:`~hubagent.sync.mqtt.MqttLink`
brings the network events in. Without an ``[mqtt]`` section the hub runs
offline: events accumulate in the outbox and go out once a broker is
configured and reachable.
"""

from __future__ import annotations

import json
import logging
from collections import deque
from typing import TYPE_CHECKING, Annotated, Any

from msgspec import Meta

from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from hubagent import secrets
from hubagent.clock import Clock, Timer, rfc3339
from hubagent.commands import CommandArgs, CommandContext, error_reply
from hubagent.errors import CommandError
from hubagent.feature import Built, Feature, Interfaces
from hubagent.store.store import dumps
from hubagent.sync import outbox
from hubagent.sync.health import ConnectionHealth
from hubagent.sync.mqtt import Inbound, LinkListener, MqttLink
from hubagent.sync.pump import Pump
from hubagent.sync.stream import ConnectionFeed, Replay
from hubagent.sync.topics import Topics
from hubagent.telemetry import age_s

if TYPE_CHECKING:
    from hubagent.app import App


class ReplayArgs(CommandArgs, frozen=True):
    """``events.replay`` arguments."""

    # First seq to send again.
    from_seq: Annotated[int, Meta(ge=1)]
    # At most this many events per command (central pages through larger gaps);
    # the hub sends fewer when its page is smaller (see ``next_seq``).
    limit: Annotated[int, Meta(ge=1, le=10_000)] = 10_000

log = logging.getLogger(__name__)

# Seconds between checks of the connection-health grace periods.
HEALTH_TICK_S = 0.5


class SyncService(LinkListener):
    """Keeps central in step with the hub's database."""

    def __init__(self, app: "App", clock: Clock) -> None:
        self.app = app
        self.clock = clock
        cfg = app.config.mqtt
        assert cfg is not None
        self.settings = cfg
        self.topics = Topics(cfg.prefix, app.hub_id)
        self.session = 0
        self.state = "offline"
        self.state_since = rfc3339(self.clock.now())
        self.sender = Pump(app.store, cfg.ack_timeout_s, cfg.max_unacked, clock)
        # Events per events.replay command: the broker queues them for
        # central, so a page stays well within the queue the send-ahead
        # window is sized for.
        self.replay_page = max(1, cfg.max_unacked // 2)
        self._telemetry_timer: Timer | None = None
        # Armed only while events wait for central's ack: an idle hub has no
        # timer to wake for.
        self._ack_timer: Timer | None = None
        # Grace periods of the connection-health alerts: timed only while
        # the hub is offline or events wait for central.
        self._health_timer: Timer | None = None
        self.link: MqttLink | None = None
        self._telemetry_sources: list[Any] = []
        self._connect_hooks: list[Any] = []
        self._stopped = False
        self._pubacks_seen = 0
        # Why work is not reaching central, as alerts (hubagent.sync.health).
        self.health = ConnectionHealth(f"{cfg.host}:{cfg.port}", clock, app.set_alert,
                                       unreachable_s=cfg.unreachable_alert_s,
                                       unacked_s=cfg.unacked_alert_s)

    # -- lifecycle -------------------------------------------------------------
    def start(self) -> None:
        """Allocate this run's session number and start connecting."""
        with self.app.store.write() as tx:
            row = tx.execute("SELECT value FROM meta WHERE key='session'").fetchone()
            self.session = (int(row[0]) if row else 0) + 1
            tx.execute("INSERT INTO meta(key, value) VALUES('session', ?) "
                       "ON CONFLICT(key) DO UPDATE SET value=excluded.value", (str(self.session),))
        password = secrets.read_secret(self.settings.password_credential, self.settings.password_env)
        client_id = self.settings.client_id or f"hubagent-{self.app.hub_id}"
        will = (self.topics.state, self._state_payload("lost"))
        self.link = MqttLink(self.settings, client_id, password, will, self._post, self,
                             event_topic=self.topics.event, clock=self.clock)
        self.app.store.on_commit(lambda events: self.pump())
        self.app.on_alerts_changed(self._publish_state)
        self.link.start()
        self._telemetry_tick()
        self._arm_health_timer()

    def stop(self) -> None:
        """Publish ``offline`` (retained) and disconnect."""
        self._stopped = True
        for t in (self._telemetry_timer, self._ack_timer, self._health_timer):
            if t is not None:
                t.cancel()
        self.sender.flush(force=True)
        if self.link is not None:
            self.link.stop(final=(self.topics.state, self._state_payload("offline")))

    def _post(self, fn: Any) -> None:
        self.clock.call_from_thread(lambda: self._posted(fn))

    def _posted(self, fn: Any) -> None:
        # The link still reports while it disconnects, and the store closes
        # right after stop(): what arrives then is dropped (an ack not
        # applied is sent again by central; a command not acknowledged to
        # the broker is delivered again).
        if not self._stopped:
            self._guard(fn)

    @staticmethod
    def _guard(fn: Any) -> None:
        try:
            fn()
        except Exception:
            log.exception("sync handler failed")

    def _telemetry_tick(self) -> None:
        if self._telemetry_timer is not None:
            self._guard(self.publish_telemetry)
        self._telemetry_timer = self.clock.call_later(self.settings.telemetry_s,
                                                      self._telemetry_tick)

    # -- hub state ---------------------------------------------------------------
    def _state_payload(self, state: str) -> bytes:
        return dumps({"state": state, "session": self.session, "db": self.app.store.meta("db_id"),
                      "version": self.app.version,
                      "since": self.state_since if state == self.state else rfc3339(self.clock.now()),
                      "alerts": sorted(self.app.alerts)}).encode()

    def _publish_state(self) -> None:
        state = "alert" if self.app.alerts else "online"
        if state != self.state:
            self.state, self.state_since = state, rfc3339(self.clock.now())
        if self.link is not None and self.link.connected:
            self.link.publish(self.topics.state, self._state_payload(self.state), retain=True)

    # -- LinkListener (core thread) ---------------------------------------------
    def connected(self, session_present: bool, epoch: int) -> None:
        """Resubscribe, announce state and resend everything unacknowledged."""
        assert self.link is not None
        log.info("connected to %s:%d (session %s)", self.settings.host, self.settings.port,
                 "resumed" if session_present else "new")
        self.health.now_connected()
        self.link.subscribe([self.topics.commands, self.topics.ack])
        self._publish_state()
        self.sender.reset(ConnectionFeed(self.link.stream, epoch))
        # Telemetry at once, so central sees the backlog a long outage left.
        self.publish_telemetry()
        self.pump()
        for hook in self._connect_hooks:
            self._guard(hook)

    def on_connected(self, fn: Any) -> None:
        """Call ``fn()`` after every (re)connect, once subscriptions are made."""
        self._connect_hooks.append(fn)

    def disconnected(self, reason: str) -> None:
        """Forget in-flight publishes; they are resent after reconnecting."""
        log.warning("disconnected from broker: %s", reason)
        self.health.disconnected(reason)
        self._arm_health_timer()
        self.sender.disconnected()
        self.state = "offline"

    def stream_low(self) -> None:
        """The link's event feed is half empty: read more from the outbox."""
        self.pump()

    def refused(self, seq: int, reason: str) -> None:
        """The broker refused an event (e.g. its ACL): it stays in the outbox."""
        # Sent again when central's ack stalls below it.
        self.sender.note_refused(seq)
        self.health.publish_refused(reason)  # one log line per cause, not per event

    def connect_failed(self, exc: BaseException) -> None:
        """Connecting failed: a TLS problem is an alert at once, a network one after a grace period."""
        self.health.connect_failed(exc)

    def connect_refused(self, code: int, name: str) -> None:
        """The broker refused the connection (credentials, client id ...)."""
        self.health.connect_refused(code, name)

    def subscribed(self, refused: list[str]) -> None:
        """The broker answered the command and ack subscription."""
        if refused:
            self.health.subscribe_refused(refused)
        else:
            self.health.subscribed()

    def _health_tick(self) -> None:
        self._health_timer = None
        link = self.link
        if link is None:
            return
        delivered = link.event_pubacks
        if delivered > self._pubacks_seen:
            self._pubacks_seen = delivered
            self.health.events_delivered()
        self.health.tick(outstanding=self._outstanding(), acked=self.sender.acked,
                         pubacks=delivered)
        self._arm_health_timer()

    def _outstanding(self) -> bool:
        return self.app.store.last_seq() > self.sender.acked

    def _arm_health_timer(self) -> None:
        """Tick the health checks while there is a grace period to time.

        Connected with every event acknowledged there is none: the last
        tick cleared what needed clearing, and an idle hub sleeps.
        """
        if self._health_timer is not None or self._stopped:
            return
        if self.link is not None and self.link.connected and not self._outstanding():
            return
        self._health_timer = self.clock.call_later(HEALTH_TICK_S, self._health_tick)

    def message(self, msg: Inbound) -> None:
        """A command or an ack from central."""
        assert self.link is not None
        try:
            if msg.topic == self.topics.ack:
                self._on_ack(msg.payload)
            else:
                name = self.topics.command_name(msg.topic)
                if name is not None:
                    self._on_command(name, msg)
                elif self.topics.is_command(msg.topic):
                    self._reply(msg, error_reply(
                        _payload_id(msg.payload), "bad_topic",
                        f"command topic {msg.topic!r} is not {self.topics.base}/cmd/<name> "
                        "(one level, not empty)"))
        finally:
            # Acknowledged even if handling failed: a message the hub cannot
            # handle would otherwise be redelivered for ever and hold a slot
            # of the broker's in-flight window, until the hub went deaf.
            self.link.ack(msg)

    # -- outbox ------------------------------------------------------------------
    def pump(self) -> None:
        """Hand unacknowledged events to the link while it and the send-ahead window have room."""
        if self.link is not None and self.link.connected:
            self.sender.run()
        self._arm_ack_timer()
        self._arm_health_timer()

    def _on_ack(self, payload: bytes) -> None:
        try:
            doc = json.loads(payload)
            upto = doc["upto_seq"]
            if not isinstance(upto, int) or isinstance(upto, bool) or upto < 0:
                raise ValueError("upto_seq must be a non-negative integer")
        except (ValueError, KeyError, TypeError, RecursionError) as e:
            log.warning("ignored a malformed ack: %s", str(e)[:200])
            return
        self.sender.ack(upto, self.app.config.store.keep_acked_events)
        self.pump()  # the ack opened the send-ahead window (or asked for a resend)

    def _arm_ack_timer(self) -> None:
        """Time the oldest unacknowledged event, if there is one and no timer yet."""
        if self._ack_timer is not None or self._stopped or not (self.link and self.link.connected):
            return  # (a reconnect rewinds and pumps, which arms it again)
        due = self.sender.deadline()
        if due is None:
            return
        # A hair past the deadline, so the check finds it passed.
        delay = max(0.01, due - self.clock.monotonic() + 0.001)
        self._ack_timer = self.clock.call_later(delay, self._check_ack_timeout)

    def _check_ack_timeout(self) -> None:
        """Resend from the last acked seq if central has stopped acknowledging."""
        self._ack_timer = None
        if self.sender.check_timeout():
            self.pump()
        self._arm_ack_timer()

    # -- commands ----------------------------------------------------------------
    def _on_command(self, name: str, msg: Inbound) -> None:
        if msg.expiry_s is not None and self.clock.monotonic() - msg.received > msg.expiry_s:
            reply = error_reply(_payload_id(msg.payload), "expired",
                                "the command expired before it could run")
        else:
            extra = {"expires_at_monotonic": msg.received + msg.expiry_s} if msg.expiry_s else {}
            reply = self.app.commands.handle(name, msg.payload, source="mqtt", extra=extra)
            if name == "events.replay" and reply.get("ok"):
                self._send_replay(msg, reply)
                return
        self._reply(msg, reply)

    def _reply_target(self, msg: Inbound) -> tuple[str, Properties | None]:
        """Where the reply to ``msg`` goes: its v5 response topic, else ``reply``."""
        assert self.link is not None
        if self.link.v5 and msg.response_topic:
            props = Properties(PacketTypes.PUBLISH)
            if msg.correlation is not None:
                props.CorrelationData = msg.correlation
            return msg.response_topic, props
        return self.topics.reply, None

    def _reply(self, msg: Inbound, reply: dict[str, Any]) -> None:
        assert self.link is not None
        topic, props = self._reply_target(msg)
        self.link.publish(topic, _body(reply), properties=props)

    def pending_publish(self) -> int:
        """Events committed but not yet PUBACKed on the current connection."""
        if self.link is None or not self.link.connected:
            return self.app.store.last_seq() - outbox.acked_seq(self.app.store)
        return self.sender.unpublished(self.app.store.last_seq())

    def publish_stock(self, sku: str, payload: bytes) -> None:
        """Publish the retained stock summary of ``sku`` (dropped while disconnected)."""
        if self.link is not None and self.link.connected:
            self.link.publish(self.topics.stock(sku), payload, retain=True)

    def publish_restock(self, payload: bytes) -> None:
        """Publish the retained restock windows (dropped while disconnected)."""
        if self.link is not None and self.link.connected:
            self.link.publish(self.topics.restock, payload, retain=True)

    def is_connected(self) -> bool:
        """Whether the link to the broker is up."""
        return self.link is not None and self.link.connected

    def publish_offline(self) -> None:
        """Publish the retained ``offline`` state now (before a power-off)."""
        if self.link is not None and self.link.connected:
            self.link.publish(self.topics.state, self._state_payload("offline"), retain=True)

    # -- events.replay ---------------------------------------------------------
    def replay(self, ctx: CommandContext, args: "ReplayArgs") -> dict[str, Any]:
        """Choose the page of stored events to send again (sent by :meth:`_send_replay`)."""
        if self.link is None or not self.link.connected:
            raise CommandError("not_connected", "events.replay needs the MQTT link")
        last = self.app.store.last_seq()
        oldest = outbox.oldest_retained(self.app.store)
        first = max(args.from_seq, oldest or args.from_seq)
        count = max(0, min(args.limit, self.replay_page, last - first + 1)) \
            if oldest is not None else 0
        to_seq = first + count - 1 if count else None
        return {"from_seq": args.from_seq, "count": count, "to_seq": to_seq,
                "next_seq": to_seq + 1 if to_seq is not None and to_seq < last else None,
                "last_seq": last, "oldest_retained_seq": oldest,
                "missing_before": oldest if oldest is not None and oldest > args.from_seq else None}

    def _send_replay(self, msg: Inbound, reply: dict[str, Any]) -> None:
        """Queue the page's events, paced by PUBACKs, with the reply behind them.

        A replay cut off by a disconnect gets no reply; central resumes it
        by sending the command again (a read-only command is answered
        afresh, page and all).
        """
        assert self.link is not None
        result = reply["result"]
        events: list[Any] = []
        if result.get("to_seq") is not None:
            first = result["to_seq"] - result["count"] + 1
            events = outbox.replay_payloads(self.app.store, first, result["to_seq"])
        topic, props = self._reply_target(msg)
        job = Replay(deque(events), topic, _body(reply), props)
        if not self.link.stream.replay(self.link.stream.epoch, job):
            log.info("events.replay %s cut off by a disconnect", reply.get("id"))

    # -- telemetry and status -----------------------------------------------------
    def add_telemetry(self, source: Any) -> None:
        """Add ``source()`` (returning a dict) to each telemetry message."""
        self._telemetry_sources.append(source)

    def metrics(self) -> dict[str, Any]:
        """Sync figures for telemetry and status."""
        st = outbox.stats(self.app.store)
        return {
            "connected": bool(self.link and self.link.connected),
            # Commands from central reach the hub only once this is true.
            "subscribed": bool(self.link and self.link.connected and self.link.subscribed),
            "session": self.session,
            "last_seq": st.last_seq,
            "acked_seq": st.acked_seq,
            "outbox_depth": st.depth,
            "oldest_unacked_at": st.oldest_unacked_at,
            # The sync lag: how long the oldest event has waited for central.
            "oldest_unacked_age_s": age_s(st.oldest_unacked_at, self.app.clock.now()),
            "inflight": self.link.stream.depth()[1] if self.link else 0,
            "refused": self.sender.refused,
            "resends": self.sender.resends,
            "reconnects": max(0, (self.link.connects if self.link else 0) - 1),
        }

    def publish_telemetry(self) -> None:
        """Send one telemetry message (QoS 0: the next one supersedes it)."""
        if self.link is None or not self.link.connected:
            return
        body: dict[str, Any] = {"at": rfc3339(self.clock.now()), "sync": self.metrics()}
        for source in self._telemetry_sources:
            try:
                body.update(source())
            except Exception:
                log.exception("telemetry source failed")
        self.link.publish(self.topics.telemetry, dumps(body).encode(), qos=0)


def build(*, app: "App", clock: "Clock", uses: Interfaces) -> Built:
    """Sync with central when ``[mqtt]`` is configured; offers the uplink."""
    if app.config.mqtt is None:
        app.add_status("sync", lambda: {"connected": False, "subscribed": False,
                                        "mode": "offline (no [mqtt] configured)",
                                        **_offline_stats(app)})
        return Built()
    svc = SyncService(app, clock)
    app.commands.register("events.replay", svc.replay, ReplayArgs, read_only=True)
    app.on_start(svc.start)
    app.on_stop(svc.stop)
    app.add_status("sync", svc.metrics)
    return Built(svc, Interfaces(uplink=svc))


FEATURE = Feature("sync", build)


def _payload_id(payload: bytes) -> str | None:
    """The command id in a payload, if it has a usable one (for error replies)."""
    try:
        cid = json.loads(payload).get("id")
    except (ValueError, AttributeError, RecursionError, UnicodeDecodeError):
        return None
    return cid if isinstance(cid, str) else None


def _body(reply: dict[str, Any]) -> bytes:
    return json.dumps(reply, separators=(",", ":")).encode()


def _offline_stats(app: "App") -> dict[str, Any]:
    st = outbox.stats(app.store)
    return {"last_seq": st.last_seq, "acked_seq": st.acked_seq, "outbox_depth": st.depth,
            "oldest_unacked_at": st.oldest_unacked_at}
