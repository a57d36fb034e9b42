"""The local API: JSON lines over a Unix socket, for ``hubagent status`` and
``hubagent sim``.

A Unix socket (mode 0660) rather than a TCP port: only local users in the
service's group can reach it, and nothing is exposed on the network. One
request per line, one reply per line:
``{"op": "status"}``, ``{"op": "sim", "role", "name", "verb", "args"}``,
``{"op": "command", "name", "payload"}``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hubagent.errors import HubError, InputError

if TYPE_CHECKING:
    from hubagent.app import App

log = logging.getLogger(__name__)

MAX_REQUEST = 1024 * 1024


class ApiServer:
    """Serves the local API on the app's loop."""

    def __init__(self, app: "App", path: Path) -> None:
        self._app = app
        self._path = path
        self._server: asyncio.AbstractServer | None = None

    async def start(self) -> None:
        """Listen on the socket, replacing a stale one left by a crash."""
        self._path.parent.mkdir(parents=True, exist_ok=True)
        if self._path.exists() or self._path.is_symlink():
            if _alive(self._path):
                raise HubError(f"another hubagent is already listening on {self._path}")
            self._path.unlink()
        self._server = await asyncio.start_unix_server(self._client, path=str(self._path),
                                                       limit=MAX_REQUEST)
        os.chmod(self._path, 0o660)

    async def stop(self) -> None:
        """Stop listening and remove the socket file."""
        if self._server is None:
            return  # never listened: the socket file, if any, is not ours
        self._server.close()
        await self._server.wait_closed()
        self._server = None
        try:
            self._path.unlink()
        except FileNotFoundError:
            pass

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while line := await reader.readline():
                reply = await self._handle(line)
                writer.write(json.dumps(reply).encode() + b"\n")
                await writer.drain()
        except (ConnectionError, asyncio.LimitOverrunError, ValueError) as e:
            log.debug("api client dropped: %s", e)
        finally:
            writer.close()

    async def _handle(self, line: bytes) -> dict[str, Any]:
        try:
            req = json.loads(line)
            if not isinstance(req, dict):
                raise InputError("bad_request", "request must be a JSON object")
            return {"ok": True, "result": await self._dispatch(req)}
        except (ValueError, UnicodeDecodeError) as e:
            return {"ok": False, "error": {"code": "bad_request", "message": str(e)}}
        except InputError as e:
            return {"ok": False, "error": {"code": e.code, "message": e.message}}
        except HubError as e:
            return {"ok": False, "error": {"code": "failed", "message": str(e)}}
        except Exception as e:
            log.exception("api request failed")
            return {"ok": False, "error": {"code": "internal", "message": str(e)}}

    async def _dispatch(self, req: dict[str, Any]) -> Any:
        op = req.get("op")
        app = self._app
        if op == "status":
            return app.status()
        if op == "sim":
            args = req.get("args") or {}
            if not isinstance(args, dict):
                raise InputError("bad_request", "args must be an object")
            return app.sim_command(str(req.get("role")), req.get("name"), str(req.get("verb")), args)
        if op == "command":
            payload = json.dumps(req.get("payload") or {}).encode()
            return app.commands.handle(str(req.get("name")), payload, source="local")
        raise InputError("unknown_op", f"unknown op {op!r} (known: status, sim, command)")


def _alive(path: Path) -> bool:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        try:
            s.connect(str(path))
            return True
        except OSError:
            return False


def request(path: Path, req: dict[str, Any], timeout: float = 10.0) -> dict[str, Any]:
    """Send one request to a running daemon and return its reply (client side)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(timeout)
        s.connect(str(path))
        s.sendall(json.dumps(req).encode() + b"\n")
        buf = b""
        while not buf.endswith(b"\n"):
            chunk = s.recv(65536)
            if not chunk:
                break
            buf += chunk
    reply: dict[str, Any] = json.loads(buf)
    return reply
