"""The browser's side of the feed (blueprints/feed.py): the session token a page authenticates its
WebSocket with, the rejected-order notices on every page until acknowledged, and the pages' JSON regions
that static/js/live.js re-reads after an order update or, without the socket, every few seconds."""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal

import pytest
from sqlalchemy import select

from blueprints import feed
from database import db
from database.alert_db import Alert
from database.symbol import SymToken
from services.accounts import feed_tokens
from services.market import black76, symbol_index
from services.market import options as mo
from services.trading.orders import OrderError
from tests.helpers import trading
from tests.helpers.accounts import csrf_token, isolated_client, login, make_user, use_test_hasher
from tests.helpers.orders import contract, order, set_quote  # noqa: F401 - fixtures

NOTICE = re.compile(r'<div class="flash flash-error live-notice" data-alert-id="(\d+)" role="alert">\s*<p>(.*?)</p>',
                    re.S)


@pytest.fixture
def signed_in(app, contract, monkeypatch):  # noqa: F811
    use_test_hasher(monkeypatch)

    def make(name: str = "trader1", role: str = "trader"):
        user = make_user(name, role)
        client = isolated_client(app)
        login(client, name)
        return user.id, client

    return make


def rejected_order(app, uid: int) -> str:
    """An analyze-mode order rejected for want of funds (journaled, with its alert); its order id."""
    set_quote("RELIANCE", "2900")
    with pytest.raises(OrderError):
        trading.place_order(uid, order(symbol="RELIANCE", quantity=100_000, product="CNC"))
    db.session.rollback()
    return db.session.scalar(select(Alert.message).where(Alert.user_id == uid)).split()[1]


def ack(client, alert_id: int, token: str | None):
    headers = {"X-CSRFToken": token} if token else {}
    return client.post(f"/feed/notices/{alert_id}/ack", headers=headers)


# -- the token ------------------------------------------------------------------------------------------
def test_a_signed_in_page_gets_a_token_naming_its_user(app, signed_in):
    uid, client = signed_in()
    resp = client.get("/feed/token")
    assert resp.status_code == 200
    assert resp.headers["Cache-Control"] == "no-store"
    body = resp.get_json()
    assert body["status"] == "success"
    assert feed_tokens.verify(body["token"], app.config["SECRET_KEY"]) == uid
    assert feed_tokens.verify(body["token"], "another-secret-key-another-secret-key") is None
    # No WEBSOCKET_URL: the script connects to the page's host at the feed's port.
    assert body["url"] is None
    assert body["port"] == app.config["WEBSOCKET_PORT"]


def test_the_token_carries_the_configured_url(app, signed_in, monkeypatch):
    _, client = signed_in()
    monkeypatch.setitem(app.config, "WEBSOCKET_URL", "wss://feed.example.org/ws")
    assert client.get("/feed/token").get_json()["url"] == "wss://feed.example.org/ws"


def test_signed_out_callers_get_json_401s(app, contract):  # noqa: F811
    client = isolated_client(app)
    for url in ("/feed/token", "/feed/notices"):
        resp = client.get(url)
        assert resp.status_code == 401
        assert resp.get_json() == {"status": "error", "message": "Sign in to follow the live feed."}
    resp = client.post("/feed/notices/1/ack")  # the CSRF check comes first
    assert resp.status_code == 400
    assert resp.get_json()["status"] == "error"
    # The pages' regions send a signed-out script to the sign-in page, as the pages do.
    for url in ("/dashboard/live", "/orderbook/live", "/positions/live", "/options/chain/live"):
        resp = client.get(url)
        assert resp.status_code == 302, url
        assert "/auth/login" in resp.location


