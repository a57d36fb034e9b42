"""A real NUT server for tests: Debian's ``upsd`` with the ``dummy-ups`` driver.

Load with ``pytest_plugins = ["tests.fixtures_nut"]`` (or import the fixture).
``nut_server`` writes a private configuration into a temp dir (ups.conf,
upsd.conf listening on a free loopback port, upsd.users, nut.conf and the
driver's ``.dev`` data file), points ``NUT_CONFPATH``/``NUT_STATEPATH``/
``NUT_ALTPIDPATH`` at it and runs both daemons in the foreground as child
processes. ``dummy-ups`` in ``dummy-loop`` mode re-reads its data file every
``pollinterval`` (1 s here), so a change shows up within about 1-2 s;
``set_status``/``set_vars`` rewrite the file and wait until the server
answers with the new values.

Skips (with the reason) only when the NUT binaries are not installed.
"""

from __future__ import annotations

import os
import pwd
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from hubagent.drivers.nut_client import NutClient, NutError

DUMMY_UPS = "/lib/nut/dummy-ups"
UPSD_CANDIDATES = ("/lib/nut/upsd", "/usr/lib/nut/upsd", "/usr/sbin/upsd")
PASSWORD_ENV = "HUBAGENT_TEST_NUT_PASSWORD"

_VAR_NAMES = {
    "charge": "battery.charge",
    "runtime": "battery.runtime",
    "input_voltage": "input.voltage",
    "load": "ups.load",
}


def _upsd_binary() -> str | None:
    # /usr/sbin/upsd on Debian is a wrapper script that refuses to run unless
    # /etc/nut/nut.conf enables it; the real binary lives in /lib/nut.
    for path in UPSD_CANDIDATES:
        if os.access(path, os.X_OK) and not _is_script(path):
            return path
    return None


def _is_script(path: str) -> bool:
    with open(path, "rb") as f:
        return f.read(2) == b"#!"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _fmt(value: object) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


