"""The trader's cockpit in a real browser (Debian's headless Chromium driven by Playwright): every page at
1366 px (laptop), 1920 px (desktop) and 390 px (phone), in the light and the dark theme.

One fresh instance served by `python app.py`, one browser, one context per theme (the dark one through the
system preference, prefers-color-scheme; the light one also flips the theme button and back). The account
holds an open order, a rejected one (so the order book shows its reason column) and filled ones (trades,
positions, a round trip). On every page:
- axe-core (vendored in tests/browser/vendor/, injected into the page) finds no "serious" or "critical"
  violation, in either theme (once per page and theme, at 1366 px);
- the navigation is one line at 1366 and 1920 px (its height is one link's, nothing in it overflows or
  runs under the user's corner), and collapses into the menu at 390 px; no page scrolls sideways at any
  width (a wide table scrolls inside its own box);
- a screenshot at each width is saved (the folder is printed: `screenshots/` under the test's tmp path).
On the order book at 1366 px the status, reason and action cells of the open and the rejected order lie
inside the viewport.

Skipped only when /usr/bin/chromium is missing outside CI (as tests/browser/test_flow.py).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from tests.helpers.browser import ROOT, chromium, require_chromium, web_server

AXE = Path(__file__).resolve().parent / "vendor" / "axe.min.js"
USERNAME, PASSWORD = "owner", "browser-test-pass"
TIMEOUT_MS = 15_000
WIDTHS = (1366, 1920, 390)
HEIGHT = 900

require_chromium()

# An API key and a strategy for the signed-up owner, written in the instance's database beside the server.
SEED = """
import json
from app import create_app
from database.enums import Platform
from services.accounts import api_keys, users
from services.strategies import strategy
app = create_app({"SETUP_ENVIRONMENT": False, "SCHEDULER_ENABLED": False, "SAMPLE_CONTRACT": False})
with app.app_context():
    owner = users.get_user("owner")
    _, key = api_keys.create_key(owner, "cockpit", ["orders", "read"])
    s, _ = strategy.create_strategy(users.Actor("owner", owner.id),
                                    strategy.StrategyInput("Cockpit trend", Platform.TRADINGVIEW.value))
    strategy.add_mapping(users.Actor("owner", owner.id), s.id, "INFY", "NSE", 1, "MIS")
    users.create_user("viewer1", "viewer-test-pass", "viewer", actor=users.Actor.cli())
    print(json.dumps({"key": key, "strategy": s.id}))
