"""Webhook calls are logged like /api/v1 calls: an api_logs row per call, an order_latency row per order,
through the background writer, with the webhook id (the call's credential) never stored."""

from __future__ import annotations

import json

import pytest

from database.apilog_db import ApiLog
from database.latency_db import OrderLatency
from tests.helpers.api import api_logs, count, flush_logs, latency_rows
from tests.services.strategies.test_webhooks_strategy import _env, chartink, hook, make_strategy  # noqa: F401 - _env is autouse
from tests.services.strategies.test_webhooks_strategy import user as user  # noqa: PLC0414 - the fixture


def test_a_strategy_alert_writes_its_api_log_and_latency_rows(app, client, user):
    wid = make_strategy(user)
    resp = hook(client, wid, {"symbol": "RELIANCE", "action": "BUY", "note": f"sent to /strategy/webhook/{wid}"})
    assert resp.status_code == 200
    flush_logs(app)
    (row,) = api_logs()
    assert (row.api_type, row.user_id, row.mode, row.status_code) == ("webhook:strategy", user.id, "analyze", 200)
    assert row.request == {"symbol": "RELIANCE", "action": "BUY", "note": "sent to /strategy/webhook/***"}
    assert row.response == resp.json
    assert row.duration_ms > 0
    assert row.client_ip == "127.0.0.1"
    assert wid not in json.dumps(row.request) + json.dumps(row.response)
    (lat,) = latency_rows()
    assert (lat.endpoint, lat.user_id, lat.mode, lat.broker, lat.orderid, lat.symbol, lat.is_success) == (
        "webhook:strategy", user.id, "analyze", "paper", resp.json["orderid"], "RELIANCE", True)
    assert 0 <= lat.validation_ms <= lat.total_ms
    assert lat.broker_ms <= lat.total_ms
    assert lat.overhead_ms == pytest.approx(lat.total_ms - lat.broker_ms, abs=1e-3)


def test_a_chartink_alert_writes_one_latency_row_per_order_and_hides_the_id(app, client, user):
    wid = make_strategy(user, platform="chartink", maps=(("RELIANCE", "NSE", 5, "MIS"), ("SBIN", "NSE", 20, "MIS")))
    body = chartink("RELIANCE,SBIN,TCS", "Supertrend buy alert")
    body["webhook_url"] = f"https://bridge.example/chartink/webhook/{wid}"
    resp = hook(client, wid, body, "chartink")
    assert resp.status_code == 200
    flush_logs(app)
    (row,) = api_logs()
    assert (row.api_type, row.user_id, row.status_code) == ("webhook:chartink", user.id, 200)
    assert row.request["webhook_url"] == "https://bridge.example/chartink/webhook/***"
    assert wid not in json.dumps(row.request)
    rows = latency_rows()  # TCS is not mapped: no order was sent for it
    assert sorted((r.symbol, r.endpoint, r.is_success) for r in rows) == [
        ("RELIANCE", "webhook:chartink", True), ("SBIN", "webhook:chartink", True)]
    assert {r.orderid for r in rows} == {r["orderid"] for r in resp.json["results"] if "orderid" in r}


def test_refused_and_unknown_calls_are_logged_without_latency_rows(app, client, user, monkeypatch):
    wid = make_strategy(user, active=False)
    assert hook(client, wid, {"symbol": "RELIANCE", "action": "BUY"}).status_code == 400
    assert hook(client, "f" * 32, {"symbol": "RELIANCE", "action": "BUY"}).status_code == 404
    resp = client.post(f"/strategy/webhook/{wid}", data="x" * (70 * 1024), content_type="text/plain")
    assert resp.status_code == 400
    monkeypatch.setitem(app.config, "WEBHOOK_RATE_LIMIT", "1 per minute")
    other = make_strategy(user, name="Beta", active=False)
    hook(client, other, {"symbol": "SBIN", "action": "BUY"})
    assert hook(client, other, {"symbol": "SBIN", "action": "BUY"}).status_code == 429
    flush_logs(app)
    rows = api_logs()
    assert [(r.api_type, r.status_code, r.user_id) for r in rows] == [
        ("webhook:strategy", 400, user.id), ("webhook:strategy", 404, None), ("webhook:strategy", 400, None),
        ("webhook:strategy", 400, user.id), ("webhook:strategy", 429, None)]
    assert "inactive" in rows[0].response["message"]
    assert rows[4].response["retry_after"] >= 1
    assert "not kept" in rows[2].request["body"]
    assert count(OrderLatency) == 0


def test_a_refused_order_writes_a_failed_latency_row(app, client, user, monkeypatch):
    from services.trading import orders

    wid = make_strategy(user)
    monkeypatch.setattr(orders, "place_order", lambda *_a, **_k: (_ for _ in ()).throw(
        orders.OrderError("Insufficient funds: need 1, have 0", 400)))
    assert hook(client, wid, {"symbol": "RELIANCE", "action": "BUY"}).status_code == 400
    flush_logs(app)
    (lat,) = latency_rows()
    assert (lat.is_success, lat.error, lat.mode, lat.orderid) == (False, "Insufficient funds: need 1, have 0",
                                                                  "analyze", None)
    assert count(ApiLog) == 1


def test_a_nul_in_a_webhook_body_is_logged_on_both_databases(app, client, user):
    wid = make_strategy(user)
    writer = app.extensions["algobridge.writer"]
    before = writer.dead_lettered
    resp = client.post(f"/strategy/webhook/{wid}", data="buy\x00reliance", content_type="text/plain")
    assert resp.status_code == 400
    flush_logs(app)
    assert writer.dead_lettered == before
    (row,) = api_logs()
    assert row.request["body"].startswith("buy")
    assert row.request["body"].endswith("reliance")
