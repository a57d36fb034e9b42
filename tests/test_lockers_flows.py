"""Locker flows in-process: the real app on an asyncio loop thread, a sim bank on MockFactory pins.

The app runs on a :class:`~hubagent.clock.ManualClock`: the core's timers
(lock confirmation, pulse retries, expiry) fire only when a test advances
it. The bank's own pulse and debounce timing is the driver's, on its own
threads, so tests still wait for those with ``wait``.
"""

from __future__ import annotations

import json
import sqlite3
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

from hubagent.app import App, build_app
from hubagent.bench.corethread import CoreThread
from hubagent.clock import ManualClock
from hubagent.config import from_dict
from hubagent.errors import ConfigError
from hubagent.lockers import state as sm
from hubagent.lockers.service import LockerService
from hubagent.lockers.state import Purpose, State
from hubagent.ports import FeedbackPattern
from hubagent.scanning.codes import interpret
from hubproc import wait_until

LOCKS = {"A1": 5, "A2": 6, "A3": 13, "A4": 19, "A5": 26, "A6": 16}
DOORS = {"A1": 17, "A2": 27, "A3": 22, "A4": 23, "A5": 24, "A6": 25}
SIZES = {"A1": "S", "A2": "S", "A3": "M", "A4": "M", "A5": "L", "A6": "L"}


def lockers_of(app: App) -> LockerService:
    """The app's LockerService (the test's config has one)."""
    svc = app.service(LockerService)
    assert svc is not None
    return svc


def config_doc(state: Path, **policy: Any) -> dict[str, Any]:
    comps = {n: {"lock_pin": LOCKS[n], "door_pin": DOORS[n], "size": SIZES[n], "pulse_s": 0.3}
             for n in LOCKS}
    return {"hub": {"id": "t1", "state_dir": str(state)},
            "lockers": {"bank-a": {"driver": "sim", "compartments": comps}},
            "keypads": {"front": {"driver": "sim"}, "side": {"driver": "sim"}},
            "locker_policy": {"lock_confirm_s": 1.0, "expiry_check_s": 3600.0, **policy}}


class Core(CoreThread):
    """Runs an app on its own asyncio loop thread; ``call`` runs code on that (core) thread."""

    def __init__(self, app: App) -> None:
        assert isinstance(app.clock, ManualClock), "build the app with manual_app()"
        self.clock: ManualClock = app.clock
        super().__init__(app)

    def command(self, name: str, extra: dict[str, Any] | None = None, **payload: Any) -> dict[str, Any]:
        return self.call(lambda: self.app.commands.handle(name, json.dumps(payload).encode(), "mqtt", extra))  # type: ignore[no-any-return]

    def compartment(self, name: str) -> dict[str, Any]:
        return self.call(lambda: self.app.status()["lockers"]["banks"]["bank-a"]["compartments"][name])  # type: ignore[no-any-return]

    def events(self, kind: str) -> list[dict[str, Any]]:
        rows = self.call(lambda: self.app.store.query("SELECT data FROM outbox WHERE kind=? ORDER BY seq", (kind,)))
        return [json.loads(r["data"]) for r in rows]

    def sim(self, verb: str, comp: str) -> dict[str, Any]:
        return self.call(lambda: self.app.sim_command("lockers", "bank-a", verb, {"compartment": comp}))  # type: ignore[no-any-return]

    def advance(self, seconds: float) -> None:
        """Let ``seconds`` of core time pass (its due timers run on the core thread)."""
        self.clock.advance(seconds)

    def tick_until(self, predicate: Callable[[], Any], step: float = 0.01, what: str = "condition") -> Any:
        """Advance core time ``step`` s per poll until ``predicate`` holds.

        For a core timer that waits on the bank's own (real-time) pulse: a
        release queued behind a busy bank asks again each time the core's
        retry timer fires, and the bank frees itself in real time.
        """
        def check() -> Any:
            got = predicate()
            if not got:
                self.advance(step)
            return got

        return wait(check, what=what)


def manual_app(doc: dict[str, Any]) -> App:
    """The simulated app of ``doc`` on a fresh :class:`ManualClock`."""
    return build_app(from_dict(doc), simulated=True, clock=ManualClock())


