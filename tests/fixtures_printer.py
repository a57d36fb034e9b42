"""A raw-TCP label printer on 127.0.0.1 (port 9100 style) that keeps its jobs."""

from __future__ import annotations

import socketserver
import threading
import time

DLE_EOT = b"\x10\x04"


def hs_reply(paper_out: bool = False, paused: bool = False, head_open: bool = False) -> bytes:
    """A ~HS reply shaped like a Zebra's (three STX..ETX strings)."""
    one = f"030,{int(paper_out)},{int(paused)},1245,000,0,0,0,000,0,0,0"
    two = f"000,0,{int(head_open)},0,0,2,4,0,00000000,1,000"
    return b"\x02" + one.encode() + b"\x03\r\n\x02" + two.encode() + b"\x03\r\n\x021234,0\x03\r\n"


class FakePrinter(socketserver.ThreadingTCPServer):
    """A raw-TCP printer that records jobs and answers status queries."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, port: int = 0) -> None:
        """Listen on 127.0.0.1:``port`` (0: any free port) and serve in a thread."""
        super().__init__(("127.0.0.1", port), _Handler)
        self.jobs: list[bytes] = []
        self.hs = hs_reply()
        self.escpos_status = {1: 0x12, 2: 0x12, 4: 0x12}  # DLE EOT n -> status byte
        self.answer = True
        self.lock = threading.Lock()
        threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    @property
    def port(self) -> int:
        """The TCP port it listens on."""
        return self.server_address[1]

    def wait_jobs(self, n: int, timeout: float = 5.0) -> list[bytes]:
        """The jobs received, once there are at least ``n``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if len(self.jobs) >= n:
                    return list(self.jobs)
            time.sleep(0.01)
        raise AssertionError(f"expected {n} jobs, got {len(self.jobs)}")


class _Handler(socketserver.BaseRequestHandler):
    server: FakePrinter

    def handle(self) -> None:
        """Answer status queries; keep everything else as one job per connection."""
        data = b""
        while True:
            chunk = self.request.recv(65536)
            if not chunk:
                break
            if chunk.startswith(b"~HS"):
                if self.server.answer:
                    self.request.sendall(self.server.hs)
                continue
            if len(chunk) == 3 and chunk.startswith(DLE_EOT):
                if self.server.answer:
                    self.request.sendall(bytes([self.server.escpos_status[chunk[2]]]))
                continue
            data += chunk
        if data:
            with self.server.lock:
                self.server.jobs.append(data)
