"""Connection health: why work is not reaching central, as named alerts.

The MQTT link reports what happens (a connect that failed, a CONNACK, a
refused PUBACK or SUBACK, a disconnect); the pure functions here say what
it means, and :class:`ConnectionHealth` turns that into alerts on the hub
(``app.set_alert``) and into one log line per cause, however often paho
retries. Alerts (also in docs/operations.md):

``mqtt:auth``
    The broker refused the connection: bad user name or password, not
    authorised, banned, or a client id it does not accept.
``mqtt:tls``
    The TLS handshake failed: the broker's certificate expired, is not yet
    valid, names another host, or is not signed by the CA in
    ``[mqtt.tls] ca_file``; or the broker refused the hub's certificate.
``mqtt:refused``
    The broker refused the connection for another reason (protocol
    version, packet too large ...), with its reason code.
``mqtt:acl``
    The broker refused a publish or subscription (MQTT 5 reason code 0x87,
    or a failed SUBACK): its ACL does not let this hub use its topics.
``mqtt:publish``
    The broker refused a publish for a reason other than its ACL (quota,
    topic, payload format), with its reason code.
``mqtt:unreachable``
    No connection for longer than ``[mqtt] unreachable_alert_s``.
``mqtt:unacked``
    The broker acknowledges the hub's events (PUBACK) but central has not
    acknowledged any for ``[mqtt] unacked_alert_s``: central is down or
    stuck, or the broker drops the events it acknowledged. MQTT 3.1.1 has
    no way to refuse a publish, so Mosquitto PUBACKs (and discards) a
    publish its ACL denies: under 3.1.1 this is how an ACL deny shows.

Everything runs on the core thread; time comes from a
:class:`~hubagent.clock.Clock`, so tests move it by hand.
"""

from __future__ import annotations

import logging
import ssl
from typing import Callable

import msgspec

from hubagent.clock import Clock

log = logging.getLogger(__name__)

AUTH = "mqtt:auth"
TLS = "mqtt:tls"
REFUSED = "mqtt:refused"
ACL = "mqtt:acl"
PUBLISH = "mqtt:publish"
UNREACHABLE = "mqtt:unreachable"
UNACKED = "mqtt:unacked"
ALERTS = (AUTH, TLS, REFUSED, ACL, PUBLISH, UNREACHABLE, UNACKED)
"""Every alert this module raises."""

# Alerts about connecting: while one is up, "unreachable" would only repeat it.
_CONNECT_ALERTS = (AUTH, TLS, REFUSED)

# CONNACK reason codes (MQTT 5; paho maps the 3.1.1 return codes 4 and 5 onto 0x86 and 0x87).
_AUTH_CODES = {0x85: "client identifier not valid", 0x86: "bad user name or password",
               0x87: "not authorized", 0x8A: "banned", 0x8C: "bad authentication method"}
# The broker is there but cannot serve now: treated like an unreachable broker.
_BUSY_CODES = {0x88, 0x89, 0x9F}
# PUBACK / SUBACK reason code of an ACL deny, as the link words it.
_NOT_AUTHORIZED = "0x87 Not authorized"

# OpenSSL verify results (X509_V_ERR_*) and what they mean for a hub.
_VERIFY = {
    9: "the broker's certificate is not yet valid (check the hub's clock and the certificate)",
    10: "the broker's certificate has expired",
    62: "the broker's certificate does not name the host in mqtt.host",
    64: "the broker's certificate does not name the address in mqtt.host",
    18: "the broker's certificate is self-signed and not the CA in mqtt.tls.ca_file",
    19: "the broker's certificate chain ends in a CA that is not in mqtt.tls.ca_file",
    20: "the broker's certificate is signed by a CA that is not in mqtt.tls.ca_file",
    21: "the broker's certificate is signed by a CA that is not in mqtt.tls.ca_file",
}
# Handshake alerts (OpenSSL reason strings) sent by the broker about the hub's certificate.
_PEER_ALERTS = {
    "TLSV1_ALERT_UNKNOWN_CA": "the broker does not trust the hub's client certificate",
    "SSLV3_ALERT_CERTIFICATE_EXPIRED": "the broker says the hub's client certificate has expired",
    "SSLV3_ALERT_BAD_CERTIFICATE": "the broker refused the hub's client certificate",
    "TLSV13_ALERT_CERTIFICATE_REQUIRED": "the broker requires a client certificate (mqtt.tls.cert_file)",
    "WRONG_VERSION_NUMBER": "the broker's port does not speak TLS (check mqtt.port)",
}


