"""The locker kiosk: pickup and return drop-off by code on a touchscreen.

The kiosk is an input device like a keypad: its codes go through the
locker desk under the same lock-out rules, counted against
``[web] kiosk_input``. Nothing here needs a keyboard.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from hubagent.web.pages import Ctx, forbidden

PURPOSES = ("pickup", "return")
MAX_CODE = 32


def routes(ctx: Ctx) -> list[Route]:
    """The kiosk's routes."""

    async def start(request: Request) -> Response:
        ctx.session(request)
        return ctx.render(request, "kiosk/start.html", lockers=ctx.view.has_lockers())

    async def language(request: Request) -> Response:
        s = ctx.session(request)
        s.lang = ctx.i18n.pick(request.path_params["code"])
        response = RedirectResponse("/kiosk", status_code=303)
        ctx.set_cookie(response, s)
        return response

    async def keypad(request: Request) -> Response:
        ctx.session(request)
        purpose = request.path_params["purpose"]
        if purpose not in PURPOSES:
            return RedirectResponse("/kiosk", status_code=303)
        wait = ctx.view.lockout_left("kiosk", ctx.settings.kiosk_input)
        return ctx.render(request, "kiosk/keypad.html", purpose=purpose, wait=round(wait))

    async def enter(request: Request) -> Response:
        s = ctx.session(request)
        purpose = request.path_params["purpose"]
        form = await request.form()
        if not ctx.csrf_ok(request, s, form):
            return forbidden(ctx, request)
        if purpose not in PURPOSES:
            return RedirectResponse("/kiosk", status_code=303)
        code = str(form.get("code") or "").strip()
        if not code:
            return ctx.render(request, "kiosk/keypad.html", purpose=purpose, wait=0,
                              problem="kiosk_enter_code")
        result = ctx.view.kiosk_code(ctx.settings.kiosk_input, code[:MAX_CODE], purpose)
        where = ctx.settings.where.get(result.bank or "", "")
        return ctx.render(request, "kiosk/result.html", purpose=purpose, result=result,
                          where=where, wait=round(result.retry_in_s or 0))

    return [
        Route("/kiosk", start),
        Route("/kiosk/lang/{code}", language),
        Route("/kiosk/{purpose}", keypad, methods=["GET"]),
        Route("/kiosk/{purpose}", enter, methods=["POST"]),
    ]
