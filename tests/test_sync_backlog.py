"""A long outage: thousands of movements recorded offline, then delivered.

The hub reaches the broker through :class:`Uplink`, a TCP forwarder the
test can cut and restore: the uplink of a shop goes down while central
(connected straight to the broker) stays up and sees every event, in seq
order, once the uplink is back. The daemon's resident memory is sampled
throughout: the backlog lives in SQLite, not in memory.
"""

from __future__ import annotations

import socket
import threading
from pathlib import Path
from typing import Callable

import psutil

from central import Central
from fixtures_mqtt import MosquittoBroker
from hubproc import Daemon, wait_until
from test_sync_faults import (CATALOG, fold, hub_balances, record_many, wait_all_delivered,
                              write_config)

BACKLOG = 8000
MB = 1024 * 1024


class Uplink:
    """A loopback TCP forwarder to the broker that can be cut like a WAN link."""

    def __init__(self, target_port: int) -> None:
        self.target = ("127.0.0.1", target_port)
        self.port = 0
        self._listener: socket.socket | None = None
        self._conns: list[socket.socket] = []
        self._lock = threading.Lock()

    def up(self) -> "Uplink":
        """Accept connections (on the same port after a cut)."""
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", self.port))
        s.listen(8)
        self.port = s.getsockname()[1]
        self._listener = s
        threading.Thread(target=self._accept, args=(s,), daemon=True).start()
        return self

    def cut(self) -> None:
        """Drop every connection and refuse new ones."""
        with self._lock:
            if self._listener is not None:
                try:
                    # Wakes the thread blocked in accept(); close() alone does not.
                    self._listener.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                self._listener.close()
                self._listener = None
            for c in self._conns:
                try:
                    c.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                c.close()
            self._conns.clear()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # cut
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            with self._lock:
                self._conns += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class RssSampler:
    """Samples a process's resident memory every 50 ms in a thread."""

    def __init__(self, pid: int) -> None:
        self.proc = psutil.Process(pid)
        self.peak = self.proc.memory_info().rss
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            try:
                self.peak = max(self.peak, self.proc.memory_info().rss)
            except psutil.Error:
                return

    def stop(self) -> int:
        """Stop sampling; the peak RSS in bytes."""
        self._stop.set()
        self._thread.join(5)
        return self.peak


def test_long_outage_backlog_is_delivered_in_order_with_bounded_memory(
        mqtt_broker: MosquittoBroker, central_factory: Callable[..., Central],
        daemon_factory: Callable[..., Daemon], tmp_path: Path) -> None:
    uplink = Uplink(mqtt_broker.port).up()
    central = central_factory(auto_ack=True)
    state = tmp_path / "hubstate"
    state.mkdir()

    class ViaUplink:  # write_config only needs .port
        port = uplink.port

    cfg = write_config(tmp_path / "hub.toml", state, ViaUplink,  # type: ignore[arg-type]
                       telemetry_s=3600.0)
    hub = daemon_factory("run", "--config", str(cfg), state_dir=state)
    central.wait_for_state("online")
    assert central.command("catalog.upsert", {"items": CATALOG}, id="cat")["ok"]
    central.wait_for(lambda: central.acked() >= 1, what="central's first ack")
    wait_until(lambda: hub.status()["sync"]["acked_seq"] == 1, 20, "the first ack")

    uplink.cut()
    wait_until(lambda: not hub.status()["sync"]["connected"], 20, "the hub to notice the cut")
    assert hub.proc is not None
    sampler = RssSampler(hub.proc.pid)
    base = sampler.peak
    n = record_many(hub.socket_path, "b", BACKLOG, threads=4)
    sync = hub.status()["sync"]
    # The backlog is visible in status while offline.
    assert sync["connected"] is False and sync["subscribed"] is False
    assert sync["outbox_depth"] == n and sync["last_seq"] == n + 1 and sync["acked_seq"] == 1
    assert sync["oldest_unacked_at"] is not None
    offline_peak = sampler.peak

    uplink.up()
    events = wait_all_delivered(central, n + 1, timeout=90)
    wait_until(lambda: hub.status()["sync"]["outbox_depth"] == 0, 30, "the backlog acked")
    drain_peak = sampler.stop()

    # Memory: the backlog waits in SQLite; paho only ever holds the windows.
    assert offline_peak - base < 20 * MB, f"offline growth {(offline_peak - base) / MB:.1f} MB"
    assert drain_peak - base < 20 * MB, f"drain growth {(drain_peak - base) / MB:.1f} MB"
    # Central learnt the depth from the telemetry sent on reconnecting.
    depths = [t["sync"]["outbox_depth"] for t in central.telemetry()]
    assert depths == [0, n], depths  # first connect, then the reconnect
    # Everything, exactly once after dedup, first arrivals in seq order.
    assert central.seqs() == list(range(1, n + 2))
    seen: set[str] = set()
    firsts = []
    for e in central.raw_events():
        if e["id"] not in seen:
            seen.add(e["id"])
            firsts.append(e["seq"])
    assert firsts == sorted(firsts)
    assert central.violations() == []
    assert fold(events) == hub_balances(hub)
    assert hub.terminate() == 0
    uplink.cut()