class Problem(msgspec.Struct, frozen=True):
    """A named alert and the one line that says what is wrong."""

    alert: str
    detail: str


def classify_connect_error(exc: BaseException) -> Problem | None:
    """The alert for an exception from connecting; None for a plain network error."""
    if isinstance(exc, ssl.SSLCertVerificationError):
        code = exc.verify_code
        what = _VERIFY.get(code, f"certificate verification failed: {exc.verify_message}")
        return Problem(TLS, f"TLS: {what} (OpenSSL verify error {code}: {exc.verify_message})")
    if isinstance(exc, ssl.SSLError):
        reason = exc.reason or ""
        what = _PEER_ALERTS.get(reason, "handshake failed")
        return Problem(TLS, f"TLS: {what} ({reason or exc})")
    return None


def classify_connack(code: int, name: str) -> Problem | None:
    """The alert for a refused CONNACK; None when the broker is merely busy."""
    if code in _BUSY_CODES:
        return None
    reason = f"reason code 0x{code:02X} {name}"
    if code in _AUTH_CODES:
        return Problem(AUTH, f"the broker refused the connection: {reason} "
                             "(check mqtt.username, the password credential and the broker's "
                             "password file and client id rules)")
    return Problem(REFUSED, f"the broker refused the connection: {reason}")


def classify_publish_refusal(reason: str) -> Problem:
    """The alert for a PUBACK with a failure reason (``0x87 Not authorized``)."""
    if reason == _NOT_AUTHORIZED:
        return Problem(ACL, f"the broker refused the hub's publishes: reason code {reason} "
                            "(its ACL does not allow the hub's topics)")
    return Problem(PUBLISH, f"the broker refused a publish: reason code {reason}")