def wait(predicate: Callable[[], Any], timeout: float = 10.0, what: str = "condition") -> Any:
    """:func:`hubproc.wait_until` with this file's defaults and a 20 ms poll."""
    return wait_until(predicate, timeout, what, interval=0.02)


def lock_pin(core: Core, comp: str) -> Any:
    """The MockPin driving a compartment's lock relay."""
    return core.app.device("lockers", "bank-a")._mock.pin(f"GPIO{LOCKS[comp]}")


def pulses(pin: Any) -> list[tuple[float, float]]:
    """(rise, fall) times of every high period in a mock pin's history."""
    out, rise = [], None
    for st in pin.states:
        if st.state and rise is None:
            rise = st.timestamp
        elif not st.state and rise is not None:
            out.append((rise, st.timestamp))
            rise = None
    if rise is not None:
        out.append((rise, float("inf")))
    return out


@pytest.fixture
def core(tmp_path: Path) -> Iterator[Core]:
    c = Core(manual_app(config_doc(tmp_path)))
    yield c
    c.close()


def test_state_machine() -> None:
    s = sm.assign(State.FREE)
    s = sm.release(s, Purpose.LOAD)
    assert s is State.LOADING and sm.closed(s, State.RESERVED) is State.OCCUPIED
    assert sm.release(State.OCCUPIED, Purpose.PICKUP) is State.PICKING
    assert sm.closed(State.PICKING, State.OCCUPIED) is State.FREE
    assert sm.closed(State.OPENING, State.RETURNED) is State.RETURNED
    assert sm.undone(State.PICKING, State.OCCUPIED) is State.OCCUPIED
    assert sm.expire(State.OCCUPIED) is State.EXPIRED and sm.expire(State.RESERVED) is State.FREE
    for bad in ((State.FREE, Purpose.PICKUP), (State.OCCUPIED, Purpose.LOAD), (State.PICKING, Purpose.REMOTE)):
        with pytest.raises(sm.TransitionError):
            sm.release(*bad)
    with pytest.raises(sm.TransitionError):
        sm.assign(State.OCCUPIED)


def test_load_by_scan_pickup_by_qr_code_is_single_use(core: Core) -> None:
    r = core.command("parcel.assign", id="a1", parcel="P1", size="S")
    assert r["ok"] and r["result"]["compartment"] == "A1"
    scan = core.app.scan_handlers["parcel"]
    assert core.call(scan, interpret(b"HA:PCL:P1"), "front") is FeedbackPattern.OK
    wait(lambda: core.compartment("A1")["door"] == "open", what="door sprung")
    wait(lambda: not core.compartment("A1")["energised"], what="the bank's pulse over")
    core.sim("close", "A1")
    wait(lambda: core.compartment("A1")["state"] == "occupied", what="stored")
    code = core.events("parcel.stored")[0]["pickup_code"]
    pickup = core.app.scan_handlers["pickup"]
    assert core.call(pickup, interpret(f"HA:PICKUP:{code}".encode()), "camera") is FeedbackPattern.OK
    wait(lambda: core.compartment("A1")["state"] == "picking" and core.compartment("A1")["door"] == "open")
    core.sim("close", "A1")
    wait(lambda: core.compartment("A1")["state"] == "free", what="picked up")
    # Single use: the same code again opens nothing.
    assert core.call(pickup, interpret(f"HA:PICKUP:{code}".encode()), "camera") is FeedbackPattern.ERROR
    assert len(pulses(lock_pin(core, "A1"))) == 2
    # An unknown parcel label is refused.
    assert core.call(scan, interpret(b"HA:PCL:NOPE"), "front") is FeedbackPattern.ERROR


def test_remote_open_pulses_once_and_never_longer_than_the_pulse(core: Core) -> None:
    r = core.command("locker.open", id="o1", bank="bank-a", compartment="A2", reason="check")
    assert r["ok"], r
    wait(lambda: core.compartment("A2")["door"] == "open", what="door open")
    wait(lambda: not core.compartment("A2")["energised"], what="pulse over")
    (rise, fall), = pulses(lock_pin(core, "A2"))
    assert fall - rise <= 0.3 + 0.5  # pulse_s plus scheduling slack, never held on
    assert all(not pulses(lock_pin(core, c)) for c in LOCKS if c != "A2")
    again = core.command("locker.open", id="o1", bank="bank-a", compartment="A2", reason="check")
    assert again["duplicate"] is True
    busy = core.command("locker.open", id="o2", bank="bank-a", compartment="A2", reason="check")
    assert busy["error"]["code"] == "busy"  # a release is still pending (door open)
    core.sim("close", "A2")
    wait(lambda: core.compartment("A2")["state"] == "free")
    assert len(pulses(lock_pin(core, "A2"))) == 1


