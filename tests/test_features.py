"""Feature wiring: one declaration per feature, one list, typed interfaces between them.

A feature declared here the way a new package would declare itself is added
with one entry in the tuple of features, and the hub validates its config
section, runs its cross-check, applies its migration and builds it with the
interfaces of the features before it; nothing else is edited.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec
import pytest

from hubagent.app import build_app
from hubagent.commands import CommandContext, NoArgs
from hubagent.config import Config, from_dict
from hubagent.errors import ConfigError
from hubagent.events import RawScan
from hubagent.feature import Built, Feature, Interfaces, Section
from hubagent.features import FEATURES, all_migrations
from hubagent.lockers.service import LockerService
from hubagent.scanning.service import ScanService

if TYPE_CHECKING:
    from hubagent.app import App
    from hubagent.clock import Clock


class GreeterSettings(msgspec.Struct, forbid_unknown_fields=True, kw_only=True, frozen=True):
    """``[greeter]``."""

    greeting: str = "hello"
    scanner: str | None = None


GREETER = Section("greeter", GreeterSettings)


def check_greeter(cfg: Config) -> None:
    """``[greeter] scanner`` must name a configured scanner."""
    name = GREETER.of(cfg).scanner
    if name is not None and name not in {d.name for d in cfg.devices_of("scanners")}:
        raise ValueError(f"greeter.scanner: no scanner named {name!r}")


def build_greeter(*, app: "App", clock: "Clock", uses: Interfaces) -> Built:
    settings = GREETER.of(app.config)
    staff = uses.staff

    def greet(ctx: CommandContext, args: NoArgs) -> dict[str, Any]:
        who = staff.staff_for(settings.scanner) if staff is not None and settings.scanner else None
        ctx.tx.execute("INSERT INTO greetings(who) VALUES (?)", (who,))
        count = ctx.tx.execute("SELECT COUNT(*) FROM greetings").fetchone()[0]
        return {"greeting": settings.greeting, "who": who, "count": count}

    app.commands.register("greet", greet)
    return Built()


GREETER_FEATURE = Feature("greeter", build_greeter, sections=(GREETER,),
                          migrations=(("greeter-0001", "CREATE TABLE greetings (who TEXT);"),),
                          checks=(check_greeter,))
WITH_GREETER = (*FEATURES, GREETER_FEATURE)


def doc(tmp_path: Path, **greeter: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"hub": {"id": "hub-f", "state_dir": str(tmp_path / "state")},
                           "scanners": {"front": {"driver": "sim"}}}
    if greeter:
        out["greeter"] = greeter
    return out


def command(app: "App", name: str) -> dict[str, Any]:
    return app.commands.handle(name, json.dumps({"id": uuid.uuid4().hex}).encode(), source="local")


def test_a_new_feature_is_one_entry_in_the_feature_list(tmp_path: Path) -> None:
    cfg = from_dict(doc(tmp_path, greeting="moin", scanner="front"), with_features=WITH_GREETER)
    assert GREETER.of(cfg) == GreeterSettings(greeting="moin", scanner="front")
    app = build_app(cfg)
    app.store.open()
    try:
        scanning = app.service(ScanService)
        assert scanning is not None
        assert command(app, "greet")["result"] == {"greeting": "moin", "who": None, "count": 1}
        assert app.commands.handle("staff.set", b'{"id": "s1", "staff": "ann", "badge": "ann-b1"}')["ok"]
        app.dispatch(RawScan("front", b"HA:STAFF:ann-b1"))  # a registered staff member signs in
        reply = command(app, "greet")
        assert reply["ok"], reply
        assert reply["result"] == {"greeting": "moin", "who": "ann", "count": 2}
        # The staff interface the scanning feature offers is the one the greeter got.
        assert app.interfaces.staff is scanning
        assert "greeter-0001" in {r["name"] for r in app.store.query("SELECT name FROM migrations")}
    finally:
        app.store.close()


def test_the_new_feature_s_section_and_check_are_validated_like_the_others(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as bad_key:
        from_dict(doc(tmp_path, greting="typo"), with_features=WITH_GREETER)
    assert bad_key.value.key == "greeter.greting"
    with pytest.raises(ConfigError) as bad_ref:
        from_dict(doc(tmp_path, scanner="back"), with_features=WITH_GREETER)
    assert bad_ref.value.key == "greeter.scanner" and "back" in str(bad_ref.value)
    # Without the registration the section is not part of the hub.
    with pytest.raises(ConfigError) as unknown:
        from_dict(doc(tmp_path, greeting="moin"))
    assert unknown.value.key == "greeter"


def test_migrations_come_from_the_feature_list_core_first_and_unique() -> None:
    names = [name for name, _ in all_migrations()]
    assert names[0].startswith("core-")
    assert len(names) == len(set(names))
    for feature in FEATURES:
        assert all(m in all_migrations() for m in feature.migrations)


def test_two_features_cannot_offer_the_same_interface(tmp_path: Path) -> None:
    cfg = from_dict(doc(tmp_path))
    scanning = build_app(cfg).service(ScanService)
    assert scanning is not None
    with pytest.raises(ValueError, match="staff"):
        Interfaces(staff=scanning).merged(Interfaces(staff=scanning))


def test_a_feature_that_is_not_configured_builds_no_service(tmp_path: Path) -> None:
    app = build_app(from_dict(doc(tmp_path)))
    assert app.service(LockerService) is None  # no locker banks configured
    assert app.interfaces.lock_parking is None and app.interfaces.staff is not None
