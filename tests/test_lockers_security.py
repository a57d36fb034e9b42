"""Locker code security in-process: brute force, lock-outs, keyed hashes, single use, expiry."""

from __future__ import annotations

import json
import logging
import random
from datetime import timedelta
from pathlib import Path
from typing import Any, Iterator

import pytest

from hubagent.app import App
from hubagent.events import CodeEntered
from hubagent.lockers import codes
from hubagent.lockers.service import LockerService
from hubagent.ports import FeedbackPattern
from hubagent.scanning.codes import interpret

from test_lockers_flows import LOCKS, Core, config_doc, lock_pin, manual_app, pulses, wait

P1_CODE, P2_CODE = "482913", "771204"


def lockers_of(app: App) -> LockerService:
    """The app's LockerService (the test's config has one)."""
    svc = app.service(LockerService)
    assert svc is not None
    return svc


@pytest.fixture
def core(tmp_path: Path) -> Iterator[Core]:
    c = Core(manual_app(config_doc(tmp_path)))
    yield c
    c.close()


def load(core: Core, parcel: str, **assign: Any) -> str:
    """Assign, load by scan, close: the compartment now holds the parcel."""
    r = core.command("parcel.assign", id=f"assign-{parcel}", parcel=parcel, size="S", **assign)
    assert r["ok"], r
    comp = r["result"]["compartment"]
    assert core.call(core.app.scan_handlers["parcel"], interpret(f"HA:PCL:{parcel}".encode()), "front") \
        is FeedbackPattern.OK
    wait(lambda: core.compartment(comp)["door"] == "open", what=f"{comp} open")
    wait(lambda: not core.compartment(comp)["energised"], what="the bank's pulse over")  # the next release finds it free
    core.sim("close", comp)
    wait(lambda: core.compartment(comp)["state"] == "occupied", what=f"{parcel} stored")
    return comp


def type_code(core: Core, source: str, code: str) -> None:
    core.call(core.app.dispatch, CodeEntered(source, code))


def test_ten_thousand_wrong_codes_open_nothing(core: Core) -> None:
    # The attack lasts days of core time; the parcels must not expire meanwhile.
    c1 = load(core, "P1", pickup={"code": P1_CODE}, expires_at="2099-01-01T00:00:00Z")
    c2 = load(core, "P2", pickup={"code": P2_CODE}, expires_at="2099-01-01T00:00:00Z")
    wait(lambda: not any(core.compartment(c)["energised"] for c in (c1, c2)))
    before = {c: len(pulses(lock_pin(core, c))) for c in LOCKS}
    svc = lockers_of(core.app)
    clock = core.clock  # lock-outs pass when the test advances it, without waiting for them
    rng = random.Random(1234)
    valid = {P1_CODE, P2_CODE}
    wrong: list[str] = []
    while len(wrong) < 10_000:
        guess = f"{rng.randrange(10**6):06d}"
        if guess not in valid:
            wrong.append(guess)

    def attack(batch: list[str], last: bool) -> None:
        # On the core thread. Half the time the attacker waits out the lock-out;
        # the last 20 guesses come in a burst, so the keypad ends up locked out.
        for n, guess in enumerate(batch):
            burst = last and n >= len(batch) - 20
            left = svc.limiter.check("keypad:front", clock.monotonic())
            if left > 0 and rng.random() < 0.5 and not burst:
                clock.advance(left)
            svc.desk.on_code(CodeEntered("front", guess))
            if not burst:
                clock.advance(0.5)

    for i in range(0, len(wrong), 1000):
        core.call(attack, wrong[i:i + 1000], i + 1000 >= len(wrong))
    after = {c: len(pulses(lock_pin(core, c))) for c in LOCKS}
    assert after == before  # zero opens
    rejected = core.events("locker.code_rejected")
    assert len(rejected) == 10_000 and {e["reason"] for e in rejected} == {"wrong", "locked_out"}
    checked = sum(e["reason"] == "wrong" for e in rejected)
    lockouts = core.events("locker.lockout")
    assert len(lockouts) == checked // 5 and len(lockouts) > 100
    assert max(e["duration_s"] for e in lockouts) == svc.policy.max_lockout_s
    assert [e["level"] for e in lockouts[:4]] == [1, 2, 3, 4]
    # The front keypad is locked out (an alarm), but another keypad's valid code works.
    assert svc.limiter.check("keypad:front", clock.monotonic()) > 0 and "locker-input:keypad:front" in core.app.alerts
    type_code(core, "front", P1_CODE)
    assert core.compartment(c1)["state"] == "occupied"  # refused unchecked while locked out
    type_code(core, "side", P2_CODE)
    wait(lambda: core.compartment(c2)["state"] == "picking", what="side keypad opened P2")
    # Once the lock-out ends, the valid code on the attacked keypad works.
    core.advance(svc.limiter.check("keypad:front", clock.monotonic()))
    type_code(core, "front", P1_CODE)
    wait(lambda: core.compartment(c1)["state"] == "picking", what="front keypad opened P1")
    assert "locker-input:keypad:front" not in core.app.alerts
    # P1's pulse waits for P2's to end (one pulse per bank at a time).
    core.tick_until(lambda: len(pulses(lock_pin(core, c1))) > before[c1], what="P1 pulse")
    final = {c: len(pulses(lock_pin(core, c))) for c in LOCKS}
    assert {c: final[c] - before[c] for c in LOCKS if final[c] != before[c]} == {c1: 1, c2: 1}
    audited = core.call(lambda: core.app.store.query(
        "SELECT COUNT(*) AS n FROM locker_audit WHERE kind='code_rejected'"))[0]["n"]
    assert audited == 10_001  # the valid code typed while locked out was refused unchecked too


