"""The staff page: sign-in, dashboard, stock, lockers, printing, events.

Staff sign in with a code, or a badge and its PIN, registered by central
(``staff.set``, checked against the staff registry); failed sign-ins count
against the browser's address (input ``web:<address>``) like wrong locker
codes.
Every action is a command run as ``web:<staff id>``, so the inbox, events
and audit trail name who did it.
"""

from __future__ import annotations

from typing import Any, Awaitable, Callable

from starlette.requests import Request
from starlette.responses import FileResponse, RedirectResponse, Response, StreamingResponse
from starlette.routing import Route

from hubagent import humanize
from hubagent.web.pages import Ctx, forbidden

Handler = Callable[[Request], Awaitable[Response]]
FRAGMENTS = ("summary", "devices", "sync", "power", "lockers", "printing", "alerts")


def routes(ctx: Ctx) -> list[Route]:
    """The staff page's routes."""

    def signed_in(handler: Handler) -> Handler:
        async def wrapped(request: Request) -> Response:
            s = ctx.session(request)
            if s.staff is None:
                if request.headers.get("hx-request"):
                    return Response(status_code=204, headers={"HX-Redirect": "/staff/login"})
                return RedirectResponse("/staff/login", status_code=303)
            if request.method == "POST":
                form = await request.form()
                if not ctx.csrf_ok(request, s, form):
                    return forbidden(ctx, request)
                request.state.form = form
            return await handler(request)
        return wrapped

    def source(request: Request) -> str:
        return f"web:{request.state.session.staff}"

    async def login_page(request: Request) -> Response:
        ctx.session(request)
        return ctx.render(request, "staff/login.html")

    async def login(request: Request) -> Response:
        s = ctx.session(request)
        form = await request.form()
        if not ctx.csrf_ok(request, s, form):
            return forbidden(ctx, request)
        address = request.client.host if request.client else "unknown"
        wait = ctx.view.lockout_left("web", address)
        if wait > 0:
            return ctx.render(request, "staff/login.html", status_code=429,
                              problem="login_locked_out", wait=round(wait))
        code = str(form.get("code") or "").strip()[:64]
        badge = str(form.get("badge") or "").strip()[:40]
        pin = str(form.get("pin") or "").strip()[:12]
        staff = ctx.view.staff_sign_in(address, code, badge=badge, pin=pin) if code or badge else None
        if staff is None:
            return ctx.render(request, "staff/login.html", status_code=401, problem="login_failed")
        s.staff = staff
        fresh = ctx.sessions.rotate(s)
        response = RedirectResponse("/staff", status_code=303)
        ctx.set_cookie(response, fresh)
        return response

    async def logout(request: Request) -> Response:
        ctx.sessions.end(request.state.session)
        return RedirectResponse("/staff/login", status_code=303)

    async def dashboard(request: Request) -> Response:
        return ctx.render(request, "staff/dashboard.html", **_status_values(ctx))

    async def fragment(request: Request) -> Response:
        name = request.path_params["name"]
        if name not in FRAGMENTS:
            return Response(status_code=404)
        return ctx.render(request, f"staff/_{name}.html", **_status_values(ctx))

    async def live(request: Request) -> Response:
        return StreamingResponse(ctx.live.stream(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})

    async def stock(request: Request) -> Response:
        q = str(request.query_params.get("q") or "").strip()[:64]
        hits = _find(ctx, q) if q else []
        found = _lookup(ctx, hits[0]["sku"]) if len(hits) == 1 else None
        return ctx.render(request, "staff/stock.html", q=q, found=found, hits=hits)

    async def stock_action(request: Request) -> Response:
        form = request.state.form
        action = request.path_params["action"]
        sku, bin_ = str(form.get("sku", "")), str(form.get("bin", ""))
        args: dict[str, Any] = {"sku": sku, "bin": bin_}
        reply: dict[str, Any]
        try:
            if action == "count":
                args["counted"] = int(str(form.get("counted", "")))
                reply = ctx.view.command("stock.count", args, source=source(request))
            elif action == "adjust":
                args["delta"] = int(str(form.get("delta", "")))
                args["reason"] = str(form.get("reason", ""))
                reply = ctx.view.command("stock.adjust", args, source=source(request))
            else:
                return Response(status_code=404)
        except ValueError:
            reply = {"ok": False, "error": {"code": "bad_args", "message": "a whole number is needed"}}
        return ctx.render(request, "staff/stock.html", q=sku, found=_lookup(ctx, sku), hits=[], reply=reply)

    async def lockers(request: Request) -> Response:
        return ctx.render(request, "staff/lockers.html", **_status_values(ctx))

    async def locker_action(request: Request) -> Response:
        form = request.state.form
        action = request.path_params["action"]
        args = {"bank": str(form.get("bank", "")), "compartment": str(form.get("compartment", ""))}
        if action == "open":
            args["reason"] = str(form.get("reason", ""))
            reply = ctx.view.command("locker.open", args, source=source(request))
        elif action == "clear_fault":
            reply = ctx.view.command("locker.clear_fault", args, source=source(request))
        elif action == "service":
            back = form.get("in_service") == "true"
            reason = str(form.get("reason", "")) or None
            reply = ctx.view.command("locker.service", {**args, "in_service": back, "reason": reason},
                                     source=source(request))
        else:
            return Response(status_code=404)
        return ctx.render(request, "staff/lockers.html", reply=reply, **_status_values(ctx))

    async def printing(request: Request) -> Response:
        return ctx.render(request, "staff/printing.html", **_printing_values(ctx))

    async def preview(request: Request) -> Response:
        path = ctx.view.preview(str(request.path_params["name"]))
        if path is None:
            return Response(status_code=404)
        return FileResponse(path, media_type="image/png")

    async def print_action(request: Request) -> Response:
        form = request.state.form
        action = request.path_params["action"]
        if action in ("reprint", "cancel"):
            reply = ctx.view.command(f"print.{action}", {"job": str(form.get("job", ""))},
                                     source=source(request))
        elif action == "label":
            template = str(form.get("template", ""))
            fields = {k: str(form.get(k)) for k in ("sku", "bin", "name", "price", "gtin")
                      if form.get(k)}
            reply = ctx.view.command("print", {"template": template, "fields": fields},
                                     source=source(request))
        else:
            return Response(status_code=404)
        return ctx.render(request, "staff/printing.html", reply=reply, **_printing_values(ctx))

    async def command_sheet(request: Request) -> Response:
        return Response(ctx.view.command_sheet_png(), media_type="image/png", headers={
            "Content-Disposition": f'attachment; filename="{ctx.view.hub_id}-command-sheet.png"'})

    async def events(request: Request) -> Response:
        kind = str(request.query_params.get("kind") or "").strip()[:64]
        args: dict[str, Any] = {"limit": 100}
        if kind:
            args["kind"] = kind
        reply = ctx.view.command("events.list", args, source=source(request))
        rows = reply.get("result", {}).get("events", []) if reply.get("ok") else []
        return ctx.render(request, "staff/events.html", kind=kind, rows=rows, reply=reply)

    return [
        Route("/staff/login", login_page, methods=["GET"]),
        Route("/staff/login", login, methods=["POST"]),
        Route("/staff/logout", signed_in(logout), methods=["POST"]),
        Route("/staff", signed_in(dashboard)),
        Route("/staff/fragment/{name}", signed_in(fragment)),
        Route("/staff/live", signed_in(live)),
        Route("/staff/stock", signed_in(stock), methods=["GET"]),
        Route("/staff/stock/{action}", signed_in(stock_action), methods=["POST"]),
        Route("/staff/lockers", signed_in(lockers), methods=["GET"]),
        Route("/staff/lockers/{action}", signed_in(locker_action), methods=["POST"]),
        Route("/staff/printing", signed_in(printing), methods=["GET"]),
        Route("/staff/printing/{action}", signed_in(print_action), methods=["POST"]),
        Route("/staff/printing/preview/{name}", signed_in(preview), methods=["GET"]),
        Route("/staff/printing/command-sheet.png", signed_in(command_sheet), methods=["GET"]),
        Route("/staff/events", signed_in(events), methods=["GET"]),
    ]


def _status_values(ctx: Ctx) -> dict[str, Any]:
    st = ctx.view.status()
    state = humanize.hub_state(st)
    return {"st": st, "state": state, "reasons": lambda t: humanize.reasons(st, t)}


def _printing_values(ctx: Ctx) -> dict[str, Any]:
    reply = ctx.view.command("print.jobs", {"limit": 20}, source="web")
    jobs = reply["result"]["jobs"] if reply.get("ok") else []
    return {**_status_values(ctx), "jobs": jobs, "previews": ctx.view.previews(6)}


def _find(ctx: Ctx, q: str) -> list[dict[str, Any]]:
    """Catalog items by SKU, GTIN or name (``catalog.find``)."""
    reply = ctx.view.command("catalog.find", {"q": q, "limit": 20}, source="web")
    return list(reply["result"]["items"]) if reply.get("ok") else []


def _lookup(ctx: Ctx, q: str) -> dict[str, Any] | None:
    reply = ctx.view.command("stock.get", {"sku": q}, source="web")
    return reply.get("result") if reply.get("ok") else None
