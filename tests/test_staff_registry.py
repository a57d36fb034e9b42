"""The staff registry in process: staff.set/staff.revoke, badges at the scanner, scanner
roles and ``require_staff``; a real app on a real SQLite file, scans entering where a
scanner thread's do, and the hub's manual clock for PIN waits and expiry.
"""

from __future__ import annotations

import json
import sqlite3
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Iterator

import pytest

from hubagent.app import App, build_app
from hubagent.clock import ManualClock
from hubagent.config import from_dict
from hubagent.events import RawScan
from hubagent.lockers import codes
from hubagent.scanning.roles import accepts
from hubagent.scanning.service import ScanService
from hubagent.staff.registry import StaffRegistry, badge_hash
from hubagent.staff.settings import STAFF
from hubagent.features import all_migrations
from hubagent.store import migrations

TEA_GTIN = "04006381333931"
CATALOG = [{"sku": "TEA-1", "name": "Green tea", "gtins": [TEA_GTIN], "bin": "A-01"}]
START = datetime(2026, 11, 29, 12, 0, tzinfo=timezone.utc)


class Hub:
    """An in-process app on a manual clock; scans go through app.dispatch."""

    def __init__(self, state: Path, *, scanning: dict[str, Any] | None = None,
                 staff: dict[str, Any] | None = None, scanners: dict[str, Any] | None = None,
                 **devices: Any) -> None:
        cfg = {"hub": {"id": "t1", "state_dir": str(state)},
               "scanners": scanners or {"shelf": {"driver": "sim", "role": "shelf"},
                                        "door": {"driver": "sim", "role": "locker"},
                                        "screen": {"driver": "sim", "role": "kiosk"},
                                        "old": {"driver": "sim"}},
               "scanning": {"dedupe_s": 0.0, **(scanning or {})},
               "staff": staff or {}, **devices}
        self.clock = ManualClock(wall=START)
        self.app: App = build_app(from_dict(cfg), clock=self.clock)
        self.app.store.open()
        self.scanning = self.app.service(ScanService)
        self.registry = self.app.service(StaffRegistry)
        assert self.scanning is not None and self.registry is not None
        self.scanning.load()
        self.registry.start()

    def cmd(self, name: str, **payload: Any) -> dict[str, Any]:
        payload.setdefault("id", uuid.uuid4().hex)
        return self.app.commands.handle(name, json.dumps(payload).encode())

    def scan(self, code: str, scanner: str = "shelf") -> str:
        self.app.dispatch(RawScan(scanner, code.encode(), at=self.clock.monotonic()))
        return str(self.scanning.last_feedback[scanner]["pattern"])

    def events(self, kind: str | None = None) -> list[dict[str, Any]]:
        rows = self.app.store.query("SELECT kind, data FROM outbox ORDER BY seq")
        return [{"kind": r["kind"], **json.loads(r["data"])} for r in rows if kind in (None, r["kind"])]

    def reasons(self) -> list[str]:
        return [e["reason"] for e in self.events("scan.rejected")]

    def staff_on(self, scanner: str = "shelf") -> str | None:
        return self.scanning.staff_for(scanner)


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[Hub]:
    h = Hub(tmp_path)
    assert h.cmd("catalog.upsert", items=CATALOG)["ok"]
    yield h
    h.app.store.close()


def test_only_registered_badges_sign_in(hub: Hub) -> None:
    assert hub.scan("HA:STAFF:mallory") == "error"
    assert hub.reasons() == ["unknown_staff"] and hub.staff_on() is None
    r = hub.cmd("staff.set", staff="anna", badge="K7-anna-3f9")
    assert r["ok"] and r["result"] == {"staff": "anna", "active": True, "expires_at": None,
                                       "code": False, "badge": True, "pin": False}
    assert hub.scan("HA:STAFF:anna") == "error"  # the staff id is not the badge
    assert hub.scan("HA:STAFF:K7-anna-3f9") == "ok" and hub.staff_on() == "anna"
    # An unknown badge leaves whoever is signed in as they were.
    assert hub.scan("HA:STAFF:mallory") == "error" and hub.staff_on() == "anna"
    assert hub.cmd("staff.revoke", staff="anna")["result"]["active"] is False
    assert hub.scan("HA:STAFF:K7-anna-3f9") == "error"
    assert hub.reasons() == ["unknown_staff"] * 4
    assert [e["active"] for e in hub.events("staff.updated")] == [True, False]


