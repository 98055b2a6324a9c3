"""Pages that follow the feed, in a real browser (Debian's headless Chromium driven by Playwright): a fresh
instance served by `python app.py` and the feed (`python -m feed`) beside it, each on a free port.

- The dashboard's last price, P&L and totals of an open position change with the feed's ticks, without a
  reload. The page is rendered at a broker quote stored a few rupees off the market; the feed's analyze
  source ticks from the simulator, so the first tick moves the figures (the page's own refresh re-reads the
  stored quote and cannot).
- A rejected order (analyze mode, insufficient funds) raises its notice, with the reason, on the open page
  without a reload; it stays until acknowledged, and acknowledging it is stored.
- Without the socket (WebSocket refused in the page) the indicator says so and the order book still
  follows the orders, through its periodic refresh.

Skipped only when /usr/bin/chromium is missing outside CI (as tests/browser/test_flow.py), or when the
feed package is not there to be run.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from decimal import Decimal

import pytest
import requests

from tests.helpers.browser import (
    ROOT,
    chromium,
    free_port,
    listening,
    require_chromium,
    start,
    stop,
    wait_until,
    web_server,
)

USERNAME, PASSWORD = "owner", "browser-test-pass"
TIMEOUT_MS = 15_000
OFF_MARKET = Decimal("7.35")  # how far from the simulator the stored quote the page renders is

require_chromium()
if importlib.util.find_spec("feed") is None or importlib.util.find_spec("feed.__main__") is None:
    pytest.skip("the feed package (python -m feed) is not in this tree", allow_module_level=True)

STORE_QUOTE = """
import sys
from decimal import Decimal
from app import create_app
from database.unit import unit_of_work
from services.market import quotes
app = create_app({"SETUP_ENVIRONMENT": False, "SCHEDULER_ENABLED": False, "SAMPLE_CONTRACT": False})
with app.app_context(), unit_of_work():
    quotes.store_quote(sys.argv[2], sys.argv[1], {"ltp": Decimal(sys.argv[3])}, source="browsertest")
