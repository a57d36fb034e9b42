"""Paths and credentials the config names: exit 2 before anything is opened.

``hubagent run`` and ``hubagent check-config`` check the CA file, client
certificate and key, the broker password credential, the locker code
secret and the state directory. The run tests watch from outside the
process that nothing was touched: the simulated scanner's pty link, the
simulated printer's preview directory, the database and its lock file.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from collections.abc import Callable
from pathlib import Path

import pytest
from certs import Authority
from fixtures_mqtt import free_port
from hubproc import Daemon

from hubagent import cli, config, preflight
from hubagent.errors import ConfigError

SECRET_HEX = "5f" * 32

BASE = """
[hub]
id = "hub-1"
state_dir = "{state}"

[printers.label]
driver = "sim"
language = "zpl"
dpi = 203
width_mm = 101.6
height_mm = 152.4

[scanners.front]
driver = "sim"

[lockers.bank-a]
driver = "sim"

[lockers.bank-a.compartments.A1]
lock_pin = 5
door_pin = 17

[locker_policy]
create_secret = false

[mqtt]
host = "127.0.0.1"
port = {port}
username = "hub-1"
password_credential = "mqtt-password"

[mqtt.tls]
ca_file = "{ca}"
cert_file = "{cert}"
key_file = "{key}"
"""


class Site:
    """A hub's files as an installer leaves them: config, certificates, credentials."""

    def __init__(self, tmp_path: Path) -> None:
        self.root = tmp_path
        self.state = tmp_path / "state"
        self.state.mkdir()
        self.creds = tmp_path / "credentials"
        self.creds.mkdir()
        (self.creds / "mqtt-password").write_text("pw\n")
        (self.creds / "hubagent-code-secret").write_text(SECRET_HEX + "\n")
        ca = Authority(tmp_path / "pki")
        client = ca.issue("hub-1", host="hub-1", client=True)
        self.paths = {"ca": str(ca.ca_file), "cert": str(client.cert), "key": str(client.key)}
        self.config = tmp_path / "hub.toml"
        self.write()

    def write(self, **paths: str) -> Path:
        """(Re)write the config with some paths replaced."""
        self.config.write_text(BASE.format(state=self.state, port=free_port(),
                                           **{**self.paths, **paths}))
        return self.config

    def env(self) -> dict[str, str]:
        """The environment systemd gives the service (no code secret variable)."""
        base = {k: v for k, v in os.environ.items() if k != "HUBAGENT_CODE_SECRET"}
        return {**base, "CREDENTIALS_DIRECTORY": str(self.creds)}

    def touched(self) -> list[str]:
        """What a started daemon leaves in the state directory."""
        return sorted(p.name for p in self.state.iterdir())


Fault = Callable[[Site], tuple[str, str]]


def _missing_ca(site: Site) -> tuple[str, str]:
    site.write(ca=str(site.root / "nonexistent" / "ca.crt"))
    return "mqtt.tls.ca_file", f"{site.root / 'nonexistent' / 'ca.crt'}: no such file"


def _missing_key(site: Site) -> tuple[str, str]:
    os.unlink(site.paths["key"])
    return "mqtt.tls.key_file", f"{site.paths['key']}: no such file"


def _missing_credential(site: Site) -> tuple[str, str]:
    (site.creds / "mqtt-password").unlink()
    return "mqtt.password_credential", f"no file {site.creds / 'mqtt-password'}"


def _missing_secret(site: Site) -> tuple[str, str]:
    (site.creds / "hubagent-code-secret").unlink()
    return "locker_policy.secret_name", f"{site.state / 'hubagent-code-secret'} (no such file)"


FAULTS: dict[str, Fault] = {"ca": _missing_ca, "key": _missing_key,
                            "credential": _missing_credential, "code_secret": _missing_secret}


def _run(site: Site, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "hubagent", *args], capture_output=True,
                          text=True, timeout=60, env=site.env())


@pytest.mark.parametrize("fault", FAULTS, ids=list(FAULTS))
def test_run_exits_2_before_any_device_is_opened(tmp_path: Path, fault: str) -> None:
    site = Site(tmp_path)
    key, what = FAULTS[fault](site)
    proc = _run(site, "run", "--config", str(site.config))
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and proc.stdout == "", proc.stderr
    assert f"{site.config}: {key}:" in lines[0] and what in lines[0]
    # No pty link, no preview directory, no database, no lock: nothing was opened.
    assert site.touched() == []
    check = _run(site, "check-config", str(site.config))
    assert check.returncode == 2 and check.stderr.strip() == lines[0]


def test_the_same_site_without_a_fault_opens_what_the_fault_tests_watch(
        tmp_path: Path) -> None:
    """The observation above can fail: a good site's daemon creates every one of them."""
    site = Site(tmp_path)
    assert _run(site, "check-config", str(site.config)).returncode == 0
    daemon = Daemon(["run", "--config", str(site.config)], site.state, site.env())
    try:
        daemon.start()
        assert (site.state / "sim" / "scanner-front.tty").is_symlink()
        assert {"hubagent.db", "hubagent.lock", "previews", "sim"} <= set(site.touched())
        assert daemon.terminate() == 0
    finally:
        daemon.close()