def test_expired_commands_never_pulse(core: Core) -> None:
    late = core.command("locker.open", {"expires_at_monotonic": core.clock.monotonic() - 0.01},
                        id="late", bank="bank-a", compartment="A1", reason="x")
    assert late["error"]["code"] == "expired"
    # A pulse that waits for a busy bank past its deadline is dropped and undone.
    assert core.command("locker.open", id="first", bank="bank-a", compartment="A3", reason="x")["ok"]
    queued = core.command("locker.open", {"expires_at_monotonic": core.clock.monotonic() + 0.1},
                          id="short", bank="bank-a", compartment="A4", reason="x")
    assert queued["ok"]
    assert core.events("locker.release_failed") == []  # waiting for the bank, not yet expired
    core.advance(0.2)  # the retries pass the deadline while A3's pulse still holds the bank
    failed = core.events("locker.release_failed")
    assert failed[0]["compartment"] == "A4" and failed[0]["reason"] == "expired"
    wait(lambda: core.compartment("A4")["state"] == "free")
    assert pulses(lock_pin(core, "A1")) == [] and pulses(lock_pin(core, "A4")) == []
    assert len(pulses(lock_pin(core, "A3"))) == 1


def test_busy_bank_pulses_one_lock_at_a_time(core: Core) -> None:
    for cid, comp in (("b1", "A5"), ("b2", "A6")):
        assert core.command("locker.open", id=cid, bank="bank-a", compartment=comp, reason="x")["ok"]
    core.tick_until(lambda: len(pulses(lock_pin(core, "A6"))) == 1
                    and pulses(lock_pin(core, "A6"))[0][1] < float("inf"), what="second pulse done")
    (r5, f5), = pulses(lock_pin(core, "A5"))
    (r6, f6), = pulses(lock_pin(core, "A6"))
    assert f5 <= r6  # never two solenoids on one supply


def test_allocation_picks_the_smallest_fit_and_refuses_when_full(core: Core) -> None:
    got = [core.command("parcel.assign", id=f"a{i}", parcel=f"P{i}", size="S")["result"]["compartment"]
           for i in range(4)]
    assert got == ["A1", "A2", "A3", "A4"]
    assert core.command("parcel.assign", id="l1", parcel="L1", size="L")["result"]["compartment"] == "A5"
    # A forced-open (faulted) compartment is never allocated.
    core.sim("open", "A6")
    wait(lambda: core.compartment("A6")["fault"] == "forced_open")
    core.sim("close", "A6")
    full = core.command("parcel.assign", id="l2", parcel="L2", size="L")
    assert full["error"]["code"] == "no_compartment"
    dup = core.command("parcel.assign", id="d1", parcel="P1", size="S")
    assert dup["error"]["code"] == "duplicate_parcel"
    bad = core.command("parcel.assign", id="b1", parcel="P9", size="XL")
    assert bad["error"]["code"] == "bad_args"
    cancelled = core.command("parcel.cancel", id="c1", parcel="P0")
    assert cancelled["ok"] and core.compartment("A1")["state"] == "free"


def test_expiry_waits_for_a_sane_wall_clock(core: Core) -> None:
    svc = lockers_of(core.app)
    assert core.command("parcel.assign", id="a1", parcel="P1", size="M",
                        expires_at="2026-01-01T00:00:00Z")["error"]["code"] == "bad_args"  # already past
    assert core.command("parcel.assign", id="a2", parcel="P2", size="M", expires_at="2099-01-01T00:00:00Z")["ok"]
    core.clock.set_wall(datetime(1970, 1, 1, tzinfo=timezone.utc))  # a Pi without RTC, just booted
    assert core.call(svc.expire_due) == 0
    core.clock.set_wall(datetime(2099, 6, 1, tzinfo=timezone.utc))
    svc.trust.ntp_synced = lambda: True  # the kernel says NTP set it (else a jump to 2099 is suspect)
    assert core.call(svc.expire_due) == 1
    assert core.events("parcel.expired")[0] == {**core.events("parcel.expired")[0], "parcel": "P2",
                                                "stage": "assigned"}
    assert core.compartment("A3")["state"] == "free"


