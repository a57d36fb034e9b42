"""A private ejabberd node with ``mod_mqtt`` (Debian ``ejabberd`` 23.01), for tests.

Its own node name, config, spool and log directories in a temporary
directory handed to the ``ejabberd`` user (``ejabberdctl`` runs the node as
that user), a ``mod_mqtt`` listener on a free loopback port, and MQTT
users registered with ``ejabberdctl register``. Skipped where ejabberd is
not installed.

(PYTEST_DONT_REWRITE: this module has no asserts, and test modules import it
before pytest loads it as a plugin.)
"""

from __future__ import annotations

import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import psutil  # type: ignore[import-untyped]  # psutil ships no type stubs
import pytest

EJABBERDCTL = "/usr/sbin/ejabberdctl"

CONFIG = """hosts:
  - "localhost"
loglevel: info
listen:
  -
    port: {port}
    ip: "127.0.0.1"
    module: mod_mqtt
    backlog: 1000
auth_method: internal
acl:
  local:
    user_regexp: ""
access_rules:
  local:
    allow: local
  mqtt_users:
    allow: local
modules:
  mod_mqtt:
    max_queue: 5000
    access_subscribe:
      "#": mqtt_users
    access_publish:
      "#": mqtt_users
"""


class Ejabberd:
    """One ejabberd node; :meth:`start`, :meth:`register`, :meth:`stop`."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="ejabberd-"))
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = int(s.getsockname()[1])
        self.node = f"test{secrets.token_hex(4)}@localhost"
        self.host = "127.0.0.1"
        self.proc: subprocess.Popen[bytes] | None = None
        self._epmd = {p.pid for p in psutil.process_iter(["name"]) if p.info["name"] == "epmd"}

    def _ctl(self, *args: str) -> list[str]:
        return [EJABBERDCTL, "--ctl-config", str(self.dir / "ejabberdctl.cfg"),
                "--config", str(self.dir / "ejabberd.yml"), "--spool", str(self.dir / "spool"),
                "--logs", str(self.dir / "logs"), "--node", self.node, *args]

    def start(self, timeout: float = 60.0) -> Ejabberd:
        """Write the config, start the node in the foreground, wait for the listener."""
        (self.dir / "spool").mkdir(exist_ok=True)
        (self.dir / "logs").mkdir(exist_ok=True)
        (self.dir / "ejabberd.yml").write_text(CONFIG.format(port=self.port))
        (self.dir / "ejabberdctl.cfg").write_text(
            'ERL_OPTIONS="-env ERL_CRASH_DUMP_BYTES 0"\n'
            f"EJABBERD_CONFIG_PATH={self.dir / 'ejabberd.yml'}\n")
        if os.getuid() == 0:
            pw = pwd.getpwnam("ejabberd")
            for path in [self.dir, *self.dir.rglob("*")]:
                os.chown(path, pw.pw_uid, pw.pw_gid)
        self.proc = subprocess.Popen(self._ctl("foreground"), stdout=open(self.dir / "fg.log", "ab"),
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                     start_new_session=True)
        deadline = time.monotonic() + timeout
        while True:
            try:
                socket.create_connection((self.host, self.port), timeout=1).close()
                return self
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"ejabberd did not start:\n{self.log()}") from None
                time.sleep(0.2)

    def register(self, user: str, password: str) -> None:
        """An MQTT user (an XMPP account on host ``localhost``)."""
        subprocess.run(self._ctl("register", user, "localhost", password), check=True,
                       capture_output=True, timeout=60)

    def log(self) -> str:
        """The node's log (tail)."""
        text = ""
        for name in ("fg.log", "logs/ejabberd.log"):
            try:
                text += (self.dir / name).read_text(errors="replace")[-3000:]
            except OSError:
                pass
        return text

    def restart_in_node(self) -> None:
        """``ejabberdctl restart``: restarts the application inside the running node."""
        subprocess.run(self._ctl("restart"), check=True, capture_output=True, timeout=60)

    def halt(self) -> None:
        """Stop the node (its data stays, so :meth:`start` brings it back)."""
        if self.proc is not None and self.proc.poll() is None:
            subprocess.run(self._ctl("stop"), capture_output=True, timeout=60)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, 9)
                self.proc.wait(10)

    def stop(self) -> None:
        """Stop the node and remove its directory."""
        self.halt()
        # The node runs under su as another user: make sure none of its processes is left,
        # nor the Erlang port mapper if it was not running before.
        for proc in psutil.process_iter(["pid", "cmdline", "name"]):
            cmd = " ".join(proc.info["cmdline"] or [])
            mine = self.node in cmd or (proc.info["name"] == "epmd" and proc.pid not in self._epmd)
            if mine:
                try:
                    proc.kill()
                except psutil.Error:
                    pass
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def ejabberd() -> Iterator[Ejabberd]:
    """A running ejabberd node with mod_mqtt; skipped when ejabberd is not installed."""
    if not os.access(EJABBERDCTL, os.X_OK):
        pytest.skip("ejabberd is not installed")
    node = Ejabberd().start()
    try:
        yield node
    finally:
        node.stop()
