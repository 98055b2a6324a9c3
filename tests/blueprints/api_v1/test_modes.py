"""The one venue decision, pinned per endpoint: the answer's `mode`, the API-log row and the latency row
carry the same label; in live mode without a live broker session (the paper connection is not one) every
call that needs the broker answers 403 and tells the trader what to do."""

from __future__ import annotations

import pytest

from database.enums import Mode
from services.accounts import broker_login
from services.trading import venues
from services.trading.errors import NO_SESSION
from tests.helpers.api import (
    api_logs,
    flush_logs,
    latency_rows,
    load_symbols,
    orders_count,
    post,
    raise_limits,
    user_with_key,
)

ORDER = {"strategy": "Modes", "exchange": "NSE", "symbol": "INFY", "action": "BUY", "quantity": "1",
         "pricetype": "MARKET", "product": "MIS"}
# endpoint -> the body (besides the key) of a valid call
NEEDS_BROKER = {
    "placeorder": ORDER,
    "placesmartorder": {**ORDER, "position_size": "1"},
    "basketorder": {"strategy": "Modes", "orders": [{k: v for k, v in ORDER.items() if k != "strategy"}]},
    "splitorder": {**ORDER, "quantity": "2", "splitsize": "1"},
    "cancelallorder": {"strategy": "Modes"},
    "closeposition": {"strategy": "Modes"},
    "openposition": {"strategy": "Modes", "symbol": "INFY", "exchange": "NSE", "product": "MIS"},
    "orderbook": {},
    "tradebook": {},
    "positionbook": {},
    "holdings": {},
    "funds": {},
    "quotes": {"symbol": "INFY", "exchange": "NSE"},
    "ping": {},
}
ABOUT_AN_ORDER = {  # orderid added by the test
    "modifyorder": {**ORDER, "pricetype": "LIMIT", "price": "1", "trigger_price": "0", "disclosed_quantity": "0"},
    "cancelorder": {"strategy": "Modes"},
    "orderstatus": {"strategy": "Modes"},
}
ORDER_ENDPOINTS = {"placeorder", "placesmartorder", "basketorder", "splitorder", "cancelallorder", "closeposition",
                   "modifyorder", "cancelorder"}
NO_BROKER_NEEDED = {"search": {"query": "INFY"}, "symbol": {"symbol": "INFY", "exchange": "NSE"}, "analyzer": {}}


@pytest.fixture
def trader(app, monkeypatch):
    raise_limits(app, monkeypatch)
    load_symbols()
    user, _row, key = user_with_key("trader")
    return user, key


def _last_log(api_type: str):
    rows = [r for r in api_logs() if r.api_type == api_type]
    assert rows, f"no api_logs row for {api_type}"
    return rows[-1]


def _labels(app, endpoint: str) -> tuple[str, str | None]:
    """(api_logs mode, order_latency mode or None) of the endpoint's last call."""
    flush_logs(app)
    log_mode = _last_log(endpoint).mode
    latency = [r for r in latency_rows() if r.endpoint == endpoint]
    return (log_mode.value if log_mode else None), (latency[-1].mode.value if latency else None)


@pytest.mark.parametrize("endpoint", sorted(NEEDS_BROKER))
def test_analyze_mode_answers_and_logs_analyze(app, client, trader, endpoint):
    _user, key = trader
    resp = post(client, endpoint, {"apikey": key, **NEEDS_BROKER[endpoint]})
    body = resp.get_json()
    assert resp.status_code == 200, body
    assert body["status"] == "success"
    if endpoint not in ("quotes", "ping"):  # OpenAlgo's data answers carry no mode
        assert body["mode"] == "analyze"
    log_mode, latency_mode = _labels(app, endpoint)
    assert log_mode == "analyze"
    if endpoint in ORDER_ENDPOINTS:
        assert latency_mode == "analyze"


