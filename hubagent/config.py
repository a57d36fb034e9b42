"""Load and validate the config file, once, before anything is opened.

Every problem becomes a :class:`~hubagent.errors.ConfigError` naming the
file, the dotted key and what is wrong; the command line turns it into one
line on stderr and exit status 2.
"""

from __future__ import annotations

import importlib
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import msgspec

from hubagent import registry
from hubagent.errors import ConfigError
from hubagent.settings import (
    ApiSettings,
    HubSettings,
    MqttSettings,
    SimSettings,
    StoreSettings,
)
from hubagent.web.settings import WebSettings

# Sections owned by features: name -> "module:Struct". Imported lazily so
# the loader stays light; each module imports no hardware library.
FEATURE_SECTIONS: dict[str, str] = {
    "printing": "hubagent.printing.settings:PrintingSettings",
    "scanning": "hubagent.scanning.settings:ScanningSettings",
    "locker_policy": "hubagent.lockers.settings:LockerPolicySettings",
    "power_policy": "hubagent.power.settings:PowerPolicySettings",
}

_CORE_SECTIONS: dict[str, type] = {
    "api": ApiSettings,
    "mqtt": MqttSettings,
    "web": WebSettings,
    "store": StoreSettings,
    "sim": SimSettings,
}

# Checks across sections, run after everything is typed: "module:function",
# imported lazily; each takes the Config and raises ValueError("key: reason").
CROSS_CHECKS: list[str] = [
    # a scanner's `feedback` names a configured feedback device
    "hubagent.scanning.feature:check_feedback_devices",
    # a zxing camera decoder has its extra installed
    "hubagent.scanning.feature:check_camera_decoders",
    # [printing] names configured printers
    "hubagent.printing.settings:check_printing",
    # no GPIO pin used twice (lockers, feedback, power)
    "hubagent.lockers.checks:check_gpio_pins",
    # a keypad's `feedback` names a configured feedback device
    "hubagent.lockers.checks:check_keypad_feedback",
    # central's token key loads (only when configured)
    "hubagent.lockers.checks:check_token_key",
    # at most one power source
    "hubagent.power.checks:check_config",
]


@dataclass(frozen=True)
class DeviceConfig:
    """One configured device: its role, name, driver and typed settings."""

    role: str
    name: str
    spec: registry.DriverSpec
    settings: Any


@dataclass(frozen=True)
class Config:
    """The whole validated configuration."""

    path: str
    hub: HubSettings
    api: ApiSettings = ApiSettings()
    mqtt: MqttSettings | None = None
    web: WebSettings | None = None
    store: StoreSettings = StoreSettings()
    sim: SimSettings = SimSettings()
    sections: Mapping[str, Any] = field(default_factory=dict)
    devices: tuple[DeviceConfig, ...] = ()

    @property
    def state_dir(self) -> Path:
        """The state directory as a path."""
        return Path(self.hub.state_dir)

    @property
    def socket_path(self) -> Path:
        """Where the local API listens."""
        return Path(self.api.socket) if self.api.socket else self.state_dir / "api.sock"

    def section(self, name: str) -> Any:
        """A feature section's settings (its defaults when absent from the file)."""
        return self.sections[name]

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


def _feature_type(ref: str) -> Any:
    """The attribute a ``module:attribute`` reference names (imported on demand)."""
    module, _, attr = ref.partition(":")
    return getattr(importlib.import_module(module), attr)


def from_dict(doc: dict[str, Any], path: str = "<config>") -> Config:
    """Validate an already parsed TOML document."""
    doc = dict(doc)
    devices = _devices(path, doc)
    if "hub" not in doc:
        raise ConfigError(path, "hub", "required table [hub] is missing")
    hub = _convert(doc.pop("hub"), HubSettings, path, "hub")
    core: dict[str, Any] = {}
    for name, typ in _CORE_SECTIONS.items():
        if name in doc:
            core[name] = _convert(doc.pop(name), typ, path, name)
    sections: dict[str, Any] = {}
    for name, ref in FEATURE_SECTIONS.items():
        sections[name] = _convert(doc.pop(name, {}), _feature_type(ref), path, name)
    if doc:
        raise ConfigError(path, sorted(doc)[0], "unknown key")
    cfg = Config(path=path, hub=hub, sections=sections, devices=devices, **core)
    for ref in CROSS_CHECKS:
        try:
            _feature_type(ref)(cfg)
        except ValueError as e:
            msg = str(e)
            key, _, reason = msg.partition(": ")
            raise ConfigError(path, key, reason or msg) from None
    return cfg


def load(path: str | Path) -> Config:
    """Read and validate ``path``; raises ConfigError naming file and key."""
    p = str(path)
    return from_dict(_read(p), p)


def load_text(text: str, path: str = "<embedded>") -> Config:
    """Validate TOML text (the embedded simulator config)."""
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(path, "", f"not valid TOML: {e}") from None
    return from_dict(doc, path)
