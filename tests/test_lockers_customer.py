"""What a customer at the locker is told, in-process where time matters: expired codes."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Iterator

import pytest

from hubagent.app import build_app
from hubagent.config import from_dict
from hubagent.events import CodeEntered

from test_lockers_flows import Core, config_doc
from test_lockers_security import P1_CODE, load

NOW = datetime.now(timezone.utc)


@pytest.fixture
def core(tmp_path: Path) -> Iterator[Core]:
    doc = config_doc(tmp_path, max_failures=3)
    doc["feedback"] = {"panel": {"driver": "sim"}}
    doc["keypads"]["front"]["feedback"] = "panel"
    c = Core(build_app(from_dict(doc), simulated=True))
    yield c
    c.close()


def test_an_expired_code_is_reported_as_expired_and_never_locks_the_keypad(core: Core) -> None:
    deadline = (NOW + timedelta(hours=1)).isoformat()
    comp = load(core, "P1", pickup={"code": P1_CODE}, expires_at=deadline)
    svc = core.app.lockers
    svc.wall = lambda: NOW + timedelta(hours=2)  # the pickup deadline passed
    assert core.call(svc.expire_due) == 1
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

    view = HubView(core.app)
    assert core.call(lambda: view.kiosk_code("kiosk", P1_CODE, "pickup")).outcome == "expired"
