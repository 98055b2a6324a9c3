"""Risk limits (issue #19) through the order service, with a controlled clock and fixed quote sequences: each
P&L limit (breach -> square-off -> blocked -> next trading day allowed), the per-order limits, the kill switch."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal as D

import pytest
from sqlalchemy import event, func, select

from database import db
from database.alert_db import Alert
from database.audit_db import AuditEvent
from database.enums import OrderStatus
from database.order_db import Order
from database.risk_db import RiskDay
from database.types import utcnow
from services.trading import approvals, risk, venues
from services.trading.orders import OrderError
from services.trading.paper.engine import Quote
from services.trading.venues import venue_for
from tests.helpers import live as live_fixtures
from tests.helpers import orders as fx
from tests.helpers import trading
from tests.helpers.clock import clock  # noqa: F401 - fixture
from tests.helpers.live import connect_live
from tests.helpers.orders import order, set_quote

contract = fx.contract  # fixture
users = fx.users  # fixture
INFY = ("INFY", "NSE")


@pytest.fixture
def now(clock, monkeypatch):  # noqa: F811
    """The clock, also for the risk module and approvals; starts at a fixed moment of a trading day."""
    monkeypatch.setattr(risk, "utcnow", clock)
    monkeypatch.setattr(approvals, "utcnow", clock)
    monkeypatch.setattr(risk, "_refusals_noted", {})  # the once-a-minute alerts start afresh
    clock.now = dt.datetime(2026, 12, 8, 5, 0, tzinfo=dt.UTC)  # 10:30 in Kolkata, a Tuesday
    return clock


def tick(ltp) -> dict:
    return {INFY: Quote(ltp=D(str(ltp)), bid=D(str(ltp)), ask=D(str(ltp)))}


def refused(uid, inp) -> OrderError:
    with pytest.raises(OrderError) as caught:
        trading.place_order(uid, inp)
    return caught.value


def breaches() -> list[tuple[str, str]]:
    rows = db.session.scalars(select(AuditEvent).where(AuditEvent.action == "risk.breach")).all()
    alerts = db.session.scalar(select(func.count()).select_from(Alert).where(Alert.kind == "risk_breach"))
    assert alerts == len(rows)
    return [(r.target_type, r.after["reason"]) for r in rows]


# -- pure -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("limits", "pnl", "peak", "reason"), [
    (risk.Limits(max_loss=D(100)), D(-99), D(0), None),
    (risk.Limits(max_loss=D(100)), D(-100), D(0), "max_loss"),
    (risk.Limits(target=D(50)), D(49.9), D(49.9), None),
    (risk.Limits(target=D(50)), D(50), D(50), "target"),
    (risk.Limits(trail_trigger=D(100), trail_gap=D(50)), D(20), D(60), None),  # not armed: the peak never got to 100
    (risk.Limits(trail_trigger=D(100), trail_gap=D(50)), D(71), D(120), None),
    (risk.Limits(trail_trigger=D(100), trail_gap=D(50)), D(70), D(120), "trailing_lock"),
    (risk.Limits(), D(-10**6), D(10**6), None),
])
def test_breach_is_pure_arithmetic(limits, pnl, peak, reason):
    assert risk.breach(limits, pnl, peak) == reason


@pytest.mark.parametrize(("action", "qty", "current", "exit_"), [
    ("SELL", 5, 10, True), ("SELL", 10, 10, True), ("SELL", 11, 10, False), ("BUY", 5, 10, False),
    ("BUY", 5, -5, True), ("SELL", 1, 0, False), ("BUY", 1, 0, False),
])
def test_an_exit_only_reduces_the_position(action, qty, current, exit_):
    assert risk.is_exit(action, qty, current) is exit_


def test_limits_are_refused_when_they_make_no_sense(app, users):
    alice, _ = users
    for values in ({"max_loss": "-5"}, {"max_loss": "abc"}, {"max_orders_per_minute": "0"},
                   {"approval_ttl_seconds": "5"}, {"max_order_quantity": "1.5"}):
        with pytest.raises(risk.RiskError):
            risk.set_limits(alice, "account", "", values, actor="t")
    with pytest.raises(risk.RiskError):
        risk.set_limits(alice, "strategy", "  ", {"max_loss": "1"}, actor="t")
    assert risk.user_risk(alice).empty


# -- P&L limits -------------------------------------------------------------------------------------------
def test_max_loss_on_ticks_squares_off_cancels_blocks_until_the_next_day(app, users, now):
    alice, bob = users
    set_quote("INFY", "1500", bid="1500", ask="1500")
    risk.set_limits(alice, "account", "", {"max_loss": "100"}, actor="test")
    trading.place_order(alice, order(quantity=10))
    resting = trading.place_order(alice, order(symbol="SBIN", pricetype="LIMIT", price="1", quantity=1))
    trading.place_order(bob, order(quantity=10))  # bob has no limits: never touched

    assert risk.on_ticks(tick("1495"), now.now) == 0  # -50
    assert risk.on_ticks(tick("1489.95"), now.now) == 1  # -100.50: the maximum loss
    assert trading.open_position(alice, "INFY", "NSE", "MIS") == 0
    assert trading.open_position(bob, "INFY", "NSE", "MIS") == 10
    assert db.session.scalar(select(Order.status).where(Order.orderid == resting.orderid)) == OrderStatus.CANCELLED
    assert breaches() == [("account", "max_loss")]
    day = db.session.scalars(select(RiskDay)).one()
    assert (day.mode, day.blocked_reason, day.last_pnl) == ("analyze", "max_loss", D("-100.5"))

    assert refused(alice, order(quantity=1)).status == 403
    assert risk.on_ticks(tick("1400"), now.now) == 0  # blocked already: no second square-off
    assert len(breaches()) == 1

    now.now += dt.timedelta(days=1)  # the next trading day
    assert trading.place_order(alice, order(quantity=1)).status == "complete"


def test_strategy_target_on_a_fill_squares_off_that_strategy_only(app, users, now):
    alice, _ = users
    set_quote("INFY", "1500", bid="1500", ask="1500")
    risk.set_limits(alice, "strategy", "s1", {"target": "50"}, actor="test")
    trading.place_order(alice, order(quantity=10, strategy="s1"))
    trading.place_order(alice, order(quantity=5, strategy="s2"))
    set_quote("INFY", "1510", bid="1510", ask="1510")
    trading.place_order(alice, order(quantity=1, strategy="s1"))  # the fill: s1 is +100, its target reached

    assert breaches() == [("strategy", "target")]
    assert trading.open_position(alice, "INFY", "NSE", "MIS") == 5  # s2's five stay
    s1 = db.session.scalars(select(Order).where(Order.strategy == "s1").order_by(Order.id)).all()
    assert [(o.action.value, int(o.quantity)) for o in s1] == [("BUY", 10), ("BUY", 1), ("SELL", 11)]

    assert refused(alice, order(quantity=1, strategy="s1")).status == 403  # s1's entries are blocked
    trading.place_order(alice, order(quantity=1, strategy="s2"))  # s2 is not
    trading.place_order(alice, order(action="SELL", quantity=2, strategy="s1"))  # an exit stays allowed
    now.now += dt.timedelta(days=1)
    trading.place_order(alice, order(quantity=1, strategy="s1"))


def test_trailing_profit_lock_on_a_quote_sequence(app, users, now):
    alice, _ = users
    set_quote("INFY", "1500", bid="1500", ask="1500")
    risk.set_limits(alice, "account", "", {"trail_trigger": "100", "trail_gap": "50"}, actor="test")
    trading.place_order(alice, order(quantity=10))
    for ltp in ("1505", "1515", "1520", "1516"):  # P&L 50, 150, 200 (peak), 160
        assert risk.on_ticks(tick(ltp), now.now) == 0
    day = db.session.scalars(select(RiskDay)).one()
    assert (day.peak_pnl, day.last_pnl, day.blocked_reason) == (D(200), D(160), None)
    assert risk.on_ticks(tick("1515"), now.now) == 1  # 150 = 200 - 50: the lock
    assert breaches() == [("account", "trailing_lock")]
    assert trading.open_position(alice, "INFY", "NSE", "MIS") == 0
    assert refused(alice, order(quantity=1)).status == 403
    now.now += dt.timedelta(days=1)
    trading.place_order(alice, order(quantity=1))


def test_the_scheduler_evaluates_between_ticks(app, users, now):
    alice, _ = users
    set_quote("INFY", "1500", bid="1500", ask="1500")
    risk.set_limits(alice, "account", "", {"max_loss": "100"}, actor="test")
    trading.place_order(alice, order(quantity=10))
    assert risk.evaluate_due(now.now) == 0
    set_quote("INFY", "1480", bid="1480", ask="1480")  # the quote source moved; no tick was seen
    assert risk.evaluate_due(now.now) == 1
    assert trading.open_position(alice, "INFY", "NSE", "MIS") == 0


# -- per-order limits ----------------------------------------------------------------------------------------
def test_orders_per_minute_and_per_day(app, users, now):
    alice, _ = users
    set_quote("INFY", "1500", bid="1500", ask="1500")
    risk.set_limits(alice, "account", "", {"max_orders_per_minute": "2", "max_orders_per_day": "3"}, actor="t")
    trading.place_order(alice, order(quantity=1))
    trading.place_order(alice, order(quantity=1))
    assert refused(alice, order(quantity=1)).status == 429
    assert refused(alice, order(quantity=1)).status == 429
    refusals = db.session.scalars(select(AuditEvent.after).where(AuditEvent.action == "risk.refuse")).all()
    assert [r["rule"] for r in refusals] == ["max_orders_per_minute"] * 2  # each refusal audited,
    assert db.session.scalar(select(func.count()).select_from(Alert).where(Alert.kind == "risk_refusal")) == 1
    now.now += dt.timedelta(seconds=61)  # one alert a minute
    trading.place_order(alice, order(quantity=1))
    now.now += dt.timedelta(seconds=61)
    err = refused(alice, order(quantity=1))
    assert (err.status, "today" in err.message) == (429, True)
    now.now += dt.timedelta(days=1)
    trading.place_order(alice, order(quantity=1))


def test_open_positions_quantity_and_value_per_order(app, users, now):
    alice, _ = users
    set_quote("INFY", "1500", bid="1500", ask="1500")
    set_quote("SBIN", "800", bid="800", ask="800")
    risk.set_limits(alice, "account", "", {"max_open_positions": "1", "max_order_quantity": "20",
                                           "max_order_value": "40000"}, actor="t")
    trading.place_order(alice, order(quantity=10))
    assert "open positions" in refused(alice, order(symbol="SBIN", quantity=1)).message
    trading.place_order(alice, order(quantity=5))  # the same position grows: allowed
    assert "quantity 21" in refused(alice, order(quantity=21)).message
    assert "order value 48000.00" in refused(alice, order(pricetype="LIMIT", price="2400", quantity=20)).message
    trading.place_order(alice, order(quantity=20))  # a market order is valued at the quote: 30000 passes
    set_quote("INFY", "2100", bid="2100", ask="2100")
    assert "order value 42000.00" in refused(alice, order(quantity=20)).message
    trading.place_order(alice, order(action="SELL", quantity=35))  # an exit: no per-order limit applies
    trading.place_order(alice, order(symbol="SBIN", quantity=1))  # flat again: one position may open


def test_no_limits_cost_no_query_per_order(app, users, now):
    alice, _ = users
    set_quote("INFY", "1500", bid="1500", ask="1500")
    trading.place_order(alice, order(quantity=1))  # the cache holds alice's (empty) limits now
    statements: list[str] = []

    def count(*args):
        statements.append(args[2])

    venue = venue_for(alice)
    from services.market import symbol_index
    info = symbol_index.get_symbol_info("INFY", "NSE")
    event.listen(db.engine, "before_cursor_execute", count)
    try:
        risk.check_order(venue, order(quantity=1), info)
        assert risk.needs_approval(alice, "test") is None
        risk.after_order(venue)
    finally:
        event.remove(db.engine, "before_cursor_execute", count)
    assert statements == []


# -- the kill switch ---------------------------------------------------------------------------------------
def test_kill_switch_squares_off_blocks_and_switches_back(app, users, now):
    alice, _ = users
    set_quote("INFY", "1500", bid="1500", ask="1500")
    trading.place_order(alice, order(quantity=10))
    resting = trading.place_order(alice, order(symbol="SBIN", pricetype="LIMIT", price="1", quantity=1))
    assert risk.kill(alice, actor="test") is True
    assert risk.kill(alice, actor="test") is False  # already on: nothing again
    assert trading.open_position(alice, "INFY", "NSE", "MIS") == 0
    assert db.session.scalar(select(Order.status).where(Order.orderid == resting.orderid)) == OrderStatus.CANCELLED
    assert "kill switch" in refused(alice, order(quantity=1)).message
    assert risk.state(alice)["kill_switch"] is True
    now.now += dt.timedelta(days=1)
    assert refused(alice, order(quantity=1)).status == 403  # not a day's block: it stays on
    assert risk.unkill(alice, actor="test") is True
    assert risk.unkill(alice, actor="test") is False
    trading.place_order(alice, order(quantity=1))
    actions = db.session.scalars(select(AuditEvent.action).where(AuditEvent.action.like("risk.%"))
                                 .order_by(AuditEvent.id)).all()
    assert actions == ["risk.kill", "risk.refuse", "risk.refuse", "risk.unkill"]
    assert db.session.scalar(select(func.count()).select_from(Alert).where(Alert.kind == "kill_switch")) == 2
    # each refusal is audited; its alert at most once a minute per limit
    assert db.session.scalar(select(func.count()).select_from(Alert).where(Alert.kind == "risk_refusal")) == 2


def test_a_strategy_square_off_never_opens_the_other_way(app, users, now):
    alice, _ = users
    set_quote("INFY", "1500", bid="1500", ask="1500")
    risk.set_limits(alice, "strategy", "s1", {"max_loss": "100"}, actor="t")
    trading.place_order(alice, order(quantity=10, strategy="s1"))
    trading.close_all_positions(alice)  # closed under another strategy's name: s1's own book still says long 10
    assert risk.on_ticks(tick("1480"), now.now) == 1  # s1's book: -200
    assert trading.open_position(alice, "INFY", "NSE", "MIS") == 0  # no sell of 10 that was not held
    assert refused(alice, order(quantity=1, strategy="s1")).status == 403


# -- live mode (the fake Kite) ---------------------------------------------------------------------------------
kite = live_fixtures.kite  # fixture: the app on a fake Kite


def test_live_max_loss_squares_off_at_the_broker(app, users, kite):
    alice, _ = users
    connect_live(alice, kite)
    risk.set_limits(alice, "account", "", {"max_loss": "100"}, actor="t")
    trading.place_order(alice, order(quantity=10))  # filled by the fake Kite at 1500.5
    resting = trading.place_order(alice, order(symbol="SBIN", pricetype="LIMIT", price="700"))
    assert risk.on_ticks({INFY: Quote(ltp=D("1495"))}, utcnow()) == 0  # -55
    assert risk.on_ticks({INFY: Quote(ltp=D("1490"))}, utcnow()) == 1  # -105
    assert kite.fake.latest(resting.orderid)["status"] == "CANCELLED"
    sells = [(t["tradingsymbol"], t["quantity"]) for t in kite.fake.trades if t["transaction_type"] == "SELL"]
    assert sells == [("INFY", 10)]
    assert breaches() == [("account", "max_loss")]
    assert db.session.scalars(select(RiskDay.mode)).all() == ["live"]
    assert refused(alice, order(quantity=1)).status == 403
    venues.set_analyze(alice, True)
    trading.place_order(alice, order(quantity=1))  # the analyze-mode account has its own day: not blocked


def test_the_kill_switch_closes_the_live_account_from_analyze_mode(app, users, kite):
    alice, _ = users
    connect_live(alice, kite)
    trading.place_order(alice, order(quantity=2))
    resting = trading.place_order(alice, order(symbol="SBIN", pricetype="LIMIT", price="700"))
    venues.set_analyze(alice, True)
    assert risk.kill(alice, actor="t")
    assert kite.fake.latest(resting.orderid)["status"] == "CANCELLED"
    sells = [(t["tradingsymbol"], t["quantity"]) for t in kite.fake.trades if t["transaction_type"] == "SELL"]
    assert sells == [("INFY", 2)]
