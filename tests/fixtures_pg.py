"""A real PostgreSQL 15 server for tests (Debian's ``postgresql`` package).

Load it with ``pytest_plugins = ["fixtures_pg"]``. One server per test
session (initdb takes seconds), started as the ``postgres`` user when the
tests run as root; every test gets its own empty database on it.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import pytest

from hubagent.central.pgserver import PgServer


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    """A running throw-away PostgreSQL server, stopped and removed at the end."""
    # fsync off: the tests check logic, not durability, and share 2 cores.
    server = PgServer(fsync=False).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A fresh central database URL: a SQLite file, then a PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path_factory.mktemp('central')}/central.db"
    server: PgServer = request.getfixturevalue("pg_server")
    return server.create_db(f"central_{secrets.token_hex(4)}")
