"""The book pages (/orderbook, /tradebook, /positions, /holdings), their CSV exports and their actions
(cancel, modify, cancel all, close, close all), for admin, trader and viewer, on both databases."""

from __future__ import annotations

import csv
import io
import re
import threading
from decimal import Decimal

import pytest
from sqlalchemy import select

from blueprints.orders import csv_cell
from database import db
from database.enums import Mode, OrderStatus, Role
from database.order_db import Order
from database.portfolio_db import Holding
from services.trading import venues
from tests.helpers import trading
from tests.helpers.accounts import csrf_token, isolated_client, login, make_user, use_test_hasher
from tests.helpers.orders import contract, order, set_quote  # noqa: F401 - fixtures

PAGES = ("/orderbook", "/tradebook", "/positions", "/holdings")
CSVS = ("/orderbook.csv", "/tradebook.csv", "/positions.csv", "/holdings.csv")


@pytest.fixture
def book(app, contract, monkeypatch):  # noqa: F811
    """Signed-in clients of an admin, a trader and a viewer, each with an open LIMIT order, a filled
    MARKET order (an INFY position) and a holding."""
    use_test_hasher(monkeypatch)
    set_quote("INFY", "1500")
    set_quote("SBIN", "800")
    out = {}
    for role in Role:
        user = make_user(f"{role.value}1", role)
        filled = trading.place_order(user.id, order(quantity=10))
        resting = trading.place_order(user.id, order(symbol="SBIN", pricetype="LIMIT", price="1", quantity=3))
        db.session.add(Holding(user_id=user.id, mode=Mode.ANALYZE, symbol="SBIN", exchange="NSE",
                               quantity=Decimal(5), average_price=Decimal(700)))
        db.session.commit()
        client = isolated_client(app)
        login(client, user.username)
        out[role.value] = {"id": user.id, "client": client, "filled": filled.orderid, "open": resting.orderid}
    return out


def status_of(orderid: str) -> OrderStatus:
    db.session.rollback()
    return db.session.scalars(select(Order.status).where(Order.orderid == orderid)).one()


def row_html(html: str, orderid: str) -> str:
    match = re.search(rf'<tr data-order-id="{orderid}">(.*?)</tr>', html, re.S)
    assert match, f"no row for {orderid}"
    return match.group(1)


def row_status(html: str, orderid: str) -> str:
    match = re.search(r'<td[^>]*class="status[^"]*"[^>]*>([^<]*)</td>', row_html(html, orderid))
    assert match
    return match.group(1)


def post_action(client, url: str, data: dict | None = None, form_url: str = "/orderbook"):
    return client.post(url, data={**(data or {}), "csrf_token": csrf_token(client, form_url)})


# -- pages ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("role", ["admin", "trader", "viewer"])
def test_every_page_renders_with_the_right_actions(book, role):
    me = book[role]
    client = me["client"]
    pages = {url: client.get(url) for url in PAGES}
    for url, resp in pages.items():
        assert resp.status_code == 200, url
        assert 'class="badge badge-analyze"' in resp.get_data(as_text=True), url
    orderbook = pages["/orderbook"].get_data(as_text=True)
    assert row_status(orderbook, me["open"]) == "open"
    assert row_status(orderbook, me["filled"]) == "complete"
    assert 'href="/orderbook.csv"' in orderbook
    trades = pages["/tradebook"].get_data(as_text=True)
    assert f'data-order-id="{me["filled"]}"' in trades
    assert "₹15,000.00" in trades
    positions = pages["/positions"].get_data(as_text=True)
    assert 'data-position="NSE:INFY:MIS"' in positions
    holdings = pages["/holdings"].get_data(as_text=True)
    assert "SBIN" in holdings
    assert "500.00" in holdings  # 5 x (800 - 700)
    can_act = role != "viewer"
    cancel = re.search(r'<button[^>]*class="[^"]*js-cancel"[^>]*data-confirm="Cancel order ([^ "]+)', orderbook)
    assert (cancel is not None) == can_act
    if can_act:
        assert cancel.group(1) == me["open"]
        row = row_html(orderbook, me["open"])
        assert "<form" in row
        assert 'name="csrf_token"' in row
        assert "js-modify" in row
        assert "js-cancel" not in row_html(orderbook, me["filled"])  # only open orders
    for marker, page in (("js-cancel-all", orderbook), ("js-close", positions), ("js-close-all", positions)):
        assert (marker in page) == can_act, marker
    assert "js/confirm.js" in orderbook