# -- the notices ----------------------------------------------------------------------------------------
def test_a_rejected_order_stays_on_every_page_until_acknowledged(app, signed_in):
    uid, client = signed_in()
    _, other = signed_in("trader2")
    orderid = rejected_order(app, uid)
    db.session.add(Alert(user_id=uid, kind="broker_session_expired", title="Broker session expired"))
    db.session.commit()

    listed = client.get("/feed/notices").get_json()["notices"]
    assert [n["title"] for n in listed] == ["Order rejected: BUY 100000 RELIANCE"]
    assert orderid in listed[0]["message"]
    assert "Insufficient funds" in listed[0]["message"]
    alert_id = listed[0]["id"]
    for url in ("/dashboard", "/orderbook", "/positions", "/tradebook", "/settings", "/options/chain"):
        html = client.get(url).get_data(as_text=True)
        shown = NOTICE.findall(html)
        assert [int(i) for i, _ in shown] == [alert_id], url
        assert "Insufficient funds" in shown[0][1]
    # Nobody else sees it, nor may acknowledge it.
    assert other.get("/feed/notices").get_json()["notices"] == []
    assert NOTICE.findall(other.get("/dashboard").get_data(as_text=True)) == []
    resp = ack(other, alert_id, csrf_token(other, "/settings"))
    assert resp.status_code == 404
    assert resp.get_json()["status"] == "error"

    # Without the page's CSRF token: a JSON refusal, and the notice stays.
    resp = ack(client, alert_id, None)
    assert resp.status_code == 400
    assert resp.get_json()["status"] == "error"
    assert len(client.get("/feed/notices").get_json()["notices"]) == 1

    token = re.search(r'<meta name="csrf-token" content="([^"]+)">', client.get("/dashboard").get_data(as_text=True))
    resp = ack(client, alert_id, token.group(1))
    assert resp.status_code == 200
    assert resp.get_json() == {"status": "success", "id": alert_id, "notices": []}
    db.session.rollback()
    row = db.session.get(Alert, alert_id)
    assert row.is_acknowledged
    assert (row.acknowledged_by, row.acknowledged_at is not None) == (uid, True)
    assert NOTICE.findall(client.get("/orderbook").get_data(as_text=True)) == []
    assert ack(client, alert_id, token.group(1)).status_code == 200  # again: nothing changes


def test_viewers_get_no_notices_and_cannot_acknowledge(app, signed_in):
    uid, client = signed_in("viewer1", "viewer")
    db.session.add(Alert(user_id=uid, kind="order_rejected", title="Order rejected", message="no"))
    db.session.commit()
    alert_id = db.session.scalar(select(Alert.id))
    assert client.get("/feed/notices").get_json()["notices"] == []
    assert NOTICE.findall(client.get("/dashboard").get_data(as_text=True)) == []
    resp = ack(client, alert_id, csrf_token(client, "/settings"))
    assert resp.status_code == 403
    assert resp.get_json()["status"] == "error"


def test_newer_alerts_of_other_kinds_do_not_push_notices_out(app, signed_in):
    uid, client = signed_in()
    cap = feed.MAX_NOTICES
    # cap + 2 rejected orders, then many newer open alerts of another kind, and acknowledged rejections.
    db.session.add_all([Alert(user_id=uid, kind="order_rejected", title=f"Rejected {i}") for i in range(cap + 2)])
    db.session.flush()
    db.session.add_all([Alert(user_id=uid, kind="broker_session_expired", title="Expired") for _ in range(cap * 4)])
    db.session.add(Alert(user_id=uid, kind="order_rejected", title="Seen", is_acknowledged=True))
    db.session.commit()

    listed = client.get("/feed/notices").get_json()["notices"]
    assert [n["title"] for n in listed] == [f"Rejected {i}" for i in range(cap + 1, 1, -1)]
    assert len(NOTICE.findall(client.get("/dashboard").get_data(as_text=True))) == cap


# -- the pages ------------------------------------------------------------------------------------------
def test_pages_load_the_live_script_with_an_indicator(app, signed_in):
    _, client = signed_in()
    html = client.get("/settings").get_data(as_text=True)
    assert '<script src="/static/js/live.js" data-token-url="/feed/token"' in html
    assert 'id="live-status" data-state="connecting"' in html
    assert '<body data-live-refresh="" data-live-resync="60">' in html
    assert '<body data-live-refresh="/dashboard/live"' in client.get("/dashboard").get_data(as_text=True)
    anonymous = isolated_client(app).get("/auth/login").get_data(as_text=True)
    assert "live.js" not in anonymous
    assert "live-status" not in anonymous