"""

AXE_RUN = """async () => {
  const tags = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "best-practice"];
  const result = await axe.run(document, {resultTypes: ["violations"], runOnly: {type: "tag", values: tags}});
  return result.violations.filter(v => v.impact === "serious" || v.impact === "critical").map(v => ({
    id: v.id, impact: v.impact, help: v.help,
    nodes: v.nodes.slice(0, 5).map(n => n.target.join(" ") + " :: "
                                   + (n.failureSummary || "").split("\\n").slice(0, 3).join(" "))
  }));
}"""

# The bar is one line: every visible item of the main navigation on one row, the bar no taller than one
# item (plus its padding), nothing overflowing it.
NAV_LINE_JS = """() => {
  const bar = document.querySelector(".topbar");
  const nav = document.querySelector(".mainnav");
  if (!bar || !nav) { return {missing: true}; }
  const items = Array.from(nav.children).filter(e => e.offsetParent !== null).map(e => e.getBoundingClientRect());
  const tops = new Set(items.map(r => Math.round(r.top)));
  const line = Math.max(...items.map(r => r.height));
  const who = document.querySelector(".whoami");
  return {rows: tops.size, navHeight: nav.getBoundingClientRect().height, line: line,
          barOverflow: bar.scrollWidth - bar.clientWidth, navOverflow: nav.scrollWidth - nav.clientWidth,
          overlap: who ? nav.getBoundingClientRect().right - who.getBoundingClientRect().left : 0,
          barHeight: bar.getBoundingClientRect().height, visible: nav.offsetParent !== null};
}"""

CELLS_JS = """(orderid) => {
  const row = document.querySelector(`tr[data-order-id="${orderid}"]`);
  if (!row) { return null; }
  const box = (sel) => {
    const el = row.querySelector(sel);
    if (!el || el.offsetParent === null) { return null; }
    const r = el.getBoundingClientRect();
    return {left: r.left, right: r.right, text: el.innerText.trim()};
  };
  return {status: box("td.status"), reason: box("td.reason"), actions: box("td.actions"),
          width: window.innerWidth, pageScroll: document.documentElement.scrollWidth - window.innerWidth};
}"""


@pytest.fixture
def server(tmp_path):
    """`python app.py` on a free port, on a fresh instance; yields (base URL, the environment, for the seed
    script)."""
    with web_server(tmp_path, SCHEDULER_ENABLED="false") as running:
        yield running


@pytest.fixture
def shots(tmp_path):
    folder = tmp_path / "screenshots"
    folder.mkdir()
    print(f"\ncockpit screenshots: {folder}")  # noqa: T201 - where to look
    return folder


def seed(env: dict) -> dict:
    out = subprocess.run([sys.executable, "-c", SEED], cwd=ROOT, env=env, capture_output=True, text=True,  # noqa: S603
                         timeout=60, check=False)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def place(base: str, key: str, **order) -> dict:
    body = {"apikey": key, "strategy": "cockpit", "symbol": "INFY", "exchange": "NSE", "action": "BUY",
            "quantity": 1, "pricetype": "MARKET", "product": "MIS", "price": "0", **order}
    resp = requests.post(f"{base}/api/v1/placeorder", json=body, timeout=10)
    return resp.json()


class Pages:
    """One browser page per theme; each page visited is checked with axe and photographed at each width."""

    def __init__(self, page, theme: str, base: str, shots: Path, problems: list[str]):
        self.page, self.theme, self.base, self.shots, self.problems = page, theme, base, shots, problems

    def visit(self, name: str, path: str, *, nav: bool = True) -> None:
        page = self.page
        page.set_viewport_size({"width": WIDTHS[0], "height": HEIGHT})
        resp = page.goto(self.base + path)
        assert resp is not None
        assert resp.status == 200, f"{path} answered {resp.status}"
        self.check(name, nav=nav)

    def check(self, name: str, *, nav: bool = True) -> None:
        page = self.page
        page.add_script_tag(path=str(AXE))
        for v in page.evaluate(AXE_RUN):
            self.problems.append(f"{name} ({self.theme}): {v['impact']} {v['id']}: {v['help']}\n    "
                                 + "\n    ".join(v["nodes"]))
        for width in WIDTHS:
            if width != WIDTHS[0]:
                page.set_viewport_size({"width": width, "height": HEIGHT})
            if nav:
                line = page.evaluate(NAV_LINE_JS)
                if width >= 1366:
                    ok = line.get("visible") and line["rows"] == 1 and line["navHeight"] <= line["line"] + 1 \
                        and line["barOverflow"] <= 0 and line["navOverflow"] <= 0 and line["overlap"] <= 0
                    if not ok:
                        self.problems.append(f"{name} ({self.theme}) at {width}px: the navigation is not one line: "
                                             f"{line}")
                elif line.get("visible"):
                    self.problems.append(f"{name} ({self.theme}) at {width}px: the navigation did not collapse")
            scroll = page.evaluate("() => document.documentElement.scrollWidth - window.innerWidth")
            if scroll > 0:
                self.problems.append(f"{name} ({self.theme}) at {width}px: the page scrolls sideways by {scroll}px")
            page.screenshot(path=str(self.shots / f"{name}-{width}-{self.theme}.png"), full_page=True)
        page.set_viewport_size({"width": WIDTHS[0], "height": HEIGHT})


def sign_in(page, base: str) -> None:
    page.goto(f"{base}/auth/login")
    page.fill("input[name=username]", USERNAME)
    page.fill("input[name=password]", PASSWORD)
    page.click("main button[type=submit]")
    page.wait_for_url(f"{base}/dashboard")


def test_every_page_fits_reads_and_passes_axe(server, shots):
    base, env = server
    problems: list[str] = []
    with chromium() as browser:
        contexts = {theme: browser.new_context(viewport={"width": WIDTHS[0], "height": HEIGHT}, color_scheme=theme)
                    for theme in ("light", "dark")}
        views = {}
        for theme, context in contexts.items():
            page = context.new_page()
            page.set_default_timeout(TIMEOUT_MS)
            views[theme] = Pages(page, theme, base, shots, problems)

        # Before anyone signed up: the setup page, in both themes; the light one signs the owner up.
        for view in views.values():
            view.visit("setup", "/setup", nav=False)
        light = views["light"].page
        light.fill("input[name=username]", USERNAME)
        light.fill("input[name=password]", PASSWORD)
        light.fill("input[name=confirm]", PASSWORD)
        light.click("main button[type=submit]")
        light.wait_for_url(f"{base}/dashboard")
        views["dark"].visit("login", "/auth/login", nav=False)
        sign_in(views["dark"].page, base)

        # The theme button: dark, kept in a cookie the server renders from, then light again.
        toggle_theme(light, base)
        open_menus(light)
        # static/js/format.js writes money and moments as the pages' filters do.
        assert light.evaluate("() => [Algobridge.inr(-12345678.9), Algobridge.inr(0.004), Algobridge.inr(null),"
                              " Algobridge.inr(42, {plus: true}), Algobridge.inr(1234.5, {sign: false}),"
                              " Algobridge.xtime(Date.UTC(2026, 11, 7, 8, 35, 9)),"
                              " Algobridge.xtime(Date.UTC(2026, 11, 7, 8, 35, 9), 'hm')]") == [
            "-₹1,23,45,678.90", "₹0.00", "–", "+₹42.00", "1,234.50", "07 Dec 14:05:09 IST", "14:05 IST"]

        data = seed(env)
        key = data["key"]
        opened = place(base, key, pricetype="LIMIT", price="1")
        assert opened["status"] == "success", opened
        refused = place(base, key, quantity=10_000_000)  # far beyond the paper account's funds: rejected
        assert refused["status"] == "error", refused
        book = requests.post(f"{base}/api/v1/orderbook", json={"apikey": key}, timeout=10).json()
        rejected = next(o for o in book["data"]["orders"] if o["order_status"] == "rejected")
        for order in ({"quantity": 10}, {"action": "SELL", "quantity": 5}, {"symbol": "TCS", "quantity": 2}):
            filled = place(base, key, **order)
            assert filled["status"] == "success", filled

        pages = [
            ("dashboard", "/dashboard"), ("orderbook", "/orderbook"), ("tradebook", "/tradebook"),
            ("positions", "/positions"), ("holdings", "/holdings"), ("roundtrips", "/roundtrips"),
            ("broker", "/broker"), ("apikey", "/apikey"), ("strategies", "/strategy"),
            ("strategy-new", "/strategy/new"), ("strategy-view", f"/strategy/{data['strategy']}"),
            ("symbols", "/symbols"), ("history", "/history"), ("option-chain", "/options/chain"),
            ("calendar", "/calendar"), ("settings", "/settings"), ("users", "/users"),
            ("user-new", "/users/new"), ("logs-api", "/logs/api"), ("logs-traffic", "/logs/traffic"),
            ("logs-latency", "/logs/latency"), ("logs-system", "/logs/system"),
            ("logs-alerts", "/logs/alerts?state=all"), ("logs-audit", "/logs/audit"),
            ("two-factor-setup", "/auth/two-factor/setup"),
            ("modify-order", f"/orderbook/{opened['orderid']}/modify"),
        ]
        for name, path in pages:
            for view in views.values():
                view.visit(name, path)
                if name == "orderbook":
                    check_order_book(view, opened["orderid"], rejected["orderid"])

        # Signed out: the sign-in page in the light theme too.
        light.click("form.signout button")
        light.wait_for_url("**/auth/login")
        views["light"].check("login", nav=False)
    assert not problems, "\n".join(problems)


def toggle_theme(page, base: str) -> None:
    page.goto(f"{base}/dashboard")
    assert page.get_attribute("html", "data-theme") is None  # the system's preference until chosen
    page.click("#theme-toggle")
    assert page.get_attribute("html", "data-theme") == "dark"
    page.reload()
    assert page.get_attribute("html", "data-theme") == "dark"  # rendered by the server, from the cookie
    assert page.evaluate("() => getComputedStyle(document.body).backgroundColor") != "rgb(245, 246, 248)"
    page.click("#theme-toggle")
    page.reload()
    assert page.get_attribute("html", "data-theme") == "light"
    assert page.evaluate("() => getComputedStyle(document.body).backgroundColor") == "rgb(245, 246, 248)"


def open_menus(page) -> None:
    """"More" opens the rarely used links on a wide screen; "Menu" holds every link on a phone. Escape closes."""
    page.set_viewport_size({"width": 1366, "height": HEIGHT})
    logs = page.locator(".mainnav details.more a[href='/logs/api']")
    assert not logs.is_visible()
    page.click(".mainnav details.more summary")
    assert logs.is_visible()
    page.keyboard.press("Escape")
    assert not logs.is_visible()
    page.set_viewport_size({"width": 390, "height": HEIGHT})
    assert not page.locator(".mainnav").is_visible()
    phone_logs = page.locator("details.phone a[href='/logs/api']")
    page.click("details.phone summary")
    assert phone_logs.is_visible()
    assert page.locator("details.phone a[href='/orderbook']").is_visible()
    page.click("main h1")  # a click elsewhere closes it
    assert not phone_logs.is_visible()
    page.set_viewport_size({"width": 1366, "height": HEIGHT})


def check_order_book(view: Pages, open_id: str, rejected_id: str) -> None:
    """At 1366 px the open and the rejected order's status, reason and actions are on screen."""
    page = view.page
    page.set_viewport_size({"width": 1366, "height": HEIGHT})
    for orderid, status in ((open_id, "open"), (rejected_id, "rejected")):
        cells = page.evaluate(CELLS_JS, orderid)
        assert cells is not None, f"order {orderid} is not on the order book"
        assert cells["pageScroll"] <= 0, cells
        assert cells["status"] is not None, cells
        assert cells["status"]["text"] == status, cells
        for name in ("status", "reason", "actions"):
            box = cells[name]
            assert box is not None, f"{status} order: no visible {name} cell: {cells}"
            assert box["left"] >= 0, (name, cells)
            assert box["right"] <= cells["width"], (name, cells)
        if status == "rejected":
            assert cells["reason"]["text"], cells
        else:
            assert page.locator(f"tr[data-order-id='{orderid}'] td.actions button").count() >= 1
