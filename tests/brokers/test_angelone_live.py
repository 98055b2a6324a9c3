"""Angel One through the services and the REST API, against the fake SmartAPI: connect through the login form,
import the scrip master as the master contract, trade and read live, and a refused token ending the session."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select

from database import db
from database.alert_db import Alert
from database.auth_db import BrokerSession
from database.enums import BrokerSessionStatus, Mode
from database.order_db import Order
from database.symbol import SymToken
from services.accounts import broker_login
from services.accounts.broker_login import BrokerLoginError
from tests.helpers import angelone as angel_fixtures
from tests.helpers.angelone import connect_angel_with_contract
from tests.helpers.api import post, raise_limits, user_with_key

angel = angel_fixtures.angel  # fixture: the app on a fake SmartAPI


@pytest.fixture
def web(app):
    """The app's test client (`client` in this folder is a Kite session: tests/brokers/conftest.py)."""
    return app.test_client()


@pytest.fixture
def live(app, angel, monkeypatch):
    """(user id, API key) of a user connected to the fake SmartAPI in live mode, its contract loaded."""
    raise_limits(app, monkeypatch)
    user, _row, key = user_with_key("angela")
    connect_angel_with_contract(user.id, angel)
    return user.id, key


def test_connecting_stores_the_session_and_imports_the_contract(app, angel, live):
    user_id, _key = live
    row = db.session.scalar(select(BrokerSession).where(BrokerSession.user_id == user_id))
    assert (row.broker, row.broker_user_id, row.status) == ("angelone", "A123456", BrokerSessionStatus.ACTIVE)
    assert row.access_token in angel.fake.sessions
    rows = db.session.execute(select(SymToken.symbol, SymToken.exchange, SymToken.token)).all()
    symbols = {(symbol, str(exchange)): token for symbol, exchange, token in rows}
    assert (symbols[("SBIN", "NSE")], symbols[("SBIN", "BSE")], symbols[("NIFTY", "NSE_INDEX")]) == (
        "3045", "500112", "99926000")
    assert (symbols[("NIFTY30DEC2624000CE", "NFO")], symbols[("SENSEX", "BSE_INDEX")]) == ("35002", "99919000")


def test_a_wrong_totp_is_a_login_error(app, angel):
    from services.accounts import broker_login as bl
    from tests.helpers.accounts import make_user

    user = make_user("tot")
    db.session.commit()
    fields = {**angel.fake.login_fields(), "totp": "000000" if angel.fake.current_totp() != "000000" else "111111"}
    with pytest.raises(BrokerLoginError) as info:
        bl.complete_login(user, "angelone", bl.form_values("angelone", fields))
    assert "Invalid totp" in str(info.value)
    with pytest.raises(BrokerLoginError):
        bl.form_values("angelone", {"clientcode": "A1", "pin": "", "totp": "123456"})
    assert db.session.scalar(select(BrokerSession)) is None


def test_live_orders_books_and_funds_through_the_api(app, web, angel, live):
    user_id, key = live
    resp = post(web, "placeorder", {"apikey": key, "strategy": "t", "symbol": "SBIN", "exchange": "NSE",
                                       "action": "BUY", "quantity": 3, "pricetype": "MARKET", "product": "MIS"})
    assert resp.status_code == 200, resp.json
    orderid = resp.json["orderid"]
    sent = angel.fake.orders[orderid]
    assert (sent["tradingsymbol"], sent["symboltoken"], sent["producttype"]) == ("SBIN-EQ", "3045", "INTRADAY")
    row = db.session.scalar(select(Order).where(Order.orderid == orderid))
    assert (row.mode, row.broker) == (Mode.LIVE, "angelone")

    book = post(web, "orderbook", {"apikey": key}).json["data"]
    entry = book["orders"][0]
    assert (entry["symbol"], entry["exchange"], entry["order_status"], entry["quantity"]) == ("SBIN", "NSE",
                                                                                              "complete", 3)
    status = post(web, "orderstatus", {"apikey": key, "orderid": orderid, "strategy": "t"}).json["data"]
    assert (status["order_status"], status["average_price"]) == ("complete", 800.0)
    trades = post(web, "tradebook", {"apikey": key}).json["data"]
    assert [t["symbol"] for t in trades] == ["SBIN"]
    positions = post(web, "positionbook", {"apikey": key}).json["data"]
    assert [(p["symbol"], p["quantity"]) for p in positions] == [("SBIN", 3)]
    holdings = post(web, "holdings", {"apikey": key}).json["data"]
    assert holdings["holdings"][0]["symbol"] == "INFY"
    funds = post(web, "funds", {"apikey": key}).json["data"]
    assert float(funds["availablecash"]) == 99725.05

    resp = post(web, "placeorder", {"apikey": key, "strategy": "t", "symbol": "SBIN", "exchange": "NSE",
                                       "action": "BUY", "quantity": 1, "pricetype": "LIMIT", "price": 700,
                                       "product": "CNC"})
    limit_id = resp.json["orderid"]
    assert angel.fake.orders[limit_id]["orderstatus"] == "open"
    resp = post(web, "cancelorder", {"apikey": key, "strategy": "t", "orderid": limit_id})
    assert resp.status_code == 200, resp.json
    assert angel.fake.orders[limit_id]["orderstatus"] == "cancelled"


