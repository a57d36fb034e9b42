"""Trouble between the hub and central is a named alert, and recovery clears it.

A real Mosquitto with a password file, the shipped ACL and a TLS listener
whose certificates the test makes; a real ``hubagent run`` daemon. Each
fault gives its alert in ``status --json`` within seconds and one log line
naming the cause; once the fault is fixed the alert clears and the backlog
recorded meanwhile reaches central.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from central import Central
from certs import EXPIRED, NOT_YET_VALID, Authority
from fixtures_mqtt import MakeBroker, MosquittoBroker, free_port
from hubproc import Daemon, mqtt_table, wait_until

from hubagent.sync import health

HUB = "hub-1"
PASSWORD = "hub-1-secret"
CENTRAL = {"central": "central-secret"}
CONFIG_DIR = Path(__file__).resolve().parent.parent / "config" / "mosquitto"
ACL = (CONFIG_DIR / "acl").read_text()
# The shipped ACL without the rule that lets a hub publish its events.
ACL_DENY_EVENTS = ACL.replace("pattern write hubs/%u/events/#\n", "")
CATALOG = [{"sku": "TEA-1", "name": "Green tea", "gtins": ["04006381333931"], "price": 3.5,
            "bin": "A-01"}]


class Rig:
    """Broker, certificates, credentials and the hub daemon of one test."""

    def __init__(self, tmp_path: Path, make_broker: MakeBroker,
                 daemon_factory: Callable[..., Daemon], protocol: str = "5") -> None:
        self.tmp = tmp_path
        self.protocol = protocol
        self.ca = Authority(tmp_path / "pki")
        self.rogue = Authority(tmp_path / "rogue", "Rogue CA")
        self.server = tmp_path / "pki" / "server"
        self.good_cert()
        self.tls_port = free_port()
        self.broker: MosquittoBroker = make_broker(
            start=False, port=free_port(), users={HUB: PASSWORD, **CENTRAL}, acl=ACL,
            extra_conf=[f"listener {self.tls_port} 127.0.0.1", f"cafile {self.ca.ca_file}",
                        f"certfile {self.server}.crt", f"keyfile {self.server}.key"])
        self.creds = tmp_path / "credentials"
        self.creds.mkdir()
        (self.creds / "mqtt-password").write_text(PASSWORD + "\n")
        self.state = tmp_path / "hubstate"
        self.state.mkdir()
        self.config = tmp_path / "hub.toml"
        self.config.write_text("\n".join([
            "[hub]", f'id = "{HUB}"', f'state_dir = "{self.state}"', "",
            mqtt_table(self.tls_port, protocol=protocol, username=HUB,
                       password_credential="mqtt-password", reconnect_max_s=1.0,
                       unreachable_alert_s=2.0, unacked_alert_s=3.0),
            "[mqtt.tls]", f'ca_file = "{self.ca.ca_file}"', ""]))
        self._factory = daemon_factory
        self.daemon: Daemon | None = None
        self.central: Central | None = None
        self.recorded = 0

    # -- the pieces ----------------------------------------------------------------
    def good_cert(self) -> None:
        """A valid server certificate for 127.0.0.1 from the hub's CA."""
        self.ca.issue("server", host="127.0.0.1")

    def start_hub(self) -> Daemon:
        self.daemon = self._factory("run", "--config", str(self.config), state_dir=self.state,
                                    env={"CREDENTIALS_DIRECTORY": str(self.creds)})
        return self.daemon

    def start_central(self) -> Central:
        self.central = Central(self.broker.host, self.broker.port, HUB, username="central",
                               password=CENTRAL["central"], auto_ack=True,
                               protocol=self.protocol).connect()  # type: ignore[arg-type]
        return self.central

    def record(self, n: int) -> None:
        """Record ``n`` stock movements on the hub (each one event, plus the catalog's)."""
        assert self.daemon is not None
        if self.recorded == 0:
            assert self.daemon.command("catalog.upsert", {"id": "cat-1", "items": CATALOG})["ok"]
        for i in range(n):
            self.recorded += 1
            reply = self.daemon.command("stock.adjust", {
                "id": f"adj-{self.recorded}", "sku": "TEA-1", "bin": "A-01", "delta": 1,
                "reason": "delivery"})
            assert reply["ok"], reply

    # -- what the hub says -------------------------------------------------------------
    def status_json(self) -> dict[str, Any]:
        """``hubagent status --json`` of the daemon, as an operator runs it."""
        assert self.daemon is not None
        proc = self.daemon.cli("status", "--json", "--config", str(self.config))
        assert proc.returncode == 0, proc.stderr
        doc: dict[str, Any] = json.loads(proc.stdout)
        return doc

    def wait_alert(self, name: str, since: float, timeout: float = 15.0) -> float:
        """Seconds from ``since`` until ``name`` shows in the daemon's status."""
        assert self.daemon is not None
        daemon = self.daemon
        wait_until(lambda: name in daemon.status()["alerts"], timeout,
                   lambda: f"alert {name}; status {daemon.status()['alerts']}\n{daemon.log()}",
                   interval=0.05)
        return time.monotonic() - since

    def alert_lines(self) -> list[str]:
        assert self.daemon is not None
        return [line for line in self.daemon.log().splitlines() if "[alert mqtt:" in line]

    def drained(self) -> bool:
        """No alert, nothing left for central, central has every event."""
        assert self.daemon is not None and self.central is not None
        st = self.daemon.status()
        last = st["last_seq"]
        return (not st["alerts"] and st["sync"]["outbox_depth"] == 0 and last > 0
                and self.central.gap_free_upto() == last)

    def close(self) -> None:
        if self.central is not None:
            self.central.close()


