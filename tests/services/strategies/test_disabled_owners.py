"""Disabled users and deleted or inactive strategies place nothing: strategy and Chartink webhooks (paper
and live), API keys, and the strategy square-off job. Re-enabling a user makes them trade again."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import update

from database import db
from database.user_db import User
from services.accounts import users as accounts
from services.accounts.users import Actor
from services.market import master_contract, symbol_index
from services.runtime import scheduler
from services.strategies import strategy as strategies
from services.strategies import webhooks
from services.strategies.strategy import StrategyInput
from services.trading import orders
from services.trading.paper import account as paper
from tests.helpers import live as live_fixtures
from tests.helpers import trading
from tests.helpers.accounts import make_user
from tests.helpers.api import post, raise_limits, user_with_key
from tests.helpers.journal import journal, signals
from tests.helpers.live import connect_live
from tests.helpers.orders import contract  # noqa: F401 - a fixture

kite = live_fixtures.kite  # fixture: the app on a fake Kite

IST = ZoneInfo("Asia/Kolkata")
DAY = dt.date(2026, 3, 10)
OWNER_DISABLED = "The owner of this strategy is disabled: it places no orders."


@pytest.fixture
def symbols(app):
    master_contract.ensure_sample_contract(rows=2000)
    symbol_index.reload()


@pytest.fixture
def user(app, symbols):
    return make_user("trader1")


def make_strategy(user, *, platform="tradingview", intraday=False, name="Alpha",
                  maps=(("RELIANCE", "NSE", 5, "MIS"),)) -> tuple[int, str]:
    actor = owner_actor(user)
    s, webhook_id = strategies.create_strategy(actor, StrategyInput(name, platform, "BOTH", intraday, dt.time(9, 20),
                                                        dt.time(15, 0), dt.time(15, 15)))
    sid = s.id
    for symbol, exchange, qty, product in maps:
        strategies.add_mapping(actor, sid, symbol, exchange, qty, product)
    return sid, webhook_id


def owner_actor(user) -> Actor:
    return Actor(user.username, user.id, "127.0.0.1")


def set_user_active(user_id: int, active: bool) -> None:
    """The real use case (as the CLI's `users disable/enable` runs it)."""
    accounts.set_active(user_id, active, actor=Actor.cli())


def alert(path: str) -> dict:
    if path == "chartink":
        return {"stocks": "RELIANCE", "trigger_prices": "100.5", "triggered_at": "10:15 am",
                "scan_name": "Breakout scan", "scan_url": "breakout-scan", "alert_name": "Supertrend BUY",
                "webhook_url": "https://example.invalid/hook"}
    return {"symbol": "RELIANCE", "action": "BUY"}


def platform(path: str) -> str:
    return "chartink" if path == "chartink" else "tradingview"


def hook(client, path: str, webhook_id: str, body: dict | None = None):
    return client.post(f"/{path}/webhook/{webhook_id}", json=body if body is not None else alert(path))


# -- webhooks --------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("path", ["strategy", "chartink"])
def test_a_disabled_owners_webhook_places_nothing_and_answers_403(client, user, path):
    _sid, wid = make_strategy(user, platform=platform(path))
    set_user_active(user.id, False)
    resp = hook(client, path, wid)
    assert resp.status_code == 403, resp.json
    assert resp.json == {"status": "error", "message": OWNER_DISABLED}
    assert journal() == []
    (sig,) = signals()  # recorded as refused, like every other refusal
    assert (sig.status, sig.source, sig.user_id, sig.message) == ("rejected", path, user.id, OWNER_DISABLED)


@pytest.mark.parametrize("path", ["strategy", "chartink"])
def test_a_user_disabled_by_another_process_is_refused_at_the_next_alert(client, user, path):
    """No cache stands between the users table and a webhook: a change committed elsewhere (another
    worker, with no invalidation of anything in this one) holds at the next alert."""
    _sid, wid = make_strategy(user, platform=platform(path))
    assert hook(client, path, wid).status_code == 200
    with db.engine.begin() as conn:
        conn.execute(update(User).where(User.id == user.id).values(is_active=False))
    resp = hook(client, path, wid)
    assert resp.status_code == 403, resp.json
    assert len(journal()) == 1


@pytest.mark.parametrize("path", ["strategy", "chartink"])
def test_a_re_enabled_owner_trades_again(client, user, path):
    _sid, wid = make_strategy(user, platform=platform(path))
    set_user_active(user.id, False)
    assert hook(client, path, wid).status_code == 403
    set_user_active(user.id, True)
    resp = hook(client, path, wid)
    assert resp.status_code == 200, resp.json
    (order,) = journal()
    assert (order.user_id, order.symbol, order.action) == (user.id, "RELIANCE", "BUY")
    assert [s.status for s in signals()] == ["rejected", "accepted"]


@pytest.mark.parametrize("path", ["strategy", "chartink"])
def test_an_inactive_strategy_places_nothing(client, user, path):
    sid, wid = make_strategy(user, platform=platform(path))
    strategies.set_active(owner_actor(user), sid, False)
    resp = hook(client, path, wid)
    assert resp.status_code == 400
    assert resp.json["message"] == "Strategy 'Alpha' is inactive."
    assert journal() == []
    assert [s.status for s in signals()] == ["rejected"]


@pytest.mark.parametrize("path", ["strategy", "chartink"])
def test_a_deleted_strategy_places_nothing(client, user, path):
    sid, wid = make_strategy(user, platform=platform(path))
    strategies.delete_strategy(owner_actor(user), sid)
    assert hook(client, path, wid).status_code == 404
    assert journal() == []


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ("disable_owner", OWNER_DISABLED),
        ("deactivate", "Strategy 'Alpha' is inactive."),
        ("delete", "The strategy was deleted."),
    ],
)
def test_a_change_during_a_chartink_alert_stops_its_remaining_orders(client, user, monkeypatch, change, message):
    """Checked before every order, not only when the alert arrives: a scan of many stocks takes time."""
    sid, wid = make_strategy(user, platform="chartink",
                             maps=(("RELIANCE", "NSE", 5, "MIS"), ("SBIN", "NSE", 20, "MIS")))
    real_place = orders.place_order

    def place_then_change(*args, **kwargs):
        placed = real_place(*args, **kwargs)
        if change == "disable_owner":
            set_user_active(user.id, False)
        elif change == "deactivate":
            strategies.set_active(owner_actor(user), sid, False)
        else:
            strategies.delete_strategy(owner_actor(user), sid)
        return placed

    monkeypatch.setattr(orders, "place_order", place_then_change)
    resp = hook(client, "chartink", wid, {**alert("chartink"), "stocks": "RELIANCE,SBIN"})
    assert resp.status_code == 200, resp.json
    assert resp.json["message"] == "BUY alert: 1 of 2 order(s) queued, 1 refused"
    assert [(r["symbol"], r["status"], r["message"]) for r in resp.json["results"]] == [
        ("RELIANCE", "success", "Order queued successfully for RELIANCE"), ("SBIN", "error", message)]
    assert [o.symbol for o in journal()] == ["RELIANCE"]
    assert {s.symbol: (s.status, s.message) for s in signals()}["SBIN"] == ("rejected", message)


