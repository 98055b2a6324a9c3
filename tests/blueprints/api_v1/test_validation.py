"""REST API v1: every malformed body is a 400 naming the field, every bad key a 403, and nothing is
written to the order journal for either."""

from __future__ import annotations

import pytest

from services.accounts import api_keys
from tests.helpers.api import orders_count, post, raise_limits, user_with_key


@pytest.fixture
def key(app, monkeypatch):
    raise_limits(app, monkeypatch)
    _user, _row, plaintext = user_with_key()
    return plaintext


def order(key: str, **changes) -> dict:
    body = {"apikey": key, "strategy": "Test", "exchange": "NSE", "symbol": "INFY", "action": "BUY",
            "quantity": "1", "pricetype": "MARKET", "product": "MIS"}
    for name, value in changes.items():
        if value is _DROP:
            body.pop(name, None)
        else:
            body[name] = value
    return body


_DROP = object()

CASES = [
    # (changes, the words the message must contain)
    ({"symbol": _DROP}, ["symbol", "Missing"]),
    ({"strategy": _DROP}, ["strategy", "Missing"]),
    ({"action": _DROP}, ["action", "Missing"]),
    ({"quantity": _DROP}, ["quantity", "Missing"]),
    ({"exchange": _DROP}, ["exchange", "Missing"]),
    ({"apikey": _DROP}, ["apikey", "Missing"]),
    ({"quantity": "abc"}, ["quantity", "whole number"]),
    ({"quantity": "1.5"}, ["quantity"]),
    ({"quantity": 2.5}, ["quantity", "whole number"]),
    ({"quantity": True}, ["quantity"]),
    ({"quantity": [1]}, ["quantity"]),
    ({"quantity": 0}, ["quantity", "greater than 0"]),
    ({"quantity": "-3"}, ["quantity", "greater than 0"]),
    ({"quantity": 10**15}, ["quantity", "out of range"]),
    ({"price": "-1"}, ["price", "negative"]),
    ({"trigger_price": -0.05}, ["trigger_price", "negative"]),
    ({"price": "ten"}, ["price", "number"]),
    ({"price": "NaN"}, ["price"]),
    ({"disclosed_quantity": -1}, ["disclosed_quantity", "negative"]),
    ({"exchange": "NASDAQ"}, ["exchange", "NSE", "BSE_INDEX"]),
    ({"action": "HOLD"}, ["action", "BUY", "SELL"]),
    ({"pricetype": "STOP"}, ["pricetype", "SL-M"]),
    ({"product": "BO"}, ["product", "CNC"]),
    ({"symbol": ""}, ["symbol", "empty"]),
    ({"symbol": 12345678901234567890 * 10**50}, ["symbol"]),
    ({"strategy": {"a": 1}}, ["strategy", "string"]),
    ({"apikey": "k" * 257}, ["apikey", "256"]),
    ({"target": "100"}, ["unknown field", "target"]),
    ({"Quantity": "1"}, ["unknown field", "Quantity"]),
]


@pytest.mark.parametrize(("changes", "words"), CASES, ids=[str(list(c)[0]) + "-" + str(i) for i, (c, _w) in
                                                             enumerate(CASES)])
def test_placeorder_invalid_bodies_are_400_naming_the_field(client, key, changes, words):
    before = orders_count()
    resp = post(client, "placeorder", order(key, **changes))
    assert resp.status_code == 400, resp.get_json()
    body = resp.get_json()
    assert body["status"] == "error"
    for word in words:
        assert word in body["message"], body["message"]
    assert orders_count() == before == 0


@pytest.mark.parametrize("raw", [b"not json", b"{\"apikey\": ", b"[1, 2]", b"\"a string\"", b"null", b""])
def test_not_json_or_not_an_object_is_400(client, key, raw):
    resp = client.post("/api/v1/placeorder", data=raw, content_type="application/json")
    assert resp.status_code == 400
    assert resp.get_json() == {"status": "error", "message": "Invalid request: the body must be a JSON object"}
    assert orders_count() == 0


def test_json_without_a_content_type_is_accepted(client, key):
    # TradingView and Amibroker alerts often post JSON as text/plain: validation still runs.
    import json

    resp = client.post("/api/v1/placeorder", data=json.dumps(order(key, quantity=0)), content_type="text/plain")
    assert resp.status_code == 400
    assert "quantity" in resp.get_json()["message"]


@pytest.mark.parametrize(("name", "body", "words"), [
    ("placesmartorder", {"position_size": "x"}, ["position_size", "whole number"]),
    ("placesmartorder", {"quantity": -1, "position_size": 0}, ["quantity", "negative"]),
    ("splitorder", {"splitsize": 0}, ["splitsize", "greater than 0"]),
    ("splitorder", {"quantity": 1000, "splitsize": 1}, ["splitsize", "100"]),
    ("splitorder", {}, ["splitsize", "Missing"]),
])
def test_smart_and_split_validation(client, key, name, body, words):
    resp = post(client, name, {**order(key), **body})
    assert resp.status_code == 400
    for word in words:
        assert word in resp.get_json()["message"]
    assert orders_count() == 0