def test_audit_trail_is_append_only(core: Core) -> None:
    core.command("locker.open", id="o1", bank="bank-a", compartment="A1", reason="x")
    conn = core.app.store.conn
    for sql in ("UPDATE locker_audit SET kind='x'", "DELETE FROM locker_audit"):
        with pytest.raises(sqlite3.DatabaseError, match="append-only"):
            core.call(conn.execute, sql)
    assert core.call(lambda: core.app.store.query("SELECT COUNT(*) AS n FROM locker_audit"))[0]["n"] >= 1


def test_interrupted_release_is_undone_on_restart(tmp_path: Path) -> None:
    core = Core(manual_app(config_doc(tmp_path)))
    try:
        core.sim("jam", "A3")  # the door will not move
        assert core.command("locker.open", id="o1", bank="bank-a", compartment="A3", reason="x")["ok"]
        wait(lambda: pulses(lock_pin(core, "A3")), what="pulse")
        assert core.compartment("A3")["state"] == "opening"
    finally:
        core.close()  # stopped before lock_confirm_s: the release is still pending in the database
    again = Core(manual_app(config_doc(tmp_path)))
    try:
        assert again.compartment("A3")["state"] == "free"
        rows = again.call(lambda: again.app.store.query(
            "SELECT kind, detail FROM locker_audit WHERE kind IN ('reconciled', 'release_undone')"))
        assert [r["kind"] for r in rows] == ["reconciled", "release_undone"]
        assert json.loads(rows[1]["detail"])["why"] == "interrupted"
    finally:
        again.close()


def test_pin_conflicts_across_sections_are_config_errors(tmp_path: Path) -> None:
    doc = config_doc(tmp_path)
    doc["feedback"] = {"shelf": {"driver": "gpio", "buzzer_pin": "BOARD11"}}  # = GPIO17, door of A1
    with pytest.raises(ConfigError) as e:
        from_dict(doc)
    assert e.value.key == "feedback.shelf.buzzer_pin" and "lockers.bank-a.A1.door_pin" in e.value.reason


def test_parked_locks_refuse_releases_until_resumed(core: Core) -> None:
    svc = lockers_of(core.app)
    core.call(svc.park)  # what the power feature does before a low-battery power-off
    refused = core.command("locker.open", id="p1", bank="bank-a", compartment="A1", reason="x")
    assert refused["error"]["code"] == "parked"
    assert core.call(core.app.status)["lockers"]["parked"] is True
    core.call(svc.resume)
    assert core.command("locker.open", id="p2", bank="bank-a", compartment="A1", reason="x")["ok"]
    wait(lambda: pulses(lock_pin(core, "A1")), what="pulse after resume")


def test_door_pulled_open_before_its_pulse_is_forced(tmp_path: Path) -> None:
    doc = config_doc(tmp_path)
    doc["lockers"]["bank-a"]["compartments"]["A1"]["pulse_s"] = 2.0  # keeps the bank busy
    core = Core(manual_app(doc))
    try:
        def open_two_then_pull_a2() -> dict[str, Any]:
            for cid, comp in (("o1", "A1"), ("o2", "A2")):
                reply = core.app.commands.handle("locker.open", json.dumps(
                    {"id": cid, "bank": "bank-a", "compartment": comp, "reason": "x"}).encode())
                assert reply["ok"], reply
            return core.app.sim_command("lockers", "bank-a", "open", {"compartment": "A2"})

        assert core.call(open_two_then_pull_a2)["forced"] is True
        alarm = wait(lambda: [e for e in core.events("locker.alarm") if e["kind"] == "forced_open"])[0]
        assert alarm["compartment"] == "A2"
        assert core.call(lambda: core.app.alerts)["locker:bank-a/A2"] == "forced_open"
    finally:
        core.close()


