"""Load and validate the config file, once, before anything is opened.

Every problem becomes a :class:`~hubagent.errors.ConfigError` naming the
file, the dotted key and what is wrong; the command line turns it into one
line on stderr and exit status 2.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any, Mapping

import msgspec

from hubagent import registry
from hubagent.errors import ConfigError
from hubagent.feature import Feature
from hubagent.features import FEATURES
from hubagent.settings import (
    ApiSettings,
    HubSettings,
    MqttSettings,
    SimSettings,
    StoreSettings,
)
from hubagent.web.settings import WebSettings

_CORE_SECTIONS: dict[str, type] = {
    "api": ApiSettings,
    "mqtt": MqttSettings,
    "web": WebSettings,
    "store": StoreSettings,
    "sim": SimSettings,
}

class DeviceConfig(msgspec.Struct, frozen=True):
    """One configured device: its role, name, driver and typed settings."""

    role: str
    name: str
    spec: registry.DriverSpec
    settings: Any


class Config(msgspec.Struct, frozen=True):
    """The whole validated configuration."""

    path: str
    hub: HubSettings
    api: ApiSettings = ApiSettings()
    mqtt: MqttSettings | None = None
    web: WebSettings | None = None
    store: StoreSettings = StoreSettings()
    sim: SimSettings = SimSettings()
    sections: Mapping[str, object] = msgspec.field(default_factory=dict)
    devices: tuple[DeviceConfig, ...] = ()
    features: tuple[Feature, ...] = FEATURES
    """What the hub is made of, in build order (:data:`hubagent.features.FEATURES`)."""

    @property
    def state_dir(self) -> Path:
        """The state directory as a path."""
        return Path(self.hub.state_dir)

    @property
    def socket_path(self) -> Path:
        """Where the local API listens."""
        return Path(self.api.socket) if self.api.socket else self.state_dir / "api.sock"

    def devices_of(self, role: str) -> list[DeviceConfig]:
        """The configured devices of one role, in file order."""
        return [d for d in self.devices if d.role == role]


_AT = re.compile(r"^(?P<msg>.*?)(?: - at `\$(?P<path>[^`]*)`)?$", re.S)
_FIELD = re.compile(r"`([^`]+)`")


def _key_and_reason(err: msgspec.ValidationError, prefix: str) -> tuple[str, str]:
    """Turn msgspec's message into (dotted key, reason)."""
    m = _AT.match(str(err))
    msg = m.group("msg") if m else str(err)
    path = (m.group("path") or "") if m else ""
    key = prefix + path if prefix else path.lstrip(".")
    for marker, reason in (("unknown field", "unknown key"),
                           ("missing required field", "required key is missing")):
        if marker in msg:
            name = _FIELD.search(msg)
            sub = name.group(1) if name else "?"
            return (f"{key}.{sub}" if key else sub), reason
    return key or "(top level)", msg[0].lower() + msg[1:] if msg else msg


def _convert(table: Any, typ: type, path: str, prefix: str) -> Any:
    try:
        return msgspec.convert(table, typ, strict=True)
    except msgspec.ValidationError as e:
        key, reason = _key_and_reason(e, prefix)
        raise ConfigError(path, key, reason) from None


def _read(path: str) -> dict[str, Any]:
    try:
        raw = Path(path).read_bytes()
    except OSError as e:
        raise ConfigError(path, "", f"cannot read file: {e.strerror or e}") from None
    try:
        return tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as e:
        raise ConfigError(path, "", f"not UTF-8 text: {e}") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(path, "", f"not valid TOML: {e}") from None


def _device(path: str, role: str, name: str, table: Any) -> DeviceConfig:
    key = f"{role}.{name}"
    if not isinstance(table, dict):
        raise ConfigError(path, key, "expected a table of device settings")
    driver = table.get("driver")
    if not isinstance(driver, str):
        known = ", ".join(sorted(registry.drivers_for(role)))
        raise ConfigError(path, f"{key}.driver", f"required; one of: {known}")
    try:
        spec = registry.lookup(role, driver)
    except KeyError as e:
        raise ConfigError(path, f"{key}.driver", str(e.args[0])) from None
    missing = registry.missing_modules(spec)
    if missing:
        hint = f"pip install 'hubagent[{spec.extra}]'" if spec.extra else "install it"
        raise ConfigError(
            path, f"{key}.driver",
            f"driver {driver!r} needs module(s) {', '.join(missing)} "
            f"from the extra {spec.extra!r} ({hint})",
        )
    rest = {k: v for k, v in table.items() if k != "driver"}
    settings = _convert(rest, registry.settings_type(spec), path, key)
    return DeviceConfig(role, name, spec, settings)


def _devices(path: str, doc: dict[str, Any]) -> tuple[DeviceConfig, ...]:
    out: list[DeviceConfig] = []
    for role in registry.ROLES:
        tables = doc.pop(role, {})
        if not isinstance(tables, dict):
            raise ConfigError(path, role, "expected tables of named devices, e.g. [%s.NAME]" % role)
        for name, table in tables.items():
            if not re.match(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,31}$", name):
                raise ConfigError(path, f"{role}.{name}", "device names use letters, digits, - and _")
            out.append(_device(path, role, name, table))
    return tuple(out)


def from_dict(doc: dict[str, Any], path: str = "<config>",
              with_features: tuple[Feature, ...] = FEATURES) -> Config:
    """Validate an already parsed TOML document for a hub made of ``with_features``."""
    doc = dict(doc)
    devices = _devices(path, doc)
    if "hub" not in doc:
        raise ConfigError(path, "hub", "required table [hub] is missing")
    hub = _convert(doc.pop("hub"), HubSettings, path, "hub")
    core: dict[str, Any] = {}
    for name, typ in _CORE_SECTIONS.items():
        if name in doc:
            core[name] = _convert(doc.pop(name), typ, path, name)
    sections: dict[str, object] = {}
    for feature in with_features:
        for section in feature.sections:
            sections[section.name] = _convert(doc.pop(section.name, {}), section.type, path, section.name)
    if doc:
        raise ConfigError(path, sorted(doc)[0], "unknown key")
    cfg = Config(path=path, hub=hub, sections=sections, devices=devices, features=with_features, **core)
    for check in (c for feature in with_features for c in feature.checks):
        try:
            check(cfg)
        except ValueError as e:
            msg = str(e)
            key, _, reason = msg.partition(": ")
            raise ConfigError(path, key, reason or msg) from None
    return cfg


def load(path: str | Path) -> Config:
    """Read and validate ``path``; raises ConfigError naming file and key."""
    p = str(path)
    return from_dict(_read(p), p)
