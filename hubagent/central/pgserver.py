"""A throw-away PostgreSQL server (Debian's ``postgresql`` package), for tests and the bench.

``initdb`` in a temporary directory, then ``pg_ctl`` on a free loopback
port with its socket in that directory. PostgreSQL refuses to run as
root, so when we are root both run as the ``postgres`` user the package
creates (via ``runuser``), and the directory is handed to that user.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path


class PgServerError(RuntimeError):
    """PostgreSQL is not installed or did not start (the message has its log)."""


def pg_bindir() -> Path | None:
    """The newest ``/usr/lib/postgresql/<version>/bin`` with ``initdb``, or None."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                   key=lambda p: int(Path(p).parent.parent.name))
    return Path(found[-1]).parent if found else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PgServer:
    """One PostgreSQL cluster; :meth:`start`, :meth:`create_db`, :meth:`stop`."""

    def __init__(self, fsync: bool = True) -> None:
        bindir = pg_bindir()
        if bindir is None:
            raise PgServerError("PostgreSQL is not installed (apt-get install postgresql)")
        self.bindir = bindir
        self.fsync = fsync
        self.dir = Path(tempfile.mkdtemp(prefix="central-pg-"))
        self.data = self.dir / "data"
        self.log = self.dir / "server.log"
        self.port = _free_port()
        self._as: list[str] = []
        if os.getuid() == 0:
            pw = pwd.getpwnam("postgres")
            os.chown(self.dir, pw.pw_uid, pw.pw_gid)
            self._as = ["runuser", "-u", "postgres", "--"]
        self.running = False

    def _run(self, *cmd: str) -> None:
        try:
            subprocess.run([*self._as, *cmd], check=True, capture_output=True, timeout=120)
        except subprocess.CalledProcessError as e:
            log = self.log.read_text(errors="replace")[-3000:] if self.log.exists() else ""
            raise PgServerError(f"{Path(cmd[0]).name} failed: {e.stderr.decode()[-2000:]}\n{log}") \
                from e

    def start(self) -> PgServer:
        """initdb and start; returns self once it accepts connections."""
        self._run(str(self.bindir / "initdb"), "-D", str(self.data), "-U", "postgres",
                  "--auth=trust", "-E", "UTF8", "--no-instructions")
        opts = (f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 "
                f"-c fsync={'on' if self.fsync else 'off'} -c max_connections=50")
        self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-l", str(self.log),
                  "-o", opts, "-w", "-t", "60", "start")
        self.running = True
        return self

    def url(self, dbname: str = "postgres") -> str:
        """Connection URL for ``dbname``."""
        return f"postgresql://postgres@127.0.0.1:{self.port}/{dbname}"

    def create_db(self, name: str) -> str:
        """Create an empty database; returns its URL."""
        import psycopg

        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def stop(self) -> None:
        """Stop the server and remove its directory. Idempotent."""
        if self.running:
            self.running = False
            try:
                self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", "immediate",
                          "-w", "stop")
            except PgServerError:
                pass
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> PgServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
