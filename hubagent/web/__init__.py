"""The hub's own web pages: a locker kiosk for customers and a staff page.

Optional: configured by a ``[web]`` section (``hubagent run --sim`` turns it
on at ``127.0.0.1:8080``). Nothing here but :mod:`hubagent.web.settings` is
imported unless it is configured, so a hub without pages never loads
Starlette, Jinja2 or uvicorn.

The pages are a view and an input over the same commands, rules and audit
trail as everything else: every action goes through the command dispatcher
or the locker desk, on the core thread, and none has its own database path.
"""