def test_badges_are_stored_as_keyed_hashes_and_expire(hub: Hub, tmp_path: Path) -> None:
    later = (START + timedelta(hours=1)).isoformat().replace("+00:00", "Z")
    assert hub.cmd("staff.set", staff="bo", badge="Bo-77-xq", pin="9090", expires_at=later)["ok"]
    secret = hub.registry.secret
    row = hub.app.store.query("SELECT badge_hash, pin_hash FROM staff_members WHERE id='bo'")[0]
    assert row["badge_hash"] == badge_hash(secret, "Bo-77-xq")
    assert row["pin_hash"] == codes.hash_code(secret, "9090", "staff_pin")
    hub.app.store.checkpoint()
    raw = b"".join(p.read_bytes() for p in tmp_path.glob("hubagent.db*"))
    assert b"Bo-77-xq" not in raw and b"9090" not in raw
    assert hub.scan("HA:STAFF:Bo-77-xq") == "ok"
    hub.clock.advance(3601.0)  # the wall clock passes expires_at
    assert hub.scan("HA:STAFF:Bo-77-xq") == "error" and hub.reasons() == ["unknown_staff"]


@pytest.mark.parametrize("args, code", [
    ({"staff": "x", "code": "12a4"}, "bad_code"),
    ({"staff": "x", "code": "1234", "code_hash": "0" * 64}, "bad_args"),
    ({"staff": "x", "badge": "has space"}, "bad_args"),
    ({"staff": "x", "badge": "B-1", "pin": "12"}, "bad_code"),
    ({"staff": "x", "badge": "B-1", "pin_hash": "XYZ"}, "bad_args"),
    ({"staff": "x", "pin": "1234"}, "bad_args"),
    ({"staff": "x", "badge": "B-1", "expires_at": "2020-01-01T00:00:00Z"}, "bad_args"),
])
def test_staff_set_refuses_bad_arguments_naming_them(hub: Hub, args: dict[str, Any], code: str) -> None:
    r = hub.cmd("staff.set", **args)
    assert not r["ok"] and r["error"]["code"] == code, r
    assert hub.app.store.query("SELECT COUNT(*) AS n FROM staff_members")[0]["n"] == 0


def test_codes_and_badges_are_one_members_each(hub: Hub) -> None:
    assert hub.cmd("staff.set", staff="a", code="55501", badge="BA-1")["ok"]
    assert hub.cmd("staff.set", staff="b", code="55501")["error"]["code"] == "code_in_use"
    assert hub.cmd("staff.set", staff="b", badge="BA-1")["error"]["code"] == "badge_in_use"
    assert hub.cmd("staff.set", staff="a", code="55501", badge="BA-2")["ok"]  # replacing your own
    assert hub.scan("HA:STAFF:BA-1") == "error" and hub.scan("HA:STAFF:BA-2") == "ok"
    assert hub.cmd("staff.set", staff="b", badge="BA-1")["ok"]  # a replaced badge is free again


def test_scanner_roles_decide_which_codes_count(hub: Hub) -> None:
    assert hub.cmd("staff.set", staff="anna", badge="K7-anna")["ok"]
    # A customer-facing scanner: no badge, no mode, no parcel load, no stock codes.
    for code in ("HA:STAFF:K7-anna", "HA:MODE:RECEIVE", "HA:PCL:P-1", "HA:BIN:A-01", TEA_GTIN, "HA:QTY:5"):
        assert hub.scan(code, "screen") == "error"
    assert hub.reasons() == ["not_allowed_here"] * 6
    assert hub.staff_on("screen") is None and hub.scanning.mode_of("screen") == "lookup"
    # A locker scanner takes badges but no stock modes.
    assert hub.scan("HA:MODE:RECEIVE", "door") == "error"
    assert hub.scan("HA:STAFF:K7-anna", "door") == "ok" and hub.staff_on("door") == "anna"
    # A shelf scanner runs the stock flows and takes badges, but no locker codes.
    assert hub.scan("HA:PICKUP:123456", "shelf") == "error"
    assert hub.scan("HA:MODE:RECEIVE", "shelf") == "ok"
    assert hub.scan("HA:STAFF:K7-anna", "shelf") == "ok"
    assert hub.reasons() == ["not_allowed_here"] * 8
    # A scanner with no role accepts what it always did.
    assert hub.scan("HA:MODE:COUNT", "old") == "ok"
    rejected = hub.events("scan.rejected")[0]
    assert rejected["scanner"] == "screen" and "kiosk" in rejected["message"]


def test_roles_table() -> None:
    assert not any(accepts("kiosk", k) for k in ("staff", "mode", "parcel", "bin", "gtin", "sku", "cancel"))
    assert all(accepts("kiosk", k) for k in ("pickup", "return"))
    assert all(accepts("locker", k) for k in ("parcel", "pickup", "return", "staff", "sscc"))
    assert not any(accepts("locker", k) for k in ("mode", "bin", "gtin", "qty", "done"))
    assert all(accepts("shelf", k) for k in ("mode", "bin", "gtin", "sku", "qty", "done", "staff", "return"))
    assert not any(accepts("shelf", k) for k in ("parcel", "pickup"))
    assert all(accepts(None, k) for k in ("parcel", "pickup", "mode", "staff"))


