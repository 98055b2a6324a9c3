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

import os
import secrets
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
from cryptography.fernet import Fernet

from tests.helpers.browser import CHROMIUM, CHROMIUM_ARGS, IN_CI, require_chromium

ROOT = Path(__file__).resolve().parents[2]
USERNAME, PASSWORD = "owner", "browser-test-pass"
TIMEOUT_MS = 15_000

require_chromium()
from playwright.sync_api import sync_playwright  # noqa: E402 - only once the browser is known to be there

# Non-transparent pixels of a canvas (Chart.js draws into its 2d context).
PAINTED_PIXELS_JS = """(id) => {
  const c = document.getElementById(id);
  if (!c || c.hidden || !c.width || !c.height) { return 0; }
  const data = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
  let n = 0;
  for (let i = 3; i < data.length; i += 4) { if (data[i] !== 0) { n++; } }
  return n;
}"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def server(tmp_path):
    """`python app.py` (gunicorn, the embedded SQLite default) on a free port, on a fresh instance."""
    instance = tmp_path / "instance"
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLASK_")}
    env.update({
        "INSTANCE_PATH": str(instance), "DATABASE_URL": f"sqlite:///{instance / 'algobridge.db'}",
        "AUTO_MIGRATE": "true", "SAMPLE_CONTRACT": "true", "SCHEDULER_ENABLED": "true",
        "SCHEDULER_INTERVAL": "1", "SNAPSHOT_INTERVAL": "1", "REDIS_URL": "",
        "ANALYZE_MARKET_HOURS": "always",  # the flow runs at any hour  # snapshots for the equity curve
        "HOST": "127.0.0.1", "PORT": str(port), "WEB_WORKERS": "1", "WEB_THREADS": "4", "LOG_LEVEL": "WARNING",
        "SECRET_KEY": secrets.token_urlsafe(48), "API_KEY_PEPPER": secrets.token_urlsafe(48),
        "TOKEN_ENCRYPTION_KEYS": Fernet.generate_key().decode(),
    })
    log_path = tmp_path / "server.log"
    with open(log_path, "wb") as log_file:
        proc = subprocess.Popen([sys.executable, "app.py"], cwd=ROOT, env=env, stdout=log_file,  # noqa: S603
                                stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 45
        while True:
            if proc.poll() is not None:
                pytest.fail(f"the server exited ({proc.returncode}):\n{log_path.read_text()[-3000:]}")
            try:
                if requests.get(f"{base}/health", timeout=2).status_code in (200, 503):
                    break
            except requests.ConnectionError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"the server did not answer in 45 s:\n{log_path.read_text()[-3000:]}")
            time.sleep(0.2)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


@pytest.fixture
def shots(tmp_path):
    folder = tmp_path / "screenshots"
    folder.mkdir()
    print(f"\nbrowser test screenshots: {folder}")  # noqa: T201 - where to look
    return folder


def test_setup_order_cancel_latency_logout(server, shots):
    if IN_CI and not os.access(CHROMIUM, os.X_OK):
        pytest.fail(f"{CHROMIUM} is missing in CI: scripts/test.sh should have installed it")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.set_default_timeout(TIMEOUT_MS)
            run_flow(page, server, shots)
        finally:
            browser.close()


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
