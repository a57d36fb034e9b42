"""A real Mosquitto broker for tests, plus the pytest fixtures that manage it.

Load it with ``pytest_plugins = ["fixtures_mqtt"]``. Every test that talks
MQTT gets its own broker on a free loopback port, with its own temp dir and
log file; the log is attached to the report of a failing test.

Broker persistence is off by default: hubagent never relies on the broker
remembering anything across a restart, so tests should not either.

(PYTEST_DONT_REWRITE: this module has no asserts, and test modules may
import it before pytest loads it as a plugin.)
"""

from __future__ import annotations

import logging
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from enum import Enum
from pathlib import Path
from types import TracebackType

import pytest

logger = logging.getLogger(__name__)

MOSQUITTO = "/usr/sbin/mosquitto"
MOSQUITTO_PASSWD = "/usr/bin/mosquitto_passwd"
# setpriv --pdeathsig makes the broker die with the process (thread, in fact)
# that started it, so even a hard-killed pytest leaves no orphan broker.
SETPRIV = "/usr/bin/setpriv"
HOST = "127.0.0.1"
_LOG_TAIL_CHARS = 4000


class BrokerState(Enum):
    """Lifecycle of a :class:`MosquittoBroker`."""

    STOPPED = "stopped"
    RUNNING = "running"
    CLOSED = "closed"


class BrokerError(RuntimeError):
    """The broker could not be started or did not become ready."""


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def _probe_connack(host: str, port: int, timeout: float) -> bool:
    """Send a bare MQTT 3.1.1 CONNECT and report whether a CONNACK came back.

    Any CONNACK counts, even "not authorised": it proves the broker is
    accepting MQTT on the listener, which is all readiness means.
    """
    client_id = b"harness-probe-" + secrets.token_hex(4).encode()
    variable = b"\x00\x04MQTT\x04\x02\x00\x05"  # level 4, clean session, keepalive 5 s
    body = variable + len(client_id).to_bytes(2, "big") + client_id
    packet = b"\x10" + bytes([len(body)]) + body
    try:
        with socket.create_connection((host, port), timeout=timeout) as s:
            s.sendall(packet)
            reply = s.recv(4)
            if len(reply) >= 1 and reply[0] == 0x20:
                s.sendall(b"\xe0\x00")  # DISCONNECT, so the broker logs a clean exit
                return True
            return False
    except OSError:
        return False


def hash_password_file(path: Path, users: Mapping[str, str]) -> None:
    """Write a Mosquitto password file for ``users`` with ``mosquitto_passwd``."""
    if not os.access(MOSQUITTO_PASSWD, os.X_OK):
        raise BrokerError(f"{MOSQUITTO_PASSWD} not found: cannot hash passwords")
    path.write_text("")
    for user, password in users.items():
        if ":" in user or not user:
            raise ValueError(f"invalid MQTT user name {user!r}")
        subprocess.run(
            [MOSQUITTO_PASSWD, "-b", str(path), user, password],
            check=True,
            capture_output=True,
            timeout=30,
        )