def test_the_dashboard_region_carries_what_ticks_move(app, signed_in):
    uid, client = signed_in()
    set_quote("INFY", "1500")
    trading.place_order(uid, order(quantity=10))
    set_quote("INFY", "1510")
    resp = client.get("/dashboard/live")
    assert resp.status_code == 200
    regions = resp.get_json()["regions"]
    assert set(regions) == {"dash-funds-region", "dash-positions-region"}
    page = client.get("/dashboard").get_data(as_text=True)
    for region_id, html in regions.items():
        assert f'<div id="{region_id}" data-live-region>' in page
        assert html.strip() in page  # the same markup as the page's
    positions = regions["dash-positions-region"]
    assert re.search(r'<tr data-key="NSE:INFY" data-qty="10" data-base-ltp="1510(\.0+)?">', positions)
    assert re.search(r'data-tick="pnl" data-base="100(\.0+)?">', positions)
    funds = regions["dash-funds-region"]
    assert re.search(r'data-tick="total" data-format="money" data-base="10000100(\.0+)?" id="dash-equity">'
                     r'₹1,00,00,100\.00<', funds)
    assert re.search(r'data-tick="total" data-format="pnl" data-base="100(\.0+)?" id="dash-day-pnl">', funds)


def test_the_book_regions_follow_the_books(app, signed_in):
    uid, client = signed_in()
    set_quote("INFY", "1500")
    assert "No orders today." in client.get("/orderbook/live").get_json()["regions"]["orderbook-region"]
    placed = trading.place_order(uid, order(quantity=5, pricetype="LIMIT", price=1400))
    html = client.get("/orderbook/live").get_json()["regions"]["orderbook-region"]
    assert f'<tr data-order-id="{placed.orderid}">' in html
    assert "js-cancel" in html  # the actions come with the rows
    trading.place_order(uid, order(quantity=5))
    html = client.get("/positions/live").get_json()["regions"]["positions-region"]
    assert re.search(r'data-key="NSE:INFY" data-qty="5" data-base-ltp="1500(\.0+)?"', html)
    assert html.count('data-tick="pnl"') == 2  # analyze mode: gross and net P&L move, charges do not
    assert '<div id="positions-region" data-live-region>' in client.get("/positions").get_data(as_text=True)


def test_the_option_chain_region_subscribes_its_legs(app, signed_in):
    _, client = signed_in()
    expiry = dt.datetime.now(black76.IST).date() + dt.timedelta(days=7)
    for n, strike in enumerate(range(21800, 22201, 100)):
        for kind in ("CE", "PE"):
            sym = f"NIFTY{mo.expiry_code(expiry)}{strike}{kind}"
            db.session.add(SymToken(symbol=sym, brsymbol=sym, name="NIFTY", exchange="NFO", brexchange="NFO",
                                    token=f"9{n}{kind}", expiry=expiry, strike=Decimal(strike), lotsize=75,
                                    instrumenttype=kind, tick_size=Decimal("0.05")))
    db.session.commit()
    symbol_index.reload()
    set_quote("NIFTY", "22010", exchange="NSE_INDEX")
    page = client.get("/options/chain").get_data(as_text=True)
    live_url = re.search(r'<body data-live-refresh="([^"]+)"', page).group(1).replace("&amp;", "&")
    assert live_url.startswith("/options/chain/live?")
    region = client.get(live_url).get_json()["regions"]["chain-region"]
    assert region.strip() in page
    legs = re.findall(r'data-key="NFO:(NIFTY\w+)" data-tick="ltp"', region)
    assert len(legs) == 10
    assert all(s.endswith(("CE", "PE")) for s in legs)
    assert 'data-key="NSE_INDEX:NIFTY" data-tick="ltp"' in region
    assert re.search(r'data-key="NFO:NIFTY\w+" data-mode="2" data-tick="oi"', region)