@pytest.mark.parametrize("policy,key", [
    ({"max_failures": 0}, "locker_policy.max_failures"),
    ({"base_lockout_s": 1000.0}, "locker_policy"),
    ({"staff_retrieval": "all"}, "locker_policy.staff_retrieval"),
    ({"secret": "abc"}, "locker_policy.secret"),
])
def test_bad_locker_policy_is_a_config_error(tmp_path: Path, policy: dict[str, Any], key: str) -> None:
    doc = config_doc(tmp_path)
    doc["locker_policy"] = policy
    with pytest.raises(ConfigError) as e:
        from_dict(doc)
    assert e.value.key == key


def test_return_code_scanned_opens_an_empty_compartment_of_its_size(core: Core) -> None:
    assert core.command("return.expect", id="r1", **{"return": "R1"}, size="M", code="135790")["ok"]
    ret = core.app.scan_handlers["return"]
    assert core.call(ret, interpret(b"HA:RET:135790"), "front") is FeedbackPattern.OK
    wait(lambda: core.compartment("A3")["state"] == "returning" and core.compartment("A3")["door"] == "open")
    core.sim("close", "A3")
    wait(lambda: core.compartment("A3")["state"] == "returned", what="dropped")
    assert core.compartment("A3")["return"] == "R1"
    assert core.events("return.dropped")[0]["return"] == "R1"
    assert core.call(ret, interpret(b"HA:RET:135790"), "front") is FeedbackPattern.ERROR  # single use


def test_parcel_stored_while_the_clock_was_wrong_gets_its_deadline_later(core: Core) -> None:
    svc = lockers_of(core.app)
    core.clock.set_wall(datetime(1970, 1, 1, tzinfo=timezone.utc))
    assert core.command("parcel.assign", id="a1", parcel="P1", size="S")["ok"]
    assert core.call(core.app.scan_handlers["parcel"], interpret(b"HA:PCL:P1"), "front") is FeedbackPattern.OK
    wait(lambda: core.compartment("A1")["door"] == "open")
    core.sim("close", "A1")
    wait(lambda: core.compartment("A1")["state"] == "occupied")
    assert core.events("parcel.stored")[0]["expires_at"] is None  # no trustworthy time to count from
    core.clock.set_wall(datetime(2030, 1, 1, tzinfo=timezone.utc))  # NTP set the clock
    svc.trust.ntp_synced = lambda: True  # and the kernel says so
    assert core.call(svc.expire_due) == 0  # the deadline starts now: pickup_expiry_s from 2030-01-01
    core.clock.set_wall(datetime(2030, 1, 5, tzinfo=timezone.utc))
    assert core.call(svc.expire_due) == 1
    assert core.compartment("A1")["state"] == "expired"


def test_remote_open_of_a_door_already_open_completes_when_it_closes(core: Core) -> None:
    assert core.sim("open", "A3")["forced"] is True  # pulled open: forced_open
    wait(lambda: core.compartment("A3")["fault"] == "forced_open", what="forced_open")
    r = core.command("locker.open", id="o1", bank="bank-a", compartment="A3", reason="inspect")
    assert r["ok"], r
    wait(lambda: core.events("locker.opened"), what="locker.opened")
    core.advance(1.5)  # past lock_confirm_s: a door that is open cannot "fail to move"
    assert not [e for e in core.events("locker.alarm") if e["kind"] == "lock_failed"]
    assert core.compartment("A3")["state"] != "free"  # the release is waiting for the door
    wait(lambda: not core.compartment("A3")["energised"], what="the bank's pulse over")
    core.sim("close", "A3")
    wait(lambda: core.compartment("A3")["state"] == "free", what="flow completed")


def test_a_lock_that_does_not_open_fails_exactly_at_lock_confirm_s(core: Core) -> None:
    core.sim("jam", "A3")  # the door will not move
    assert core.command("locker.open", id="o1", bank="bank-a", compartment="A3", reason="x")["ok"]
    wait(lambda: pulses(lock_pin(core, "A3")) and not core.compartment("A3")["energised"], what="pulse over")
    core.advance(0.99)  # lock_confirm_s is 1.0
    assert core.compartment("A3")["state"] == "opening" and not core.events("locker.alarm")
    core.advance(0.02)
    (alarm,) = core.events("locker.alarm")
    assert alarm["kind"] == "lock_failed" and alarm["compartment"] == "A3"
    assert core.compartment("A3")["state"] == "free" and core.compartment("A3")["fault"] == "lock_failed"