class MosquittoBroker:
    """One ``/usr/sbin/mosquitto`` process on 127.0.0.1, configured for a test.

    Construction writes nothing and starts nothing; :meth:`start` does. The
    port is chosen at the first start and kept by :meth:`restart`, so clients
    can reconnect to the same address.

    ``users`` maps user name to password and turns authentication on
    (anonymous access off); ``acl`` is the text of a Mosquitto ACL file.
    ``extra_conf`` lines are appended verbatim to the generated config.
    ``config`` replaces the generated config entirely (for testing other
    config files); ``{port}`` and ``{workdir}`` in it are substituted, and
    its first listener must be plain MQTT on ``{port}`` for readiness checks.

    The broker is started with a parent-death signal, so it dies with the
    *thread* that started it: call :meth:`start` / :meth:`restart` from the
    test's own thread, not from a short-lived helper thread.
    """

    def __init__(
        self,
        workdir: Path | None = None,
        *,
        port: int | None = None,
        max_queued_messages: int = 1000,
        max_inflight_messages: int = 20,
        persistence: bool = False,
        users: Mapping[str, str] | None = None,
        acl: str | None = None,
        extra_conf: Sequence[str] = (),
        config: str | None = None,
    ) -> None:
        if max_queued_messages < 0 or max_inflight_messages < 0:
            raise ValueError("queue and in-flight limits must be >= 0")
        if acl is not None and not users:
            raise ValueError("an ACL needs users: anonymous clients have no %u")
        self._own_workdir = workdir is None
        self.workdir = Path(workdir) if workdir else Path(tempfile.mkdtemp(prefix="mosq-"))
        self.host = HOST
        self._port = port
        self.max_queued_messages = max_queued_messages
        self.max_inflight_messages = max_inflight_messages
        self.persistence = persistence
        self.users = dict(users or {})
        self.acl = acl
        self.extra_conf = list(extra_conf)
        self.config = config
        self.log_path = self.workdir / "mosquitto.log"
        self.conf_path = self.workdir / "mosquitto.conf"
        self._proc: subprocess.Popen[bytes] | None = None
        self._state = BrokerState.STOPPED

    # -- addresses -----------------------------------------------------------

    @property
    def port(self) -> int:
        """The listener port (fixed at the first :meth:`start`)."""
        if self._port is None:
            raise BrokerError("broker has no port yet: call start() first")
        return self._port

    @property
    def url(self) -> str:
        """``mqtt://127.0.0.1:<port>``."""
        return f"mqtt://{self.host}:{self.port}"

    @property
    def state(self) -> BrokerState:
        """Current lifecycle state."""
        if self._state is BrokerState.RUNNING and self._proc and self._proc.poll() is not None:
            self._state = BrokerState.STOPPED
        return self._state

    @property
    def running(self) -> bool:
        """True while the broker process is alive."""
        return self.state is BrokerState.RUNNING

    @property
    def pid(self) -> int | None:
        """Process id of the running broker, else None."""
        return self._proc.pid if self.running and self._proc else None

    # -- configuration -------------------------------------------------------

    def config_text(self) -> str:
        """The mosquitto.conf this broker runs with."""
        if self.config is not None:
            return self.config.replace("{port}", str(self.port)).replace(
                "{workdir}", str(self.workdir))
        lines = [
            "# generated by tests/fixtures_mqtt.py",
            f"listener {self.port} {self.host}",
            f"allow_anonymous {'false' if self.users else 'true'}",
            f"max_queued_messages {self.max_queued_messages}",
            f"max_inflight_messages {self.max_inflight_messages}",
            f"persistence {'true' if self.persistence else 'false'}",
            f"persistence_location {self.workdir}/",
            f"log_dest file {self.log_path}",
            "log_type all",
            "log_timestamp_format %H:%M:%S",
            "connection_messages true",
            # Small QoS 1 messages go out at once instead of waiting on Nagle.
            "set_tcp_nodelay true",
            # Run as ourselves: started as root, mosquitto would otherwise
            # drop to user "mosquitto" and fail to read our temp files.
            f"user {pwd.getpwuid(os.getuid()).pw_name}",
        ]
        if self.users:
            lines.append(f"password_file {self.workdir / 'passwd'}")
        if self.acl is not None:
            lines.append(f"acl_file {self.workdir / 'acl'}")
        lines.extend(self.extra_conf)
        return "\n".join(lines) + "\n"

    def _write_config(self) -> None:
        """Write config, password and ACL files into the work dir."""
        if self.users:
            hash_password_file(self.workdir / "passwd", self.users)
        if self.acl is not None:
            (self.workdir / "acl").write_text(self.acl)
        self.conf_path.write_text(self.config_text())

    # -- lifecycle -----------------------------------------------------------

    def start(self, timeout: float = 10.0) -> MosquittoBroker:
        """Start the broker and wait until it accepts MQTT connections.

        On the very first start a port clash (another process grabbed the
        free port in between) is retried on a new port.
        """
        if self._state is BrokerState.CLOSED:
            raise BrokerError("broker is closed")
        if self.running:
            return self
        first_start = self._port is None
        for _attempt in range(3 if first_start else 1):
            if first_start:
                self._port = free_port()
            self._spawn()
            try:
                self.wait_ready(timeout)
                return self
            except BrokerError:
                self._reap()
                if not (first_start and "Address already in use" in self.log_text()):
                    raise
        raise BrokerError(f"could not bind a free port\n{self.log_tail()}")

    def _spawn(self) -> None:
        """Write the config and launch the process (log appended to one file)."""
        self._reap()  # a broker that died on its own is still a zombie
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._write_config()
        cmd = [MOSQUITTO, "-c", str(self.conf_path)]
        if os.access(SETPRIV, os.X_OK):
            cmd = [SETPRIV, "--pdeathsig", "KILL", "--", *cmd]
        with open(self.workdir / "stdout.log", "ab") as out:
            self._proc = subprocess.Popen(
                cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True,  # a Ctrl-C on pytest must not hit it first
            )
        self._state = BrokerState.RUNNING
        logger.debug("mosquitto pid %s on port %s", self._proc.pid, self._port)

    def wait_ready(self, timeout: float = 10.0) -> None:
        """Poll with MQTT CONNECTs until the broker answers or ``timeout`` passes."""
        deadline = time.monotonic() + timeout
        delay = 0.01
        while True:
            if not self.running:
                raise BrokerError(f"mosquitto exited during start-up\n{self.log_tail()}")
            if _probe_connack(self.host, self.port, timeout=1.0):
                return
            if time.monotonic() > deadline:
                raise BrokerError(f"mosquitto not ready after {timeout} s\n{self.log_tail()}")
            time.sleep(delay)  # back off between connect attempts
            delay = min(delay * 2, 0.2)

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM the broker and wait for it to exit (SIGKILL if it will not)."""
        self._signal_and_wait(signal.SIGTERM, timeout)

    def kill(self) -> None:
        """SIGKILL the broker, as a crash or power cut would."""
        self._signal_and_wait(signal.SIGKILL, 10.0)

    def restart(self, timeout: float = 10.0) -> MosquittoBroker:
        """Stop then start on the same port."""
        self.stop()
        return self.start(timeout)

    def _signal_and_wait(self, sig: signal.Signals, timeout: float) -> None:
        """Send ``sig`` to a running broker and reap it."""
        proc = self._proc
        if proc is None or proc.poll() is not None:
            self._reap()
            return
        try:
            proc.send_signal(sig)
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            logger.warning("mosquitto pid %s ignored %s; killing", proc.pid, sig.name)
        finally:
            self._reap()

    def _reap(self) -> None:
        """Make sure the process is gone and waited for."""
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait(10)
        if self._state is BrokerState.RUNNING:
            self._state = BrokerState.STOPPED

    def close(self) -> None:
        """Stop the broker and remove a temp dir this object created. Idempotent."""
        if self._state is BrokerState.CLOSED:
            return
        try:
            self.stop()
        except Exception:  # close must never raise
            logger.exception("stopping mosquitto failed")
            self._reap()
        self._state = BrokerState.CLOSED
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> MosquittoBroker:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- logs ----------------------------------------------------------------

    def log_text(self) -> str:
        """Everything the broker logged so far (log file plus stdout/stderr)."""
        parts = []
        for path in (self.workdir / "stdout.log", self.log_path):
            try:
                parts.append(path.read_text(errors="replace"))
            except OSError:
                pass
        return "".join(parts)

    def log_tail(self, chars: int = _LOG_TAIL_CHARS) -> str:
        """The last ``chars`` characters of :meth:`log_text`, for error messages."""
        return self.log_text()[-chars:]

    def __repr__(self) -> str:
        return f"MosquittoBroker({self.host}:{self._port}, {self.state.value})"


# -- pytest integration --------------------------------------------------------

_BROKERS = pytest.StashKey[list[MosquittoBroker]]()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Iterator[pytest.TestReport]:
    """Attach the log of every broker a failing test used to its report."""
    report: pytest.TestReport = yield
    if report.failed:
        for broker in item.stash.get(_BROKERS, []):
            report.sections.append((f"mosquitto log ({broker.port if broker._port else '?'})",
                                    broker.log_tail()))
    return report


MakeBroker = Callable[..., MosquittoBroker]


@pytest.fixture
def make_broker(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[MakeBroker]:
    """Factory: ``make_broker(**options)`` starts a :class:`MosquittoBroker`.

    Options are the constructor's keyword arguments, plus ``start=False`` to
    get a configured broker that is not running yet. Every broker made is
    stopped at teardown, whatever the test outcome.
    """
    brokers = request.node.stash.setdefault(_BROKERS, [])
    mine: list[MosquittoBroker] = []

    def factory(*, start: bool = True, **options: object) -> MosquittoBroker:
        workdir = tmp_path / f"broker{len(mine)}"
        workdir.mkdir()
        broker = MosquittoBroker(workdir, **options)  # type: ignore[arg-type]
        brokers.append(broker)
        mine.append(broker)
        return broker.start() if start else broker

    try:
        yield factory
    finally:
        for broker in mine:
            broker.close()


@pytest.fixture
def mqtt_broker(make_broker: MakeBroker) -> MosquittoBroker:
    """A running broker with default options (anonymous, no persistence)."""
    return make_broker()
