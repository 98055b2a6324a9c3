"""REST API v1: rate limits per endpoint family (429 with retry_after), and the API / latency logs
(every call logged once, the apikey never)."""

from __future__ import annotations

import json

import pytest

from services.logs.recording import redact
from tests.helpers.api import api_logs, flush_logs, latency_rows, load_symbols, post, raise_limits, user_with_key


@pytest.fixture
def key(app, monkeypatch):
    raise_limits(app, monkeypatch)
    _user, _row, plaintext = user_with_key()
    return plaintext


def order(key: str, **extra) -> dict:
    return {"apikey": key, "strategy": "Test", "exchange": "NSE", "symbol": "INFY", "action": "BUY",
            "quantity": 1, **extra}


def test_429_with_retry_after_per_key(app, client, key, monkeypatch):
    monkeypatch.setitem(app.config, "API_RATE_LIMIT", "2 per minute")
    assert post(client, "ping", {"apikey": key}).status_code == 200
    assert post(client, "ping", {"apikey": key}).status_code == 200
    resp = post(client, "ping", {"apikey": key})
    assert resp.status_code == 429
    body = resp.get_json()
    assert body["status"] == "error"
    assert isinstance(body["retry_after"], int)
    assert 1 <= body["retry_after"] <= 60
    assert "Rate limit" in body["message"]
    assert int(resp.headers["Retry-After"]) >= 0
    # the books/data family shares the limit
    assert post(client, "search", {"apikey": key, "query": "INFY"}).status_code == 429
    # another key from the same address has its own budget
    _u, _r, other = user_with_key("zed")
    assert post(client, "ping", {"apikey": other}).status_code == 200


def test_order_and_smart_limits_are_separate_families(app, client, key, monkeypatch):
    monkeypatch.setitem(app.config, "ORDER_RATE_LIMIT", "1 per minute")
    monkeypatch.setitem(app.config, "SMART_ORDER_RATE_LIMIT", "1 per minute")
    # invalid bodies still count: the limit protects the server, not only the broker
    assert post(client, "placeorder", order(key, quantity=0)).status_code == 400
    resp = post(client, "cancelorder", {"apikey": key, "strategy": "Test"})
    assert resp.status_code == 429
    assert resp.get_json()["retry_after"] >= 1
    assert post(client, "placesmartorder", order(key, quantity=0, position_size="x")).status_code == 400
    assert post(client, "placesmartorder", order(key, quantity=0, position_size="x")).status_code == 429
    assert post(client, "ping", {"apikey": key}).status_code == 200


def test_every_call_is_logged_once_without_the_apikey(app, client, key, monkeypatch):
    load_symbols()
    calls = [
        ("ping", {"apikey": key}, 200),
        ("quotes", {"apikey": key, "symbol": "INFY", "exchange": "NSE"}, 200),
        ("quotes", {"apikey": key, "symbol": "NOPE", "exchange": "NSE"}, 404),
        ("placeorder", order(key, quantity="x"), 400),
        ("placeorder", order("wrong-key"), 403),
        ("symbol", {"apikey": key, "symbol": "INFY", "exchange": "NSE", "password": "hunter2"}, 400),
    ]
    for name, body, status in calls:
        assert post(client, name, body).status_code == status, name
    monkeypatch.setitem(app.config, "API_RATE_LIMIT", "1 per minute")
    assert post(client, "ping", {"apikey": key}).status_code == 200
    assert post(client, "ping", {"apikey": key}).status_code == 429
    assert client.get("/api/v1/funds").status_code == 405
    flush_logs(app)
    rows = api_logs()
    got = [(r.api_type, r.status_code) for r in rows]
    assert got == [(n, s) for n, _b, s in calls] + [("ping", 200), ("ping", 429), ("funds", 405)]
    for row in rows:
        text = json.dumps(row.request) + json.dumps(row.response)
        assert key not in text
        assert "wrong-key" not in text
        assert "hunter2" not in text
        assert row.request is None or "apikey" not in row.request
        assert row.duration_ms is not None
        assert row.duration_ms >= 0
        assert row.client_ip == "127.0.0.1"
    assert rows[0].response == {"status": "success", "data": {"message": "pong", "broker": "paper"}}
    assert rows[1].request == {"symbol": "INFY", "exchange": "NSE"}
    assert rows[3].user_id is None  # rejected before the key was looked at
    assert rows[0].user_id is not None
    assert rows[7].response["retry_after"] >= 1


def test_redact_removes_secrets_at_any_depth():
    body = {"apikey": "k", "API_KEY": "k", "orders": [{"token": "t", "symbol": "INFY"}],
            "nested": {"Password": "p", "access_token": "a", "secret": "s", "keep": 1}}
    assert redact(body) == {"orders": [{"symbol": "INFY"}], "nested": {"keep": 1}}


def test_order_call_writes_a_latency_row(app, client, key):
    load_symbols()
    resp = post(client, "placeorder", order(key))
    assert resp.status_code == 200, resp.get_json()
    body = resp.get_json()
    assert body["status"] == "success"
    assert body["mode"] == "analyze"
    assert body["orderid"]
    bad = post(client, "placeorder", order(key, symbol="NOSUCH"))
    assert bad.status_code == 404
    assert bad.get_json()["message"] == "Symbol NOSUCH not found in exchange NSE"
    flush_logs(app)
    rows = latency_rows()
    assert [(r.endpoint, r.is_success) for r in rows] == [("placeorder", True), ("placeorder", False)]
    ok = rows[0]
    assert ok.orderid == body["orderid"]
    assert ok.broker == "paper"
    assert ok.mode == "analyze"
    assert ok.symbol == "INFY"
    assert min(ok.validation_ms, ok.broker_ms, ok.response_ms, ok.total_ms) >= 0
    assert ok.total_ms >= ok.validation_ms + ok.broker_ms
    assert ok.overhead_ms == pytest.approx(ok.total_ms - ok.broker_ms, abs=1e-3)
    assert rows[1].error == "Symbol NOSUCH not found in exchange NSE"
    logs = api_logs()
    assert [r.mode for r in logs] == ["analyze", "analyze"]
