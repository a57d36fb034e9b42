"""Running the real daemon as a child process, the way systemd does."""

from __future__ import annotations

import json
import os
import queue
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

from hubagent.api import request


class Daemon:
    """``hubagent run ...`` in a subprocess with a NOTIFY_SOCKET we listen on."""

    def __init__(self, args: list[str], state_dir: Path, env: dict[str, str] | None = None) -> None:
        if args[:1] == ["run"] and "--web" not in args and "--no-web" not in args:
            # Many daemons run at once here: the web pages only where a test asks.
            args = [*args, "--no-web"]
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


def wait_until(predicate: Callable[[], Any], timeout: float, what: str | Callable[[], str],
               interval: float = 0.1) -> Any:
    """Poll ``predicate`` every ``interval`` s until it returns something truthy; return that.

    The predicate is checked once more when ``timeout`` has run out; after that an
    AssertionError names ``what`` (a string, or a callable giving one at failure
    time, e.g. to include a daemon's log).
    """
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            text = what() if callable(what) else what
            raise AssertionError(f"timed out after {timeout} s waiting for {text}")
        time.sleep(interval)


def next_matching(q: "queue.Queue[Any]", match: Callable[[Any], bool], timeout: float,
                  what: str | Callable[[], str], seen: list[Any] | None = None) -> Any:
    """The next item from ``q`` for which ``match`` is true; the others are skipped.

    Every item taken is appended to ``seen`` when given. If none matches within
    ``timeout`` s: AssertionError naming ``what`` (a string, or a callable giving
    one at failure time).
    """
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            text = what() if callable(what) else what
            raise AssertionError(f"no {text} within {timeout} s")
        try:
            item = q.get(timeout=left)
        except queue.Empty:
            continue
        if seen is not None:
            seen.append(item)
        if match(item):
            return item


def write_hub_config(tmp_path: Path, body: str) -> tuple[Path, Path]:
    """Write ``tmp_path/hub.toml`` for hub "hub-1" with its state in ``tmp_path/hubstate``.

    The state directory is created if missing; ``body`` is the TOML that follows
    the ``[hub]`` table. Returns the config path and the state directory.
    """
    state = tmp_path / "hubstate"
    state.mkdir(exist_ok=True)
    cfg = tmp_path / "hub.toml"
    cfg.write_text(f'[hub]\nid = "hub-1"\nstate_dir = "{state}"\n\n{body}')
    return cfg, state


def mqtt_table(port: int, **overrides: Any) -> str:
    """The TOML text of a hub config's ``[mqtt]`` table for a test broker on ``port``.

    Common test defaults: host 127.0.0.1, ``ack_timeout_s = 2.0`` and
    ``reconnect_max_s = 2.0``; each keyword adds a setting or replaces a default
    (values are written as JSON, which is valid TOML for strings and numbers).
    Ends with a newline.
    """
    opts: dict[str, Any] = {"host": "127.0.0.1", "port": port, "ack_timeout_s": 2.0,
                            "reconnect_max_s": 2.0, **overrides}
    return "\n".join(["[mqtt]", *(f"{k} = {json.dumps(v)}" for k, v in opts.items())]) + "\n"
