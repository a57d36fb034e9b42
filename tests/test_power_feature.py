"""The power feature in-process: a real app on its own asyncio loop, real SQLite,
simulated and GPIO (MockFactory) power sources, a real locker bank on mock
pins, a real camera scanner object, and real shutdown commands (``/bin/sh``).

The app runs on a manual clock: a power reading becomes the hub's state
only once a test lets the policy's ``confirm_s`` pass (:meth:`Running.confirm`),
and the shutdown grace period never runs out by itself."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

from hubagent.app import App, build_app
from hubagent.clock import ManualClock
from hubagent.config import from_dict
from hubagent.errors import ConfigError
from hubagent.power.service import PowerService
from hubagent.power.steps import CoreCaller
from hubproc import wait_until

TIMEOUT = 15.0


def power_of(app: App) -> PowerService:
    """The app's PowerService (the test's config has one)."""
    svc = app.service(PowerService)
    assert svc is not None
    return svc


def wait_for(pred: Callable[[], Any], timeout: float = TIMEOUT, what: str = "condition") -> Any:
    """:func:`hubproc.wait_until` with this file's defaults and a 20 ms poll."""
    return wait_until(pred, timeout, what, interval=0.02)


class Running:
    """An app started on an asyncio loop in a background thread (the core thread)."""

    def __init__(self, app: App) -> None:
        assert isinstance(app.clock, ManualClock)
        self.app = app
        self.clock: ManualClock = app.clock
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        asyncio.run_coroutine_threadsafe(app.start(), self.loop).result(TIMEOUT)
        self.core = CoreCaller(app, timeout_s=TIMEOUT)
        self.confirm()  # the source's first reading

    def confirm(self) -> None:
        """Let the policy's confirmation window pass (readings already queued are seen first)."""
        self.clock.advance(2 * power_of(self.app).settings.confirm_s)

    def drive(self, pin: Any, high: bool, flags: list[str]) -> None:
        """Drive a GPIO power pin, wait for the driver's reading to arrive, then confirm it."""
        pin.drive_high() if high else pin.drive_low()
        wait_for(lambda: self.power()["flags"] == flags, what=f"a reading with flags {flags}")
        self.confirm()

    def status(self) -> dict[str, Any]:
        return self.core(self.app.status)

    def power(self) -> dict[str, Any]:
        return self.status()["power"]

    def sim(self, verb: str, confirm: bool = True, **args: Any) -> None:
        """Make the sim source emit a reading and (unless ``confirm`` is false) let it confirm."""
        self.core(lambda: self.app.sim_command("power", None, verb, args))
        if confirm:
            self.confirm()

    def events(self, kind: str | None = None) -> list[dict[str, Any]]:
        rows = self.core(lambda: self.app.store.query("SELECT seq, kind, data FROM outbox ORDER BY seq"))
        return [{"seq": r["seq"], "kind": r["kind"], **json.loads(r["data"])}
                for r in rows if kind is None or r["kind"] == kind]

    def print_label(self, cid: str) -> dict[str, Any]:
        payload = {"id": cid, "template": "shelf", "fields": {"name": "Tea", "price": "3.50", "sku": "TEA-1"}}
        return self.core(lambda: self.app.commands.handle("print", json.dumps(payload).encode(), "local"))

    def wait_state(self, state: str) -> dict[str, Any]:
        return wait_for(lambda: (p := self.power())["state"] == state and p, what=f"power state {state}")

    def wait_phase(self, *phases: str) -> dict[str, Any]:
        return wait_for(lambda: (p := self.power())["shutdown"]["phase"] in phases and p,
                        what=f"shutdown phase in {phases}")

    def close(self) -> None:
        if self.loop.is_closed():
            return
        asyncio.run_coroutine_threadsafe(self.app.stop(), self.loop).result(TIMEOUT)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(TIMEOUT)
        self.loop.close()


