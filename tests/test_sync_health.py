"""Connection health without a broker: classification and the alert state holder."""

from __future__ import annotations

import logging
import ssl

import pytest

from hubagent.clock import ManualClock
from hubagent.sync import health
from hubagent.sync.health import ConnectionHealth


def verify_error(code: int, message: str) -> ssl.SSLCertVerificationError:
    """An exception as ssl raises it from a failed handshake."""
    exc = ssl.SSLCertVerificationError(1, f"[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify "
                                          f"failed: {message}")
    exc.verify_code = code
    exc.verify_message = message
    exc.reason = "CERTIFICATE_VERIFY_FAILED"
    return exc


@pytest.mark.parametrize("code,message,words", [
    (10, "certificate has expired", "has expired"),
    (9, "certificate is not yet valid", "not yet valid"),
    (62, "Hostname mismatch, certificate is not valid for '127.0.0.1'.", "does not name the host"),
    (64, "IP address mismatch, certificate is not valid for '127.0.0.1'.", "does not name the address"),
    (20, "unable to get local issuer certificate", "not in mqtt.tls.ca_file"),
    (18, "self-signed certificate", "self-signed"),
])
def test_certificate_problems_are_tls_alerts_naming_the_problem(code: int, message: str,
                                                                words: str) -> None:
    p = health.classify_connect_error(verify_error(code, message))
    assert p is not None and p.alert == health.TLS
    assert p.detail.startswith("TLS: ") and words in p.detail and message in p.detail


def test_handshake_alerts_and_network_errors() -> None:
    exc = ssl.SSLError(1, "[SSL: TLSV1_ALERT_UNKNOWN_CA] tlsv1 alert unknown ca")
    exc.reason = "TLSV1_ALERT_UNKNOWN_CA"
    p = health.classify_connect_error(exc)
    assert p == health.Problem(health.TLS, "TLS: the broker does not trust the hub's client "
                                           "certificate (TLSV1_ALERT_UNKNOWN_CA)")
    assert health.classify_connect_error(ConnectionRefusedError(111, "Connection refused")) is None
    assert health.classify_connect_error(TimeoutError("timed out")) is None


def test_connack_codes() -> None:
    for code in (0x86, 0x87, 0x85, 0x8A):
        p = health.classify_connack(code, "x")
        assert p is not None and p.alert == health.AUTH and f"0x{code:02X}" in p.detail
    assert health.classify_connack(0x88, "Server unavailable") is None
    p = health.classify_connack(0x84, "Unsupported protocol version")
    assert p is not None and p.alert == health.REFUSED
    assert health.classify_publish_refusal("0x87 Not authorized").alert == health.ACL
    assert health.classify_publish_refusal("0x97 Quota exceeded").alert == health.PUBLISH


class Hub:
    """The alert set of an app, as set_alert keeps it."""

    def __init__(self) -> None:
        self.alerts: dict[str, str] = {}
        self.changes = 0

    def set_alert(self, key: str, detail: str | None) -> None:
        self.changes += 1
        if detail is None:
            self.alerts.pop(key, None)
        else:
            self.alerts[key] = detail


def make(clock: ManualClock, hub: Hub) -> ConnectionHealth:
    return ConnectionHealth("broker:8883", clock, hub.set_alert, unreachable_s=60, unacked_s=120)


def test_unreachable_after_the_grace_period_then_cleared(caplog: pytest.LogCaptureFixture) -> None:
    clock, hub = ManualClock(), Hub()
    h = make(clock, hub)
    caplog.set_level(logging.INFO, "hubagent.sync.health")
    for _ in range(50):  # paho retrying every second or so
        h.connect_failed(ConnectionRefusedError(111, "Connection refused"))
        clock.advance(1)
        h.tick(outstanding=True, acked=0, pubacks=0)
    assert hub.alerts == {}
    clock.advance(10)
    h.tick(outstanding=True, acked=0, pubacks=0)
    assert list(hub.alerts) == [health.UNREACHABLE]
    assert "Connection refused" in hub.alerts[health.UNREACHABLE]
    for _ in range(20):
        h.connect_failed(ConnectionRefusedError(111, "Connection refused"))
        clock.advance(1)
        h.tick(outstanding=True, acked=0, pubacks=0)
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 2, lines  # one warning at the first failure, one at the alert
    h.now_connected()
    assert hub.alerts == {}
    assert caplog.records[-1].getMessage() == "alert mqtt:unreachable cleared"


def test_auth_is_one_alert_and_one_line_however_often_retried(
        caplog: pytest.LogCaptureFixture) -> None:
    clock, hub = ManualClock(), Hub()
    h = make(clock, hub)
    caplog.set_level(logging.INFO, "hubagent.sync.health")
    for _ in range(100):
        h.connect_refused(0x86, "Bad user name or password")
        clock.advance(1)
        h.tick(outstanding=False, acked=0, pubacks=0)
    assert list(hub.alerts) == [health.AUTH]  # no "unreachable" on top of it
    assert len(caplog.records) == 1 and "0x86 Bad user name or password" in caplog.text
    h.now_connected()
    assert hub.alerts == {}


def test_acl_deny_under_v5_clears_when_events_get_through() -> None:
    clock, hub = ManualClock(), Hub()
    h = make(clock, hub)
    h.now_connected()
    for _ in range(10):
        h.publish_refused("0x87 Not authorized")
    assert list(hub.alerts) == [health.ACL] and hub.changes == 1
    h.subscribe_refused(["0x87 Not authorized"])
    h.events_delivered()
    assert list(hub.alerts) == [health.ACL]  # the subscription is still refused
    h.subscribed()
    assert hub.alerts == {}


def test_unacked_needs_pubacks_and_time_and_clears_on_progress() -> None:
    clock, hub = ManualClock(), Hub()
    h = make(clock, hub)
    h.tick(outstanding=True, acked=0, pubacks=0)
    clock.advance(500)
    h.tick(outstanding=True, acked=0, pubacks=0)
    assert list(hub.alerts) == [health.UNREACHABLE], "offline: central cannot be blamed"
    h.now_connected()
    h.tick(outstanding=True, acked=0, pubacks=0)
    clock.advance(500)
    h.tick(outstanding=True, acked=0, pubacks=0)
    assert health.UNACKED not in hub.alerts, "nothing reached the broker yet"
    h.tick(outstanding=True, acked=0, pubacks=40)  # the broker takes events from now on
    clock.advance(119)
    h.tick(outstanding=True, acked=0, pubacks=80)
    assert health.UNACKED not in hub.alerts
    h.disconnected("x")  # a reconnect starts the wait again
    h.now_connected()
    h.tick(outstanding=True, acked=0, pubacks=80)
    h.tick(outstanding=True, acked=0, pubacks=85)
    clock.advance(100)
    h.tick(outstanding=True, acked=0, pubacks=90)
    assert health.UNACKED not in hub.alerts
    clock.advance(21)
    h.tick(outstanding=True, acked=0, pubacks=95)
    assert list(hub.alerts) == [health.UNACKED]
    h.tick(outstanding=True, acked=5, pubacks=95)
    assert hub.alerts == {}