def test_smart_order_accepts_zero_quantity_in_validation(client, key):
    # quantity 0 is allowed for a smart order; a bad position_size is still caught
    resp = post(client, "placesmartorder", {**order(key, quantity=0), "position_size": "1.5"})
    assert resp.status_code == 400
    assert "position_size" in resp.get_json()["message"]


def test_basket_items_are_validated_with_their_index(client, key):
    item = {"exchange": "NSE", "symbol": "INFY", "action": "BUY", "quantity": "1"}
    cases = [
        ({"orders": []}, "orders must have at least 1"),
        ({"orders": "INFY"}, "orders must be a list"),
        ({"orders": [item, {**item, "quantity": 0}]}, "orders[1].quantity must be greater than 0"),
        ({"orders": [{**item, "apikey": key}]}, "unknown field: orders[0].apikey"),
        ({"orders": [{k: v for k, v in item.items() if k != "symbol"}]}, "Missing mandatory field: orders[0].symbol"),
        ({"orders": [1]}, "orders[0] must be an object"),
    ]
    for extra, message in cases:
        resp = post(client, "basketorder", {"apikey": key, "strategy": "Test", **extra})
        assert resp.status_code == 400
        assert message in resp.get_json()["message"], (extra, resp.get_json())
    assert orders_count() == 0


def test_modifyorder_requires_every_field(client, key):
    resp = post(client, "modifyorder", {"apikey": key, "strategy": "Test", "orderid": "1"})
    assert resp.status_code == 400
    message = resp.get_json()["message"]
    assert "Missing mandatory field: exchange" in message


@pytest.mark.parametrize(("name", "body", "words"), [
    ("cancelorder", {"strategy": "Test"}, ["orderid"]),
    ("orderstatus", {"strategy": "Test", "orderid": ""}, ["orderid", "empty"]),
    ("openposition", {"strategy": "Test", "symbol": "INFY", "exchange": "NSE", "product": "XYZ"}, ["product"]),
    ("quotes", {"symbol": "INFY"}, ["exchange", "Missing"]),
    ("quotes", {"symbol": "INFY", "exchange": "LSE"}, ["exchange", "NSE"]),
    ("search", {}, ["query", "Missing"]),
    ("symbol", {"symbol": "INFY", "exchange": "NSE", "extra": 1}, ["unknown field", "extra"]),
    ("orderbook", {"strategy": "x"}, ["unknown field", "strategy"]),
    ("analyzer/toggle", {"mode": "maybe"}, ["mode", "true or false"]),
    ("analyzer/toggle", {}, ["mode", "Missing"]),
])
def test_other_endpoints_validate(client, key, name, body, words):
    resp = post(client, name, {"apikey": key, **body})
    assert resp.status_code == 400, resp.get_json()
    for word in words:
        assert word in resp.get_json()["message"]


def test_unknown_key_is_403(client, key):
    before = orders_count()
    for name, body in [("placeorder", order("0" * 64)), ("funds", {"apikey": "nope"}), ("ping", {"apikey": "x"})]:
        resp = post(client, name, body)
        assert resp.status_code == 403
        assert resp.get_json() == {"status": "error", "message": "Invalid openalgo apikey"}
    assert orders_count() == before


def test_revoked_key_is_403(app, client, monkeypatch):
    from database import db

    raise_limits(app, monkeypatch)
    user, row, key = user_with_key("bob")
    assert post(client, "ping", {"apikey": key}).status_code == 200
    api_keys.revoke_key(user, row.id)
    db.session.commit()
    resp = post(client, "ping", {"apikey": key})
    assert resp.status_code == 403
    assert post(client, "placeorder", order(key)).status_code == 403
    assert orders_count() == 0


def test_read_only_key_cannot_place_orders_or_switch_mode(app, client, monkeypatch):
    raise_limits(app, monkeypatch)
    _user, _row, key = user_with_key("carol", scopes=("read", "data"))
    resp = post(client, "placeorder", order(key))
    assert resp.status_code == 403
    assert "orders scope" in resp.get_json()["message"]
    assert post(client, "analyzer/toggle", {"apikey": key, "mode": False}).status_code == 403
    assert orders_count() == 0


def test_get_is_405_json_and_trailing_slash_is_accepted(client, key):
    resp = client.get("/api/v1/placeorder")
    assert resp.status_code == 405
    assert resp.get_json()["status"] == "error"
    resp = client.post("/api/v1/ping/", json={"apikey": key})
    assert resp.status_code == 200
    assert resp.get_json() == {"status": "success", "data": {"message": "pong", "broker": "paper"}}


def test_unknown_endpoint_is_404_json(client, key):
    resp = post(client, "nosuchthing", {"apikey": key})
    assert resp.status_code == 404
    assert resp.get_json()["status"] == "error"