def test_codes_are_stored_only_as_keyed_hashes(core: Core, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    pickup, ret, staff = "97531864", "86420", "1357913"
    load(core, "P1", pickup={"code": pickup})
    assert core.command("return.expect", id="r1", **{"return": "R1"}, size="M", code=ret)["ok"]
    assert core.command("staff.set", id="s1", staff="S1", code=staff)["ok"]
    secret = lockers_of(core.app).secret
    rows = core.call(lambda: core.app.store.query("SELECT hash, purpose FROM locker_codes ORDER BY id"))
    assert [(r["purpose"], r["hash"]) for r in rows] == [
        ("pickup", codes.hash_code(secret, pickup, "pickup")),
        ("return", codes.hash_code(secret, ret, "return"))]
    # Staff codes live in the staff registry, hashed the same way.
    staff_rows = core.call(lambda: core.app.store.query("SELECT code_hash FROM staff_members"))
    assert [r["code_hash"] for r in staff_rows] == [codes.hash_code(secret, staff, "staff")]
    core.call(core.app.store.checkpoint)
    raw = b"".join(p.read_bytes() for p in tmp_path.glob("hubagent.db*"))
    for plain in (pickup, ret, staff, secret.hex()):
        assert plain.encode() not in raw
        assert plain not in caplog.text
    # A code only opens for its own purpose: the return code is no pickup code.
    pickup_scan = core.app.scan_handlers["pickup"]
    assert core.call(pickup_scan, interpret(f"HA:PICKUP:{ret}".encode()), "cam") is FeedbackPattern.ERROR
    assert core.call(pickup_scan, interpret(f"HA:PICKUP:{pickup}".encode()), "cam") is FeedbackPattern.OK


def test_central_may_send_the_keyed_hash_instead_of_the_code(core: Core, tmp_path: Path) -> None:
    secret = codes.load_secret(state_dir=tmp_path)  # what a central holding the hub's secret computes
    comp = load(core, "P1", pickup={"code_hash": codes.hash_code(secret, "246801", "pickup")})
    type_code(core, "front", "246 801")  # typed with a space, as printed in an SMS
    wait(lambda: core.compartment(comp)["state"] == "picking", what="opened")
    bad = core.command("parcel.assign", id="x", parcel="P2", size="S", pickup={"code_hash": "XYZ"})
    assert bad["error"]["code"] == "bad_args"
    both = core.command("parcel.assign", id="y", parcel="P3", size="S",
                        pickup={"code": "123456", "code_hash": "0" * 64})
    assert both["error"]["code"] == "bad_args"


def test_expired_and_malformed_codes_are_rejected_and_counted(core: Core) -> None:
    svc = lockers_of(core.app)
    soon = (core.clock.now() + timedelta(hours=1)).isoformat()
    assert core.command("return.expect", id="r1", **{"return": "R1"}, size="S", code="555111",
                        expires_at=soon)["ok"]
    core.clock.set_wall(core.clock.now() + timedelta(hours=2))  # the expiry check has not run yet
    svc.trust.ntp_synced = lambda: True  # a synchronised clock: the jump is time passing, not a fault
    type_code(core, "front", "555111")
    for junk in ("abc", "12", "1" * 16, "١٢٣٤٥٦"):  # letters, too short, too long, Arabic-Indic digits
        type_code(core, "front", junk)
    reasons = [e["reason"] for e in core.events("locker.code_rejected")]
    assert reasons == ["expired", "malformed", "malformed", "malformed", "malformed"]
    assert core.events("locker.lockout") == []  # an expired code does not count (docs/operations.md)
    type_code(core, "front", "x")
    assert core.events("locker.lockout")[0]["failures"] == 5
    assert all(not pulses(lock_pin(core, c)) for c in LOCKS)
    assert "555111" not in json.dumps(core.call(core.app.status))


def test_one_code_is_never_live_for_two_purposes(core: Core) -> None:
    assert core.command("staff.set", id="s1", staff="S1", code="424242")["ok"]
    clash = core.command("return.expect", id="r1", **{"return": "R1"}, size="S", code="424242")
    assert clash["error"]["code"] == "code_in_use"
    clash = core.command("parcel.assign", id="a1", parcel="P1", size="S", pickup={"code": "4242-42"})
    assert clash["error"]["code"] == "code_in_use"
    assert core.command("staff.set", id="s2", staff="S1", code="424242")["ok"]  # replacing one's own
