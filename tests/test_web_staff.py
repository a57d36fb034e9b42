"""The staff page in a real browser: sign-in, the live dashboard, a count, a
compartment opened with a reason, a reprint, and CSRF refusal."""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from selenium.common.exceptions import StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from test_web_kiosk import compartment, settle
from web_harness import WebHub, browser, screenshot, submit, web_hub  # noqa: F401

STAFF_CODE = "246801"


def sign_in(hub: WebHub, d: Any, code: str = STAFF_CODE) -> None:
    d.delete_all_cookies()
    d.get(f"{hub.base}/staff/login")
    d.find_element(By.ID, "code").send_keys(code)
    submit(d, d.find_element(By.ID, "signin"))


def wait_for(d: Any, check: Any, timeout: float = 10.0) -> Any:
    """Wait for ``check(driver)``; htmx swapping a part away mid-check is retried."""
    return WebDriverWait(d, timeout, ignored_exceptions=(StaleElementReferenceException,)).until(check)


def wait_text(d: Any, element_id: str, text: str, timeout: float = 10.0) -> None:
    wait_for(d, lambda drv: text in drv.find_element(By.ID, element_id).text, timeout)


def test_unregistered_code_signs_nobody_in(web_hub: WebHub, browser: Any) -> None:
    hub, d = web_hub, browser
    hub.command("staff.set", staff="S-7", code=STAFF_CODE)
    sign_in(hub, d, "999999")  # a home-made code: not registered
    assert "not registered" in d.find_element(By.ID, "problem").text
    screenshot(d, "staff-login-refused")
    d.get(f"{hub.base}/staff")
    assert d.current_url.endswith("/staff/login")
    assert hub.events("locker.code_rejected")[-1]["source"].startswith("web-")


def sign_in_badge(hub: WebHub, d: Any, badge: str, pin: str) -> None:
    d.delete_all_cookies()
    d.get(f"{hub.base}/staff/login")
    d.find_element(By.ID, "badge").send_keys(badge)
    if pin:
        d.find_element(By.ID, "pin").send_keys(pin)
    submit(d, d.find_element(By.ID, "signin"))


def test_badge_and_pin_sign_in_checks_the_registry(web_hub: WebHub, browser: Any) -> None:
    hub, d = web_hub, browser
    hub.command("staff.set", staff="S-9", badge="Q4-s9-badge", pin="8642")
    hub.command("staff.set", staff="S-10", badge="Q4-s10-badge")  # a badge with no PIN
    attempts = [("HA-mallory", "8642"), ("Q4-s9-badge", "1111"), ("Q4-s9-badge", ""), ("Q4-s10-badge", "")]
    for badge, pin in attempts:  # unregistered, wrong PIN, no PIN, a badge alone
        sign_in_badge(hub, d, badge, pin)
        assert "not registered" in d.find_element(By.ID, "problem").text
        d.get(f"{hub.base}/staff")
        assert d.current_url.endswith("/staff/login")
    rejected = hub.events("locker.code_rejected")
    assert [e["reason"] for e in rejected] == ["unknown_staff", "wrong_pin", "wrong_pin", "wrong_pin"]
    assert {e["source"] for e in rejected} == {"web-127.0.0.1"}
    sign_in_badge(hub, d, "Q4-s9-badge", "8642")
    assert d.current_url.endswith("/staff") and "Signed in as S-9" in d.page_source
    # Revoked: the same badge and PIN sign nobody in.
    hub.command("staff.revoke", staff="S-9")
    sign_in_badge(hub, d, "Q4-s9-badge", "8642")
    assert "not registered" in d.find_element(By.ID, "problem").text


def test_failed_sign_ins_lock_out_the_address_not_the_keypad(web_hub: WebHub, browser: Any) -> None:
    hub, d = web_hub, browser
    hub.command("staff.set", staff="S-7", code=STAFF_CODE)
    for _ in range(5):  # max_failures of the sim config
        sign_in(hub, d, "999999")
    locked = hub.events("locker.lockout")[-1]
    assert locked["input"] == "web:127.0.0.1" and locked["source"] == "web-127.0.0.1"
    sign_in(hub, d, STAFF_CODE)
    assert d.find_element(By.ID, "problem") and d.current_url.endswith("/staff/login")
    # The keypad of the hub is not locked out by the browser's failures.
    assert hub.status()["lockers"]["lockouts"].keys() == {"web:127.0.0.1"}