def test_the_orderbook_runs_as_many_queries_whatever_its_rows(book):
    from sqlalchemy import event

    me = book["trader"]
    client = me["client"]

    def page() -> tuple[str, int]:
        statements = []
        me_thread = threading.get_ident()

        def count(*_args):
            if threading.get_ident() == me_thread:  # not the log writer's thread
                statements.append(1)

        event.listen(db.engine, "before_cursor_execute", count)
        try:
            resp = client.get("/orderbook")
        finally:
            event.remove(db.engine, "before_cursor_execute", count)
        assert resp.status_code == 200
        return resp.get_data(as_text=True), len(statements)

    page()  # warm the caches
    _, few = page()
    more = [trading.place_order(me["id"], order(symbol="SBIN", pricetype="LIMIT", price="1", quantity=n)).orderid
            for n in range(1, 6)]
    page()
    html, many = page()
    assert many == few  # no query per row
    tokens = {re.search(r'name="csrf_token"[^>]*value="([^"]+)"', row_html(html, oid)).group(1) for oid in more}
    assert len(tokens) == 1  # one token for every row's form
    assert row_html(html, more[0]).count('name="csrf_token"') == 1
    resp = client.post(f"/orderbook/{more[0]}/cancel", data={"csrf_token": tokens.pop()})
    assert resp.status_code == 303
    assert status_of(more[0]) == OrderStatus.CANCELLED


def test_pages_show_only_the_users_own_books(book):
    html = book["trader"]["client"].get("/orderbook").get_data(as_text=True)
    assert book["trader"]["open"] in html
    for other in ("admin", "viewer"):
        assert book[other]["open"] not in html
        assert book[other]["filled"] not in html


def test_anonymous_visitors_are_sent_to_sign_in(app, book):
    anonymous = isolated_client(app)
    for url in (*PAGES, *CSVS, "/orderbook/1/modify"):
        resp = anonymous.get(url)
        assert resp.status_code == 302, url
        assert "/auth/login" in resp.location, url


def test_live_mode_without_a_broker_says_so(book):
    me = book["trader"]
    venues.set_analyze(me["id"], False)
    for url in PAGES:
        resp = me["client"].get(url)
        assert resp.status_code == 200
        html = resp.get_data(as_text=True)
        assert "No live broker session" in html
        assert 'class="badge badge-live"' in html
    resp = me["client"].get("/orderbook.csv")
    assert resp.status_code == 403
    assert "No live broker session" in resp.get_data(as_text=True)


# -- actions --------------------------------------------------------------------------------------------
def test_a_trader_cancels_an_open_order(book):
    me = book["trader"]
    resp = post_action(me["client"], f"/orderbook/{me['open']}/cancel")
    assert resp.status_code == 303
    assert resp.location.endswith("/orderbook")
    assert status_of(me["open"]) == OrderStatus.CANCELLED
    html = me["client"].get("/orderbook").get_data(as_text=True)
    assert f"Order {me['open']} cancelled." in html
    assert row_status(html, me["open"]) == "cancelled"
    # cancelling it again: refused with the reason, nothing changes
    again = post_action(me["client"], f"/orderbook/{me['open']}/cancel")
    assert again.status_code == 303
    assert "cannot be cancelled: it is cancelled" in me["client"].get("/orderbook").get_data(as_text=True)


def test_nobody_cancels_another_users_order(book):
    victim = book["admin"]
    for role in ("trader", "viewer"):
        resp = post_action(book[role]["client"], f"/orderbook/{victim['open']}/cancel")
        assert resp.status_code == (404 if role == "trader" else 403)
    assert book["trader"]["client"].get(f"/orderbook/{victim['open']}/modify").status_code == 404
    resp = post_action(book["trader"]["client"], f"/orderbook/{victim['open']}/modify",
                       {"quantity": "1", "price": "2", "trigger_price": "0"})
    assert resp.status_code == 404
    assert status_of(victim["open"]) == OrderStatus.OPEN
    assert post_action(book["trader"]["client"], "/orderbook/999999/cancel").status_code == 404


