"""Couriers at the locker end to end: the real daemon, a sim bank on MockFactory pins, a real broker.

Parcels are loaded by the barcodes already on them (a carrier tracking
number, an SSCC read as GS1-128 with its AIM prefix), in bulk by a signed-in
courier, refused when no compartment of their size is free, loaded from a
printed label decoded from the printer's PNG preview, kept out of
compartments out of service, and kept in (or out of) chilled compartments.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

import pytest
import zxingcpp
from PIL import Image

from central import Central
from fixtures_mqtt import MosquittoBroker
from hubproc import Daemon, mqtt_table, wait_until
from test_lockers_e2e import COMPARTMENTS, HUB, audit, compartment, in_seconds, wait_state

CHILLED = ("C1", "M", 12, 4)
"""A chilled compartment beside the six ambient ones of bank-a."""
BADGE = "UPS-7f3a9c41e2"
"""A courier badge token (printed as HA:COURIER:<token>)."""
TRACKING = "1Z999AA10123456784"
"""A UPS tracking number, as the carrier's label carries it."""
SSCC = "106141411234567897"
"""A valid SSCC (GS1 AI 00)."""
SSCC_2 = "376130321109103420"

PRINTERS = """
[printers.label]
driver = "sim"
language = "zpl"

[printing]
default_printer = "label"
retry_min_s = 0.2
retry_max_s = 1.0
"""


