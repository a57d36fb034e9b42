"""``hubagent status`` for a person: one screen, the reason first, no Python literals."""

from __future__ import annotations

import re
import socket
from pathlib import Path
from typing import Callable

from hubproc import Daemon, wait_until


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_status_fits_a_screen_and_says_offline_when_events_wait(
        daemon_factory: Callable[..., Daemon], tmp_path: Path) -> None:
    state = tmp_path / "sim"
    # A broker address where nothing listens: the hub cannot reach central.
    hub = daemon_factory("run", "--sim", "--state-dir", str(state), "--mqtt", f"127.0.0.1:{free_port()}",
                         "--web", "127.0.0.1:0", state_dir=state)
    assert hub.command("catalog.upsert", {"id": "c1", "items": [{"sku": "TEA-1", "name": "Tea"}]})["ok"]
    wait_until(lambda: (hub.status()["sync"]["outbox_depth"] or 0) > 0, 10, "events waiting")
    out = hub.cli("status", "--state-dir", str(state))
    assert out.returncode == 0, out.stderr
    text = out.stdout
    lines = text.splitlines()
    assert len(lines) <= 24, text  # one terminal screen
    assert "OFFLINE" in lines[0] or "ALERT" in lines[0], text
    assert re.search(r"NOT CONNECTED to the broker · \d+ events? waiting", text), text
    for literal in ("None", "True", "False", "{'", "[]"):
        assert literal not in text, (literal, text)
    assert not re.search(r"\b1[0-9]{9}\.[0-9]+\b", text), text  # no epoch floats
    assert "http://127.0.0.1:" in text and "/kiosk" in text  # where the pages are
    assert hub.cli("status", "--state-dir", str(state), "--json").stdout.lstrip().startswith("{")
