"""Ticks drive analyze-mode matching (services.trading.paper.ticks), and the journal's changes reach the
owner's feed connections as OpenAlgo's order_update (services.trading.order_events)."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal

import pytest
from websockets.sync.client import connect

from database.types import utcnow
from services.accounts import feed_tokens
from services.trading.errors import OrderError
from services.trading.order_events import JournalWatcher
from services.trading.paper import engine
from services.trading.paper.ticks import match_ticks
from tests.helpers.api import user_with_key
from tests.helpers.orders import order, set_quote
from tests.helpers.trading import order_status, place_order

WAIT_S = 20


def _resting_buy(uid: int, limit: str) -> str:
    set_quote("INFY", 1500, 1499.95, 1500.05)
    placed = place_order(uid, order(pricetype="LIMIT", price=limit, quantity=5))
    assert order_status(uid, placed.orderid)["order_status"] == "open"
    return placed.orderid


def test_a_tick_that_crosses_a_resting_limit_fills_it_and_one_that_does_not_leaves_it(app, users):
    alice, _bob = users
    orderid = _resting_buy(alice, "1400")
    watcher = JournalWatcher()
    watcher.poll()
    now = utcnow()
    above = {("INFY", "NSE"): engine.Quote(ltp=Decimal("1450"), bid=Decimal("1449.95"), ask=Decimal("1450.05"))}
    assert match_ticks(above, list(watcher.open_rows()), now) == 0
    assert order_status(alice, orderid)["order_status"] == "open"
    crossing = {("INFY", "NSE"): engine.Quote(ltp=Decimal("1399"), bid=Decimal("1398.95"), ask=Decimal("1399.05"))}
    assert match_ticks(crossing, list(watcher.open_rows()), now + dt.timedelta(seconds=1)) == 1
    status = order_status(alice, orderid)
    assert status["order_status"] == "complete"
    assert status["average_price"] == pytest.approx(1399.05)
    # the watcher reports the fill once; the filled order no longer rests
    changed = watcher.poll()
    assert [(r.orderid, r.status) for r in changed] == [(orderid, "complete")]
    assert watcher.poll() == []
    assert list(watcher.open_rows()) == []


def test_a_stop_is_triggered_then_filled(app, users):
    alice, _bob = users
    set_quote("INFY", 1500, 1499.95, 1500.05)
    placed = place_order(alice, order(action="BUY", pricetype="SL", price="1560", trigger_price="1550", quantity=1))
    watcher = JournalWatcher()
    watcher.poll()
    q = {("INFY", "NSE"): engine.Quote(ltp=Decimal("1551"), bid=Decimal("1550.95"), ask=Decimal("1551.05"))}
    assert match_ticks(q, list(watcher.open_rows()), utcnow()) == 1
    assert order_status(alice, placed.orderid)["order_status"] == "complete"


def _authenticated(url: str, message: dict):
    ws = connect(url)
    ws.send(json.dumps(message))
    answer = json.loads(ws.recv(timeout=WAIT_S))
    assert (answer["type"], answer["status"]) == ("auth", "success"), answer
    return ws


def _next(ws, kind: str) -> dict:
    while (msg := json.loads(ws.recv(timeout=WAIT_S)))["type"] != kind:
        pass
    return msg


def test_order_updates_reach_the_owner_only(app, feed):
    alice, _row, key = user_with_key("owner")
    bob, _row2, bob_key = user_with_key("other")
    set_quote("INFY", 1500, 1499.95, 1500.05)
    with _authenticated(feed.url, {"action": "authenticate", "api_key": key}) as mine, \
            _authenticated(feed.url, {"action": "authenticate",
                                      "session_token": feed_tokens.issue(bob.id, app.config["SECRET_KEY"])}) as his:
        placed = place_order(alice.id, order(quantity=2))
        update = _next(mine, "order_update")
        assert update["orderid"] == placed.orderid
        assert update["order_status"] == "complete"
        assert update["user_id"] == alice.id
        assert update["mode"] == "analyze"
        assert update["filled_quantity"] == 2
        with pytest.raises(TimeoutError):  # nothing for bob
            his.recv(timeout=1)
        # a rejection carries its reason
        with pytest.raises(OrderError, match="(?i)fund|margin"):
            place_order(alice.id, order(quantity=10_000_000))
        update = _next(mine, "order_update")
        assert update["order_status"] == "rejected"
        assert update["rejection_reason"]


def test_session_tokens(app):
    secret = app.config["SECRET_KEY"]
    token = feed_tokens.issue(7, secret)
    assert feed_tokens.verify(token, secret) == 7
    assert feed_tokens.verify(token, "another secret key of enough length!!") is None
    assert feed_tokens.verify(token + "x", secret) is None
    assert feed_tokens.verify(token, secret, max_age=-1) is None
    assert feed_tokens.verify("", secret) is None