def config(tmp_path: Path, power: dict[str, Any] | None = None, **sections: Any) -> Any:
    doc: dict[str, Any] = {
        "hub": {"id": "pw1", "state_dir": str(tmp_path / "state")},
        "power": {"ups": power or {"driver": "sim"}},
        "power_policy": {"confirm_s": 0.05, "shutdown_grace_s": 5.0, **sections.pop("policy", {})},
    }
    doc.update(sections)
    return from_dict(doc)


@pytest.fixture
def start(tmp_path: Path) -> Iterator[Callable[..., Running]]:
    made: list[Running] = []

    def make(cfg: Any, simulated: bool = False) -> Running:
        r = Running(build_app(cfg, simulated=simulated, clock=ManualClock()))
        made.append(r)
        return r

    yield make
    for r in reversed(made):
        try:
            r.close()
        except Exception:
            pass


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


PRINTER = {"label": {"driver": "sim"}}


def test_outage_to_recorded_shutdown_once_and_restart(tmp_path: Path, start: Callable[..., Running]) -> None:
    cfg = config(tmp_path, printers=PRINTER)
    hub = start(cfg, simulated=True)
    hub.wait_state("mains")
    assert hub.print_label("job-1")["ok"]
    assert "power" not in hub.status()["alerts"]
    hub.sim("battery", confirm=False, charge=80, runtime=1200)
    hub.clock.advance(0.04)  # confirm_s is 0.05: one reading on battery is not yet an outage
    assert hub.power()["state"] == "mains" and hub.power()["flags"] == ["OB"]
    hub.clock.advance(0.03)
    hub.wait_state("on_battery")
    st = hub.status()
    assert st["state"] == "alert" and st["alerts"]["power"] == "on battery"
    assert st["power"]["flags"] == ["OB"] and st["power"]["runtime"] == 1200
    hub.sim("low")
    p = hub.wait_phase("recorded")
    assert p["state"] == "low_battery" and p["shutdown"]["recorded"] is True
    assert p["shutdown"]["steps_failed"] == []
    assert hub.status()["alerts"]["power"] == "low battery"
    refused = hub.print_label("job-2")
    assert refused["ok"] is False and refused["error"]["code"] == "paused"
    # More low readings, and time passing, decide nothing more.
    hub.sim("low", runtime=10)
    hub.sim("low", runtime=5)
    hub.clock.advance(600.0)
    changes = [(e["from"], e["to"]) for e in hub.events("power.changed")]
    assert changes == [("unknown", "mains"), ("mains", "on_battery"), ("on_battery", "low_battery")]
    shut = hub.events("power.shutdown")
    assert [e["phase"] for e in shut] == ["begin", "command"]
    assert shut[0]["reason"] == "UPS reports low battery (LB)"
    assert shut[1]["command"] == ["systemctl", "poweroff"] and shut[1]["ran"] is False
    assert shut[1]["recorded"] is True
    hub.close()
    # The next boot is on mains: the previous shutdown is reported, nothing is decided.
    again = start(cfg, simulated=True)
    p = again.wait_state("mains")
    assert p["previous_shutdown"]["phase"] == "command"
    assert p["shutdown"]["phase"] == "none"
    assert again.core(lambda: again.app.store.meta("power.shutdown")) is None
    assert [e["phase"] for e in again.events("power.shutdown")] == ["begin", "command"]
    assert again.print_label("job-3")["ok"]


def test_mains_back_after_a_recorded_power_off_resumes_work(tmp_path: Path,
                                                            start: Callable[..., Running]) -> None:
    hub = start(config(tmp_path, printers=PRINTER), simulated=True)
    hub.wait_state("mains")
    hub.sim("low")
    hub.wait_phase("recorded")
    assert hub.print_label("job-1")["error"]["code"] == "paused"
    hub.sim("mains")
    hub.wait_phase("resumed")
    assert hub.print_label("job-2")["ok"]
    assert "power" not in hub.status()["alerts"]
    assert hub.core(lambda: hub.app.store.meta("power.shutdown")) is None
    # Re-armed: the next outage shuts down again, and the hub was never "unknown" meanwhile.
    hub.sim("low")
    wait_for(lambda: [e["phase"] for e in hub.events("power.shutdown")] == ["begin", "command"] * 2,
             what="second shutdown")
    hub.wait_phase("recorded")
    assert [e["to"] for e in hub.events("power.changed")] == ["mains", "low_battery", "mains", "low_battery"]


