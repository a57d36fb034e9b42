"""What the config points at on this machine: files, directories, credentials.

:mod:`hubagent.config` checks the file itself; this checks that what it
names is there and usable: the state directory, the broker's CA file and
the client certificate and key, the broker password (a systemd credential
or an environment variable), the locker code secret, and the staff pages'
certificate, key and locale directory. ``hubagent run``
runs it before anything is opened and ``hubagent check-config`` runs it
too, so a missing file is an exit 2 with one line naming the key, the path
and what is wrong, never a crash loop halfway through start-up.

Only reads: nothing is created here (the state directory and a first code
secret are created by the daemon, and only when these checks passed).
"""

from __future__ import annotations

import os
import ssl
from collections.abc import Mapping
from pathlib import Path

from hubagent.config import Config
from hubagent.errors import ConfigError
from hubagent.settings import MqttSettings


def check(cfg: Config, environ: Mapping[str, str] | None = None) -> None:
    """Raise ConfigError naming the key and path of the first unusable one."""
    env = os.environ if environ is None else environ
    _check_state_dir(cfg)
    if cfg.mqtt is not None:
        _check_tls(cfg.path, cfg.mqtt)
        _check_password(cfg.path, cfg.mqtt, env)
    if cfg.devices_of("lockers"):
        _check_code_secret(cfg, env)
    if cfg.web is not None:
        _check_web(cfg)


def _fail(cfg_path: str, key: str, path: str | os.PathLike[str], what: str) -> ConfigError:
    return ConfigError(cfg_path, key, f"{path}: {what}")


def _check_state_dir(cfg: Config) -> None:
    path = cfg.state_dir.absolute()
    if path.exists():
        if not path.is_dir():
            raise _fail(cfg.path, "hub.state_dir", path, "not a directory")
        if not os.access(path, os.R_OK | os.W_OK | os.X_OK):
            raise _fail(cfg.path, "hub.state_dir", path, "not writable by this user")
        return
    # Created at start: the nearest existing parent must let us.
    parent = next(p for p in path.parents if p.exists())
    if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        raise _fail(cfg.path, "hub.state_dir", path,
                    f"does not exist and cannot be created ({parent} is not writable)")


def _readable_file(cfg_path: str, key: str, name: str) -> Path:
    path = Path(name)
    try:
        with path.open("rb") as f:
            f.read(1)
    except FileNotFoundError:
        raise _fail(cfg_path, key, path, "no such file") from None
    except IsADirectoryError:
        raise _fail(cfg_path, key, path, "is a directory, not a file") from None
    except OSError as e:
        raise _fail(cfg_path, key, path, f"cannot be read ({e.strerror or e})") from None
    return path


def _check_tls(cfg_path: str, mqtt: MqttSettings) -> None:
    tls = mqtt.tls
    if tls is None:
        return
    ca = _readable_file(cfg_path, "mqtt.tls.ca_file", tls.ca_file)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    try:
        ctx.load_verify_locations(cafile=str(ca))
    except (ssl.SSLError, ValueError) as e:
        raise _fail(cfg_path, "mqtt.tls.ca_file", ca, f"not a PEM CA certificate ({e})") from None
    if tls.key_file and not tls.cert_file:
        raise ConfigError(cfg_path, "mqtt.tls.cert_file", "required when key_file is set")
    if tls.cert_file:
        cert = _readable_file(cfg_path, "mqtt.tls.cert_file", tls.cert_file)
        key = _readable_file(cfg_path, "mqtt.tls.key_file", tls.key_file) if tls.key_file else None
        try:
            ctx.load_cert_chain(str(cert), str(key) if key else None)
        except (ssl.SSLError, ValueError) as e:
            raise _fail(cfg_path, "mqtt.tls.key_file" if key else "mqtt.tls.cert_file",
                        key or cert, f"certificate and key do not load together ({e})") from None


def _check_web(cfg: Config) -> None:
    web = cfg.web
    assert web is not None
    if web.tls_cert and web.tls_key:
        cert = _readable_file(cfg.path, "web.tls_cert", web.tls_cert)
        key = _readable_file(cfg.path, "web.tls_key", web.tls_key)
        try:
            ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).load_cert_chain(str(cert), str(key))
        except (ssl.SSLError, ValueError) as e:
            raise _fail(cfg.path, "web.tls_key", key,
                        f"certificate and key do not load together ({e})") from None
    if web.locale_dir:
        folder = Path(web.locale_dir)
        if not folder.is_dir() or not os.access(folder, os.R_OK | os.X_OK):
            raise _fail(cfg.path, "web.locale_dir", folder, "not a readable directory")


def _check_password(cfg_path: str, mqtt: MqttSettings, env: Mapping[str, str]) -> None:
    name = mqtt.password_credential
    if name:
        found, looked = credential_path(name, env)
        if found is not None:
            _readable_file(cfg_path, "mqtt.password_credential", str(found))
            return
        if mqtt.password_env and env.get(mqtt.password_env):
            return  # the documented fallback
        also = f"; ${mqtt.password_env} is not set either" if mqtt.password_env else ""
        raise ConfigError(cfg_path, "mqtt.password_credential",
                          f"credential {name!r} not found: {looked}{also}")
    if mqtt.password_env and not env.get(mqtt.password_env):
        raise ConfigError(cfg_path, "mqtt.password_env",
                          f"environment variable ${mqtt.password_env} is not set")


def credential_path(name: str, env: Mapping[str, str]) -> tuple[Path | None, str]:
    """(the systemd credential file ``name``, or None; where it was looked for)."""
    creds = env.get("CREDENTIALS_DIRECTORY")
    if not creds:
        return None, ("$CREDENTIALS_DIRECTORY is not set (systemd sets it for "
                      "LoadCredential=; run under the service or set it)")
    folder = Path(creds)
    if not folder.is_dir():
        return None, f"$CREDENTIALS_DIRECTORY={folder} is not a directory"
    path = folder / name
    if not path.is_file():
        return None, f"no file {path}"
    return path, str(path)


def _check_code_secret(cfg: Config, env: Mapping[str, str]) -> None:
    # Imported here: only hubs with locker banks need it.
    from hubagent.lockers import codes
    from hubagent.lockers.settings import LOCKER_POLICY

    policy = LOCKER_POLICY.of(cfg)
    try:
        codes.load_secret(policy.secret_name, env_var=policy.secret_env or None,
                          state_dir=cfg.state_dir, create=False, environ=env)
    except codes.SecretMissing as e:
        if policy.create_secret:
            return  # the daemon creates one in the state directory
        raise ConfigError(cfg.path, "locker_policy.secret_name",
                          f"{e.reason} (create_secret is false)") from None
    except ConfigError as e:
        raise ConfigError(cfg.path, "locker_policy.secret_name", f"{e.path}: {e.reason}") from None
