"""A throw-away Mosquitto for the benchmarks that need a broker."""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator
from hubagent.clock import SYSTEM


def free_port() -> int:
    """A TCP port nothing listens on right now (loopback)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def no_delay(client: Any) -> None:
    """TCP_NODELAY on a connected paho client's socket, as central and the hub set it."""
    sock = client.socket()
    if sock is not None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def stop_process(proc: subprocess.Popen[bytes], grace: float = 10.0) -> None:
    """SIGTERM, then SIGKILL if ``proc`` has not exited within ``grace`` seconds."""
    proc.terminate()
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)


@contextmanager
def broker(workdir: Path) -> Iterator[int]:
    """A Mosquitto on a free loopback port, stopped on exit; yields the port."""
    exe = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    if not os.access(exe, os.X_OK):
        raise RuntimeError("mosquitto is not installed (apt install mosquitto)")
    port = free_port()
    conf = workdir / "mosquitto.conf"
    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
                    # Run as whoever runs the bench (root would switch users).
                    f"user {pwd.getpwuid(os.getuid()).pw_name}\n"
                    # No queue limit: a bench must not lose messages to a
                    # full queue.
                    "max_queued_messages 0\nlog_type error\n"
                    # As the shipped config/mosquitto: no Nagle delay on replies.
                    "set_tcp_nodelay true\n")
    proc = subprocess.Popen([exe, "-c", str(conf)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
    try:
        deadline = SYSTEM.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if proc.poll() is not None or SYSTEM.monotonic() > deadline:
                    raise RuntimeError("mosquitto did not start") from None
                time.sleep(0.05)
        yield port
    finally:
        stop_process(proc)