@pytest.fixture
def rig(tmp_path: Path, make_broker: MakeBroker,
        daemon_factory: Callable[..., Daemon]) -> Any:
    made: list[Rig] = []

    def make(protocol: str = "5") -> Rig:
        r = Rig(tmp_path, make_broker, daemon_factory, protocol)
        made.append(r)
        return r

    yield make
    for r in made:
        r.close()


def _bad_password(r: Rig) -> None:
    r.broker.users[HUB] = "not-what-the-hub-has"


def _fix_password(r: Rig) -> None:
    r.broker.users[HUB] = PASSWORD


def _expired(r: Rig) -> None:
    r.ca.issue("server", host="127.0.0.1", valid=EXPIRED)


def _not_yet_valid(r: Rig) -> None:
    r.ca.issue("server", host="127.0.0.1", valid=NOT_YET_VALID)


def _wrong_host(r: Rig) -> None:
    r.ca.issue("server", host="broker.elsewhere.example")


def _unknown_ca(r: Rig) -> None:
    r.rogue.issue("server", host="127.0.0.1").cert.replace(f"{r.server}.crt")
    (r.tmp / "rogue" / "server.key").replace(f"{r.server}.key")


def _deny_events(r: Rig) -> None:
    r.broker.acl = ACL_DENY_EVENTS


def _allow_events(r: Rig) -> None:
    r.broker.acl = ACL


# name: (protocol, break it, fix it, alert, words the log line must contain)
CASES: dict[str, tuple[str, Callable[[Rig], None], Callable[[Rig], None], str, str]] = {
    "bad_password": ("5", _bad_password, _fix_password, health.AUTH, "reason code 0x87 Not authorized"),
    "bad_password_v311": ("3.1.1", _bad_password, _fix_password, health.AUTH, "reason code 0x87 Not authorized"),
    "expired_cert": ("5", _expired, Rig.good_cert, health.TLS, "TLS: the broker's certificate has expired"),
    "not_yet_valid": ("5", _not_yet_valid, Rig.good_cert, health.TLS, "TLS: the broker's certificate is not yet valid"),
    "wrong_host": ("5", _wrong_host, Rig.good_cert, health.TLS, "TLS: the broker's certificate does not name the address in mqtt.host"),
    "unknown_ca": ("5", _unknown_ca, Rig.good_cert, health.TLS, "TLS: the broker's certificate is signed by a CA that is not in mqtt.tls.ca_file"),
    "acl_deny_v5": ("5", _deny_events, _allow_events, health.ACL, "refused the hub's publishes: reason code 0x87 Not authorized"),
    "acl_deny_v311": ("3.1.1", _deny_events, _allow_events, health.UNACKED, "under MQTT 3.1.1 an ACL deny"),
}


@pytest.mark.parametrize("case", CASES, ids=list(CASES))
def test_fault_gives_its_alert_and_recovers(rig: Callable[..., Rig], case: str) -> None:
    protocol, breaks, fixes, alert, words = CASES[case]
    r = rig(protocol)
    breaks(r)
    r.broker.start()
    r.start_central()
    started = time.monotonic()
    r.start_hub()
    r.record(3)
    took = r.wait_alert(alert, started)
    st = r.status_json()
    assert st["state"] == "alert" and alert in st["alerts"], st["alerts"]
    assert list(st["alerts"]) == [alert], st["alerts"]
    time.sleep(1.5)  # several retries later: still one line
    lines = r.alert_lines()
    assert len(lines) == 1 and words in lines[0], lines
    print(f"\n{case}: {alert} after {took:.2f} s; log: {lines[0].split('health: ', 1)[-1]}")
    fixes(r)
    r.broker.restart()
    fixed = time.monotonic()
    wait_until(r.drained, 30, lambda: f"recovery; {r.daemon.status() if r.daemon else ''}")
    print(f"{case}: cleared and drained {time.monotonic() - fixed:.2f} s after the fix")
    assert r.central is not None and r.central.violations() == []
    state = r.central.wait_for_state("online")
    assert state["alerts"] == []


def test_alert_reaches_the_retained_state_once_the_hub_can_publish(
        rig: Callable[..., Rig]) -> None:
    """An ACL deny of events under MQTT 5: central sees mqtt:acl in the retained state."""
    r = rig("5")
    _deny_events(r)
    r.broker.start()
    central = r.start_central()
    r.start_hub()
    r.record(2)
    state = central.wait_for_state("alert", timeout=15)
    assert health.ACL in state["alerts"]


def test_broker_that_stays_down(rig: Callable[..., Rig]) -> None:
    r = rig("5")
    started = time.monotonic()
    r.start_hub()
    r.record(3)
    took = r.wait_alert(health.UNREACHABLE, started)
    st = r.status_json()
    assert list(st["alerts"]) == [health.UNREACHABLE] and st["state"] == "alert"
    assert took >= 2.0  # not before the grace period
    time.sleep(1.5)
    lines = r.alert_lines()
    assert len(lines) == 1 and "no connection to the broker" in lines[0], lines
    assert r.daemon is not None
    warnings = [line for line in r.daemon.log().splitlines() if "cannot reach the broker" in line]
    assert len(warnings) == 1, warnings
    print(f"\nbroker_down: {health.UNREACHABLE} after {took:.2f} s; log: {lines[0].split('health: ', 1)[-1]}")
    r.broker.start()
    r.start_central()
    fixed = time.monotonic()
    wait_until(r.drained, 30, lambda: f"recovery; {r.daemon.status() if r.daemon else ''}")
    print(f"broker_down: cleared and drained {time.monotonic() - fixed:.2f} s after the start")
