"""Courier, barcode and service rules in-process: the real app, a sim bank on MockFactory pins."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

import pytest

from hubagent.events import CodeEntered
from hubagent.ports import FeedbackPattern
from hubagent.scanning.codes import interpret
from test_lockers_flows import Core, config_doc, lockers_of, manual_app, wait

SSCC = "106141411234567897"


@pytest.fixture
def core(tmp_path: Path) -> Iterator[Commands]:
    c = Commands(manual_app(config_doc(tmp_path, max_failures=3)))
    yield c
    c.close()


class Commands(Core):
    """A core whose commands get a fresh id each."""

    count = 0

    def command(self, name: str, extra: dict[str, Any] | None = None, **payload: Any) -> dict[str, Any]:
        Commands.count += 1
        return super().command(name, extra, id=f"c-{Commands.count}", **payload)


def error(reply: dict[str, Any]) -> str:
    assert not reply["ok"], reply
    return str(reply["error"]["code"])


def test_a_barcode_belongs_to_one_live_parcel(core: Core) -> None:
    assert core.command("parcel.assign", parcel="P-1", size="S", barcodes=[f"(00){SSCC}"])["ok"]
    assert error(core.command("parcel.assign", parcel="P-2", size="S", barcodes=[SSCC])) == "duplicate_barcode"
    bad = core.command("parcel.assign", parcel="P-2", size="S", barcodes=["1Z999AA1", "106141411234567890"])
    assert error(bad) == "bad_args" and "barcodes[1]" in bad["error"]["message"]
    assert core.call(lambda: core.app.store.query("SELECT * FROM locker_parcels WHERE id='P-2'")) == []
    # Cancelled, the parcel frees its barcode for a new announcement.
    assert core.command("parcel.cancel", parcel="P-1")["ok"]
    assert core.command("parcel.assign", parcel="P-2", size="S", barcodes=[SSCC])["ok"]


def test_a_parcel_announced_for_load_time_can_be_cancelled(core: Core) -> None:
    r = core.command("parcel.assign", parcel="P-9", size="L", allocate="on_load", barcodes=["JJD0146000062"])
    assert r["ok"] and r["result"]["compartment"] is None
    assert {c["state"] for c in (core.compartment(n) for n in ("A5", "A6"))} == {"free"}
    cancelled = core.command("parcel.cancel", parcel="P-9")
    assert cancelled["ok"] and cancelled["result"]["state"] == "cancelled"
    assert core.call(lambda: lockers_of(core.app).desk.scan_barcode(b"JJD0146000062", None, "front")) is None


def test_a_load_moves_a_parcel_whose_compartment_went_out_of_service(core: Core) -> None:
    assert core.command("parcel.assign", parcel="P-1", size="S", barcodes=["1Z999AA10123456784"])["result"][
        "compartment"] == "A1"
    assert error(core.command("locker.service", bank="bank-a", compartment="A1", in_service=False)) == "bad_args"
    assert error(core.command("locker.service", bank="bank-a", compartment="Z9", in_service=False,
                              reason="x")) == "unknown_compartment"
    assert core.command("locker.service", bank="bank-a", compartment="A1", in_service=False,
                        reason="lock jammed")["ok"]
    pattern = core.call(lambda: lockers_of(core.app).desk.scan_barcode(b"1Z999AA10123456784", None, "front"))
    assert pattern is FeedbackPattern.OK
    wait(lambda: core.compartment("A2")["state"] == "loading", what="A2 loading")
    assert core.compartment("A1") == {**core.compartment("A1"), "state": "free", "parcel": None, "in_service": False}
    moved = core.events("parcel.assigned")[-1]
    assert moved == {**moved, "parcel": "P-1", "compartment": "A2", "source": "front"}


def test_courier_registry_refusals_and_code_clashes(core: Core) -> None:
    assert error(core.command("courier.set", courier="C-1", code="55511")) == "bad_args"  # no carrier
    assert error(core.command("courier.set", courier="C-1", carrier="ups")) == "bad_args"  # nothing to sign in with
    assert error(core.command("courier.set", courier="C-9", revoke=True)) == "unknown_courier"
    assert error(core.command("courier.set", courier="C-1", carrier="ups", badge="short")) == "bad_args"
    assert core.command("return.expect", **{"return": "R-1", "size": "S", "code": "55511"})["ok"]
    assert error(core.command("courier.set", courier="C-1", carrier="ups", code="555-11")) == "code_in_use"
    assert core.command("courier.set", courier="C-1", carrier="ups", code="77733")["ok"]
    # ... and the other way round: a customer code may not be a courier's.
    assert error(core.command("return.expect", **{"return": "R-2", "size": "S", "code": "77733"})) == "code_in_use"
    assert error(core.command("courier.set", courier="C-2", carrier="dhl", code="77733")) == "code_in_use"


def test_forged_badges_count_towards_the_lock_out(core: Core) -> None:
    assert core.command("courier.set", courier="C-1", carrier="ups", badge="UPS-7f3a9c41e2")["ok"]
    desk = lockers_of(core.app).desk
    for n in range(3):
        scan = interpret(f"HA:COURIER:UPS-0000000{n}".encode())
        assert core.call(lambda: desk.couriers.scan_badge(scan, "front")) is FeedbackPattern.ERROR
    assert core.events("locker.lockout")[0]["source"] == "front"
    # Locked out: even the real badge is not checked until the lock-out ends.
    real = interpret(b"HA:COURIER:UPS-7f3a9c41e2")
    assert core.call(lambda: desk.couriers.scan_badge(real, "front")) is FeedbackPattern.ERROR
    assert core.call(lambda: desk.who.signed_in("front")) is None
    # Another input is not affected.
    assert core.call(lambda: desk.couriers.scan_badge(real, "side")) is FeedbackPattern.OK
    assert core.call(lambda: desk.who.signed_in("side")).person == "C-1"


def test_an_expired_courier_cannot_sign_in_and_is_signed_out(core: Core) -> None:
    from datetime import timedelta

    svc = lockers_of(core.app)
    later = (core.clock.now() + timedelta(hours=1)).isoformat().replace("+00:00", "Z")
    assert core.command("courier.set", courier="C-1", carrier="ups", code="24135", expires_at=later)["ok"]
    core.call(lambda: svc.desk.on_code(CodeEntered("front", "24135")))  # the keypad named like the scanner
    assert core.call(lambda: svc.desk.who.signed_in("front")).person == "C-1"
    assert svc.trust is not None
    svc.trust.ntp_synced = lambda: True  # a synchronised clock: the jump is trusted, not suspect
    core.clock.set_wall(core.clock.now() + timedelta(hours=2))  # past the courier's expiry
    assert core.call(lambda: svc.desk.who.signed_in("front")) is None
    core.call(lambda: svc.desk.on_code(CodeEntered("front", "24135")))
    assert core.call(lambda: svc.desk.who.signed_in("front")) is None
    assert core.events("locker.code_rejected")[-1] == {"source": "front", "reason": "expired"}
    assert [e["courier"] for e in core.events("courier.signed_in")] == ["C-1"]
