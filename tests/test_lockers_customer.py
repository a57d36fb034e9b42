"""What a customer at the locker is told, in-process where time matters: expired codes."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Iterator

import pytest

from hubagent.app import build_app
from hubagent.clock import ManualClock
from hubagent.config import from_dict
from hubagent.events import CodeEntered

from test_lockers_flows import Core, config_doc, lockers_of
from test_lockers_security import P1_CODE, load

NOW = datetime.now(timezone.utc)


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(wall=NOW)


@pytest.fixture
def core(tmp_path: Path, clock: ManualClock) -> Iterator[Core]:
    doc = config_doc(tmp_path, max_failures=3)
    doc["feedback"] = {"panel": {"driver": "sim"}}
    doc["keypads"]["front"]["feedback"] = "panel"
    c = Core(build_app(from_dict(doc), simulated=True, clock=clock))
    yield c
    c.close()


def test_an_expired_code_is_reported_as_expired_and_never_locks_the_keypad(core: Core, clock: ManualClock) -> None:
    deadline = (NOW + timedelta(hours=1)).isoformat()
    comp = load(core, "P1", pickup={"code": P1_CODE}, expires_at=deadline)
    svc = lockers_of(core.app)
    core.call(clock.advance, 2 * 3600.0)  # the pickup deadline passed; the hourly expiry check ran
    assert [e["parcel"] for e in core.events("parcel.expired")] == ["P1"]
    assert core.compartment(comp)["state"] == "expired"
    # Typed five times (max_failures is 3): "expired" each time, never a lock-out.
    for _ in range(5):
        core.call(core.app.dispatch, CodeEntered("front", P1_CODE))
    assert [e["reason"] for e in core.events("locker.code_rejected")] == ["expired"] * 5
    assert core.events("locker.lockout") == []
    panel = core.app.device("feedback", "panel")
    assert [(p.pattern.value, p.text) for p in panel.played()] == [("expired", "Code expired")] * 5
    rows = core.call(lambda: core.app.store.query(
        "SELECT detail FROM locker_audit WHERE kind='code_rejected' ORDER BY seq"))
    assert all('"reason": "expired"' in r["detail"] or '"reason":"expired"' in r["detail"] for r in rows)
    # A wrong code still counts: three lock the keypad out.
    for _ in range(3):
        core.call(core.app.dispatch, CodeEntered("front", "000000"))
    assert len(core.events("locker.lockout")) == 1
    assert panel.played()[-1].pattern.value == "locked_out"
    # The kiosk says "expired" too (same desk, same rule).
    from hubagent.web.view import HubView

    view = HubView(core.app, desk=lockers_of(core.app).desk)
    assert core.call(lambda: view.kiosk_code("kiosk", P1_CODE, "pickup")).outcome == "expired"


def test_token_public_key_from_base64_or_a_pem_file_and_named_when_bad(tmp_path: Path) -> None:
    import base64

    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from hubagent.errors import ConfigError
    from hubagent.lockers.tokens import TokenRefused, load_public_key, sign, verify

    key = Ed25519PrivateKey.generate()
    raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    pem = tmp_path / "central.pem"
    pem.write_bytes(key.public_key().public_bytes(serialization.Encoding.PEM,
                                                  serialization.PublicFormat.SubjectPublicKeyInfo))
    token = sign(key, token_id="T-1", parcel="P1", hub="t1", expires=2_000_000_000)
    for value in (base64.b64encode(raw).decode(), str(pem)):
        assert verify(load_public_key(value), token).parcel == "P1"
    with pytest.raises(TokenRefused) as refused:
        verify(load_public_key(str(pem)), token.replace("HA:TOK:", "HA:TOK:x"))
    assert refused.value.reason in ("bad_token", "bad_signature")
    for bad, why in ((base64.b64encode(raw[:16]).decode(), "32 bytes"), (str(tmp_path / "none.pem"), "cannot read"),
                     ("not base64!", "neither base64")):
        doc = config_doc(tmp_path, token_public_key=bad)
        with pytest.raises(ConfigError, match=rf"locker_policy\.token_public_key.*{why}"):
            from_dict(doc)


def test_parked_locks_tell_the_keypad_nothing_and_the_kiosk_out_of_order(core: Core) -> None:
    comp = load(core, "P1", pickup={"code": P1_CODE})
    svc = lockers_of(core.app)
    core.call(svc.park)
    core.call(core.app.dispatch, CodeEntered("front", P1_CODE))
    assert [e["reason"] for e in core.events("locker.code_no_action")] == ["parked"]
    panel = core.app.device("feedback", "panel")
    assert panel.played()[-1].pattern.value == "nothing"
    from hubagent.web.view import HubView

    view = HubView(core.app, desk=svc.desk)
    assert core.call(lambda: view.kiosk_code("kiosk", P1_CODE, "pickup")).outcome == "out_of_order"
    assert core.compartment(comp)["state"] == "occupied"