def test_unreachable_source_is_unknown_alert_then_recovers(tmp_path: Path,
                                                          start: Callable[..., Running]) -> None:
    hub = start(config(tmp_path), simulated=True)
    hub.wait_state("mains")
    hub.sim("unreachable")
    p = hub.wait_state("unknown")
    assert p["reachable"] is False and p["flags"] == []
    assert hub.status()["alerts"]["power"] == "power state unknown"
    hub.sim("mains")
    hub.wait_state("mains")
    assert "power" not in hub.status()["alerts"]
    assert hub.power()["shutdown"]["phase"] == "none"
    changes = [(e["from"], e["to"]) for e in hub.events("power.changed")]
    assert changes[-2:] == [("mains", "unknown"), ("unknown", "mains")]


def test_mains_back_during_grace_cancels_and_resumes(tmp_path: Path, start: Callable[..., Running]) -> None:
    # The broker is unreachable, so the flush step waits out its grace period.
    cfg = config(tmp_path, policy={"shutdown_grace_s": 30.0}, printers=PRINTER,
                 mqtt={"host": "127.0.0.1", "port": _free_port(), "reconnect_max_s": 5.0})
    hub = start(cfg, simulated=True)
    hub.wait_state("mains")
    hub.sim("low")
    hub.wait_state("low_battery")
    jobs = iter(range(1_000_000))
    wait_for(lambda: hub.print_label(f"job-{next(jobs)}").get("error", {}).get("code") == "paused",
             what="new print jobs refused")
    hub.sim("mains")
    p = hub.wait_phase("cancelled")
    wait_for(lambda: "resume" in hub.power()["shutdown"].get("steps_run", []), what="resume step")
    assert [e["phase"] for e in hub.events("power.shutdown")] == ["begin", "cancelled"]
    assert p["shutdown"]["cancel_reason"] == "mains power returned"
    assert "power" not in hub.status()["alerts"]
    assert hub.print_label("job-after")["ok"]
    # The policy is re-armed: the next outage shuts down again.
    hub.sim("low")
    hub.wait_state("low_battery")
    assert [e["phase"] for e in hub.events("power.shutdown")] == ["begin", "cancelled", "begin"]


def test_low_battery_parks_locks_and_slows_cameras(tmp_path: Path, start: Callable[..., Running]) -> None:
    cfg = config(
        tmp_path, policy={"camera_fps_on_battery": 2.0},
        lockers={"bank": {"driver": "sim", "compartments": {
            "A1": {"lock_pin": 5, "door_pin": 6, "pulse_s": 3.0}}}},
        scanners={"cam": {"driver": "camera", "source": str(tmp_path / "no-such-video.mp4"),
                          "max_fps": 10.0, "reopen_initial_s": 60.0, "reopen_max_s": 60.0}},
    )
    hub = start(cfg, simulated=True)
    hub.wait_state("mains")
    bank = hub.app.device("lockers", "bank")
    cam = hub.app.device("scanners", "cam")
    assert cam.max_fps == 10.0  # type: ignore[attr-defined]
    hub.sim("battery")
    wait_for(lambda: cam.max_fps == 2.0, what="camera slowed")  # type: ignore[attr-defined]
    hub.sim("mains")
    wait_for(lambda: cam.max_fps == 10.0, what="camera restored")  # type: ignore[attr-defined]

    def try_pulse() -> bool:
        try:
            bank.pulse("A1", 3.0)  # type: ignore[attr-defined]
        except Exception:
            return False
        return True

    wait_for(try_pulse, what="bank running")
    assert bank.energised("A1")  # type: ignore[attr-defined]
    hub.sim("low")
    p = hub.wait_phase("recorded")
    assert "park_locks" in p["shutdown"]["steps_run"] and p["shutdown"]["steps_failed"] == []
    # De-energised by the shutdown, well before the 3 s pulse would have ended.
    assert not bank.energised("A1")  # type: ignore[attr-defined]
    assert cam.max_fps == 2.0  # type: ignore[attr-defined]


