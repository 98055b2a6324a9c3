"""Live mode on Dhan through the services and the REST API (SQLite and PostgreSQL): the form login, Dhan's own
master contract, orders, books, funds, quotes, depth, history and margin at the fake DhanHQ v2 server, and a
refused token ending the session with its alert."""

from __future__ import annotations

from sqlalchemy import select

from database import db
from database.alert_db import Alert
from database.auth_db import BrokerSession
from database.enums import BrokerSessionStatus
from database.symbol import SymToken
from database.user_db import User
from services.accounts import broker_login
from tests.fakes.dhan_server import CLIENT_ID
from tests.helpers import dhan as dhan_fixtures
from tests.helpers.api import post, raise_limits, user_with_key
from tests.helpers.clock import weekdays_back
from tests.helpers.dhan import connect_dhan, connect_dhan_with_contract

dhan = dhan_fixtures.dhan  # fixture: the app on a fake Dhan


def test_live_trading_on_dhan_through_the_api(app, dhan, monkeypatch):
    raise_limits(app, monkeypatch)
    client = app.test_client()  # (tests/brokers' `client` fixture is a Kite session)
    user, _row, key = user_with_key("dhanuser")
    connect_dhan_with_contract(user.id, dhan)
    session = db.session.scalar(select(BrokerSession).where(BrokerSession.user_id == user.id))
    assert (session.broker, session.broker_user_id, session.status) == ("dhan", CLIENT_ID,
                                                                         BrokerSessionStatus.ACTIVE)
    tokens = dict(db.session.execute(select(SymToken.symbol, SymToken.token).where(
        SymToken.symbol.in_(["INFY", "NIFTY", "NIFTY26DEC30FUT", "NIFTY26DEC3024000CE"]))).all())
    assert tokens == {"INFY": "1594", "NIFTY": "IDX_I:13", "NIFTY26DEC30FUT": "35001",
                      "NIFTY26DEC3024000CE": "35002"}

    resp = post(client, "placeorder", {"apikey": key, "strategy": "s", "symbol": "INFY", "exchange": "NSE",
                                       "action": "BUY", "quantity": 2, "pricetype": "MARKET", "product": "CNC"})
    assert resp.status_code == 200, resp.json
    orderid = resp.json["orderid"]
    assert dhan.fake.orders[orderid]["securityId"] == "1594"
    book = post(client, "orderbook", {"apikey": key}).json["data"]
    assert [(o["orderid"], o["symbol"], o["order_status"]) for o in book["orders"]] == [(orderid, "INFY",
                                                                                         "complete")]
    status = post(client, "orderstatus", {"apikey": key, "orderid": orderid, "strategy": "s"}).json["data"]
    assert (status["order_status"], status["average_price"]) == ("complete", 1500.5)
    trades = post(client, "tradebook", {"apikey": key}).json["data"]
    assert [(t["symbol"], t["quantity"]) for t in trades] == [("INFY", 2)]
    positions = post(client, "positionbook", {"apikey": key}).json["data"]
    assert [(p["symbol"], p["exchange"], p["product"], p["quantity"]) for p in positions] == [
        ("INFY", "NSE", "CNC", 2)]
    holdings = post(client, "holdings", {"apikey": key}).json["data"]
    assert [h["symbol"] for h in holdings["holdings"]] == ["INFY"]
    funds = post(client, "funds", {"apikey": key}).json["data"]
    assert float(funds["availablecash"]) == 100000.0

    quote = post(client, "quotes", {"apikey": key, "symbol": "NIFTY", "exchange": "NSE_INDEX"}).json
    assert "data" in quote, quote
    assert quote["data"]["ltp"] == 24000.0  # IDX_I 13, not NSE_EQ 13
    depth = post(client, "depth", {"apikey": key, "symbol": "NIFTY26DEC30FUT", "exchange": "NFO"}).json["data"]
    assert len(depth["bids"]) == len(depth["asks"]) == 5
    assert depth["bids"][0]["price"] < depth["asks"][0]["price"]
    margin = post(client, "margin", {"apikey": key, "positions": [
        {"symbol": "NIFTY26DEC30FUT", "exchange": "NFO", "action": "BUY", "product": "NRML", "pricetype": "MARKET",
         "quantity": 75}]})
    assert margin.status_code == 200, margin.json
    assert margin.json["data"]["total_margin_required"] == 234975.0
    hedged = post(client, "margin", {"apikey": key, "positions": [
        {"symbol": "NIFTY26DEC30FUT", "exchange": "NFO", "action": "BUY", "product": "NRML", "pricetype": "MARKET",
         "quantity": 75},
        {"symbol": "NIFTY26DEC3024000CE", "exchange": "NFO", "action": "SELL", "product": "NRML",
         "pricetype": "MARKET", "quantity": 75}]})
    assert hedged.status_code == 200, hedged.json
    assert hedged.json["data"]["total_margin_required"] == 198450.0  # Dhan's multi-order calculator, hedged

    start, end = weekdays_back(3)
    history = post(client, "history", {"apikey": key, "symbol": "INFY", "exchange": "NSE", "interval": "15m",
                                       "start_date": start, "end_date": end})
    assert history.status_code == 200, history.json
    assert len(history.json["data"]) > 10
    assert dhan.fake.calls["/charts/intraday"] >= 1


def test_a_refused_dhan_token_expires_the_session_and_a_new_login_resumes(app, dhan, monkeypatch):
    raise_limits(app, monkeypatch)
    client = app.test_client()
    user, _row, key = user_with_key("dhanexpiry")
    connect_dhan_with_contract(user.id, dhan)
    assert broker_login.resume(db.session.get(User, user.id)) is not None  # the profile still answers

    dhan.fake.expire_all()
    resp = post(client, "funds", {"apikey": key})
    assert resp.status_code == 403
    db.session.rollback()
    assert db.session.scalar(select(BrokerSession.status).where(BrokerSession.user_id == user.id)) == (
        BrokerSessionStatus.EXPIRED)
    assert db.session.scalar(select(Alert.kind).where(Alert.user_id == user.id)) == "broker_session_expired"
    assert broker_login.resume(db.session.get(User, user.id)) is None

    connect_dhan(user.id, dhan)  # a new token from web.dhan.co
    assert broker_login.resume(db.session.get(User, user.id)) is not None
    resp = post(client, "funds", {"apikey": key})
    assert resp.status_code == 200, resp.json
