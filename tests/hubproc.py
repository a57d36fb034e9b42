"""Running the real daemon as a child process, the way systemd does."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from hubagent.api import request


class Daemon:
    """``hubagent run ...`` in a subprocess with a NOTIFY_SOCKET we listen on."""

    def __init__(self, args: list[str], state_dir: Path, env: dict[str, str] | None = None) -> None:
        self.args = args
        self.state_dir = state_dir
        self.socket_path = state_dir / "api.sock"
        self._notify_dir = tempfile.mkdtemp(prefix="hubnotify-")
        self._notify_path = os.path.join(self._notify_dir, "notify.sock")
        self.notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.notify.bind(self._notify_path)
        base = {k: v for k, v in os.environ.items() if k != "JOURNAL_STREAM"}
        self.env = {**base, "NOTIFY_SOCKET": self._notify_path, **(env or {})}
        self.log_path = state_dir.parent / f"{state_dir.name}-daemon.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.ready_after: float | None = None

    def start(self, wait_ready: bool = True, timeout: float = 20.0) -> "Daemon":
        """Start the process (and by default wait for READY=1)."""
        self._log = open(self.log_path, "ab")
        started = time.monotonic()
        self.proc = subprocess.Popen([sys.executable, "-m", "hubagent", *self.args],
                                     stdout=self._log, stderr=subprocess.STDOUT, env=self.env)
        if wait_ready:
            self.wait_notify("READY=1", timeout)
            self.ready_after = time.monotonic() - started
        return self

    def wait_notify(self, what: str, timeout: float) -> str:
        """Wait for a notification containing ``what``; return it."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.notify.settimeout(max(0.05, min(0.5, deadline - time.monotonic())))
            try:
                msg = self.notify.recv(4096).decode()
            except socket.timeout:
                assert self.proc is not None
                if self.proc.poll() is not None:
                    raise AssertionError(f"daemon exited {self.proc.returncode}:\n{self.log()}")
                continue
            if what in msg:
                return msg
        raise AssertionError(f"no {what} within {timeout} s:\n{self.log()}")

    def api(self, req: dict[str, Any]) -> dict[str, Any]:
        """One local API request."""
        return request(self.socket_path, req)

    def status(self) -> dict[str, Any]:
        """The status document (asserting the call succeeded)."""
        reply = self.api({"op": "status"})
        assert reply["ok"], reply
        return reply["result"]  # type: ignore[no-any-return]

    def sim(self, role: str, verb: str, name: str | None = None, **args: Any) -> dict[str, Any]:
        """A sim verb; returns the whole reply."""
        return self.api({"op": "sim", "role": role, "name": name, "verb": verb, "args": args})

    def command(self, name: str, payload: dict[str, Any]) -> dict[str, Any]:
        """A command through the local API (same dispatcher as MQTT)."""
        reply = self.api({"op": "command", "name": name, "payload": payload})
        assert reply["ok"], reply
        return reply["result"]  # type: ignore[no-any-return]

    def cli(self, *args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
        """Run another ``hubagent`` command against this daemon."""
        return subprocess.run([sys.executable, "-m", "hubagent", *args], capture_output=True,
                              text=True, timeout=timeout, env=self.env)

    def terminate(self, timeout: float = 20.0) -> int:
        """SIGTERM and wait; returns the exit status."""
        assert self.proc is not None
        self.proc.terminate()
        return self.proc.wait(timeout)

    def kill(self) -> None:
        """SIGKILL (a crash or power cut, as far as the process can tell)."""
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(10)

    def log(self) -> str:
        """What the daemon printed so far."""
        try:
            return self.log_path.read_text(errors="replace")[-6000:]
        except OSError:
            return ""

    def close(self) -> None:
        """Make sure the process is gone; release the notify socket."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self.notify.close()
        if hasattr(self, "_log"):
            self._log.close()


def dumps(doc: Any) -> str:
    """JSON for payloads in tests."""
    return json.dumps(doc)
