"""Live mode against the fake Kite server: orders go to the connected broker, the journal follows."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from database import db
from database.alert_db import Alert
from database.auth_db import BrokerSession
from database.enums import BrokerSessionStatus, Mode, OrderStatus
from database.order_db import Order
from services.accounts import broker_login
from services.trading import venues
from services.trading.orders import OrderError
from tests.helpers import live as live_fixtures
from tests.helpers import orders as fx
from tests.helpers import trading
from tests.helpers.live import connect_live
from tests.helpers.orders import order

kite = live_fixtures.kite  # fixture: the app on a fake Kite

contract = fx.contract  # fixture
users = fx.users  # fixture


@pytest.fixture
def live_alice(app, users, kite):
    alice_id, _ = users
    connect_live(alice_id, kite)
    return alice_id


def test_live_place_and_orderbook(app, kite, live_alice):
    placed = trading.place_order(live_alice, order(quantity=2))
    assert (placed.mode, placed.broker) == ("live", "zerodha")
    assert kite.fake.latest(placed.orderid)["tradingsymbol"] == "INFY"
    row = db.session.scalar(select(Order).where(Order.orderid == placed.orderid))
    assert (row.mode, row.broker, row.user_id) == (Mode.LIVE, "zerodha", live_alice)
    book = trading.orderbook(live_alice)
    assert [o["orderid"] for o in book["orders"]] == [placed.orderid]
    entry = book["orders"][0]
    assert (entry["symbol"], entry["exchange"], entry["order_status"], entry["quantity"]) == ("INFY", "NSE",
                                                                                              "complete", 2)
    assert book["statistics"]["total_completed_orders"] == 1
    db.session.expire_all()
    assert db.session.scalar(select(Order.status).where(Order.orderid == placed.orderid)) == OrderStatus.COMPLETE
    status = trading.order_status(live_alice, placed.orderid)
    assert status["order_status"] == "complete"
    assert status["average_price"] == 1500.5
    assert trading.tradebook(live_alice)[0]["symbol"] == "INFY"
    assert trading.funds(live_alice)["availablecash"]


def test_live_limit_cancel_and_foreign_orders(app, kite, live_alice, users):
    _, bob = users
    placed = trading.place_order(live_alice, order(symbol="SBIN", pricetype="LIMIT", price="700"))
    assert placed.status == "open"
    with pytest.raises(OrderError) as info:
        trading.cancel_order(bob, placed.orderid)  # bob is in analyze mode and it is not his
    assert info.value.status == 404
    assert trading.cancel_order(live_alice, placed.orderid) == placed.orderid
    assert kite.fake.latest(placed.orderid)["status"] == "CANCELLED"


def test_live_broker_rejection_is_journaled(app, kite, live_alice):
    kite.fake.fail_next(400, "InputException", "Invalid `quantity`.")
    with pytest.raises(OrderError) as info:
        trading.place_order(live_alice, order())
    assert (info.value.status, info.value.message) == (400, "Invalid `quantity`.")
    row = db.session.scalar(select(Order))
    assert row.status == OrderStatus.REJECTED
    assert row.mode == Mode.LIVE
    assert db.session.scalar(select(Alert.kind)) == "order_rejected"


def test_a_refused_token_expires_the_session(app, kite, live_alice):
    kite.fake.expire_all()
    with pytest.raises(OrderError) as info:
        trading.place_order(live_alice, order())
    assert info.value.status == 403
    assert db.session.scalar(select(BrokerSession.status)) == BrokerSessionStatus.EXPIRED
    assert broker_login.active_session(live_alice) is None
    with pytest.raises(OrderError) as info:
        trading.place_order(live_alice, order())
    assert info.value.status == 403
    assert "No live broker session" in info.value.message


def test_a_refused_token_on_a_smart_orders_position_read_expires_the_session(app, kite, live_alice):
    # The smart order reads the broker's positions inside its locked unit: the refusal still commits.
    kite.fake.expire_all()
    with pytest.raises(OrderError) as info:
        trading.place_smart_order(live_alice, order(quantity=1), position_size=3)
    assert info.value.status == 403
    db.session.rollback()
    assert db.session.scalar(select(BrokerSession.status)) == BrokerSessionStatus.EXPIRED
    assert not kite.fake.order_history  # nothing placed


def test_concurrent_live_smart_orders_act_once(app, kite, live_alice):
    from tests.services.trading.test_orders_concurrency import THREADS, _run_concurrently

    results = _run_concurrently(app, lambda: trading.place_smart_order(live_alice, order(quantity=1), position_size=3))
    assert sum(r is not None for r in results) == 1
    assert len(kite.fake.order_history) == 1
    assert trading.open_position(live_alice, "INFY", "NSE", "MIS") == 3
    assert THREADS > 1


# -- quotes ----------------------------------------------------------------------------------------------
def _quote_call(client, user_id, symbol="INFY", exchange="NSE"):
    from database.user_db import User
    from extensions import limiter
    from services.accounts import api_keys

    limiter.reset()
    _row, key = api_keys.create_key(db.session.get(User, user_id), f"q{user_id}", ["data"])
    db.session.commit()
    return client.post("/api/v1/quotes", json={"apikey": key, "symbol": symbol, "exchange": exchange})


def test_live_quotes_come_from_the_broker_in_the_api_shape(app, client, kite, live_alice):
    from services.market import quotes

    resp = _quote_call(client, live_alice)
    assert resp.status_code == 200, resp.json
    ltp = 1500.5  # the fake's INFY (its quote: open ltp-10, high +20, low -30, close -5), not the simulator's
    assert resp.json == {"status": "success", "data": {
        "open": ltp - 10, "high": ltp + 20, "low": ltp - 30, "ltp": ltp, "ask": ltp + 0.05, "bid": ltp - 0.05,
        "prev_close": ltp - 5, "volume": 123456, "oi": 0}}
    db.session.rollback()
    stored = quotes.stored_quote("INFY", "NSE")  # kept for the paper broker and the pages
    assert (stored.source, float(stored.ltp)) == ("zerodha", 1500.5)


def test_analyze_mode_quotes_never_reach_the_broker(app, client, kite, live_alice):
    from services.market import quotes

    venues.set_analyze(live_alice, True)
    kite.fake.expire_all()  # a broker call would fail
    resp = _quote_call(client, live_alice)
    assert resp.status_code == 200
    db.session.rollback()
    assert resp.json["data"]["ltp"] == float(quotes.get_quote("INFY", "NSE").ltp)
    assert broker_login.active_session(live_alice) is not None  # nobody asked the broker


def test_live_quote_failures_are_the_apis_broker_errors(app, client, kite, live_alice, users):
    from services.market import quotes

    kite.fake.fail_next(503, "NetworkException", "Market data is down.")
    resp = _quote_call(client, live_alice)
    assert (resp.status_code, resp.json) == (503, {"status": "error", "message": "Market data is down."})
    kite.fake.fail_next(403, "PermissionException", "Insufficient permission for that call.")
    resp = _quote_call(client, live_alice)
    assert resp.status_code == 400
    assert resp.json["message"] == "Insufficient permission for that call."
    with pytest.raises(quotes.UnknownSymbolError):
        trading.quote(live_alice, "NOSUCH", "NSE")

    kite.fake.expire_all()  # the token is refused: 403 and the session is marked expired
    resp = _quote_call(client, live_alice)
    assert resp.status_code == 403
    assert "expired" in resp.json["message"]
    db.session.rollback()
    assert db.session.scalar(select(BrokerSession.status)) == BrokerSessionStatus.EXPIRED
    resp = _quote_call(client, live_alice)  # live mode without a session: 403, never simulated prices
    assert resp.status_code == 403
    assert "No live broker session" in resp.json["message"]
    _alice, bob = users
    assert _quote_call(client, bob).status_code == 200  # analyze mode: the simulator
