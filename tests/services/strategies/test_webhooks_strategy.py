"""Strategy and Chartink webhooks: checks, modes, hours, signals and the orders they journal."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from database import db
from database.portfolio_db import Position
from extensions import limiter
from services.accounts.users import Actor
from services.market import master_contract, symbol_index
from services.strategies import strategy as strategies
from services.strategies import webhooks
from services.strategies.strategy import StrategyInput
from services.trading import orders
from tests.helpers import trading
from tests.helpers.accounts import make_user
from tests.helpers.journal import journal, signals

IST = ZoneInfo("Asia/Kolkata")


@pytest.fixture(autouse=True)
def _env(app, monkeypatch):
    limiter.reset()
    master_contract.ensure_sample_contract(rows=2000)
    symbol_index.reload()
    at_ist(monkeypatch, 11, 0)
    yield
    limiter.reset()


def at_ist(monkeypatch, hh: int, mm: int) -> None:
    """Pretend the exchange clock shows hh:mm today."""
    moment = dt.datetime.combine(dt.date(2026, 3, 10), dt.time(hh, mm), tzinfo=IST)
    monkeypatch.setattr(webhooks, "now", lambda: moment)


@pytest.fixture
def user(app):
    return make_user("trader1")


def make_strategy(user, *, mode="LONG", platform="tradingview", intraday=False, active=True,
                  maps=(("RELIANCE", "NSE", 5, "MIS"),), name="Alpha"):
    actor = Actor(user.username, user.id, "127.0.0.1")
    s, webhook_id = strategies.create_strategy(actor, StrategyInput(name, platform, mode, intraday, dt.time(9, 20),
                                                        dt.time(15, 0), dt.time(15, 15)))
    sid = s.id
    for symbol, exchange, qty, product in maps:
        strategies.add_mapping(actor, sid, symbol, exchange, qty, product)
    if not active:
        strategies.set_active(actor, sid, False)
    return webhook_id


def hook(client, webhook_id, body, path="strategy"):
    return client.post(f"/{path}/webhook/{webhook_id}", json=body)


def position(user_id, symbol="RELIANCE", product="MIS") -> int:
    db.session.rollback()
    return trading.open_position(user_id, symbol, "NSE", product)


# -- refusals -------------------------------------------------------------------------------------------------
def test_unknown_webhook_is_404_and_records_nothing(client, user):
    make_strategy(user)
    resp = hook(client, "0" * 32, {"symbol": "RELIANCE", "action": "BUY"})
    assert resp.status_code == 404
    assert resp.json["status"] == "error"
    assert hook(client, "0" * 32, {"stocks": "SBIN"}, "chartink").status_code == 404
    assert signals() == []


def test_inactive_strategy_is_400_and_the_signal_is_recorded_as_rejected(client, user):
    wid = make_strategy(user, active=False)
    resp = hook(client, wid, {"symbol": "RELIANCE", "action": "BUY"})
    assert resp.status_code == 400
    assert "inactive" in resp.json["message"]
    (sig,) = signals()
    assert (sig.status, sig.source, sig.symbol, sig.user_id) == ("rejected", "strategy", None, user.id)
    assert sig.payload == {"symbol": "RELIANCE", "action": "BUY"}
    assert "inactive" in sig.message
    assert journal() == []


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"action": "BUY"}, "Missing field: symbol."),
        ({"symbol": "RELIANCE"}, "Missing field: action."),
        ({"symbol": "RELIANCE", "action": " "}, "Missing field: action."),
        ({"symbol": "RELIANCE", "action": "HOLD"}, "action must be BUY or SELL"),
        ({"symbol": "RELIANCE", "action": "BUY", "position_size": "1.5"}, "position_size must be a whole number."),
        ({"symbol": "RELIANCE", "action": "BUY", "position_size": -5}, "cannot be negative for a LONG strategy"),
        ({"symbol": "TCS", "action": "BUY"}, "Symbol TCS is not mapped in this strategy."),
        (["not", "an", "object"], "The body must be a JSON object"),
    ],
)
def test_bad_alerts_are_400_with_a_message(client, user, body, message):
    wid = make_strategy(user)
    resp = hook(client, wid, body)
    assert resp.status_code == 400, resp.json
    assert message in resp.json["message"]
    (sig,) = signals()
    assert sig.status == "rejected"
    assert message in sig.message
    assert journal() == []


def test_a_body_that_is_not_json_is_refused_and_kept_on_the_signal(client, user):
    wid = make_strategy(user)
    resp = client.post(f"/strategy/webhook/{wid}", data="buy reliance now", content_type="text/plain")
    assert resp.status_code == 400
    assert resp.is_json
    (sig,) = signals()
    assert sig.payload == {"body": "buy reliance now"}


def test_outside_trading_hours_is_400_entries_until_end_exits_until_squareoff(client, user, monkeypatch):
    wid = make_strategy(user, intraday=True)  # entries 09:20-15:00, exits until 15:15
    at_ist(monkeypatch, 9, 10)
    resp = hook(client, wid, {"symbol": "RELIANCE", "action": "BUY"})
    assert resp.status_code == 400
    assert "Outside trading hours" in resp.json["message"]
    at_ist(monkeypatch, 9, 30)
    assert hook(client, wid, {"symbol": "RELIANCE", "action": "BUY"}).status_code == 200
    at_ist(monkeypatch, 15, 5)
    resp = hook(client, wid, {"symbol": "RELIANCE", "action": "BUY"})
    assert resp.status_code == 400
    assert "entry orders are not allowed after the end time 15:00" in resp.json["message"]
    resp = hook(client, wid, {"symbol": "RELIANCE", "action": "SELL"})  # an exit: still allowed
    assert resp.status_code == 200, resp.json
    at_ist(monkeypatch, 15, 20)
    resp = hook(client, wid, {"symbol": "RELIANCE", "action": "SELL"})
    assert resp.status_code == 400
    assert "square-off time 15:15" in resp.json["message"]
    assert [s.status for s in signals()] == ["rejected", "accepted", "rejected", "accepted", "rejected"]
    assert [(o.action, o.quantity) for o in journal()] == [("BUY", 5), ("SELL", 5)]


def test_exchange_time_is_the_configured_zone(app, monkeypatch):
    monkeypatch.setattr(webhooks, "now", lambda: dt.datetime(2026, 3, 10, 4, 0, tzinfo=dt.UTC))
    assert webhooks.exchange_time() == dt.time(9, 30)  # IST = UTC+05:30
    monkeypatch.setitem(app.config, "EXCHANGE_TIMEZONE", "UTC")
    assert webhooks.exchange_time() == dt.time(4, 0)


# -- orders ----------------------------------------------------------------------------------------------------
def test_accepted_alert_records_a_signal_and_journals_the_order_as_the_owner(client, user):
    wid = make_strategy(user)
    resp = client.post(f"/strategy/webhook/{wid}", data='{"symbol": "reliance", "action": "buy"}',
                       content_type="text/plain")  # TradingView posts JSON as text/plain
    assert resp.status_code == 200, resp.json
    assert resp.json["message"] == "Order queued successfully for RELIANCE"
    (sig,) = signals()
    assert (sig.status, sig.source, sig.symbol, sig.exchange, sig.action, sig.user_id) == (
        "accepted", "strategy", "RELIANCE", "NSE", "BUY", user.id)
    (order,) = journal()
    assert order.signal_id == sig.id
    assert order.user_id == user.id
    assert order.orderid == resp.json["orderid"]
    assert (order.strategy, order.symbol, order.exchange, order.action, order.quantity, order.product,
            order.pricetype, order.mode) == ("Alpha", "RELIANCE", "NSE", "BUY", 5, "MIS", "MARKET", "analyze")
    assert position(user.id) == 5


def test_long_mode_sell_without_a_position_places_nothing_then_closes_the_long(client, user):
    wid = make_strategy(user)
    resp = hook(client, wid, {"symbol": "RELIANCE", "action": "SELL"})
    assert resp.status_code == 200
    assert "No open long position in RELIANCE" in resp.json["message"]
    assert journal() == []
    assert hook(client, wid, {"symbol": "RELIANCE", "action": "BUY"}).status_code == 200
    assert hook(client, wid, {"symbol": "RELIANCE", "action": "BUY"}).status_code == 200
    assert position(user.id) == 10
    resp = hook(client, wid, {"symbol": "RELIANCE", "action": "SELL"})
    assert resp.status_code == 200
    assert resp.json["message"] == "Order queued successfully for RELIANCE"
    assert position(user.id) == 0
    sigs = signals()
    assert [s.status for s in sigs] == ["accepted"] * 4
    assert [(o.action, int(o.quantity), o.signal_id) for o in journal()] == [
        ("BUY", 5, sigs[1].id), ("BUY", 5, sigs[2].id), ("SELL", 10, sigs[3].id)]


def test_long_mode_never_goes_short_even_with_a_manual_short_open(client, user):
    wid = make_strategy(user)
    trading.place_order(user.id, orders.OrderInput(strategy="manual", exchange="NSE", symbol="RELIANCE",
                                                  action="SELL", quantity=3, product="MIS"))
    resp = hook(client, wid, {"symbol": "RELIANCE", "action": "SELL"})
    assert resp.status_code == 200
    assert "No open long position" in resp.json["message"]
    assert position(user.id) == -3
    assert len(journal()) == 1


def test_short_mode_mirrors_long(client, user):
    wid = make_strategy(user, mode="SHORT")
    resp = hook(client, wid, {"symbol": "RELIANCE", "action": "BUY"})
    assert resp.status_code == 200
    assert "No open short position" in resp.json["message"]
    assert hook(client, wid, {"symbol": "RELIANCE", "action": "SELL"}).status_code == 200
    assert position(user.id) == -5
    assert hook(client, wid, {"symbol": "RELIANCE", "action": "BUY"}).status_code == 200
    assert position(user.id) == 0
    resp = hook(client, wid, {"symbol": "RELIANCE", "action": "SELL", "position_size": 4})
    assert resp.status_code == 400
    assert "cannot be positive for a SHORT strategy" in resp.json["message"]


def test_both_mode_with_position_size_places_smart_orders(client, user):
    wid = make_strategy(user, mode="BOTH")
    assert hook(client, wid, {"symbol": "RELIANCE", "action": "BUY", "position_size": "10"}).status_code == 200
    assert position(user.id) == 10
    resp = hook(client, wid, {"symbol": "RELIANCE", "action": "BUY", "position_size": 10})  # a repeat
    assert resp.status_code == 200
    assert "already where the alert wants it" in resp.json["message"]
    assert hook(client, wid, {"symbol": "RELIANCE", "action": "SELL", "position_size": -5}).status_code == 200
    assert position(user.id) == -5
    assert hook(client, wid, {"symbol": "RELIANCE", "action": "BUY", "position_size": 0}).status_code == 200
    assert position(user.id) == 0
    resp = hook(client, wid, {"symbol": "RELIANCE", "action": "BUY", "position_size": 0})  # flat already
    assert resp.status_code == 200
    assert "No open short position" in resp.json["message"]
    assert hook(client, wid, {"symbol": "RELIANCE", "action": "SELL"}).status_code == 200  # no size: mapping qty
    assert position(user.id) == -5
    assert [(o.action, int(o.quantity)) for o in journal()] == [("BUY", 10), ("SELL", 15), ("BUY", 5), ("SELL", 5)]
    assert all(o.signal_id is not None for o in journal())
    assert [float(s.position_size) if s.position_size is not None else None for s in signals()] == [
        10, 10, -5, 0, 0, None]


def test_a_symbol_mapped_on_two_exchanges_needs_the_exchange(client, user):
    wid = make_strategy(user, maps=(("RELIANCE", "NSE", 5, "MIS"), ("RELIANCE", "BSE", 2, "MIS")))
    resp = hook(client, wid, {"symbol": "RELIANCE", "action": "BUY"})
    assert resp.status_code == 400
    assert "add \"exchange\"" in resp.json["message"]
    if symbol_index.get_symbol_info("RELIANCE", "BSE") is None:
        return
    assert hook(client, wid, {"symbol": "RELIANCE", "action": "BUY", "exchange": "BSE"}).status_code == 200
    assert hook(client, wid, {"symbol": "NSE:RELIANCE", "action": "BUY"}).status_code == 200
    assert [(o.exchange, int(o.quantity)) for o in journal()] == [("BSE", 2), ("NSE", 5)]


def test_every_spelling_of_an_alert_trades_one_position(client, user):
    """Issue #13: " nse : reliance ", "Reliance" with " nse ", and an order placed as "reliance" on "nse" below
    the API all journal RELIANCE on NSE and move one position."""
    wid = make_strategy(user)
    assert hook(client, wid, {"symbol": " nse : reliance ", "action": "BUY"}).status_code == 200
    assert hook(client, wid, {"symbol": "Reliance", "action": "buy", "exchange": " nse "}).status_code == 200
    trading.place_order(user.id, orders.OrderInput(strategy="manual", exchange="nse", symbol="reliance",
                                                  action="BUY", quantity=1, product="MIS"))
    assert {(o.symbol, o.exchange) for o in journal()} == {("RELIANCE", "NSE")}
    assert len(journal()) == 3
    rows = list(db.session.scalars(select(Position).where(Position.user_id == user.id)))
    assert [(p.symbol, p.exchange, int(p.quantity)) for p in rows] == [("RELIANCE", "NSE", 11)]
    assert trading.open_position(user.id, "reliance", "nse", "MIS") == 11
    resp = hook(client, wid, {"symbol": "reliance", "action": "SELL"})  # LONG mode: the exit closes it all
    assert resp.status_code == 200, resp.json
    assert position(user.id) == 0
    assert [(o.action, int(o.quantity)) for o in journal()][-1] == ("SELL", 11)


def test_a_refused_order_marks_the_signal_rejected(client, user, monkeypatch):
    wid = make_strategy(user)

    def refuse(*_a, **_k):
        raise orders.OrderError("Insufficient funds: need 1, have 0", 400)

    monkeypatch.setattr(orders, "place_order", refuse)
    resp = hook(client, wid, {"symbol": "RELIANCE", "action": "BUY"})
    assert resp.status_code == 400
    assert resp.json["message"] == "Insufficient funds: need 1, have 0"
    (sig,) = signals()
    assert sig.status == "rejected"
    assert sig.message.startswith("Insufficient funds")


def test_an_unexpected_error_is_a_json_500_without_traceback(client, user, monkeypatch):
    wid = make_strategy(user)

    def boom(*_a, **_k):
        raise RuntimeError("secret internals")

    monkeypatch.setattr(orders, "place_order", boom)
    resp = hook(client, wid, {"symbol": "RELIANCE", "action": "BUY"})
    assert resp.status_code == 500
    assert resp.is_json
    assert "secret" not in resp.get_data(as_text=True)
    assert "Traceback" not in resp.get_data(as_text=True)
    (sig,) = signals()
    assert sig.status == "rejected"
    monkeypatch.setattr(webhooks, "strategy_alert", boom)
    resp = hook(client, wid, {"symbol": "RELIANCE", "action": "BUY"})
    assert resp.status_code == 500
    assert resp.json == {"status": "error", "message": "internal error"}


def test_webhooks_are_rate_limited_per_webhook_and_client(app, client, user, monkeypatch):
    monkeypatch.setitem(app.config, "WEBHOOK_RATE_LIMIT", "2 per minute")
    wid = make_strategy(user, active=False)
    other = make_strategy(user, name="Beta", active=False)
    for _ in range(2):
        assert hook(client, wid, {"symbol": "RELIANCE", "action": "BUY"}).status_code == 400
    resp = hook(client, wid, {"symbol": "RELIANCE", "action": "BUY"})
    assert resp.status_code == 429
    assert resp.is_json
    assert resp.json["status"] == "error"
    assert resp.json["retry_after"] >= 1
    assert int(resp.headers["Retry-After"]) >= 1
    assert hook(client, other, {"symbol": "RELIANCE", "action": "BUY"}).status_code == 400
    resp = client.post(f"/strategy/webhook/{wid}", json={"symbol": "RELIANCE", "action": "BUY"},
                       environ_base={"REMOTE_ADDR": "10.1.2.3"})
    assert resp.status_code == 400  # another client address has its own budget
    assert len(signals()) == 4  # the limited call never reached the strategy


def test_webhooks_need_no_csrf_token_or_session(app, user):
    wid = make_strategy(user)
    assert app.config.get("WTF_CSRF_ENABLED", True)
    resp = app.test_client().post(f"/strategy/webhook/{wid}", json={"symbol": "RELIANCE", "action": "BUY"})
    assert resp.status_code == 200


# -- Chartink ---------------------------------------------------------------------------------------------------------
def chartink(stocks, alert_name, scan_name="Breakout scan"):
    return {"stocks": stocks, "trigger_prices": ",".join("100.5" for _ in stocks.split(",")),
            "triggered_at": "10:15 am", "scan_name": scan_name, "scan_url": "breakout-scan",
            "alert_name": alert_name, "webhook_url": "https://example.invalid/hook"}


def test_chartink_multi_stock_alert_places_one_order_per_mapped_stock(client, user):
    wid = make_strategy(user, platform="chartink",
                        maps=(("RELIANCE", "NSE", 5, "MIS"), ("SBIN", "NSE", 20, "MIS")))
    resp = hook(client, wid, chartink("RELIANCE,SBIN,TCS", "Supertrend buy alert"), "chartink")
    assert resp.status_code == 200, resp.json
    assert resp.json["message"].startswith("BUY alert: 2 of 3 order(s) queued")
    results = {r["symbol"]: r for r in resp.json["results"]}
    assert results["RELIANCE"]["message"] == "Order queued successfully for RELIANCE"
    assert results["SBIN"]["message"] == "Order queued successfully for SBIN"
    assert results["TCS"]["status"] == "error"
    assert "not mapped" in results["TCS"]["message"]
    sigs = {s.symbol: s for s in signals()}
    assert {k: (s.status, s.source, s.action) for k, s in sigs.items()} == {
        "RELIANCE": ("accepted", "chartink", "BUY"), "SBIN": ("accepted", "chartink", "BUY"),
        "TCS": ("rejected", "chartink", "BUY")}
    assert {(o.symbol, o.action, int(o.quantity), o.signal_id) for o in journal()} == {
        ("RELIANCE", "BUY", 5, sigs["RELIANCE"].id), ("SBIN", "BUY", 20, sigs["SBIN"].id)}

    resp = hook(client, wid, chartink("RELIANCE,SBIN", "Exit SELL"), "chartink")
    assert resp.status_code == 200
    assert resp.json["message"].startswith("SELL alert: 2 of 2")
    assert position(user.id) == 0
    assert position(user.id, "SBIN") == 0
    resp = hook(client, wid, chartink("RELIANCE", "Exit SELL"), "chartink")
    assert resp.status_code == 200
    assert "No open long position" in resp.json["results"][0]["message"]


def test_chartink_short_and_cover_in_both_mode(client, user):
    wid = make_strategy(user, platform="chartink", mode="BOTH", maps=(("SBIN", "NSE", 20, "MIS"),))
    assert hook(client, wid, chartink("SBIN", "ema SHORT"), "chartink").status_code == 200
    assert position(user.id, "SBIN") == -20
    assert hook(client, wid, chartink("SBIN", "alert", scan_name="COVER scan"), "chartink").status_code == 200
    assert position(user.id, "SBIN") == 0
    assert [(o.action, int(o.quantity)) for o in journal()] == [("SELL", 20), ("BUY", 20)]


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        ({"alert_name": "BUY"}, 400, "Missing field: stocks."),
        (chartink("SBIN", "Breakout", scan_name="Momentum"), 400, "No action keyword"),
        (chartink("SBIN", "Breakout SHORT"), 400, "SHORT alerts are not allowed for a LONG-mode strategy."),
        (chartink("TCS,INFY", "BUY"), 400, "BUY alert: 0 of 2 order(s) queued, 2 refused"),
    ],
)
def test_chartink_refusals(client, user, body, status, message):
    wid = make_strategy(user, platform="chartink", maps=(("SBIN", "NSE", 20, "MIS"),))
    resp = hook(client, wid, body, "chartink")
    assert resp.status_code == status, resp.json
    assert message in resp.json["message"], resp.json
    assert signals()
    assert all(s.status == "rejected" for s in signals())
    assert journal() == []


def test_chartink_outside_hours(client, user, monkeypatch):
    wid = make_strategy(user, platform="chartink", intraday=True, maps=(("SBIN", "NSE", 20, "MIS"),))
    at_ist(monkeypatch, 15, 30)
    resp = hook(client, wid, chartink("SBIN", "BUY"), "chartink")
    assert resp.status_code == 400
    assert "Outside trading hours" in resp.json["message"]


# -- intraday square-off ----------------------------------------------------------------------------------------------
def test_squareoff_due_closes_the_mapped_positions_of_intraday_strategies_once(client, user, monkeypatch):
    wid = make_strategy(user, intraday=True, maps=(("RELIANCE", "NSE", 5, "MIS"), ("SBIN", "NSE", 20, "MIS")))
    positional = make_strategy(user, name="Positional", maps=(("TCS", "NSE", 2, "CNC"),))
    assert hook(client, wid, {"symbol": "RELIANCE", "action": "BUY"}).status_code == 200
    assert hook(client, positional, {"symbol": "TCS", "action": "BUY"}).status_code == 200
    day = dt.date(2026, 3, 10)
    before = dt.datetime.combine(day, dt.time(15, 14), tzinfo=IST)
    after = dt.datetime.combine(day, dt.time(15, 16), tzinfo=IST)
    assert webhooks.squareoff_due(before - dt.timedelta(minutes=5), before) == []
    results = webhooks.squareoff_due(before, after)
    assert sorted((r["symbol"], r["status"]) for r in results) == [("RELIANCE", "success"), ("SBIN", "success")]
    assert position(user.id) == 0
    assert position(user.id, "TCS", "CNC") == 2
    assert webhooks.squareoff_due(after, after + dt.timedelta(minutes=1)) == []  # once a day
    closing = journal()[-1]
    assert (closing.action, int(closing.quantity), closing.strategy) == ("SELL", 5, "Alpha")
    closing_signal = next(s for s in signals() if s.id == closing.signal_id)
    assert closing_signal.payload == {"squareoff": "15:15"}
    assert closing_signal.status == "accepted"


def test_an_alert_never_moves_the_position_against_its_action(client, user):
    wid = make_strategy(user, mode="BOTH")
    assert hook(client, wid, {"symbol": "RELIANCE", "action": "BUY", "position_size": 10}).status_code == 200
    resp = hook(client, wid, {"symbol": "RELIANCE", "action": "BUY", "position_size": 4})  # stale or out of order
    assert resp.status_code == 200
    assert "a BUY alert never sells (position 10, wanted 4)" in resp.json["message"]
    assert position(user.id) == 10
    assert len(journal()) == 1


def test_the_openalgo_sdk_strategy_client_speaks_to_the_webhook(client, user, monkeypatch):
    import httpx
    from openalgo import Strategy

    def post(url, json):  # the SDK's httpx.post, answered by the app
        assert url.startswith("http://bridge.test/strategy/webhook/")
        resp = client.post(url.removeprefix("http://bridge.test"), json=json)
        return httpx.Response(resp.status_code, json=resp.json, request=httpx.Request("POST", url))

    monkeypatch.setattr(httpx, "post", post)
    sdk = Strategy(host_url="http://bridge.test", webhook_id=make_strategy(user, mode="BOTH"))
    assert sdk.strategyorder("RELIANCE", "BUY", 10)["message"] == "Order queued successfully for RELIANCE"
    assert sdk.strategyorder("RELIANCE", "SELL", 0)["message"] == "Order queued successfully for RELIANCE"
    assert position(user.id) == 0
    assert [(o.action, int(o.quantity)) for o in journal()] == [("BUY", 10), ("SELL", 10)]


# -- bodies no alert sends ------------------------------------------------------------------------------------------
DEEP = "[" * 100_000 + "]" * 100_000  # deeper than the parser can go: RecursionError, not ValueError


@pytest.mark.parametrize("path", ["strategy", "chartink"])
@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (DEEP, "application/json"),
        ('{"a": ' * 50_000 + "1" + "}" * 50_000, "text/plain"),
        ("x" * (70 * 1024), "text/plain"),  # beyond the webhook's 64 KB
        ('{"symbol": "RELIANCE", "action": "BUY"' + " " * (70 * 1024) + "}", "application/json"),
        (b"\xff\xfe not utf-8 \x00", "application/octet-stream"),
        ("buy\x00reliance", "text/plain"),
        ('{"symbol": "RELI\\u0000ANCE", "action": "BUY"}', "application/json"),
        ('{"symbol": "RELIANCE", "action": "BUY", "exchange": "N\\u0000SE"}', "application/json"),
        ('{"symbol": "RELIANCE", "action": "B\\u0000UY"}', "application/json"),
        ('{"symbol": "\\ud800", "action": "BUY", "note\\u0000": "\\udfff"}', "application/json"),
        ('{"stocks": "SB\\u0000IN,RELIANCE", "alert_name": "BUY"}', "application/json"),
        ('{"stocks": ["\\u0000"], "alert_name": "BUY \\u0000", "scan_name": "\\ud800"}', "application/json"),
    ],
)
def test_bodies_no_alert_sends_are_400_json_never_500(client, user, path, body, content_type):
    wid = make_strategy(user, platform="chartink" if path == "chartink" else "tradingview")
    resp = client.post(f"/{path}/webhook/{wid}", data=body, content_type=content_type)
    assert resp.status_code == 400, resp.get_data(as_text=True)[:300]
    assert resp.is_json
    assert resp.json["status"] == "error"
    assert resp.json["message"]
    assert journal() == []
    for sig in signals():  # whatever was recorded is readable back, on both databases
        assert sig.status == "rejected"
        assert sig.message


def test_too_deep_json_is_not_json_for_every_blueprint(app):
    """The application's request class: a too-deep body is None with silent=True, a 400 without."""
    from werkzeug.exceptions import BadRequest

    with app.test_request_context("/x", method="POST", data=DEEP, content_type="application/json"):
        from flask import request

        assert request.get_json(silent=True) is None
        assert request.get_json(force=True, silent=True) is None
        with pytest.raises(BadRequest):
            request.get_json()
    with app.test_request_context("/x", method="POST", data='{"a": [1]}', content_type="application/json"):
        assert request.get_json() == {"a": [1]}
