"""Shared fixtures: real daemons, real brokers, real UPS servers."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

from central import Central
from fixtures_mqtt import MosquittoBroker
from hubproc import Daemon

pytest_plugins = ["fixtures_mqtt", "fixtures_nut"]


@pytest.fixture
def state_dir(tmp_path: Path) -> Path:
    """A fresh state directory."""
    d = tmp_path / "state"
    d.mkdir()
    return d


@pytest.fixture
def daemon_factory(tmp_path: Path) -> Iterator[Callable[..., Daemon]]:
    """Start real ``hubagent run`` processes; all are killed at teardown."""
    made: list[Daemon] = []

    def make(*args: str, state_dir: Path | None = None, env: dict[str, str] | None = None,
             wait_ready: bool = True) -> Daemon:
        sd = state_dir or tmp_path / f"state{len(made)}"
        sd.mkdir(exist_ok=True)
        d = Daemon(list(args), sd, env)
        made.append(d)
        return d.start(wait_ready=wait_ready)

    yield make
    for d in made:
        d.close()


@pytest.fixture
def sim_daemon(daemon_factory: Callable[..., Daemon], tmp_path: Path) -> Daemon:
    """``hubagent run --sim`` with state in a temp dir, offline."""
    sd = tmp_path / "simstate"
    sd.mkdir()
    return daemon_factory("run", "--sim", "--state-dir", str(sd), state_dir=sd)


@pytest.fixture
def central_factory(mqtt_broker: MosquittoBroker) -> Iterator[Callable[..., Central]]:
    """Connected Central clients for hub "hub-1", closed at teardown.

    ``make(broker=None, **kw)``: on ``broker`` (default: the ``mqtt_broker``
    fixture); ``kw`` go to :class:`Central` (``auto_ack``, ``protocol``, ...).
    """
    made: list[Central] = []

    def make(broker: MosquittoBroker | None = None, **kw: Any) -> Central:
        b = broker or mqtt_broker
        c = Central(b.host, b.port, "hub-1", **kw).connect()
        made.append(c)
        return c

    yield make
    for c in made:
        c.close()


def _fresh_mock_pins() -> Iterator[Any]:
    from gpiozero import Device
    from gpiozero.pins.mock import MockFactory

    old = Device.pin_factory
    Device.pin_factory = factory = MockFactory()
    try:
        yield factory
    finally:
        factory.reset()
        Device.pin_factory = old


@pytest.fixture
def mock_pins() -> Iterator[Any]:
    """gpiozero's global pin factory as a fresh MockFactory; the old one is restored after."""
    yield from _fresh_mock_pins()


@pytest.fixture(scope="module")
def module_mock_pins() -> Iterator[Any]:
    """The same, shared by the tests of one module (for a hub that runs across them)."""
    yield from _fresh_mock_pins()
