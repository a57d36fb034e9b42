"""WCAG 2.1 AA on every page, checked by axe-core (vendored) in Chromium."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from selenium.webdriver.common.by import By

from test_web_kiosk import store_parcel, type_code
from test_web_staff import STAFF_CODE, sign_in
from web_harness import WebHub, browser, submit, web_hub  # noqa: F401

AXE = (Path(__file__).parent / "vendor" / "axe.min.js").read_text()


def violations(d: Any) -> list[dict[str, Any]]:
    """Serious and critical WCAG 2.0/2.1 A and AA violations on the current page."""
    d.execute_script(AXE)
    result = d.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "axe.run(document, {runOnly: {type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa']}})"
        ".then(r => done(JSON.stringify(r.violations))).catch(e => done(JSON.stringify([{id: 'axe', impact: 'critical', help: String(e)}])));")
    found = json.loads(result)
    return [{"id": v["id"], "impact": v["impact"], "help": v["help"],
             "nodes": [n.get("target") for n in v.get("nodes", [])][:3]}
            for v in found if v.get("impact") in ("serious", "critical")]


@pytest.mark.parametrize("size", [(800, 480), (1366, 768)])
def test_no_serious_violations_on_any_page(web_hub: WebHub, browser: Any, size: tuple[int, int]) -> None:
    hub, d = web_hub, browser
    d.set_script_timeout(30)
    d.set_window_size(*size)
    hub.command("staff.set", staff="S-7", code=STAFF_CODE)
    comp, code = store_parcel(hub, "P-300")
    pages: dict[str, list[dict[str, Any]]] = {}
    d.get(f"{hub.base}/kiosk")
    pages["kiosk start"] = violations(d)
    submit(d, d.find_element(By.ID, "pickup"))
    pages["kiosk keypad"] = violations(d)
    type_code(d, "111111")
    submit(d, d.find_element(By.ID, "submit"))
    pages["kiosk wrong"] = violations(d)
    d.get(f"{hub.base}/kiosk/pickup")
    type_code(d, code)
    submit(d, d.find_element(By.ID, "submit"))
    pages["kiosk opened"] = violations(d)
    sign_in(hub, d, "000000")
    pages["staff sign-in refused"] = violations(d)
    sign_in(hub, d)
    for path in ("/staff", "/staff/stock?q=NONE", "/staff/lockers", "/staff/printing", "/staff/events"):
        d.get(f"{hub.base}{path}")
        pages[path] = violations(d)
    bad = {page: v for page, v in pages.items() if v}
    assert not bad, json.dumps(bad, indent=1)
