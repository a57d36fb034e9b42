"""What the pages may see and do: one adapter over the running hub.

Everything runs on the core thread (the web server shares the daemon's
asyncio loop). Reads come from the status document and read-only commands;
every action is a command through the same dispatcher, rules, inbox and
audit as MQTT and the local API, or a code attempt through the locker desk
(the kiosk is an input device like a keypad).
"""

from __future__ import annotations

import json
import re
import uuid
from pathlib import Path
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

from hubagent.interfaces import LockerDesk
from hubagent.lockers.inputs import Outcome

if TYPE_CHECKING:
    from hubagent.app import App


PREVIEW_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,120}\.png")


@dataclass(frozen=True)
class KioskResult:
    """What the kiosk shows after a code: an outcome and, when a door opened, which."""

    outcome: str            # opened, wrong, expired, locked_out, nothing, no_space, out_of_order
    door: str | None = None
    bank: str | None = None
    retry_in_s: float | None = None


class HubView:
    """The pages' window onto one hub."""

    def __init__(self, app: "App", *, desk: LockerDesk | None = None) -> None:
        """A view of ``app``; ``desk`` checks codes typed on the kiosk (None: no lockers)."""
        self._app = app
        self._desk = desk

    @property
    def hub_id(self) -> str:
        """The hub's id."""
        return self._app.hub_id

    def status(self) -> dict[str, Any]:
        """The same document as ``hubagent status --json``."""
        return self._app.status()

    def now(self) -> Any:
        """The hub's wall clock (aware UTC)."""
        return self._app.clock.now()

    def command(self, name: str, args: dict[str, Any], *, source: str) -> dict[str, Any]:
        """Run a command as central would; returns the reply (``ok``, ``result``/``error``)."""
        payload = {"id": f"{source}-{uuid.uuid4().hex[:16]}", **args}
        return self._app.commands.handle(name, json.dumps(payload).encode(), source=source)

    def on_change(self, fn: Callable[[], None]) -> None:
        """Call ``fn()`` on the core thread after anything the pages show may have changed."""
        self._app.store.on_commit(lambda events: fn())
        self._app.on_alerts_changed(fn)

    # -- printing ----------------------------------------------------------------
    def previews(self, limit: int) -> list[str]:
        """File names of the newest label previews (simulated printers write them)."""
        folder = self._app.config.state_dir / "previews"
        try:
            files = sorted(folder.glob("*.png"), key=lambda p: p.stat().st_mtime, reverse=True)
        except OSError:
            return []
        return [p.name for p in files[:limit]]

    def preview(self, name: str) -> Path | None:
        """The preview file ``name``, if it is one (no path tricks)."""
        if not PREVIEW_NAME.fullmatch(name):
            return None
        path = self._app.config.state_dir / "previews" / name
        return path if path.is_file() else None

    def command_sheet_png(self, dpi: int = 203) -> bytes:
        """The scanner command sheet as a PNG, drawn by the same code as every label."""
        import io

        from hubagent.printing.render import render
        from hubagent.printing.settings import PRINTING, font_path
        from hubagent.printing.templates import get_template, load_templates

        font = font_path(PRINTING.of(self._app.config), self._app.config.state_dir)
        template = get_template(load_templates(), "command_sheet").with_font(font)
        width = round(template.spec.width_mm / 25.4 * dpi)
        image = render(template.layout({"title": self.hub_id[:20]}, dpi, width))
        out = io.BytesIO()
        image.save(out, format="PNG")
        return out.getvalue()

    # -- lockers ----------------------------------------------------------------
    def has_lockers(self) -> bool:
        """Whether the hub has locker banks."""
        return self._desk is not None

    def kiosk_code(self, source: str, code: str, purpose: str) -> KioskResult:
        """A code typed on the kiosk, checked like a keypad's (same lock-out rules)."""
        if self._desk is None:
            return KioskResult("out_of_order")
        attempt = self._desk.attempt(source, code, (purpose,), role="kiosk")
        if attempt.outcome is Outcome.OPENED:
            return KioskResult("opened", door=attempt.compartment, bank=attempt.bank)
        if attempt.outcome is Outcome.LOCKED_OUT:
            return KioskResult("locked_out", retry_in_s=attempt.retry_in_s)
        if attempt.outcome is Outcome.NOTHING:
            outcome = "no_space" if attempt.reason in ("no_compartment", "no_free_compartment") else "nothing"
            if attempt.reason == "parked":
                outcome = "out_of_order"  # the locks are held for a power-off: nothing opens for anyone
            return KioskResult(outcome)
        outcome = "expired" if attempt.reason == "expired" else "wrong"
        return KioskResult(outcome, retry_in_s=attempt.retry_in_s)

    def staff_sign_in(self, address: str, code: str = "", *, badge: str = "", pin: str = "") -> str | None:
        """The registered staff member signing in from ``address``, or None (counts as a failure).

        Either a staff code, or a badge with its PIN: a badge's identifier is
        printed, not secret, so the page never takes a badge alone. Checked
        against the staff registry, under the lock-out of ``web:<address>``.
        """
        if self._desk is None:
            return None
        source = f"web-{address}"
        if badge:
            return self._desk.identify_badge(source, badge, pin, role="web", name=address)
        return self._desk.identify_staff(source, code, role="web", name=address)

    def lockout_left(self, role: str, name: str) -> float:
        """Seconds input ``role``/``name`` stays locked out (0 when it may try)."""
        if self._desk is None:
            return 0.0
        return self._desk.lockout_left(role, name)