def test_live_market_data_through_the_api(app, web, angel, live):
    _user_id, key = live
    quote = post(web, "quotes", {"apikey": key, "symbol": "SBIN", "exchange": "NSE"})
    assert quote.status_code == 200, quote.json
    assert quote.json["data"]["ltp"] == 800.0
    assert quote.json["data"]["bid"] == 799.95
    index = post(web, "quotes", {"apikey": key, "symbol": "NIFTY", "exchange": "NSE_INDEX"}).json["data"]
    assert index["ltp"] == 22000.0
    depth = post(web, "depth", {"apikey": key, "symbol": "NIFTY30DEC2624000CE", "exchange": "NFO"}).json["data"]
    assert len(depth["bids"]) == len(depth["asks"]) == 5
    assert depth["oi"] == 250000
    sent = [b for p, b in angel.fake.bodies if p.endswith("market/v1/quote")]
    assert {"NFO": ["35002"]} in [b["exchangeTokens"] for b in sent]

    end = dt.date(2026, 11, 27)
    history = post(web, "history", {"apikey": key, "symbol": "SBIN", "exchange": "NSE", "interval": "15m",
                                       "start_date": (end - dt.timedelta(days=1)).isoformat(),
                                       "end_date": end.isoformat()})
    assert history.status_code == 200, history.json
    assert len(history.json["data"]) == 2 * 25  # two sessions of 25 quarter hours
    assert angel.fake.calls_to("getCandleData") >= 1

    margin = post(web, "margin", {"apikey": key, "positions": [
        {"symbol": "NIFTY30DEC26FUT", "exchange": "NFO", "action": "SELL", "product": "NRML", "pricetype": "MARKET",
         "quantity": 75}]})
    assert margin.status_code == 200, margin.json
    assert margin.json["data"]["total_margin_required"] > 0


def test_a_refused_token_expires_the_session_with_an_alert(app, web, angel, live):
    user_id, key = live
    angel.fake.expire_all()
    resp = post(web, "funds", {"apikey": key})
    assert resp.status_code == 403
    db.session.rollback()
    assert db.session.scalar(select(BrokerSession.status)) == BrokerSessionStatus.EXPIRED
    assert db.session.scalar(select(Alert.kind).where(Alert.user_id == user_id)) == "broker_session_expired"
    assert broker_login.active_session(user_id) is None
    resp = post(web, "placeorder", {"apikey": key, "strategy": "t", "symbol": "SBIN", "exchange": "NSE",
                                       "action": "BUY", "quantity": 1, "pricetype": "MARKET", "product": "MIS"})
    assert resp.status_code == 403
    assert angel.fake.calls_to("placeOrder") == 0


def test_resume_checks_the_token_at_the_broker(app, angel, live):
    from database.user_db import User

    user_id, _key = live
    user = db.session.get(User, user_id)
    assert broker_login.resume(user) is not None
    assert angel.fake.calls_to("getProfile") >= 2  # at login, and now
    angel.fake.expire_all()
    assert broker_login.resume(user) is None
    assert db.session.scalar(select(BrokerSession.status)) == BrokerSessionStatus.EXPIRED