def test_real_command_runs_once_and_a_failing_one_is_reported(tmp_path: Path, start: Callable[..., Running],
                                                              mock_pins: Any) -> None:
    log_file = tmp_path / "poweroff.log"
    gpio = {"driver": "gpio", "power_fail_pin": 4, "low_battery_pin": 18, "debounce_s": 0}
    cmd = ["/bin/sh", "-c", f"echo poweroff >> '{log_file}'"]
    hub = start(config(tmp_path, power=gpio, policy={"shutdown_command": cmd}))
    assert power_of(hub.app).records_only is False
    hub.wait_state("mains")
    hub.drive(mock_pins.pin(4), True, ["OB"])
    hub.wait_state("on_battery")
    hub.drive(mock_pins.pin(18), True, ["LB", "OB"])
    p = hub.wait_phase("done")
    assert p["shutdown"]["ran"] is True
    wait_for(lambda: log_file.exists(), what="command output")
    hub.drive(mock_pins.pin(18), False, ["OB"])
    hub.drive(mock_pins.pin(18), True, ["LB", "OB"])
    hub.clock.advance(600.0)  # time passing decides nothing more either
    assert hub.power()["shutdown"]["phase"] == "done"
    assert log_file.read_text() == "poweroff\n"
    hub.close()

    # A command that fails leaves an alert and a "failed" event, and mains resumes work.
    mock_pins.reset()
    bad = start(config(tmp_path / "b", power=gpio, policy={"shutdown_command": ["/bin/false"]}))
    bad.wait_state("mains")
    bad.drive(mock_pins.pin(4), True, ["OB"])
    bad.drive(mock_pins.pin(18), True, ["LB", "OB"])
    p = bad.wait_phase("failed")
    assert "non-zero exit status 1" in p["shutdown"]["error"]
    assert bad.status()["alerts"]["power"].startswith("power-off command failed")
    assert [e["phase"] for e in bad.events("power.shutdown")] == ["begin", "command", "failed"]
    bad.drive(mock_pins.pin(18), False, ["OB"])
    bad.drive(mock_pins.pin(4), False, ["OL"])
    bad.wait_phase("resumed")
    assert "power" not in bad.status()["alerts"]


@pytest.mark.parametrize("doc,key", [
    ({"power": {"a": {"driver": "sim"}, "b": {"driver": "sim"}}}, "power.b"),
    ({"power_policy": {"shutdown_command": []}}, "power_policy.shutdown_command"),
    ({"power_policy": {"shutdown_command": [" "]}}, "power_policy"),
    ({"power_policy": {"low_charge_pct": 150}}, "power_policy.low_charge_pct"),
    ({"power_policy": {"confirm_s": -1}}, "power_policy.confirm_s"),
    ({"power_policy": {"shutdown_grace_s": "20"}}, "power_policy.shutdown_grace_s"),
    ({"power_policy": {"shutdown_after_s": 5}}, "power_policy.shutdown_after_s"),
])
def test_bad_power_config_names_the_key(tmp_path: Path, doc: dict[str, Any], key: str) -> None:
    with pytest.raises(ConfigError) as e:
        from_dict({"hub": {"id": "x", "state_dir": str(tmp_path)}, **doc})
    assert e.value.key == key, e.value
    assert e.value.reason


def test_no_power_source_installs_nothing(tmp_path: Path) -> None:
    app = build_app(from_dict({"hub": {"id": "x", "state_dir": str(tmp_path)}}))
    assert app.service(PowerService) is None