class NutServer:
    """A private upsd + dummy-ups pair; see the module docstring."""

    ups = "hubups"
    host = "127.0.0.1"
    username = "hubtest"
    password = "s3cret-for-tests"
    password_env = PASSWORD_ENV

    def __init__(self, root: Path, upsd: str) -> None:
        self.root = root
        self.port = _free_port()
        self._upsd_bin = upsd
        self.state_dir = root / "state"
        self.dev_file = root / f"{self.ups}.dev"
        self.vars: dict[str, str] = {
            "ups.status": "OL",
            "battery.charge": "100",
            "battery.runtime": "1800",
            "input.voltage": "230",
            "ups.load": "20",
        }
        self._driver: subprocess.Popen[bytes] | None = None
        self._upsd: subprocess.Popen[bytes] | None = None
        self._write_config()

    # -- configuration --------------------------------------------------------

    def _write_config(self) -> None:
        self.state_dir.mkdir(mode=0o770, exist_ok=True)
        (self.root / "nut.conf").write_text("MODE=standalone\n")
        (self.root / "ups.conf").write_text(
            f"[{self.ups}]\n"
            "    driver = dummy-ups\n"
            f"    port = {self.dev_file}\n"
            "    mode = dummy-loop\n"
            "    pollinterval = 1\n"
            '    desc = "hubagent test UPS"\n'
        )
        (self.root / "upsd.conf").write_text(f"LISTEN {self.host} {self.port}\nMAXAGE 15\n")
        users = self.root / "upsd.users"
        users.write_text(f"[{self.username}]\n    password = {self.password}\n    upsmon secondary\n")
        users.chmod(0o600)
        self._write_dev()

    def _write_dev(self) -> None:
        # Write then rename so the driver never reads a half-written file.
        tmp = self.dev_file.with_suffix(".tmp")
        tmp.write_text("".join(f"{k}: {v}\n" for k, v in self.vars.items()))
        os.replace(tmp, self.dev_file)

    def _env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.update(
            NUT_CONFPATH=str(self.root),
            NUT_STATEPATH=str(self.state_dir),
            NUT_ALTPIDPATH=str(self.state_dir),
        )
        return env

    def _user_args(self) -> list[str]:
        # As root the daemons drop privileges to "nut" unless told otherwise,
        # and that user cannot read our temp dir.
        if os.geteuid() == 0:
            return ["-u", pwd.getpwuid(0).pw_name]
        return []

    def _spawn(self, argv: list[str], log_name: str) -> subprocess.Popen[bytes]:
        log = open(self.root / log_name, "ab")
        try:
            return subprocess.Popen(
                argv, env=self._env(), stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT
            )
        finally:
            log.close()

    # -- lifecycle ------------------------------------------------------------

    def start(self, timeout: float = 20.0) -> None:
        """Start the driver (if not running) and upsd; wait until the UPS answers."""
        if self._driver is None or self._driver.poll() is not None:
            self._driver = self._spawn(
                [DUMMY_UPS, "-a", self.ups, "-F", *self._user_args()], "driver.log"
            )
        if self._upsd is None or self._upsd.poll() is not None:
            self._upsd = self._spawn([self._upsd_bin, "-F", *self._user_args()], "upsd.log")
        self.wait_for(self.vars, timeout)

    def stop(self) -> None:
        """Stop upsd only (the server goes away; the driver keeps its data)."""
        self._upsd = _terminate(self._upsd)

    def close(self) -> None:
        """Stop both daemons. Idempotent."""
        self._upsd = _terminate(self._upsd)
        self._driver = _terminate(self._driver)

    @property
    def running(self) -> bool:
        """Whether upsd is running."""
        return self._upsd is not None and self._upsd.poll() is None

    # -- data -----------------------------------------------------------------

    def set_status(self, status: str, timeout: float = 15.0) -> None:
        """Set ``ups.status`` (e.g. ``"OB LB"``) and wait until the server reports it."""
        self.set_vars(timeout=timeout, **{"ups.status": status})

    def set_vars(self, timeout: float = 15.0, **values: object) -> None:
        """Set figures (``charge``, ``runtime``, ``input_voltage``, ``load`` or NUT
        names) and wait until the server reports all of them."""
        for key, value in values.items():
            self.vars[_VAR_NAMES.get(key, key)] = _fmt(value)
        self._write_dev()
        if self.running:
            self.wait_for(self.vars, timeout)

    def read_vars(self) -> dict[str, str]:
        """The UPS variables as the server reports them now."""
        with NutClient(self.host, self.port, timeout=2.0) as client:
            return client.list_vars(self.ups)

    def wait_for(self, expected: dict[str, str], timeout: float) -> None:
        """Poll the server until it reports ``expected``; fail the test with logs otherwise."""
        deadline = time.monotonic() + timeout
        seen: object = None
        while time.monotonic() < deadline:
            for proc, name in ((self._driver, "driver"), (self._upsd, "upsd")):
                if proc is not None and proc.poll() is not None:
                    pytest.fail(f"NUT {name} exited with {proc.returncode}:\n{self.logs()}")
            try:
                seen = self.read_vars()
            except NutError as e:
                seen = e
            else:
                assert isinstance(seen, dict)
                if all(seen.get(k) == v for k, v in expected.items()):
                    return
            time.sleep(0.1)
        pytest.fail(f"NUT server never reported {expected}; last saw {seen!r}\n{self.logs()}")

    def logs(self) -> str:
        """The daemons' output so far, for failure messages."""
        parts = []
        for name in ("driver.log", "upsd.log"):
            path = self.root / name
            if path.exists():
                parts.append(f"--- {name}\n{path.read_text(errors='replace')[-2000:]}")
        return "\n".join(parts)


def _terminate(proc: subprocess.Popen[bytes] | None) -> None:
    if proc is None or proc.poll() is not None:
        return None
    proc.terminate()
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=5)
    return None


@pytest.fixture
def nut_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[NutServer]:
    """A running private NUT server with UPS ``hubups`` on OL; password in ``PASSWORD_ENV``."""
    upsd = _upsd_binary()
    missing = [p for p in (DUMMY_UPS,) if not os.access(p, os.X_OK)]
    if upsd is None or missing:
        pytest.skip(f"NUT not installed (need {DUMMY_UPS} and upsd; missing: {missing or 'upsd'})")
    root = tmp_path / "nut"
    root.mkdir()
    server = NutServer(root, upsd)
    monkeypatch.setenv(PASSWORD_ENV, server.password)
    try:
        server.start()
        yield server
    finally:
        server.close()