def test_dashboard_lives_and_actions_are_commands(web_hub: WebHub, browser: Any) -> None:
    hub, d = web_hub, browser
    hub.command("staff.set", staff="S-7", code=STAFF_CODE)
    sign_in(hub, d)
    assert d.current_url.endswith("/staff")
    assert "Signed in as S-7" in d.page_source
    assert d.find_element(By.ID, "state").get_attribute("data-state") == "ok"
    screenshot(d, "staff-dashboard")

    # Live: a printer runs out of paper, the page says so without a reload.
    marker = d.execute_script("window.__same_page = 1; return 1;")
    hub.sim("printers", "label", "paper-out")
    settle(hub, lambda: "device:printers/label" in hub.status()["alerts"], "the paper-out alert")
    hub.clock.advance(0.5)  # the live stream coalesces changes for a quarter second
    wait_text(d, "summary", "label")
    wait_for(d, lambda drv: drv.find_element(By.ID, "state").get_attribute("data-state") == "alert")
    assert d.execute_script("return window.__same_page") == marker  # no reload happened
    screenshot(d, "staff-dashboard-paper-out")

    # Live: mains power is lost.
    hub.sim("power", None, "battery")
    settle(hub, lambda: hub.status()["power"]["state"] == "on_battery", "the power change (after confirm_s)")
    hub.clock.advance(0.5)
    wait_for(d, lambda drv: drv.find_element(By.ID, "power-state").text == "on_battery")

    # A count through the page is a stock.count command by S-7.
    hub.command("catalog.upsert", items=[{"sku": "TEA-1", "name": "Green tea"}])
    hub.command("stock.adjust", sku="TEA-1", bin="A-01", delta=7, reason="delivery")
    d.get(f"{hub.base}/staff/stock?q=green")  # by part of the name
    assert d.find_element(By.ID, "on-hand").text == "7"
    screenshot(d, "staff-stock")
    d.find_element(By.ID, "count-bin").clear()
    d.find_element(By.ID, "count-bin").send_keys("A-01")
    d.find_element(By.ID, "counted").send_keys("5")
    submit(d, d.find_element(By.ID, "count-submit"))
    assert d.find_element(By.ID, "on-hand").text == "5"
    inbox = hub.call(lambda: hub.app.store.query(
        "SELECT name, reply FROM inbox WHERE name='stock.count' ORDER BY rowid DESC LIMIT 1"))
    assert json.loads(inbox[0]["reply"])["ok"] is True

    # A compartment opened with a reason: audited with who did it.
    d.get(f"{hub.base}/staff/lockers")
    screenshot(d, "staff-lockers")
    d.find_element(By.ID, "reason-A3").send_keys("cleaning")
    submit(d, d.find_element(By.ID, "open-A3"))
    assert "Done." in d.find_element(By.ID, "reply").text
    settle(hub, lambda: compartment(hub, "A3")["door"] == "open", "A3 open")
    audit = hub.call(lambda: hub.app.store.query(
        "SELECT detail FROM locker_audit WHERE compartment='A3' ORDER BY seq"))
    assert any("cleaning" in (r["detail"] or "") for r in audit), audit
    hub.sim("lockers", "bank-a", "close", compartment="A3")

    # A compartment taken out of service from the page (the locker.service command), then put back.
    d.get(f"{hub.base}/staff/lockers")
    d.find_element(By.ID, "service-reason-A4").send_keys("hinge broken")
    submit(d, d.find_element(By.ID, "service-A4"))
    assert "Done." in d.find_element(By.ID, "reply").text
    assert compartment(hub, "A4")["out_of_service"]["reason"] == "hinge broken"
    assert "hinge broken" in d.find_element(By.CSS_SELECTOR, '[data-compartment="bank-a/A4"]').text
    submit(d, d.find_element(By.ID, "service-A4"))
    assert "Done." in d.find_element(By.ID, "reply").text
    assert compartment(hub, "A4")["in_service"] is True

    # A reprint of a printed label.
    hub.sim("printers", "label", "paper-in")
    hub.command("print", template="bin", fields={"bin": "A-01"}, id="label-1")
    settle(hub, lambda: any(j["job"] == "label-1" and j["state"] == "done"
                            for j in hub.command("print.jobs")["jobs"]), "label-1 printed")
    d.get(f"{hub.base}/staff/printing")
    screenshot(d, "staff-printing")
    row = d.find_element(By.CSS_SELECTOR, '[data-job="label-1"]')
    submit(d, row.find_element(By.XPATH, ".//button[contains(., 'Reprint')]"))
    assert "Done." in d.find_element(By.ID, "reply").text
    settle(hub, lambda: any(j["job"].startswith("label-1~r") for j in hub.command("print.jobs")["jobs"]),
           "the reprint")
    assert d.find_elements(By.CSS_SELECTOR, ".previews img")

    # The command sheet downloads as a PNG whose barcodes decode to the mode codes.
    href = d.find_element(By.ID, "command-sheet").get_attribute("href")
    cookie = d.get_cookie("hubagent_session")["value"]
    png = urllib.request.urlopen(urllib.request.Request(
        href, headers={"Cookie": f"hubagent_session={cookie}"}), timeout=20).read()
    import io

    import zxingcpp
    from PIL import Image

    texts = {r.text for r in zxingcpp.read_barcodes(Image.open(io.BytesIO(png)))}
    assert {"HA:MODE:RECEIVE", "HA:MODE:PICK", "HA:DONE"} <= texts, texts

    d.get(f"{hub.base}/staff/events?kind=locker.")
    assert "locker.opened" in d.find_element(By.ID, "events").text
    screenshot(d, "staff-events")


def test_a_post_without_the_csrf_token_is_refused(web_hub: WebHub, browser: Any) -> None:
    hub, d = web_hub, browser
    hub.command("staff.set", staff="S-7", code=STAFF_CODE)
    sign_in(hub, d)
    cookie = d.get_cookie("hubagent_session")["value"]
    body = urllib.parse.urlencode({"bank": "bank-a", "compartment": "A1", "reason": "x",
                                   "csrf": "forged"}).encode()
    req = urllib.request.Request(f"{hub.base}/staff/lockers/open", data=body, method="POST",
                                 headers={"Cookie": f"hubagent_session={cookie}"})
    try:
        urllib.request.urlopen(req, timeout=10)
        raise AssertionError("a forged form was accepted")
    except urllib.error.HTTPError as e:
        assert e.code == 403
        assert "expired" in e.read().decode()
    assert not hub.events("locker.opened")
    # The kiosk refuses a forged code form too.
    req = urllib.request.Request(f"{hub.base}/kiosk/pickup", data=b"code=123456", method="POST")
    try:
        urllib.request.urlopen(req, timeout=10)
        raise AssertionError("a kiosk form without a token was accepted")
    except urllib.error.HTTPError as e:
        assert e.code == 403