"""


@pytest.fixture
def stack(tmp_path):
    """The web server and the feed on a fresh instance: (base URL, environment)."""
    ws_port = free_port()
    with web_server(tmp_path, SCHEDULER_ENABLED="true", WEBSOCKET_HOST="127.0.0.1", WEBSOCKET_PORT=str(ws_port),
                    WEBSOCKET_WITH_WEB="false") as (base, env):
        # After the web server: it migrated the database and loaded the sample contract the feed reads.
        feed_log = tmp_path / "feed.log"
        feed = start(["-m", "feed"], env, feed_log)
        try:
            wait_until(lambda: listening(ws_port), "the feed", feed, feed_log)
            yield base, env
        finally:
            stop(feed)


@pytest.fixture
def browser():
    with chromium() as browser:
        yield browser


def api(base: str, name: str, **body) -> dict:
    resp = requests.post(f"{base}/api/v1/{name}", json=body, timeout=10)
    return {"http": resp.status_code, **resp.json()}


def sign_up_with_key(page, base: str) -> str:
    """First run: the admin account, the paper broker, an API key (shown once); the key."""
    page.goto(f"{base}/")
    page.fill("input[name=username]", USERNAME)
    page.fill("input[name=password]", PASSWORD)
    page.fill("input[name=confirm]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{base}/dashboard")
    page.goto(f"{base}/broker")
    page.click("form[action='/broker/connect/paper'] button")
    page.wait_for_url(f"{base}/broker")
    page.goto(f"{base}/apikey")
    page.fill("input[name=name]", "live")
    page.click("form[action='/apikey'] button[type=submit]")
    return page.inner_text("#new-key").strip()


def text(page, selector: str) -> str:
    return page.inner_text(selector).strip()


def test_the_dashboard_follows_the_feed_and_rejections_stay_until_acknowledged(stack, browser, tmp_path):
    base, env = stack
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.set_default_timeout(TIMEOUT_MS)
    key = sign_up_with_key(page, base)

    bought = api(base, "placeorder", apikey=key, strategy="live", symbol="INFY", exchange="NSE", action="BUY",
                 quantity=10, pricetype="MARKET", product="MIS")
    assert bought["status"] == "success", bought
    market = Decimal(str(api(base, "quotes", apikey=key, symbol="INFY", exchange="NSE")["data"]["ltp"]))
    subprocess.run([sys.executable, "-c", STORE_QUOTE, "NSE", "INFY", str(market + OFF_MARKET)],  # noqa: S603
                   cwd=ROOT, env=env, check=True, timeout=60)

    page.goto(f"{base}/dashboard")
    page.evaluate("window.__sameDocument = true")  # gone if anything reloads the page
    row = "#dash-positions tr[data-key='NSE:INFY']"
    rendered = {"ltp": text(page, f"{row} [data-tick=ltp]"), "pnl": text(page, f"{row} [data-tick=pnl]"),
                "day": text(page, "#dash-day-pnl"), "equity": text(page, "#dash-equity")}
    assert rendered["ltp"] == f"₹{market + OFF_MARKET:,.2f}"  # below a lakh, Indian grouping is the same
    page.wait_for_selector("#live-status[data-state=live]")

    # The first tick (the simulator's price) moves the last price, the position's P&L and the totals.
    page.wait_for_function("([sel, was]) => document.querySelector(sel).textContent.trim() !== was",
                           arg=[f"{row} [data-tick=ltp]", rendered["ltp"]])
    now = {"ltp": text(page, f"{row} [data-tick=ltp]"), "pnl": text(page, f"{row} [data-tick=pnl]"),
           "day": text(page, "#dash-day-pnl"), "equity": text(page, "#dash-equity")}
    assert all(now[k] != rendered[k] for k in now), (rendered, now)
    assert page.evaluate("window.__sameDocument") is True
    page.screenshot(path=str(tmp_path / "dashboard-ticked.png"), full_page=True)

    # A rejected order: its notice, with the reason, on the open page.
    assert page.locator("#live-notices .live-notice").count() == 0
    rejected = api(base, "placeorder", apikey=key, strategy="live", symbol="INFY", exchange="NSE", action="BUY",
                   quantity=100000, pricetype="MARKET", product="CNC")
    assert rejected["status"] == "error", rejected
    notice = page.locator("#live-notices .live-notice")
    notice.first.wait_for()
    assert "Order rejected: BUY 100000 INFY" in notice.first.inner_text()
    assert "Insufficient funds" in notice.first.inner_text()
    assert page.evaluate("window.__sameDocument") is True
    assert text(page, "#live-status .live-label") == "live"
    page.screenshot(path=str(tmp_path / "dashboard-rejected.png"), full_page=True)

    # Every page shows it until it is acknowledged; then none does.
    page.goto(f"{base}/orderbook")
    assert "Insufficient funds" in text(page, "#live-notices")
    page.locator("#live-notices .js-ack").first.click()
    page.wait_for_function("() => !document.querySelector('#live-notices .live-notice')")
    page.goto(f"{base}/positions")
    assert page.locator("#live-notices .live-notice").count() == 0
    page.goto(f"{base}/logs/alerts?state=acknowledged")
    assert "Order rejected: BUY 100000 INFY" in text(page, "main")


def test_without_the_socket_the_order_book_refreshes_itself(stack, browser, tmp_path):
    base, _ = stack
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    # A network that refuses WebSockets (a proxy without upgrade support, say).
    context.add_init_script("window.WebSocket = function () { throw new Error('WebSockets are blocked'); };")
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    key = sign_up_with_key(page, base)

    page.goto(f"{base}/orderbook")
    page.evaluate("window.__sameDocument = true")
    page.wait_for_selector("#live-status[data-state=polling]")
    placed = api(base, "placeorder", apikey=key, strategy="live", symbol="SBIN", exchange="NSE", action="BUY",
                 quantity=1, pricetype="LIMIT", product="MIS", price="1")
    assert placed["status"] == "success", placed
    page.wait_for_selector(f"tr[data-order-id='{placed['orderid']}']")
    assert text(page, f"tr[data-order-id='{placed['orderid']}'] .status") == "open"
    assert page.evaluate("window.__sameDocument") is True
    page.screenshot(path=str(tmp_path / "orderbook-polled.png"), full_page=True)
    context.close()