def test_actions_are_post_only_and_need_the_csrf_token(book):
    me = book["trader"]
    for url in (f"/orderbook/{me['open']}/cancel", "/orderbook/cancel-all", "/positions/close",
                "/positions/close-all"):
        assert me["client"].get(url).status_code == 405, url
        resp = me["client"].post(url, data={"symbol": "INFY", "exchange": "NSE", "product": "MIS"})
        assert resp.status_code == 400, url
        assert "security token" in resp.get_data(as_text=True), url
        bad = me["client"].post(url, data={"csrf_token": "forged"})
        assert bad.status_code == 400, url
    assert status_of(me["open"]) == OrderStatus.OPEN
    assert trading.open_position(me["id"], "INFY", "NSE", "MIS") == 10


def test_viewers_get_403_on_every_action(book):
    me = book["viewer"]
    client = me["client"]
    urls = {f"/orderbook/{me['open']}/cancel": {}, "/orderbook/cancel-all": {},
            f"/orderbook/{me['open']}/modify": {"quantity": "1", "price": "2", "trigger_price": "0"},
            "/positions/close": {"symbol": "INFY", "exchange": "NSE", "product": "MIS"}, "/positions/close-all": {}}
    for url, data in urls.items():
        assert post_action(client, url, data).status_code == 403, url
    assert client.get(f"/orderbook/{me['open']}/modify").status_code == 403
    assert status_of(me["open"]) == OrderStatus.OPEN
    assert trading.open_position(me["id"], "INFY", "NSE", "MIS") == 10


@pytest.mark.parametrize("role", ["admin", "trader"])
def test_modify_an_open_order(book, role):
    me = book[role]
    client = me["client"]
    form = client.get(f"/orderbook/{me['open']}/modify")
    assert form.status_code == 200
    html = form.get_data(as_text=True)
    assert 'name="quantity"' in html
    assert 'value="3"' in html
    assert "data-confirm=" in html
    bad = post_action(client, f"/orderbook/{me['open']}/modify", {"quantity": "0", "price": "2", "trigger_price": "0"},
                      form_url=f"/orderbook/{me['open']}/modify")
    assert bad.status_code == 400
    resp = post_action(client, f"/orderbook/{me['open']}/modify", {"quantity": "4", "price": "2.5",
                                                                  "trigger_price": "0"},
                       form_url=f"/orderbook/{me['open']}/modify")
    assert resp.status_code == 303
    assert resp.location.endswith("/orderbook")
    db.session.rollback()
    row = db.session.scalars(select(Order).where(Order.orderid == me["open"])).one()
    assert (row.quantity, row.price, row.status, row.symbol, row.action.value) == (4, Decimal("2.5"),
                                                                                    OrderStatus.OPEN, "SBIN", "BUY")
    # a filled order cannot be modified: back to the book with the reason
    done = client.get(f"/orderbook/{me['filled']}/modify")
    assert done.status_code == 303
    assert "cannot be modified: it is complete" in client.get("/orderbook").get_data(as_text=True)


def test_cancel_all_cancels_only_the_users_open_orders(book):
    me = book["trader"]
    second = trading.place_order(me["id"], order(symbol="INFY", pricetype="LIMIT", price="2", quantity=1))
    resp = post_action(me["client"], "/orderbook/cancel-all")
    assert resp.status_code == 303
    assert status_of(me["open"]) == status_of(second.orderid) == OrderStatus.CANCELLED
    assert status_of(me["filled"]) == OrderStatus.COMPLETE
    assert status_of(book["admin"]["open"]) == OrderStatus.OPEN
    assert "Cancelled 2 open orders." in me["client"].get("/orderbook").get_data(as_text=True)