def test_missing_ca_touches_no_pin(tmp_path: Path, mock_pins: object) -> None:
    """In process: the GPIO feedback pins stay unreserved when the run stops at a bad path."""
    site = Site(tmp_path)
    text = site.write(ca=str(tmp_path / "missing-ca.crt")).read_text()
    site.config.write_text(text + '\n[feedback.front]\ndriver = "gpio"\nbuzzer_pin = 12\n')
    env = site.env()
    old = dict(os.environ)
    os.environ.clear()
    os.environ.update(env)
    try:
        assert cli.main(["run", "--config", str(site.config)]) == 2
    finally:
        os.environ.clear()
        os.environ.update(old)
    assert not mock_pins.pins  # type: ignore[attr-defined]
    # The same device, started, reserves its pin: the check above can fail.
    from hubagent.app import build_app

    site.write()
    good = config.from_dict(tomllib.loads(site.config.read_text() + '\n[feedback.front]\ndriver = "gpio"\n'
                                          'buzzer_pin = 12\n'))
    app = build_app(good)
    device = app.device("feedback", "front")
    device.start(lambda event: None)
    try:
        assert mock_pins.pins  # type: ignore[attr-defined]
    finally:
        device.close()


def _cfg(site: Site) -> config.Config:
    return config.load(site.config)


def test_check_names_where_it_looked_for_the_credential(tmp_path: Path) -> None:
    site = Site(tmp_path)
    env = site.env()
    del env["CREDENTIALS_DIRECTORY"]
    with pytest.raises(ConfigError) as e:
        preflight.check(_cfg(site), env)
    assert e.value.key == "mqtt.password_credential"
    assert "$CREDENTIALS_DIRECTORY is not set" in e.value.reason
    env["CREDENTIALS_DIRECTORY"] = str(tmp_path / "nowhere")
    with pytest.raises(ConfigError, match="nowhere is not a directory"):
        preflight.check(_cfg(site), env)


def test_check_rejects_files_that_are_there_but_wrong(tmp_path: Path) -> None:
    site = Site(tmp_path)
    env = site.env()
    not_pem = tmp_path / "notes.txt"
    not_pem.write_text("this is not a certificate\n")
    site.write(ca=str(not_pem))
    with pytest.raises(ConfigError, match="not a PEM CA certificate") as e:
        preflight.check(_cfg(site), env)
    assert e.value.key == "mqtt.tls.ca_file"
    other = Authority(tmp_path / "other").issue("x", client=True)
    site.write(key=str(other.key))  # a key that is not the certificate's
    with pytest.raises(ConfigError, match="do not load together") as e:
        preflight.check(_cfg(site), env)
    assert e.value.key == "mqtt.tls.key_file"
    site.write(ca=str(tmp_path))
    with pytest.raises(ConfigError, match="is a directory"):
        preflight.check(_cfg(site), env)


def test_state_dir_that_is_a_file(tmp_path: Path) -> None:
    site = Site(tmp_path)
    site.state.rmdir()
    site.state.write_text("")
    with pytest.raises(ConfigError) as e:
        preflight.check(_cfg(site), site.env())
    assert e.value.key == "hub.state_dir" and "not a directory" in e.value.reason


def test_password_env_must_be_set_and_is_a_fallback(tmp_path: Path) -> None:
    site = Site(tmp_path)
    text = site.config.read_text()
    site.config.write_text(text.replace('password_credential = "mqtt-password"',
                                        'password_env = "MQTT_PW"'))
    with pytest.raises(ConfigError, match=r"\$MQTT_PW is not set") as e:
        preflight.check(_cfg(site), site.env())
    assert e.value.key == "mqtt.password_env"
    preflight.check(_cfg(site), {**site.env(), "MQTT_PW": "pw"})
    # Both named: a missing credential is fine when the variable has the password.
    site.config.write_text(text.replace('password_credential = "mqtt-password"',
                                        'password_credential = "nope"\npassword_env = "MQTT_PW"'))
    preflight.check(_cfg(site), {**site.env(), "MQTT_PW": "pw"})
    with pytest.raises(ConfigError, match=r"no file .*nope; \$MQTT_PW is not set either"):
        preflight.check(_cfg(site), site.env())


def test_code_secret_created_at_start_when_allowed(tmp_path: Path) -> None:
    site = Site(tmp_path)
    (site.creds / "hubagent-code-secret").unlink()
    site.config.write_text(site.config.read_text().replace("create_secret = false",
                                                           "create_secret = true"))
    preflight.check(_cfg(site), site.env())
    assert site.touched() == []  # the check itself creates nothing


def test_syntax_only_skips_the_machine(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    site = Site(tmp_path)
    _missing_ca(site)
    assert cli.main(["check-config", "--syntax-only", str(site.config)]) == 0
    assert "ok" in capsys.readouterr().out


def test_web_certificate_and_locales(tmp_path: Path) -> None:
    site = Site(tmp_path)
    pair = Authority(tmp_path / "web").issue("staff", host="hub.local")
    base = site.config.read_text()
    web = ('\n[web]\nstaff_listen = "0.0.0.0:8443"\n'
           f'tls_cert = "{pair.cert}"\ntls_key = "{{key}}"\n')
    site.config.write_text(base + web.format(key=pair.key))
    preflight.check(_cfg(site), site.env())
    site.config.write_text(base + web.format(key=tmp_path / "gone.key"))
    with pytest.raises(ConfigError, match="gone.key: no such file") as e:
        preflight.check(_cfg(site), site.env())
    assert e.value.key == "web.tls_key"
    site.config.write_text(base + web.format(key=pair.key) + f'locale_dir = "{tmp_path / "no"}"\n')
    with pytest.raises(ConfigError, match="not a readable directory"):
        preflight.check(_cfg(site), site.env())
