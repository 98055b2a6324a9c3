"""The read API's cheap path: the order book is built once per account version, book answers are logged
as they were sent (never with the key), answers are encoded like Flask's JSON, and API calls do no
session work."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest
from flask import json as flask_json

from blueprints import api_v1
from tests.helpers import trading
from tests.helpers.accounts import isolated_client, login, use_test_hasher
from tests.helpers.api import api_logs, flush_logs, load_symbols, post, raise_limits, user_with_key


@pytest.fixture
def trader(app, monkeypatch):
    raise_limits(app, monkeypatch)
    load_symbols()
    user, _row, key = user_with_key("alice")
    return user, key


def order(key: str, action: str = "BUY") -> dict:
    return {"apikey": key, "strategy": "Test", "exchange": "NSE", "symbol": "INFY", "action": action,
            "quantity": "1", "pricetype": "MARKET", "product": "MIS"}


def test_the_order_book_is_rebuilt_only_when_the_account_changes(app, client, trader):
    user, key = trader
    assert post(client, "placeorder", order(key)).status_code == 200
    first = trading.orderbook(user.id)
    assert trading.orderbook(user.id) is first  # nothing changed: the same book
    assert post(client, "placeorder", order(key, "SELL")).status_code == 200
    second = trading.orderbook(user.id)
    assert second is not first
    assert len(second["orders"]) == 2
    assert len(first["orders"]) == 1
    assert second["statistics"]["total_buy_orders"] == 1
    assert second["statistics"]["total_sell_orders"] == 1
    answer = post(client, "orderbook", {"apikey": key}).get_json()
    assert answer["data"] == second


def test_book_answers_are_logged_as_sent_and_never_with_the_key(app, client, trader):
    _user, key = trader
    assert post(client, "placeorder", order(key)).status_code == 200
    answers = {name: post(client, name, {"apikey": key}) for name in ("orderbook", "funds", "tradebook")}
    for resp in answers.values():
        assert resp.status_code == 200
    flush_logs(app)
    rows = {r.api_type: r for r in api_logs()}
    for name, resp in answers.items():
        assert rows[name].response == resp.get_json()
        assert rows[name].request == {}
    for row in rows.values():
        assert key not in json.dumps(row.request) + json.dumps(row.response)


def test_a_plain_answer_is_still_stored_when_it_is_an_error(app, client, trader):
    _user, key = trader
    resp = post(client, "orderbook", {"apikey": key, "extra": "x"})
    assert resp.status_code == 400
    flush_logs(app)
    row = api_logs()[-1]
    assert row.api_type == "orderbook"
    assert row.response == resp.get_json()
    assert key not in json.dumps(row.request)


@pytest.mark.parametrize("body", [
    {"b": 1, "a": [Decimal("1.50"), {"z": None, "y": True}], "text": "₹ café"},
    {"big": 2**70, "small": -(2**70)},  # beyond 64 bits: orjson refuses, Flask's encoder answers
    {"lone": "\ud800"},  # a lone surrogate, as a hostile body may echo back
])
def test_answers_are_encoded_as_flask_would(app, body):
    with app.test_request_context():
        ours = api_v1._encode(body)
        theirs = flask_json.dumps(body)
    ours_text = ours.decode() if isinstance(ours, bytes) else ours
    assert json.loads(ours_text) == json.loads(theirs)
    assert list(json.loads(ours_text)) == sorted(body)  # keys sorted, like Flask's provider


def test_api_calls_neither_read_nor_set_the_session(app, trader, monkeypatch):
    use_test_hasher(monkeypatch)
    user, key = trader
    client = isolated_client(app)
    assert login(client, user.username).status_code in (302, 303)
    loaded = []
    manager = app.login_manager
    original = manager._user_callback
    monkeypatch.setattr(manager, "_user_callback", lambda uid: loaded.append(uid) or original(uid))
    resp = client.post("/api/v1/ping", json={"apikey": key})
    assert resp.status_code == 200
    assert "Set-Cookie" not in resp.headers
    assert loaded == []  # the signed-in user is not loaded for an API call
    assert client.get("/dashboard").status_code == 200  # the web session itself still works
    assert loaded