def test_close_a_position_then_close_all(book):
    me = book["trader"]
    client = me["client"]
    trading.place_order(me["id"], order(symbol="SBIN", action="SELL", quantity=2))
    close = {"symbol": "INFY", "exchange": "NSE", "product": "MIS"}
    resp = post_action(client, "/positions/close", close, form_url="/positions")
    assert resp.status_code == 303
    assert resp.location.endswith("/positions")
    assert trading.open_position(me["id"], "INFY", "NSE", "MIS") == 0
    assert trading.open_position(me["id"], "SBIN", "NSE", "MIS") == -2
    assert "Closing NSE:INFY (MIS)" in client.get("/positions").get_data(as_text=True)
    post_action(client, "/positions/close", close, form_url="/positions")  # twice: nothing more happens
    assert trading.open_position(me["id"], "INFY", "NSE", "MIS") == 0
    assert "was already flat" in client.get("/positions").get_data(as_text=True)
    bad = post_action(client, "/positions/close", {**close, "product": "XYZ"}, form_url="/positions")
    assert bad.status_code == 400

    resp = post_action(client, "/positions/close-all", form_url="/positions")
    assert resp.status_code == 303
    assert trading.open_position(me["id"], "SBIN", "NSE", "MIS") == 0
    assert trading.open_position(book["admin"]["id"], "INFY", "NSE", "MIS") == 10  # others untouched


# -- CSV ------------------------------------------------------------------------------------------------
def read_csv(resp) -> list[list[str]]:
    assert resp.status_code == 200
    assert resp.mimetype == "text/csv"
    disposition = resp.headers["Content-Disposition"]
    assert disposition.startswith("attachment; filename=")
    assert disposition.endswith('.csv"')
    return list(csv.reader(io.StringIO(resp.get_data(as_text=True))))


@pytest.mark.parametrize("role", ["admin", "trader", "viewer"])
def test_csv_exports(book, role):
    me = book[role]
    client = me["client"]
    rows = read_csv(client.get("/orderbook.csv"))
    assert rows[0] == ["Order ID", "Time", "Symbol", "Exchange", "Action", "Product", "Type", "Qty", "Price",
                       "Trigger", "Status"]
    by_id = {r[0]: r for r in rows[1:]}
    assert set(by_id) == {me["open"], me["filled"]}
    assert by_id[me["open"]][2:] == ["SBIN", "NSE", "BUY", "MIS", "LIMIT", "3", "1.0", "0.0", "open"]
    assert by_id[me["filled"]][-1] == "complete"

    trades = read_csv(client.get("/tradebook.csv"))
    assert trades[0][-5:] == ["Avg price", "Value", "Realized", "Charges", "Net P&L"]  # analyze mode
    assert [(r[0], r[2], r[6], r[8]) for r in trades[1:]] == [(me["filled"], "INFY", "10", "15000.0")]

    positions = read_csv(client.get("/positions.csv"))
    assert positions[0] == ["Symbol", "Exchange", "Product", "Qty", "Avg price", "LTP", "Gross P&L", "Charges",
                            "Net P&L"]
    assert positions[1][:4] == ["INFY", "NSE", "MIS", "10"]

    holdings = read_csv(client.get("/holdings.csv"))
    assert holdings[1:] == [["SBIN", "NSE", "CNC", "5", "500.0", "14.29"]]


def test_csv_cells_cannot_start_a_formula(book):
    me = book["trader"]
    db.session.add(Order(user_id=me["id"], orderid="x1", broker="paper", mode=Mode.ANALYZE, strategy="s",
                         symbol='=HYPERLINK("http://evil","x")', exchange="NSE", action="BUY", pricetype="MARKET",
                         product="MIS", quantity=Decimal(1), status=OrderStatus.REJECTED))
    db.session.commit()  # drops the user's cached paper account
    rows = read_csv(me["client"].get("/orderbook.csv"))
    cells = [r[2] for r in rows[1:]]
    assert "'=HYPERLINK(\"http://evil\",\"x\")" in cells
    assert not any(c.startswith(("=", "+", "-", "@")) for r in rows for c in r)
    for raw in ("=1+2", "+1", "-1+cmd", "@SUM(A1)", "\tx"):
        assert csv_cell(raw) == "'" + raw
    assert csv_cell("INFY") == "INFY"
    assert csv_cell(-12.5) == -12.5
    assert csv_cell(3) == 3