@pytest.mark.parametrize("paper_connected", [False, True], ids=["no-session", "paper-session"])
@pytest.mark.parametrize("endpoint", sorted(NEEDS_BROKER))
def test_live_mode_without_a_live_session_is_403_for_every_broker_call(app, client, trader, endpoint,
                                                                        paper_connected):
    user, key = trader
    if paper_connected:
        broker_login.complete_login(user, "paper", {})
    venues.set_analyze(user.id, False)
    before = orders_count()
    resp = post(client, endpoint, {"apikey": key, **NEEDS_BROKER[endpoint]})
    body = resp.get_json()
    assert resp.status_code == 403, body
    assert body == {"status": "error", "message": NO_SESSION}
    assert "connect your broker" in body["message"]
    assert "analyze mode" in body["message"]
    assert orders_count() == before  # nothing journaled, nothing filled on paper
    log_mode, latency_mode = _labels(app, endpoint)
    assert log_mode == "live"
    if endpoint in ORDER_ENDPOINTS:
        assert latency_mode == "live"


@pytest.mark.parametrize("endpoint", sorted(ABOUT_AN_ORDER))
def test_calls_about_an_order_go_where_it_was_placed(app, client, trader, endpoint):
    user, key = trader
    placed = post(client, "placeorder", {"apikey": key, **ORDER, "pricetype": "LIMIT", "price": "1"}).get_json()
    assert placed["mode"] == "analyze"
    venues.set_analyze(user.id, False)  # live now, with no broker: the analyze-mode order stays analyze
    resp = post(client, endpoint, {"apikey": key, "orderid": placed["orderid"], **ABOUT_AN_ORDER[endpoint]})
    body = resp.get_json()
    assert resp.status_code == 200, body
    assert body["mode"] == "analyze"
    log_mode, latency_mode = _labels(app, endpoint)
    assert log_mode == "analyze"
    if endpoint in ORDER_ENDPOINTS:
        assert latency_mode == "analyze"


@pytest.mark.parametrize("endpoint", sorted(ABOUT_AN_ORDER))
def test_calls_about_an_unknown_order_in_live_mode_without_a_session_are_403(app, client, trader, endpoint):
    user, key = trader
    venues.set_analyze(user.id, False)
    resp = post(client, endpoint, {"apikey": key, "orderid": "123456", **ABOUT_AN_ORDER[endpoint]})
    assert resp.status_code == 403
    assert resp.get_json()["message"] == NO_SESSION


@pytest.mark.parametrize("endpoint", sorted(NO_BROKER_NEEDED))
def test_calls_that_need_no_broker_answer_in_live_mode_without_a_session(client, trader, endpoint):
    user, key = trader
    venues.set_analyze(user.id, False)
    resp = post(client, endpoint, {"apikey": key, **NO_BROKER_NEEDED[endpoint]})
    assert resp.status_code == 200, resp.get_json()
    if endpoint == "analyzer":
        assert resp.get_json()["data"]["mode"] == "live"


def test_the_journal_row_carries_the_venues_label(client, trader):
    _user, key = trader
    body = post(client, "placeorder", {"apikey": key, **ORDER}).get_json()
    row = venues.own_order(_user.id, body["orderid"])
    assert row.mode == Mode.ANALYZE
    assert row.broker == "paper"


def test_a_venue_decided_for_an_order_hands_its_journal_row_on(client, trader, monkeypatch):
    from services.trading import orders

    user, key = trader
    body = post(client, "placeorder", {"apikey": key, **ORDER, "pricetype": "LIMIT", "price": "1"}).get_json()
    venue = venues.venue_for(user.id, orderid=body["orderid"])
    assert venue.order is not None
    assert venue.order.orderid == body["orderid"]
    looked_up = []
    monkeypatch.setattr(orders, "own_order", lambda *a: looked_up.append(a))
    assert orders.cancel_order(venue, body["orderid"]) == body["orderid"]
    assert looked_up == []  # the row came with the venue: one journal lookup per call
