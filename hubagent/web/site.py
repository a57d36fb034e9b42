"""The Starlette application(s) of one hub: kiosk, staff, or both."""

from __future__ import annotations

from importlib import resources

from starlette.applications import Starlette
from starlette.datastructures import MutableHeaders
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from hubagent.web import kiosk, staff
from hubagent.web.pages import Ctx

STATIC = str(resources.files("hubagent.web").joinpath("static"))
# The pages load nothing from elsewhere, and may not be framed by anyone.
CSP = ("default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
       "connect-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'")


def build(ctx: Ctx, pages: frozenset[str]) -> Starlette:
    """An ASGI app serving ``pages`` ("kiosk", "staff") and the static files."""
    routes: list[BaseRoute] = []
    if "kiosk" in pages:
        routes += kiosk.routes(ctx)
    if "staff" in pages:
        routes += staff.routes(ctx)
    home = "/kiosk" if "kiosk" in pages else "/staff"

    async def root(request: Request) -> Response:
        return RedirectResponse(home, status_code=303)

    routes += [Route("/", root), Mount("/static", StaticFiles(directory=STATIC), name="static")]
    return Starlette(routes=routes, middleware=[Middleware(SecurityHeaders)])


class SecurityHeaders:
    """Adds the content security policy and friends to every response (pure ASGI)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        private = scope["path"].startswith(("/staff", "/kiosk"))

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers.setdefault("Content-Security-Policy", CSP)
                headers.setdefault("X-Content-Type-Options", "nosniff")
                headers.setdefault("Referrer-Policy", "no-referrer")
                if private:
                    headers.setdefault("Cache-Control", "no-store")
            await send(message)

        await self.app(scope, receive, send_with_headers)