class ConnectionHealth:
    """Turns link reports into alerts and single log lines (core thread only).

    ``alert(name, detail)`` raises an alert, ``alert(name, None)`` clears it.
    """

    def __init__(self, broker: str, clock: Clock, alert: Callable[[str, str | None], None], *,
                 unreachable_s: float, unacked_s: float) -> None:
        self._broker = broker
        self._clock = clock
        self._alert = alert
        self._unreachable_s = unreachable_s
        self._unacked_s = unacked_s
        self.active: dict[str, str] = {}
        self.connected = False
        self._down_since: float | None = clock.monotonic()
        self._last_error = "not connected yet"
        self._warned_down = False
        self._acl_causes: set[str] = set()
        self._acked = -1
        # When the broker first took an event central has not acknowledged,
        # and the count of PUBACKs before it (None: take the next count).
        self._waiting_since: float | None = None
        self._pubacks_at: int | None = None

    # -- alerts --------------------------------------------------------------
    def _raise(self, p: Problem) -> None:
        if self.active.get(p.alert) == p.detail:
            return  # already said: a retry is not news
        self.active[p.alert] = p.detail
        log.error("%s [alert %s]", p.detail, p.alert)
        self._alert(p.alert, p.detail)

    def _clear(self, *alerts: str) -> None:
        for name in alerts:
            if self.active.pop(name, None) is not None:
                log.info("alert %s cleared", name)
                self._alert(name, None)

    # -- what the link reports -------------------------------------------------
    def connect_failed(self, exc: BaseException) -> None:
        """Connecting raised ``exc`` (TLS, refused, unreachable, DNS ...)."""
        problem = classify_connect_error(exc)
        if problem is not None:
            self._raise(problem)
        else:
            self._network_error(f"{type(exc).__name__}: {exc}")

    def connect_refused(self, code: int, name: str) -> None:
        """The broker answered CONNECT with a failure reason code."""
        problem = classify_connack(code, name)
        if problem is not None:
            self._raise(problem)
        else:
            self._network_error(f"the broker is not serving: reason code 0x{code:02X} {name}")

    def _network_error(self, error: str) -> None:
        self._last_error = error
        if not self._warned_down:
            self._warned_down = True
            log.warning("cannot reach the broker at %s: %s; retrying (alert %s after %.0f s)",
                        self._broker, error, UNREACHABLE, self._unreachable_s)

    def now_connected(self) -> None:
        """The broker accepted the connection: connect problems are over."""
        self.connected = True
        self._down_since = None
        self._warned_down = False
        self._clear(*_CONNECT_ALERTS, UNREACHABLE)

    def disconnected(self, reason: str) -> None:
        """The connection was lost; the grace period for ``unreachable`` starts."""
        self.connected = False
        self._down_since = self._clock.monotonic()
        self._last_error = f"disconnected: {reason}"
        self._restart_wait()

    def publish_refused(self, reason: str) -> None:
        """A PUBACK came back with a failure reason code."""
        problem = classify_publish_refusal(reason)
        if problem.alert == ACL:
            self._acl_causes.add("publish")
        self._raise(problem)

    def subscribe_refused(self, reasons: list[str]) -> None:
        """The broker refused the command or ack subscription."""
        self._acl_causes.add("subscribe")
        self._raise(Problem(ACL, "the broker refused the hub's subscriptions: reason code "
                                 f"{', '.join(reasons)} (its ACL does not let the hub read its "
                                 "commands and acks)"))

    def subscribed(self) -> None:
        """The subscriptions were granted."""
        self._acl_causes.discard("subscribe")
        self._clear_acl()

    def events_delivered(self) -> None:
        """The broker PUBACKed an event without a failure code."""
        self._acl_causes.discard("publish")
        self._clear_acl()
        self._clear(PUBLISH)

    def _clear_acl(self) -> None:
        if not self._acl_causes:
            self._clear(ACL)

    # -- time ------------------------------------------------------------------
    def tick(self, *, outstanding: bool, acked: int, pubacks: int) -> None:
        """Check the grace periods (call about once a second).

        ``outstanding``: events central has not acknowledged exist; ``acked``:
        the highest seq central acknowledged; ``pubacks``: how many event
        publishes the broker has acknowledged so far (a running count).
        """
        now = self._clock.monotonic()
        self._check_unreachable(now)
        self._check_unacked(now, outstanding, acked, pubacks)

    def _check_unreachable(self, now: float) -> None:
        if self._down_since is None or any(a in self.active for a in _CONNECT_ALERTS):
            return
        if now - self._down_since >= self._unreachable_s:
            self._raise(Problem(UNREACHABLE, f"no connection to the broker at {self._broker} for "
                                             f"more than {self._unreachable_s:g} s "
                                             f"({self._last_error})"))

    def _check_unacked(self, now: float, outstanding: bool, acked: int, pubacks: int) -> None:
        if acked > self._acked:
            # Central acknowledged something: work is flowing.
            first = self._acked < 0
            self._acked = acked
            self._restart_wait()
            if not first:
                self._clear(UNACKED)
                self._acl_causes.discard("publish")
                self._clear_acl()
        if not outstanding:
            self._restart_wait()
            self._clear(UNACKED)
            return
        if not self.connected:
            return  # nothing can be acked while the hub is offline
        if self._pubacks_at is None:
            self._pubacks_at = pubacks
        elif self._waiting_since is None:
            if pubacks > self._pubacks_at:
                self._waiting_since = now  # the broker took an event: central's turn
        elif now - self._waiting_since >= self._unacked_s:
            self._raise(Problem(UNACKED, "the broker acknowledges the hub's events but central has "
                                         f"acknowledged none for {self._unacked_s:g} s: central is "
                                         "down, or the broker drops them (under MQTT 3.1.1 an ACL "
                                         "deny looks like this)"))

    def _restart_wait(self) -> None:
        self._waiting_since = None
        self._pubacks_at = None