def test_require_staff_refuses_movements_without_a_registered_sign_in(tmp_path: Path) -> None:
    h = Hub(tmp_path, scanning={"require_staff": True})
    assert h.cmd("catalog.upsert", items=CATALOG)["ok"]
    assert h.cmd("staff.set", staff="cy", badge="CY-badge-1")["ok"]
    h.scan("HA:MODE:RECEIVE")
    h.scan("HA:BIN:A-01")
    assert h.scan(TEA_GTIN) == "attention" and h.reasons() == ["no_staff"]
    assert h.app.store.query("SELECT COUNT(*) AS n FROM movements")[0]["n"] == 0
    assert h.scan("HA:STAFF:CY-badge-1") == "ok"
    assert h.scan(TEA_GTIN) == "ok"
    moved = h.app.store.query("SELECT actor, device FROM movements")
    assert [(m["actor"], m["device"]) for m in moved] == [("cy", "shelf")]
    # Revoked while signed in: the next movement is refused.
    assert h.cmd("staff.revoke", staff="cy")["ok"]
    assert h.scan(TEA_GTIN) == "attention" and h.reasons() == ["no_staff", "no_staff"]
    h.scan("HA:MODE:LOOKUP")
    assert h.scan(TEA_GTIN) == "ok"  # a lookup moves nothing
    h.app.store.close()


def test_require_pin_holds_the_badge_until_the_pin_and_forgets_it(tmp_path: Path) -> None:
    bank = {"driver": "sim", "compartments": {"A1": {"lock_pin": 5, "door_pin": 17}}}
    h = Hub(tmp_path, staff={"require_pin": True, "pin_timeout_s": 30.0},
            scanners={"door": {"driver": "sim", "role": "locker"}},
            keypads={"door": {"driver": "sim"}}, lockers={"bank-a": bank})
    assert h.cmd("staff.set", staff="dee", badge="DEE-b", pin="2580")["ok"]
    assert h.scan("HA:STAFF:DEE-b", "door") == "attention"
    assert h.staff_on("door") is None and h.scanning.pin_awaited("door") == "dee"
    h.clock.advance(31.0)
    assert h.scanning.pin_awaited("door") is None  # the wait is over: scan the badge again
    h.app.store.close()


def test_staff_codes_given_before_the_registry_move_into_it(tmp_path: Path) -> None:
    db = sqlite3.connect(tmp_path / "old.db")
    before = [m for m in all_migrations() if m[0] != "lockers-0002-staff-codes-to-registry"]
    migrations.apply(db, before, START)
    secret = b"s" * 32
    db.execute("INSERT INTO locker_codes(hash, purpose, ref, expires_at, created_at) VALUES "
               "(?, 'staff', 'S-1', NULL, '2026-01-01T00:00:00.000Z')",
               (codes.hash_code(secret, "13579", "staff"),))
    db.execute("INSERT INTO locker_codes(hash, purpose, ref, expires_at, spent_at, created_at) VALUES "
               "('aa', 'staff', 'S-0', NULL, '2026-01-02T00:00:00.000Z', '2026-01-01T00:00:00.000Z')")
    db.commit()
    assert migrations.apply(db, all_migrations(), START) == ["lockers-0002-staff-codes-to-registry"]
    rows = db.execute("SELECT id, code_hash FROM staff_members").fetchall()
    assert rows == [("S-1", codes.hash_code(secret, "13579", "staff"))]
    assert db.execute("SELECT COUNT(*) FROM locker_codes WHERE purpose='staff' AND spent_at IS NULL"
                      ).fetchone()[0] == 0
    db.close()


def test_require_pin_needs_a_keypad_beside_each_badge_scanner(tmp_path: Path) -> None:
    from hubagent.errors import ConfigError

    cfg = {"hub": {"id": "t1", "state_dir": str(tmp_path)},
           "scanners": {"door": {"driver": "sim", "role": "locker"},
                        "screen": {"driver": "sim", "role": "kiosk"}},
           "staff": {"require_pin": True}}
    with pytest.raises(ConfigError) as e:
        from_dict(cfg)
    assert "staff.require_pin" in str(e.value) and "'door'" in str(e.value)
    cfg["scanners"]["door"]["role"] = "kiosk"  # type: ignore[index]
    assert STAFF.of(from_dict(cfg)).require_pin is True
