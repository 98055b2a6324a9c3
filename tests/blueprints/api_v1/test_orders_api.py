"""REST API v1 order and book endpoints over the order services (analyze mode): answers, errors,
and isolation between users."""

from __future__ import annotations

import pytest

from tests.helpers.api import load_symbols, orders_count, post, raise_limits, user_with_key


@pytest.fixture
def keys(app, monkeypatch):
    raise_limits(app, monkeypatch)
    load_symbols()
    _a, _ra, alice = user_with_key("alice")
    _b, _rb, bob = user_with_key("bob")
    return alice, bob


def order(key: str, **extra) -> dict:
    return {"apikey": key, "strategy": "Test", "exchange": "NSE", "symbol": "INFY", "action": "BUY",
            "quantity": "1", "pricetype": "MARKET", "product": "MIS", **extra}


def test_place_then_status_book_and_position(client, keys):
    alice, _bob = keys
    body = post(client, "placeorder", order(alice)).get_json()
    assert set(body) == {"status", "orderid", "mode"}
    assert body["mode"] == "analyze"
    status = post(client, "orderstatus", {"apikey": alice, "strategy": "Test", "orderid": body["orderid"]})
    assert status.status_code == 200
    data = status.get_json()["data"]
    assert set(data) == {"action", "average_price", "exchange", "order_status", "orderid", "price", "pricetype",
                         "product", "quantity", "symbol", "timestamp", "trigger_price"}
    assert data["order_status"] == "complete"
    assert data["orderid"] == body["orderid"]
    pos = post(client, "openposition", {"apikey": alice, "strategy": "Test", "symbol": "INFY", "exchange": "NSE",
                                        "product": "MIS"}).get_json()
    assert pos["status"] == "success"
    assert int(pos["quantity"]) == 1
    book = post(client, "orderbook", {"apikey": alice}).get_json()
    assert book["status"] == "success"
    assert book["mode"] == "analyze"
    assert set(book["data"]) == {"orders", "statistics"}
    assert [o["orderid"] for o in book["data"]["orders"]] == [body["orderid"]]


def test_insufficient_funds_is_400_and_journaled_as_rejected(client, keys):
    alice, _bob = keys
    resp = post(client, "placeorder", order(alice, quantity="1000000", product="CNC"))
    assert resp.status_code == 400
    assert "Insufficient funds" in resp.get_json()["message"]
    assert orders_count() == 1


def test_smart_order_already_matched(client, keys):
    alice, _bob = keys
    resp = post(client, "placesmartorder", {**order(alice, quantity="0"), "position_size": "0"})
    assert resp.status_code == 200
    assert resp.get_json() == {"status": "success", "message": "Positions Already Matched. No Action needed.",
                               "mode": "analyze"}


def test_a_key_cannot_read_or_cancel_another_users_order(client, keys):
    alice, bob = keys
    orderid = post(client, "placeorder", order(alice, pricetype="LIMIT", price="1")).get_json()["orderid"]
    for name in ("orderstatus", "cancelorder"):
        resp = post(client, name, {"apikey": bob, "strategy": "Test", "orderid": orderid})
        assert resp.status_code == 404, (name, resp.get_json())
        assert resp.get_json()["status"] == "error"
    resp = post(client, "modifyorder", {**order(bob, pricetype="LIMIT", price="2", disclosed_quantity="0",
                                              trigger_price="0"), "orderid": orderid})
    assert resp.status_code == 404
    assert post(client, "orderbook", {"apikey": bob}).get_json()["data"]["orders"] == []
    all_cancel = post(client, "cancelallorder", {"apikey": bob, "strategy": "Test"}).get_json()
    assert all_cancel["canceled_orders"] == []
    assert all_cancel["message"].startswith("Canceled 0 orders.")
    # alice's order is still open, and she can cancel it
    resp = post(client, "cancelorder", {"apikey": alice, "strategy": "Test", "orderid": orderid})
    assert resp.status_code == 200
    assert resp.get_json()["orderid"] == orderid


def test_unknown_orderid_is_404(client, keys):
    alice, _bob = keys
    resp = post(client, "orderstatus", {"apikey": alice, "strategy": "Test", "orderid": "999"})
    assert resp.status_code == 404


def test_analyzer_status_and_toggle(client, keys):
    alice, _bob = keys
    body = post(client, "analyzer", {"apikey": alice}).get_json()
    assert body["status"] == "success"
    assert body["data"]["mode"] == "analyze"
    assert body["data"]["analyze_mode"] is True
    body = post(client, "analyzer/toggle", {"apikey": alice, "mode": False}).get_json()
    assert body["data"]["mode"] == "live"
    assert body["data"]["analyze_mode"] is False
    assert body["data"]["message"] == "Analyzer mode switched to live"
    # live mode without a broker session: 403, nothing placed
    before = orders_count()
    resp = post(client, "placeorder", order(alice))
    assert resp.status_code == 403
    assert orders_count() == before
    body = post(client, "analyzer/toggle", {"apikey": alice, "mode": "true"}).get_json()
    assert body["data"]["analyze_mode"] is True
