"""The web server inside the daemon: uvicorn on the core's asyncio loop.

The pages' handlers run on the core thread like everything else, so they
call the command dispatcher directly and never race the store. uvicorn's
own signal handling is turned off: the daemon owns SIGTERM.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from dataclasses import dataclass
from typing import Iterator

import uvicorn

from hubagent.errors import HubError
from hubagent.web import site
from hubagent.web.pages import Ctx
from hubagent.web.settings import WebSettings, split_host_port

log = logging.getLogger(__name__)


class _EmbeddedServer(uvicorn.Server):
    """A uvicorn server that leaves signals to the daemon."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        """Do not touch signal handlers."""
        yield


@dataclass(frozen=True)
class Listener:
    """One address and the pages served on it."""

    address: str
    pages: frozenset[str]
    tls: bool = False

    def url(self, port: int | None = None) -> str:
        """Where a browser finds the first page (``port``: the one actually bound)."""
        scheme = "https" if self.tls else "http"
        page = "/kiosk" if "kiosk" in self.pages else "/staff"
        host, configured = split_host_port(self.address)
        shown = f"[{host}]" if ":" in host else host
        return f"{scheme}://{shown}:{port or configured}{page}"


def listeners(s: WebSettings) -> list[Listener]:
    """Kiosk and staff on one address, or staff on its own (optionally TLS) address."""
    if s.staff_listen is None:
        return [Listener(s.listen, frozenset({"kiosk", "staff"}))]
    return [Listener(s.listen, frozenset({"kiosk"})),
            Listener(s.staff_listen, frozenset({"staff"}), tls=s.tls_cert is not None)]


def _bind(host: str, port: int, address: str) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as e:
        sock.close()
        raise HubError(f"[web] cannot listen on {address}: {e.strerror or e}") from None
    sock.listen(64)
    sock.set_inheritable(True)
    return sock


class WebServer:
    """Starts and stops the page listeners."""

    def __init__(self, ctx: Ctx) -> None:
        self.ctx = ctx
        self.listeners = listeners(ctx.settings)
        self._servers: list[tuple[uvicorn.Server, asyncio.Task[None]]] = []
        self._urls: list[str] = []

    async def start(self) -> None:
        """Listen on every address; HubError naming the address if one cannot."""
        for lst in self.listeners:
            host, port = split_host_port(lst.address)
            s = self.ctx.settings
            config = uvicorn.Config(
                site.build(self.ctx, lst.pages), host=host, port=port, log_level="warning",
                access_log=False, lifespan="off", server_header=False,
                ssl_certfile=s.tls_cert if lst.tls else None,
                ssl_keyfile=s.tls_key if lst.tls else None)
            server = _EmbeddedServer(config)
            # Bound here, not by uvicorn, which would sys.exit() the daemon on an error.
            sock = _bind(host, port, lst.address)
            task = asyncio.get_running_loop().create_task(server.serve(sockets=[sock]))
            while not server.started and not task.done():
                await asyncio.sleep(0.01)
            if task.done():
                await self.stop()
                raise HubError(f"web pages cannot listen on {lst.address} (in use or not allowed)")
            self._servers.append((server, task))
            self._urls.append(lst.url(sock.getsockname()[1]))
            log.info("web pages on %s", self._urls[-1])

    async def stop(self) -> None:
        """Stop every listener (open live streams are closed)."""
        for server, _ in self._servers:
            server.should_exit = True
            server.force_exit = True
        for _, task in self._servers:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(task, 5)
        self._servers.clear()

    def urls(self) -> list[str]:
        """The pages' addresses (with the ports actually bound), for ``hubagent status``."""
        return list(self._urls)
