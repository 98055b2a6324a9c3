"""Risk limits (issue #19) through the order service, with a controlled clock and fixed quote sequences: each
P&L limit (breach -> square-off -> blocked -> next trading day allowed), the per-order limits, the kill switch."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal as D

import pytest
from sqlalchemy import event, func, select, update

from database import db
from database.alert_db import Alert
from database.audit_db import AuditEvent
from database.enums import OrderStatus
from database.order_db import Order
from database.risk_db import RiskDay, RiskLimit
from database.types import utcnow
from database.unit import unit_of_work
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


def test_pressing_the_kill_switch_again_squares_off_again(app, users, now):
    alice, _ = users
    set_quote("INFY", "1500", bid="1500", ask="1500")
    assert risk.kill(alice, actor="test") is True
    with unit_of_work():  # a position the first press left (its square-off failed, a fill that raced it)
        db.session.execute(update(RiskLimit).values(killed_at=None))
    risk._changed(alice)
    trading.place_order(alice, order(quantity=10))
    resting = trading.place_order(alice, order(symbol="SBIN", pricetype="LIMIT", price="1", quantity=1))
    with unit_of_work():
        db.session.execute(update(RiskLimit).values(killed_at=now.now))
    risk._changed(alice)

    assert risk.kill(alice, actor="again") is False  # it was on: closed again all the same
    assert trading.open_position(alice, "INFY", "NSE", "MIS") == 0
    assert db.session.scalar(select(Order.status).where(Order.orderid == resting.orderid)) == OrderStatus.CANCELLED
    again = db.session.scalars(select(AuditEvent).where(AuditEvent.actor == "again")).one()
    assert (again.action, again.after["already_on"]) == ("risk.kill", True)


def test_a_strategy_square_off_never_opens_the_other_way(app, users, now):
    alice, _ = users
    set_quote("INFY", "1500", bid="1500", ask="1500")
    set_quote("SBIN", "800", bid="800", ask="800")
    risk.set_limits(alice, "strategy", "s1", {"max_loss": "100", "max_open_positions": "1"}, actor="t")
    trading.place_order(alice, order(quantity=10, strategy="s1"))
    trading.close_all_positions(alice)  # closed under another strategy's name, at 1500
    # s1's own book still says long 10: it is capped by the account's position (flat), closed at 1500
    assert risk.on_ticks(tick("1480"), now.now) == 0
    day = db.session.scalars(select(RiskDay)).one()
    assert D(-5) < day.last_pnl <= 0  # the charges only, not -200
    assert trading.open_position(alice, "INFY", "NSE", "MIS") == 0  # no sell of 10 that was not held
    trading.place_order(alice, order(symbol="SBIN", quantity=1, strategy="s1"))  # INFY no longer counts as open
    trading.place_order(alice, order(symbol="SBIN", action="SELL", quantity=1, strategy="s1"))

    trading.place_order(alice, order(quantity=10, strategy="s1"))  # long 10 again, under s1, at 1500
    assert risk.on_ticks(tick("1480"), now.now) == 1  # this one moves with the market: -200
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


def test_live_pnl_and_order_value_never_use_the_simulator(app, users, kite, monkeypatch):
    alice, _ = users
    connect_live(alice, kite)
    syncs: list[bool] = []
    sync = risk._sync_live
    monkeypatch.setattr(risk, "_sync_live", lambda *a, force=False: (syncs.append(force), sync(*a, force=force)))
    risk.set_limits(alice, "account", "", {"max_loss": "100"}, actor="t")
    trading.place_order(alice, order(quantity=10))  # filled by the fake Kite at 1500.5
    assert syncs == [False]  # after the order: no broker order book forced in the request
    set_quote("INFY", "1000", bid="1000", ask="1000")  # what the simulator's side would say: -5005
    kite.fake.fail_next(500, "GeneralException", path="/quote", times=50)
    assert risk.evaluate_due(utcnow()) == 0  # no live price: skipped, never squared off on a made-up one
    assert [t for t in kite.fake.trades if t["transaction_type"] == "SELL"] == []
    assert db.session.scalars(select(RiskDay)).all() == []

    risk.set_limits(alice, "account", "", {"max_order_quantity": "100"}, actor="t")
    trading.place_order(alice, order(quantity=1))  # no value limit: a market order needs no price here
    risk.set_limits(alice, "account", "", {"max_order_value": "1000000"}, actor="t")
    err = refused(alice, order(quantity=1))
    assert (err.status, "no live price for INFY" in err.message) == (400, True)
    trading.place_order(alice, order(quantity=1, pricetype="LIMIT", price="1500.5"))  # valued at its price


def test_a_modified_order_meets_the_limits(app, users, now):
    alice, _ = users
    set_quote("INFY", "1500", bid="1500", ask="1500")
    risk.set_limits(alice, "account", "", {"max_order_quantity": "5"}, actor="t")
    resting = trading.place_order(alice, order(pricetype="LIMIT", price="1", quantity=5))
    err = refused_modify(alice, resting.orderid, order(pricetype="LIMIT", price="1", quantity=10))
    assert (err.status, "quantity 10" in err.message) == (400, True)
    trading.cancel_order(alice, resting.orderid)
    trading.place_order(alice, order(quantity=5))
    trading.place_order(alice, order(quantity=5))  # long 10
    exit_ = trading.place_order(alice, order(action="SELL", pricetype="LIMIT", price="9999", quantity=5))
    trading.modify_order(alice, exit_.orderid, order(action="SELL", pricetype="LIMIT", price="9999", quantity=10))
    err = refused_modify(alice, exit_.orderid, order(action="SELL", pricetype="LIMIT", price="9999", quantity=11))
    assert err.status == 400  # 11 would open a short: no longer an exit


def refused_modify(uid, orderid, inp) -> OrderError:
    with pytest.raises(OrderError) as caught:
        trading.modify_order(uid, orderid, inp)
    return caught.value


def test_amounts_are_cents_and_an_api_key_takes_approval_only(app, users):
    alice, _ = users
    row = risk.set_limits(alice, "account", "", {"max_loss": "12.345", "target": "0.01"}, actor="t")
    assert (row.max_loss, row.target) == (D("12.35"), D("0.01"))
    for amount in ("0", "0.004", "-0.01", "1e400", "NaN"):
        with pytest.raises(risk.RiskError, match="positive amount"):
            risk.set_limits(alice, "account", "", {"max_loss": amount}, actor="t")
    with pytest.raises(risk.RiskError, match="only 'orders wait for approval'"):
        risk.set_limits(alice, "apikey", "7", {"max_loss": "100", "require_approval": True}, actor="t")
    risk.set_limits(alice, "apikey", "7", {"require_approval": True}, actor="t")


def test_after_an_order_only_its_scopes_are_evaluated_and_an_unchanged_pnl_writes_nothing(app, users, now):
    alice, _ = users
    set_quote("INFY", "1500", bid="1500", ask="1500")
    for kind, scope in (("account", ""), ("strategy", "s1"), ("strategy", "s2")):
        risk.set_limits(alice, kind, scope, {"max_loss": "1000"}, actor="t")
    trading.place_order(alice, order(quantity=1, strategy="s2"))
    trading.place_order(alice, order(quantity=1, strategy="s1"))
    days = db.session.scalars(select(RiskDay.scope)).all()
    assert sorted(days) == ["", "s1", "s2"]  # s2 from its own order; s1's order evaluated the account and s1
    before = {r.scope: r.last_pnl for r in db.session.scalars(select(RiskDay))}
    now.now += dt.timedelta(seconds=5)
    set_quote("INFY", "1501", bid="1501", ask="1501")  # every scope's P&L moved
    trading.place_order(alice, order(quantity=1, strategy="s1"))
    db.session.expire_all()
    after = {r.scope: r.last_pnl for r in db.session.scalars(select(RiskDay))}
    assert after["s2"] == before["s2"]  # not evaluated after s1's order (its P&L moved too)
    assert after["s1"] != before["s1"]
    assert after[""] != before[""]

    risk.on_ticks(tick("1490"), now.now)
    writes: list[str] = []

    def count(_conn, _cursor, statement, *_args):
        if statement.lstrip().upper().startswith(("INSERT", "UPDATE", "DELETE")):
            writes.append(statement)

    event.listen(db.engine, "before_cursor_execute", count)
    try:
        assert risk.on_ticks(tick("1490"), now.now) == 0  # the same P&L again: no write at all
    finally:
        event.remove(db.engine, "before_cursor_execute", count)
    assert writes == []
    assert risk.on_ticks(tick("1489"), now.now) == 0
    assert db.session.scalars(select(RiskDay.last_pnl).where(RiskDay.scope == "s2")).one() < 0


def test_concurrent_orders_never_overshoot_the_order_count(app, users, now):
    import threading

    alice, _ = users
    set_quote("SBIN", "800", bid="800", ask="800")
    trading.place_order(alice, order(symbol="SBIN", quantity=1, product="CNC"))  # the funds row exists
    risk.set_limits(alice, "account", "", {"max_orders_per_day": "3"}, actor="t")
    barrier = threading.Barrier(6)
    results: list = [None] * 6

    def worker(i: int) -> None:
        with app.app_context():
            barrier.wait()
            try:
                results[i] = trading.place_order(alice, order(symbol="SBIN", quantity=1, product="CNC"))
            except Exception as exc:  # noqa: BLE001 - counted below
                results[i] = exc

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not any(t.is_alive() for t in threads)
    refusals = [r for r in results if isinstance(r, Exception)]
    assert all(isinstance(r, OrderError) and r.status == 429 for r in refusals), refusals
    assert len(refusals) == 4  # 1 before and 2 of these: the maximum of 3 exactly
    db.session.expire_all()
    assert db.session.scalar(select(func.count()).select_from(Order)) == 3


def test_a_basket_is_evaluated_once_after_its_last_order_and_its_breach_is_found(app, users, now):
    alice, _ = users
    set_quote("INFY", "1500", bid="1490", ask="1510")  # each buy fills at 1510 and is worth 1500: -10 a share
    risk.set_limits(alice, "account", "", {"max_loss": "150"}, actor="test")
    books: list[str] = []

    def count(_conn, _cursor, statement, *_args):
        if "sum(fills.charges)" in statement.lower():  # the day book's charges: once per evaluation of the account
            books.append(statement)

    event.listen(db.engine, "before_cursor_execute", count)
    try:
        results = trading.basket_order(alice, "", [order(quantity=10, strategy="b1"), order(quantity=10, strategy="b2"),
                                                   order(quantity=1, strategy="b1")])
    finally:
        event.remove(db.engine, "before_cursor_execute", count)
    assert [r["status"] for r in results] == ["success"] * 3
    assert len(books) == 1  # one evaluation, after the last order (not one per order)
    assert breaches() == [("account", "max_loss")]  # -210 is past the maximum loss: found after the basket
    assert trading.open_position(alice, "INFY", "NSE", "MIS") == 0  # squared off
