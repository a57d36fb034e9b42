"""The locker kiosk in a real browser: pickup, wrong and expired codes, the
lock-out countdown, return drop-off, languages; screenshots of every screen."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from hubproc import wait_until
from web_harness import (SIZES, WebHub, browser, on_screen, screenshot, set_inner_size,  # noqa: F401
                         submit, web_hub)


def settle(hub: WebHub, predicate: Any, what: str, timeout: float = 15.0) -> Any:
    """Wait for device threads, moving the manual clock a little each time."""
    def step() -> Any:
        hub.clock.advance(0.05)
        return predicate()
    return wait_until(step, timeout, what, interval=0.02)


def compartment(hub: WebHub, name: str) -> dict[str, Any]:
    return hub.status()["lockers"]["banks"]["bank-a"]["compartments"][name]  # type: ignore[no-any-return]


def store_parcel(hub: WebHub, parcel: str, size: str = "S", **assign: Any) -> tuple[str, str]:
    """Assign, load by scan, close the door: (compartment, pickup code)."""
    comp = hub.command("parcel.assign", parcel=parcel, size=size, **assign)["compartment"]
    hub.sim("scanners", "front", "scan", code=f"HA:PCL:{parcel}")
    settle(hub, lambda: compartment(hub, comp)["door"] == "open", f"{comp} open for loading")
    hub.sim("lockers", "bank-a", "close", compartment=comp)
    stored = settle(hub, lambda: [e for e in hub.events("parcel.stored") if e["parcel"] == parcel],
                    f"{parcel} stored")
    return comp, stored[0]["pickup_code"]


def type_code(driver: Any, code: str) -> None:
    for digit in code:
        driver.find_element(By.CSS_SELECTOR, f'[data-key="{digit}"]').click()
    assert driver.find_element(By.ID, "code").get_attribute("value") == code


def outcome(driver: Any) -> str:
    return driver.find_element(By.ID, "result").get_attribute("data-outcome")  # type: ignore[no-any-return]


def test_pickup_and_wrong_code(web_hub: WebHub, browser: Any) -> None:
    hub, d = web_hub, browser
    comp, code = store_parcel(hub, "P-100")

    d.get(f"{hub.base}/kiosk")
    screenshot(d, "kiosk-start")
    submit(d, d.find_element(By.ID, "pickup"))
    screenshot(d, "kiosk-keypad")
    type_code(d, code)
    submit(d, d.find_element(By.ID, "submit"))
    assert outcome(d) == "opened"
    assert d.find_element(By.ID, "door").text == comp
    assert "Take your parcel" in d.page_source
    assert "by the entrance" in d.page_source  # [web] where
    screenshot(d, "kiosk-opened")
    settle(hub, lambda: compartment(hub, comp)["door"] == "open", f"{comp} open for the customer")
    hub.sim("lockers", "bank-a", "close", compartment=comp)
    settle(hub, lambda: [e for e in hub.events("parcel.picked_up") if e["parcel"] == "P-100"],
           "the pickup recorded")

    # The same code again: it was spent.
    d.get(f"{hub.base}/kiosk/pickup")
    type_code(d, code)
    submit(d, d.find_element(By.ID, "submit"))
    assert outcome(d) == "wrong"
    assert "not right" in d.find_element(By.ID, "message").text
    screenshot(d, "kiosk-wrong")


def test_lockout_countdown_then_return_drop_off(web_hub: WebHub, browser: Any) -> None:
    hub, d = web_hub, browser
    # Wrong codes until the kiosk is locked out: the countdown shows and OK is disabled.
    for _ in range(10):
        d.get(f"{hub.base}/kiosk/pickup")
        type_code(d, "000000")
        submit(d, d.find_element(By.ID, "submit"))
        if outcome(d) == "locked_out" or d.find_elements(By.CSS_SELECTOR, "[data-countdown]"):
            break
    d.get(f"{hub.base}/kiosk/pickup")
    lockout = d.find_element(By.ID, "lockout")
    assert "Try again in" in lockout.text
    assert not d.find_element(By.ID, "submit").is_enabled()
    screenshot(d, "kiosk-locked-out")
    # On the Pi's 800x480 touchscreen the notice must not push Back off the screen.
    set_inner_size(d, *SIZES["pi-touch"])
    assert on_screen(d, "lockout") and on_screen(d, "back") and on_screen(d, "submit")
    set_inner_size(d, *SIZES["laptop"])
    assert hub.events("locker.lockout")[-1]["source"] == "kiosk"

    # The lock-out ends on the hub's clock; then a return drop-off by code works.
    hub.clock.advance(3600)
    hub.command("return.expect", **{"return": "R-9", "size": "M", "code": "135790"})
    d.get(f"{hub.base}/kiosk")
    submit(d, d.find_element(By.ID, "return"))
    type_code(d, "135790")
    submit(d, d.find_element(By.ID, "submit"))
    assert outcome(d) == "opened", d.page_source
    assert "Put your parcel inside" in d.page_source


def test_expired_code_and_languages(web_hub: WebHub, browser: Any) -> None:
    hub, d = web_hub, browser
    soon = (hub.clock.now() + timedelta(hours=1)).isoformat().replace("+00:00", "Z")
    comp, code = store_parcel(hub, "P-200", expires_at=soon)
    hub.clock.advance(2 * 3600.0)  # time passes (a wall-clock jump alone would be distrusted)

    d.get(f"{hub.base}/kiosk/lang/de")
    assert "Paket abholen" in d.page_source
    submit(d, d.find_element(By.ID, "pickup"))
    type_code(d, code)
    submit(d, d.find_element(By.ID, "submit"))
    assert outcome(d) == "expired", d.page_source
    assert "abgelaufen" in d.find_element(By.ID, "message").text
    screenshot(d, "kiosk-expired-de")
    d.get(f"{hub.base}/kiosk/lang/fr")
    assert "Retirer un colis" in d.page_source
    d.get(f"{hub.base}/kiosk/lang/en")


# The page's timers on a manual clock, like the hub's: installed before any script runs.
MANUAL_TIMERS = """
(() => {
  let now = 0, seq = 0; const due = [];
  window.setTimeout = (fn, ms) => { const id = ++seq; due.push({id, at: now + (ms || 0), fn}); return id; };
  window.clearTimeout = (id) => { const i = due.findIndex(t => t.id === id); if (i >= 0) due.splice(i, 1); };
  window.__advance = (ms) => {
    const until = now + ms;
    for (;;) {
      due.sort((a, b) => a.at - b.at);
      if (!due.length || due[0].at > until) break;
      const t = due.shift(); now = t.at; t.fn();
    }
    now = until;
  };
})();
"""


def test_kiosk_idle_returns_to_start(web_hub: WebHub, browser: Any) -> None:
    hub, d = web_hub, browser
    script = d.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": MANUAL_TIMERS})
    try:
        d.get(f"{hub.base}/kiosk/pickup")
        type_code(d, "12")  # a touch restarts the idle timer
        d.execute_script("window.__advance(44000)")
        assert d.current_url.endswith("/kiosk/pickup")
        d.execute_script("window.__advance(2000)")  # 46 s without a touch: [web] kiosk_idle_s is 45
        WebDriverWait(d, 10).until(lambda drv: drv.current_url.endswith("/kiosk"))
        assert d.find_element(By.ID, "pickup")
    finally:
        d.execute_cdp_cmd("Page.removeScriptToEvaluateOnNewDocument", {"identifier": script["identifier"]})


def test_return_with_no_room_tells_the_customer(web_hub: WebHub, browser: Any) -> None:
    hub, d = web_hub, browser
    for comp in ("A5", "A6"):  # both large compartments are out of service
        hub.command("locker.service", bank="bank-a", compartment=comp, in_service=False, reason="repair")
    hub.command("return.expect", **{"return": "R-L", "size": "L", "code": "246813"})
    d.get(f"{hub.base}/kiosk")
    submit(d, d.find_element(By.ID, "return"))
    type_code(d, "246813")
    submit(d, d.find_element(By.ID, "submit"))
    assert outcome(d) == "no_space", d.page_source
    assert "No compartment of the right size is free" in d.page_source
    screenshot(d, "kiosk-return-no-space")
    refused = settle(hub, lambda: hub.events("return.refused"), "return.refused")[0]
    assert refused == {**refused, "return": "R-L", "reason": "no_compartment", "size": "L"}
    assert {compartment(hub, c)["state"] for c in ("A5", "A6")} == {"free"}