def config(path: Path, state: Path, broker: MosquittoBroker, **policy: Any) -> Path:
    """One sim bank (six ambient compartments and a chilled one), a scanner with feedback, a keypad, a printer."""
    lines = ["[hub]", f'id = "{HUB}"', f'state_dir = "{state}"', 'log_level = "debug"', "",
             mqtt_table(broker.port, telemetry_s=60.0),
             "[scanners.front]", 'driver = "sim"', 'feedback = "front"', "",
             "[feedback.front]", 'driver = "sim"', "history = 1000", "",
             "[keypads.front]", 'driver = "sim"', "",
             "[lockers.bank-a]", 'driver = "sim"', ""]
    for name, size, lock, door in [*COMPARTMENTS, CHILLED]:
        lines += [f"[lockers.bank-a.compartments.{name}]", f"lock_pin = {lock}", f"door_pin = {door}",
                  f'size = "{size}"']
        if name == CHILLED[0]:
            lines.append("chilled = true")
        lines.append("")
    lines.append(PRINTERS)
    lines += ["[locker_policy]", "expiry_check_s = 0.5", "lock_confirm_s = 1.5"]
    lines += [f"{k} = {json.dumps(v)}" for k, v in policy.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def central(central_factory: Callable[..., Central]) -> Central:
    return central_factory(auto_ack=True)


def start(daemon_factory: Callable[..., Daemon], tmp_path: Path, broker: MosquittoBroker,
          **policy: Any) -> Daemon:
    state = tmp_path / "hubstate"
    state.mkdir(exist_ok=True)
    cfg = config(tmp_path / "hub.toml", state, broker, **policy)
    return daemon_factory("run", "--config", str(cfg), state_dir=state)


def beeps(hub: Daemon) -> list[str]:
    """Every feedback pattern the scanner's sim feedback device played, oldest first."""
    reply = hub.sim("feedback", "history", name="front")
    assert reply["ok"], reply
    return [h["pattern"] for h in reply["result"]["history"]]


def scan(hub: Daemon, code: str) -> str:
    """Scan ``code`` on the front scanner; the feedback it got."""
    before = len(beeps(hub))
    assert hub.sim("scanners", "scan", code=code)["ok"]
    return wait_until(lambda: (b := beeps(hub))[before:] and b[-1], 15.0, f"feedback for {code}", interval=0.05)


def assign(central: Central, parcel: str, size: str, **args: Any) -> dict[str, Any]:
    r = central.command("parcel.assign", {"parcel": parcel, "size": size, **args})
    assert r["ok"], r
    return r["result"]  # type: ignore[no-any-return]


def close(hub: Daemon, comp: str) -> None:
    assert hub.sim("lockers", "close", name="bank-a", compartment=comp)["ok"]


def refusals(central: Central, parcel: str) -> list[dict[str, Any]]:
    return [e["data"] for e in central.events("parcel.load_refused") if e["data"]["parcel"] == parcel]


def test_courier_signs_in_and_bulk_loads_by_tracking_number_and_sscc(
        central: Central, mqtt_broker: MosquittoBroker, daemon_factory: Callable[..., Daemon],
        tmp_path: Path) -> None:
    hub = start(daemon_factory, tmp_path, mqtt_broker, load_requires_sign_in=True)
    central.wait_for_state("online")
    r = central.command("courier.set", {"courier": "C-1", "carrier": "ups", "badge": BADGE,
                                        "code": "97531", "expires_at": in_seconds(3600)})
    assert r["ok"] and r["result"]["active"] is True, r
    assert assign(central, "P-1", "S", barcodes=[TRACKING])["compartment"] == "A1"
    assert assign(central, "P-2", "M", barcodes=[f"(00){SSCC}"])["compartment"] == "A3"
    late = assign(central, "P-3", "L", barcodes=[f"00{SSCC_2}", "JJD014600006281230385"], allocate="on_load")
    assert late["compartment"] is None
    # Before anyone signs in, a load opens nothing: refused, error beep, an event for central.
    assert scan(hub, TRACKING.lower()) == "error"
    refused = central.wait_for(lambda: refusals(central, "P-1"), what="P-1 refused")[0]
    assert refused == {**refused, "reason": "not_signed_in", "size": "S"}
    assert compartment(hub, "A1")["state"] == "reserved"
    # A forged badge signs nobody in.
    assert scan(hub, "HA:COURIER:UPS-00000000") == "error"
    # The courier's badge signs them in; then each parcel scanned opens its own door.
    assert scan(hub, f"HA:COURIER:{BADGE}") == "ok"
    signed = central.wait_for_events(1, kind="courier.signed_in")[0]["data"]
    assert signed == {**signed, "courier": "C-1", "carrier": "ups", "station": "front", "by": "badge"}
    assert scan(hub, TRACKING) == "ok"                  # plain text, as a Code 128 tracking label reads
    assert scan(hub, f"]C100{SSCC}") == "ok"             # GS1-128 (00) with its AIM identifier
    assert scan(hub, SSCC_2) == "ok"                      # P-3: no compartment yet, one chosen now
    for comp in ("A1", "A3", "A5"):
        wait_state(hub, comp, "loading", door="open")
    for comp in ("A1", "A3", "A5"):
        close(hub, comp)
    stored = central.wait_for(lambda: len(s := central.events("parcel.stored")) == 3 and s,
                              what="three parcels stored")
    assert {e["data"]["parcel"]: e["data"]["compartment"] for e in stored} == {"P-1": "A1", "P-2": "A3",
                                                                                "P-3": "A5"}
    at_load = [e["data"] for e in central.events("parcel.assigned") if e["data"]["parcel"] == "P-3"][-1]
    assert at_load["compartment"] == "A5" and at_load["source"] == "front"
    opened = [e["data"] for e in central.events("locker.opened")]
    assert [(o["purpose"], o["courier"]) for o in opened] == [("load", "C-1")] * 3
    assert all(json.loads(a["detail"])["courier"] == "C-1" for a in audit(tmp_path / "hubstate", "release"))
    # The badge and code are stored hashed only.
    db_text = (tmp_path / "hubstate" / "hubagent.db").read_bytes()
    assert BADGE.encode() not in db_text and b"97531" not in db_text
    # Revoked: the courier is signed out at once and the badge signs nobody in.
    assert central.command("courier.set", {"courier": "C-1", "revoke": True})["ok"]
    assign(central, "P-4", "S", barcodes=["RR123456785GB"])
    assert scan(hub, "RR123456785GB") == "error"
    assert central.wait_for(lambda: refusals(central, "P-4"), what="P-4 refused")[0]["reason"] == "not_signed_in"
    assert scan(hub, f"HA:COURIER:{BADGE}") == "error"
    assert central.violations() == []
    assert hub.terminate() == 0


def test_no_free_compartment_refuses_the_load_and_the_return(
        central: Central, mqtt_broker: MosquittoBroker, daemon_factory: Callable[..., Daemon],
        tmp_path: Path) -> None:
    hub = start(daemon_factory, tmp_path, mqtt_broker, load_requires_sign_in=True, print_parcel_labels=True)
    central.wait_for_state("online")
    assert central.command("courier.set", {"courier": "C-2", "carrier": "dhl", "code": "86420"})["ok"]
    for n in range(3):
        got = assign(central, f"L-{n}", "L", barcodes=[f"JJD01460000628123038{n}"], allocate="on_load")
        assert got["label_job"] == f"parcel-L-{n}"  # [locker_policy] print_parcel_labels
    # The courier signs in with their code on the keypad beside the scanner (one station, "front").
    assert hub.sim("keypads", "code", code="8642-0")["ok"]
    central.wait_for_events(1, kind="courier.signed_in")
    assert scan(hub, "JJD014600006281230380") == "ok"
    assert scan(hub, "JJD014600006281230381") == "ok"
    # Both L compartments are taken: the third L parcel is refused, with an error beep.
    assert scan(hub, "JJD014600006281230382") == "error"
    refused = central.wait_for(lambda: refusals(central, "L-2"), what="L-2 refused")[0]
    assert refused == {**refused, "reason": "no_compartment", "size": "L", "courier": "C-2"}
    assert beeps(hub)[-3:] == ["ok", "ok", "error"]
    assert {compartment(hub, c)["state"] for c in ("A5", "A6")} == {"loading"}
    for comp in ("A5", "A6"):
        close(hub, comp)
    # A return drop-off of size L finds no room either: the customer is told, central hears of it.
    assert central.command("return.expect", {"return": "R-9", "size": "L", "code": "314159"})["ok"]
    assert scan(hub, "HA:RET:314159") == "attention"
    ret = central.wait_for_events(1, kind="return.refused")[0]["data"]
    assert ret == {**ret, "return": "R-9", "reason": "no_compartment", "size": "L"}
    assert central.violations() == []
    assert hub.terminate() == 0


def test_printed_parcel_label_loads_the_parcel(central: Central, mqtt_broker: MosquittoBroker,
                                               daemon_factory: Callable[..., Daemon], tmp_path: Path) -> None:
    hub = start(daemon_factory, tmp_path, mqtt_broker)
    central.wait_for_state("online")
    result = assign(central, "PCL-2026-0042", "M", label=True)
    assert result["label_job"] == "parcel-PCL-2026-0042"
    preview = wait_until(lambda: sorted((tmp_path / "hubstate" / "previews").glob("*parcel*.png")), 30.0,
                         "parcel label preview", interval=0.05)[0]
    with Image.open(preview) as png:
        decoded = [r.text for r in zxingcpp.read_barcodes(png.convert("L"))]
    assert decoded == ["HA:PCL:PCL-2026-0042"]
    assert scan(hub, decoded[0]) == "ok"
    wait_state(hub, result["compartment"], "loading", door="open")
    close(hub, result["compartment"])
    central.wait_for(lambda: central.events("parcel.stored"), what="stored")
    assert central.violations() == []
    assert hub.terminate() == 0


def test_out_of_service_and_chilled_compartments(central: Central, mqtt_broker: MosquittoBroker,
                                                 daemon_factory: Callable[..., Daemon], tmp_path: Path) -> None:
    hub = start(daemon_factory, tmp_path, mqtt_broker)
    central.wait_for_state("online")
    r = central.command("locker.service", {"bank": "bank-a", "compartment": "A1", "in_service": False,
                                           "reason": "hinge broken"})
    assert r["ok"] and r["result"]["changed"], r
    shown = compartment(hub, "A1")
    assert shown["in_service"] is False and shown["out_of_service"]["reason"] == "hinge broken"
    assert "A1" in hub.status()["lockers"]["banks"]["bank-a"]["out_of_service"]
    # Every ambient compartment gets used before the hub says no room: never A1, never the chilled C1.
    got = []
    for n in range(10):
        reply = central.command("parcel.assign", {"parcel": f"S-{n}", "size": "S"})
        if not reply["ok"]:
            assert reply["error"]["code"] == "no_compartment", reply
            break
        got.append(reply["result"]["compartment"])
    assert got == ["A2", "A3", "A4", "A5", "A6"]
    # A chilled parcel lands only in the chilled compartment; a second finds no room.
    chilled = assign(central, "F-1", "S", temperature="chilled")
    assert chilled["compartment"] == "C1" and chilled["temperature"] == "chilled"
    again = central.command("parcel.assign", {"parcel": "F-2", "size": "S", "temperature": "chilled"})
    assert not again["ok"] and again["error"]["code"] == "no_compartment"
    assert compartment(hub, "C1")["chilled"] is True
    # Back in service: the next small parcel gets A1.
    assert central.command("locker.service", {"bank": "bank-a", "compartment": "A1", "in_service": True})["ok"]
    assert assign(central, "S-back", "S")["compartment"] == "A1"
    # A stored parcel's compartment taken out of service: its customer's code opens nothing.
    assert scan(hub, "HA:PCL:S-0") == "ok"
    wait_state(hub, "A2", "loading", door="open")
    close(hub, "A2")
    code = central.wait_for_events(1, kind="parcel.stored")[0]["data"]["pickup_code"]
    assert central.command("locker.service", {"bank": "bank-a", "compartment": "A2", "in_service": False,
                                              "reason": "door sensor"})["ok"]
    assert hub.sim("keypads", "code", code=code)["ok"]
    no = central.wait_for_events(1, kind="locker.code_no_action")[0]["data"]
    assert no["reason"] == "out_of_service" and compartment(hub, "A2")["state"] == "occupied"
    kinds = [a["kind"] for a in audit(tmp_path / "hubstate")]
    assert kinds.count("out_of_service") == 2 and kinds.count("back_in_service") == 1
    assert "out of service" in hub.cli("status", "--config", str(tmp_path / "hub.toml")).stdout
    assert central.violations() == []
    assert hub.terminate() == 0