# -- live mode -------------------------------------------------------------------------------------------------------
def test_a_disabled_owner_sends_nothing_to_the_live_broker(client, app, contract, kite):  # noqa: F811
    alice = make_user("alice")
    connect_live(alice.id, kite)
    _sid, wid = make_strategy(alice, maps=(("INFY", "NSE", 2, "MIS"),))
    set_user_active(alice.id, False)
    resp = hook(client, "strategy", wid, {"symbol": "INFY", "action": "BUY"})
    assert resp.status_code == 403, resp.json
    assert not [r for r in kite.fake.requests if r[0] == "POST" and r[1].startswith("/orders")]
    assert journal() == []
    set_user_active(alice.id, True)  # the same alert, enabled: it does reach the broker
    resp = hook(client, "strategy", wid, {"symbol": "INFY", "action": "BUY"})
    assert resp.status_code == 200, resp.json
    (order,) = journal()
    assert (order.mode, order.broker) == ("live", "zerodha")
    assert kite.fake.latest(order.orderid)["tradingsymbol"] == "INFY"


# -- API keys ------------------------------------------------------------------------------------------------------
def test_a_disabled_users_api_key_is_refused_and_places_nothing(client, app, symbols, monkeypatch):
    raise_limits(app, monkeypatch)
    alice, _row, key = user_with_key("alice")
    body = {"apikey": key, "strategy": "Test", "exchange": "NSE", "symbol": "INFY", "action": "BUY",
            "quantity": "1", "pricetype": "MARKET", "product": "MIS"}
    assert post(client, "placeorder", body).status_code == 200  # the key is cached now
    set_user_active(alice.id, False)
    resp = post(client, "placeorder", body)
    assert resp.status_code == 403
    assert resp.get_json()["status"] == "error"
    assert post(client, "placesmartorder", {**body, "position_size": "5"}).status_code == 403
    assert len(journal()) == 1
    set_user_active(alice.id, True)
    assert post(client, "placeorder", body).status_code == 200
    assert len(journal()) == 2


