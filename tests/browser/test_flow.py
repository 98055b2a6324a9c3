"""End to end in a real browser (Debian's headless Chromium driven by Playwright, no browser download):
a fresh instance served by `python app.py` on a free port -> /setup -> sign in -> connect the paper
broker -> create an API key -> place a LIMIT order far from the market through the REST API -> see it
open on the order book -> cancel it with the button (accepting the confirm dialog) -> it shows
cancelled -> the dashboard's equity curve and the latency histogram draw -> sign out. A screenshot of
each page is saved under the test's folder in pytest's basetemp (its path is printed).

Skipped only when /usr/bin/chromium is missing outside CI; in CI
(CI=true) scripts/test.sh installs chromium, and a missing browser fails the test.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import requests

from tests.helpers.browser import chromium, require_chromium, web_server

USERNAME, PASSWORD = "owner", "browser-test-pass"
TIMEOUT_MS = 15_000

require_chromium()

# Non-transparent pixels of a canvas (Chart.js draws into its 2d context).
PAINTED_PIXELS_JS = """(id) => {
  const c = document.getElementById(id);
  if (!c || c.hidden || !c.width || !c.height) { return 0; }
  const data = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
  let n = 0;
  for (let i = 3; i < data.length; i += 4) { if (data[i] !== 0) { n++; } }
  return n;
}"""


@pytest.fixture
def server(tmp_path):
    """`python app.py` on a free port, on a fresh instance, snapshots every second for the equity curve."""
    with web_server(tmp_path, SCHEDULER_ENABLED="true", SCHEDULER_INTERVAL="1", SNAPSHOT_INTERVAL="1") as (base, _):
        yield base


@pytest.fixture
def shots(tmp_path):
    folder = tmp_path / "screenshots"
    folder.mkdir()
    print(f"\nbrowser test screenshots: {folder}")  # noqa: T201 - where to look
    return folder


def test_setup_order_cancel_latency_logout(server, shots):
    with chromium() as browser:
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.set_default_timeout(TIMEOUT_MS)
        run_flow(page, server, shots)


def run_flow(page, base: str, shots: Path) -> None:
    def shot(name: str) -> None:
        page.screenshot(path=str(shots / f"{len(list(shots.iterdir())) + 1:02d}-{name}.png"), full_page=True)

    # A fresh instance offers the setup, which signs the new admin in.
    page.goto(f"{base}/")
    assert page.url.endswith("/setup")
    page.fill("input[name=username]", USERNAME)
    page.fill("input[name=password]", PASSWORD)
    page.fill("input[name=confirm]", PASSWORD)
    shot("setup")
    page.click("button[type=submit]")
    page.wait_for_url(f"{base}/dashboard")
    shot("dashboard-first")

    # Sign out and in again through the login page.
    page.click("form[action='/auth/logout'] button")
    page.wait_for_url("**/auth/login")
    page.fill("input[name=username]", USERNAME)
    page.fill("input[name=password]", PASSWORD)
    shot("login")
    page.click("button[type=submit]")
    page.wait_for_url(f"{base}/dashboard")
    assert page.locator("#dash-mode .badge-analyze").count() == 1

    # Connect the paper broker.
    page.goto(f"{base}/broker")
    page.click("form[action='/broker/connect/paper'] button")
    page.wait_for_url(f"{base}/broker")
    assert "Connected to paper" in page.inner_text("main")
    shot("broker")

    # Create an API key; it is shown once.
    page.goto(f"{base}/apikey")
    page.fill("input[name=name]", "browser")
    page.click("form[action='/apikey'] button[type=submit]")
    key = page.inner_text("#new-key").strip()
    assert len(key) >= 32
    shot("apikey")

    # A LIMIT order far below the market stays open.
    resp = requests.post(f"{base}/api/v1/placeorder", timeout=10, json={
        "apikey": key, "strategy": "browser", "symbol": "INFY", "exchange": "NSE", "action": "BUY",
        "quantity": 1, "pricetype": "LIMIT", "product": "MIS", "price": "1"})
    body = resp.json()
    assert resp.status_code == 200, body
    assert body["status"] == "success", body
    orderid = body["orderid"]

    # On the order book; cancelled through the button and its confirm dialog.
    page.goto(f"{base}/orderbook")
    row = page.locator(f"tr[data-order-id='{orderid}']")
    assert row.locator(".status").inner_text().strip() == "open"
    shot("orderbook-open")
    dialogs: list[str] = []

    def accept(dialog) -> None:
        dialogs.append(dialog.message)
        dialog.accept()

    page.once("dialog", accept)
    with page.expect_navigation():
        row.locator("button.js-cancel").click()
    assert dialogs
    assert dialogs[0].startswith(f"Cancel order {orderid}")
    row = page.locator(f"tr[data-order-id='{orderid}']")
    assert row.locator(".status").inner_text().strip() == "cancelled"
    assert row.locator("button.js-cancel").count() == 0
    shot("orderbook-cancelled")

    # The dashboard draws the equity curve from the scheduler's snapshots (one a minute here, taken
    # since the order opened the paper account) and the current equity.
    wait_for_chart(page, f"{base}/dashboard", "equity-curve")
    shot("dashboard-equity")

    # The latency page draws its histogram (the order calls' timings reach the log through the
    # background writer: reload until they are there).
    wait_for_chart(page, f"{base}/logs/latency", "latency-histogram")
    shot("latency")

    # Sign out: the pages are closed again.
    page.click("form[action='/auth/logout'] button")
    page.wait_for_url("**/auth/login")
    shot("signed-out")
    page.goto(f"{base}/orderbook")
    assert "/auth/login" in page.url
    assert len(list(shots.iterdir())) == 10


def wait_for_chart(page, url: str, canvas_id: str, seconds: float = 20) -> None:
    """Load `url` until its canvas `canvas_id` has painted pixels (what it draws may reach the
    database a moment later, through the log writer or the scheduler)."""
    deadline = time.monotonic() + seconds
    while True:
        resp = page.goto(url)
        assert resp is not None, f"{url} answered {resp and resp.status}"
        assert resp.status == 200, f"{url} answered {resp and resp.status}"
        if page.evaluate(PAINTED_PIXELS_JS, canvas_id) > 0:
            return
        assert time.monotonic() < deadline, f"the canvas #{canvas_id} of {url} stayed empty"
        time.sleep(0.5)
