"""Wires the web pages into the hub when ``[web]`` is configured.

The heavy part (Starlette, Jinja2, uvicorn) is imported at start, and only
then; a hub without ``[web]`` installs nothing here.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from hubagent.errors import HubError
from hubagent.feature import Built, Feature, Interfaces
from hubagent.interfaces import LockerDesk
from hubagent.web.settings import WebSettings

if TYPE_CHECKING:
    from hubagent.app import App
    from hubagent.clock import Clock
    from hubagent.web.server import WebServer

log = logging.getLogger(__name__)


class WebService:
    """Owns the page listeners of one hub."""

    def __init__(self, app: "App", settings: WebSettings, *, desk: LockerDesk | None = None) -> None:
        """The pages of ``app``; the kiosk checks codes with ``desk`` (None: no lockers)."""
        self.app = app
        self.settings = settings
        self.desk = desk
        self.server: "WebServer | None" = None

    async def start(self) -> None:
        """Import the web stack and listen; a busy port is an alert, not a crash."""
        from hubagent.web.i18n import Catalogues
        from hubagent.web.live import Live
        from hubagent.web.pages import Ctx
        from hubagent.web.server import WebServer
        from hubagent.web.sessions import Sessions
        from hubagent.web.view import HubView

        clock = self.app.clock
        view = HubView(self.app, desk=self.desk)
        live = Live(clock)
        ctx = Ctx(view=view, settings=self.settings,
                  i18n=Catalogues(self.settings.languages, self.settings.locale_dir),
                  sessions=Sessions(self.settings.session_idle_s, clock.monotonic), live=live,
                  clock=clock, secure_cookies=self.settings.tls_cert is not None)
        view.on_change(live.changed)
        server = WebServer(ctx)
        try:
            await server.start()
        except HubError as e:
            log.error("%s; the pages are off", e)
            self.app.set_alert("web", str(e))
            return
        self.server = server

    async def stop(self) -> None:
        """Close the listeners."""
        if self.server is not None:
            await self.server.stop()
            self.server = None

    def status(self) -> dict[str, Any]:
        """Where the pages are."""
        return {"urls": self.server.urls() if self.server else [],
                "live_pages": self.server.ctx.live.clients if self.server else 0}


def build(*, app: "App", clock: "Clock", uses: Interfaces) -> Built:
    """The pages when the config has ``[web]``; the kiosk uses the lockers' desk."""
    settings = app.config.web
    if settings is None:
        return Built()
    svc = WebService(app, settings, desk=uses.locker_desk)
    app.on_start(svc.start)
    app.on_stop(svc.stop)
    app.add_status("web", svc.status)
    return Built(svc)


FEATURE = Feature("web", build)
