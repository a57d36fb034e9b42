"""The pages under test: an in-process hub with every device simulated, on a
manual clock, serving its web pages on a free port; and headless Chromium.

Chromium and chromedriver come from Debian's ``chromium`` and
``chromium-driver`` (``make install``). As root (CI) Chromium needs
``--no-sandbox``; the background-networking flags keep it from calling out.
"""

from __future__ import annotations

import json
import os
import shutil
import tomllib
from importlib import resources
from pathlib import Path
from typing import Any, Iterator

import pytest

from corethread import CoreThread
from hubagent.app import build_app
from hubagent.clock import ManualClock
from hubagent.config import from_dict

CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
SCREENSHOTS = Path(os.environ.get("HUBAGENT_ARTIFACTS", Path(__file__).resolve().parent.parent / "artifacts")) \
    / "screenshots"
SIZES = {"pi-touch": (800, 480), "laptop": (1366, 768)}


class WebHub(CoreThread):
    """A sim hub on its own loop thread, with its pages on 127.0.0.1 and a manual clock."""

    def __init__(self, state: Path, **web: Any) -> None:
        doc = tomllib.loads(resources.files("hubagent").joinpath("sim.toml").read_text())
        doc["hub"]["state_dir"] = str(state)
        doc["web"] = {**doc.get("web", {}), "listen": "127.0.0.1:0", **web}
        self.clock = ManualClock()
        super().__init__(build_app(from_dict(doc, "<web test>"), simulated=True, clock=self.clock))
        urls = self.call(lambda: self.app.status()["web"]["urls"])
        assert urls, self.call(lambda: self.app.status()["alerts"])
        self.base = urls[0].rsplit("/", 1)[0]

    def sim(self, role: str, name: str | None, verb: str, **args: Any) -> dict[str, Any]:
        """A simulated device's verb."""
        return self.call(lambda: self.app.sim_command(role, name, verb, args))  # type: ignore[no-any-return]

    def status(self) -> dict[str, Any]:
        """The status document."""
        return self.call(self.app.status)  # type: ignore[no-any-return]

    def events(self, kind: str) -> list[dict[str, Any]]:
        """Event payloads of one kind, oldest first."""
        rows = self.call(lambda: self.app.store.query(
            "SELECT data FROM outbox WHERE kind=? ORDER BY seq", (kind,)))
        return [json.loads(r["data"]) for r in rows]


@pytest.fixture
def web_hub(tmp_path: Path, mock_pins: Any) -> Iterator[WebHub]:
    """A running sim hub with its pages."""
    hub = WebHub(tmp_path / "state")
    try:
        yield hub
    finally:
        hub.close()


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """Headless Chromium driven by Selenium through Debian's chromedriver."""
    if not Path(CHROMEDRIVER).exists():
        pytest.fail("chromedriver is missing: `make install` installs Debian's chromium-driver")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--no-first-run", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--disable-quic", "--hide-scrollbars", "--force-device-scale-factor=1",
                 "--lang=en-US"):
        opts.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    driver.set_page_load_timeout(20)
    driver.implicitly_wait(5)
    try:
        yield driver
    finally:
        driver.quit()


def screenshot(driver: Any, name: str) -> list[Path]:
    """Save the current page at the Pi touchscreen's and a laptop's size."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    saved = []
    for label, (w, h) in SIZES.items():
        set_inner_size(driver, w, h)
        path = SCREENSHOTS / f"{name}-{label}-{w}x{h}.png"
        driver.save_screenshot(str(path))
        saved.append(path)
    driver.set_window_size(*SIZES["laptop"])
    return saved


def set_inner_size(driver: Any, width: int, height: int) -> None:
    """Make the page's viewport ``width`` x ``height`` (a screen's own size)."""
    driver.set_window_size(width, height)
    # The window includes no browser chrome in headless mode, but make sure.
    inner = driver.execute_script("return [window.innerWidth, window.innerHeight]")
    driver.set_window_size(width + (width - inner[0]), height + (height - inner[1]))


def on_screen(driver: Any, element_id: str) -> bool:
    """Whether the element is wholly inside the viewport, without scrolling."""
    return bool(driver.execute_script(
        "const r = document.getElementById(arguments[0]).getBoundingClientRect();"
        "return r.top >= 0 && r.left >= 0 && r.bottom <= window.innerHeight"
        " && r.right <= window.innerWidth;", element_id))


def submit(driver: Any, element: Any) -> None:
    """Click ``element`` (a submit button or link) and wait for the next page to load."""
    from selenium.common.exceptions import WebDriverException
    from selenium.webdriver.support.ui import WebDriverWait

    # Mark the current document, then wait for a complete document without the
    # mark. Asking about the old <html> element instead races the navigation:
    # Chromium sometimes answers "Node with given id does not belong to the
    # document" as an unknown error rather than as a stale element.
    driver.execute_script("window.__hubagentOld = true")
    element.click()
    WebDriverWait(driver, 15, ignored_exceptions=(WebDriverException,)).until(
        lambda d: d.execute_script(
            "return !window.__hubagentOld && document.readyState === 'complete'"
        )
    )