# -- scheduled jobs ----------------------------------------------------------------------------------------------------
def at(hh: int, mm: int) -> dt.datetime:
    return dt.datetime.combine(DAY, dt.time(hh, mm), tzinfo=IST)


def test_the_strategy_squareoff_job_skips_a_disabled_owner(client, user, monkeypatch):
    monkeypatch.setattr(webhooks, "now", lambda: at(11, 0))
    bob = make_user("bob")
    _a, alpha = make_strategy(user, intraday=True)
    _b, beta = make_strategy(bob, intraday=True, name="Beta")
    assert hook(client, "strategy", alpha).status_code == 200
    assert hook(client, "strategy", beta).status_code == 200
    set_user_active(user.id, False)
    before = len(signals())
    results = webhooks.squareoff_due(at(15, 14), at(15, 16))
    assert [(r["strategy"], r["symbol"], r["status"]) for r in results] == [("Beta", "RELIANCE", "success")]
    db.session.rollback()
    assert trading.open_position(bob.id, "RELIANCE", "NSE", "MIS") == 0
    assert trading.open_position(user.id, "RELIANCE", "NSE", "MIS") == 5  # nothing placed for trader1
    assert [s.user_id for s in signals()[before:]] == [bob.id]
    assert {o.user_id for o in journal()[2:]} == {bob.id}


def test_the_scheduler_runs_no_strategy_squareoff_for_a_disabled_owner(app, client, user, monkeypatch):
    """Through the scheduler itself (CNC mappings: the analyze-mode MIS square-off leaves them alone)."""
    monkeypatch.setattr(webhooks, "now", lambda: at(11, 0))
    bob = make_user("bob")
    _a, alpha = make_strategy(user, intraday=True, maps=(("RELIANCE", "NSE", 5, "CNC"),))
    _b, beta = make_strategy(bob, intraday=True, name="Beta", maps=(("RELIANCE", "NSE", 5, "CNC"),))
    assert hook(client, "strategy", alpha).status_code == 200
    assert hook(client, "strategy", beta).status_code == 200
    set_user_active(user.id, False)
    scheduler.run_once(app, since=at(15, 14), until=at(15, 16))
    db.session.rollback()
    assert trading.open_position(bob.id, "RELIANCE", "NSE", "CNC") == 0
    assert trading.open_position(user.id, "RELIANCE", "NSE", "CNC") == 5


def test_the_strategy_squareoff_stops_when_the_owner_is_disabled_during_the_run(client, user, monkeypatch):
    monkeypatch.setattr(webhooks, "now", lambda: at(11, 0))
    _sid, wid = make_strategy(user, intraday=True, maps=(("RELIANCE", "NSE", 5, "MIS"), ("SBIN", "NSE", 20, "MIS")))
    assert hook(client, "strategy", wid, {"symbol": "RELIANCE", "action": "BUY"}).status_code == 200
    assert hook(client, "strategy", wid, {"symbol": "SBIN", "action": "BUY"}).status_code == 200
    real_smart = orders.place_smart_order

    def close_then_disable(*args, **kwargs):
        placed = real_smart(*args, **kwargs)
        set_user_active(user.id, False)
        return placed

    monkeypatch.setattr(orders, "place_smart_order", close_then_disable)
    results = webhooks.squareoff_due(at(15, 14), at(15, 16))
    assert [(r["symbol"], r["status"]) for r in results] == [("RELIANCE", "success"), ("SBIN", "error")]
    assert results[1]["message"] == OWNER_DISABLED
    db.session.rollback()
    assert trading.open_position(user.id, "SBIN", "NSE", "MIS") == 20


def test_the_analyze_mode_mis_squareoff_still_closes_a_disabled_users_positions(client, user):
    """Deliberate: the paper engine's MIS square-off only reduces risk on the paper book (the exchange's
    rule, which a live broker applies itself) and sends nothing out, so it runs for disabled users too."""
    _sid, wid = make_strategy(user)
    assert hook(client, "strategy", wid).status_code == 200
    set_user_active(user.id, False)
    (order,) = journal()
    placed = order.placed_at.astimezone(IST)
    tomorrow = dt.datetime.combine(placed.date() + dt.timedelta(days=1), dt.time(15, 16), tzinfo=IST)
    assert paper.square_off_due(now=tomorrow) == 1
    db.session.rollback()
    assert trading.open_position(user.id, "RELIANCE", "NSE", "MIS") == 0
