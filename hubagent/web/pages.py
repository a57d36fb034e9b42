"""What every page handler shares: templates, the session, CSRF, language."""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup, escape
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from hubagent.clock import Clock
from hubagent import humanize
from hubagent.web.i18n import Catalogues
from hubagent.web.live import Live
from hubagent.web.sessions import COOKIE, Session, Sessions, csrf_ok
from hubagent.web.settings import WebSettings
from hubagent.web.view import HubView

TEMPLATES = str(resources.files("hubagent.web").joinpath("templates"))


@dataclass
class Ctx:
    """Everything the pages of one hub share."""

    view: HubView
    settings: WebSettings
    i18n: Catalogues
    sessions: Sessions
    live: Live
    clock: Clock
    secure_cookies: bool = False

    def __post_init__(self) -> None:
        self.env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(),
                               trim_blocks=True, lstrip_blocks=True)
        self.env.filters["ago"] = lambda v: humanize.ago(v, self.view.now())
        self.env.filters["clock"] = humanize.clock_time
        self.env.filters["duration"] = humanize.duration
        # A number a script counts down (the lock-out wait).
        self.env.globals["countdown"] = lambda n: Markup('<span class="secs">{}</span>').format(int(n))

    def session(self, request: Request) -> Session:
        """The request's session, made on first sight (the cookie is set by :meth:`render`)."""
        s = self.sessions.get(request.cookies.get(COOKIE))
        if s is None:
            s = self.sessions.new()
        request.state.session = s
        return s

    def lang(self, request: Request, s: Session) -> str:
        """The session's language, else the browser's, else the hub's first."""
        if s.lang:
            return s.lang
        header = request.headers.get("accept-language", "")
        for part in header.split(","):
            code = part.split(";")[0].strip().split("-")[0].lower()
            if code in self.i18n.languages:
                return code
        return self.i18n.languages[0]

    def csrf_ok(self, request: Request, s: Session, form: Any) -> bool:
        """Whether a POST carries the session's CSRF token (form field or htmx header)."""
        presented = form.get("csrf") if form is not None else None
        return csrf_ok(s, presented or request.headers.get("x-csrf-token"))

    def render(self, request: Request, template: str, status_code: int = 200,
               **values: Any) -> Response:
        """Render ``template`` in the session's language and (re)set the session cookie."""
        s: Session = request.state.session
        lang = self.lang(request, s)

        def t(msgid: str, /, **kw: Any) -> Markup:
            # The catalogue text is escaped; values are escaped unless already markup.
            return Markup(escape(self.i18n.text(lang, msgid))).format(**kw) if kw \
                else Markup(escape(self.i18n.text(lang, msgid)))

        html = self.env.get_template(template).render(
            t=t, lang=lang, languages=[(c, self.i18n.name(c)) for c in self.i18n.languages],
            csrf=s.csrf, session=s, hub=self.view.hub_id, settings=self.settings, **values)
        response = HTMLResponse(html, status_code=status_code)
        self.set_cookie(response, s)
        return response

    def set_cookie(self, response: Response, s: Session) -> None:
        """The session cookie: HttpOnly, SameSite=Strict, Secure over TLS."""
        response.set_cookie(COOKIE, s.token, httponly=True, samesite="strict",
                            secure=self.secure_cookies, path="/")


def forbidden(ctx: Ctx, request: Request) -> Response:
    """The answer to a POST without a valid CSRF token."""
    return ctx.render(request, "error.html", status_code=403, message_key="error_csrf")
