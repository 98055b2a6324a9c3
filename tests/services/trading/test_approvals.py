"""Orders held for approval (issue #19): queued with the alert that made them, approved (placed), rejected (never
placed), expired (the scheduler's `expire_due`), with a controlled clock."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import func, select

from database import db
from database.alert_db import Alert
from database.audit_db import AuditEvent
from database.enums import SignalSource
from database.order_db import Order, Signal
from database.risk_db import Approval
from database.unit import unit_of_work
from services.trading import approvals, risk, venues
from tests.helpers import live as live_fixtures
from tests.helpers import orders as fx
from tests.helpers import trading
from tests.helpers.clock import clock  # noqa: F401 - fixture
from tests.helpers.live import connect_live
from tests.helpers.orders import order, set_quote

contract = fx.contract  # fixture
users = fx.users  # fixture
kite = live_fixtures.kite  # fixture


@pytest.fixture
def now(clock, monkeypatch):  # noqa: F811
    monkeypatch.setattr(risk, "utcnow", clock)
    monkeypatch.setattr(approvals, "utcnow", clock)
    clock.now = dt.datetime(2026, 12, 8, 5, 0, tzinfo=dt.UTC)
    return clock


def queued(uid, inp, **kw) -> int:
    with pytest.raises(approvals.Queued) as caught:
        trading.place_order(uid, inp, **kw)
    assert caught.value.status == 202
    return caught.value.approval_id


def orders_count() -> int:
    return db.session.scalar(select(func.count()).select_from(Order))


@pytest.fixture
def held(app, users, now):
    alice, _ = users
    set_quote("INFY", "1500", bid="1500", ask="1500")
    risk.set_limits(alice, "strategy", "semi", {"require_approval": True, "approval_ttl_seconds": "60"}, actor="t")
    return alice


def plain_text_signal(uid: int, text: str) -> int:
    """A signal whose alert came as plain text (stored as the webhooks store it: {"body": text})."""
    with unit_of_work():
        row = Signal(user_id=uid, source=SignalSource.STRATEGY, payload={"body": text})
        db.session.add(row)
        db.session.flush()
        return row.id


def test_approve_places_the_order(held, now):
    aid = queued(held, order(quantity=3, strategy="semi"), signal_id=plain_text_signal(held, "TradingView: BUY INFY"))
    trading.place_order(held, order(quantity=1, strategy="other"))  # another strategy is not held
    assert orders_count() == 1
    row = approvals.pending(held)[0]
    assert (row.id, row.order["symbol"], row.order["quantity"], row.alert) == (aid, "INFY", 3, "TradingView: BUY INFY")
    assert db.session.scalar(select(func.count()).select_from(Alert).where(Alert.kind == "approval_queued")) == 1

    done = approvals.approve(held, aid, "alice")
    assert (done.status, done.decided_by) == ("approved", "alice")
    placed = db.session.scalars(select(Order).where(Order.orderid == done.orderid)).one()
    assert (placed.strategy, int(placed.quantity), placed.status.value) == ("semi", 3, "complete")
    assert approvals.pending(held) == []
    with pytest.raises(approvals.ApprovalError) as again:
        approvals.approve(held, aid, "alice")
    assert again.value.status == 409


def test_reject_never_places(held, users, now):
    aid = queued(held, order(quantity=3, strategy="semi"))
    _, bob = users
    with pytest.raises(approvals.ApprovalError) as other:
        approvals.reject(bob, aid, "bob")  # not bob's
    assert other.value.status == 404
    done = approvals.reject(held, aid, "alice", "not today")
    assert (done.status, done.reason) == ("rejected", "not today")
    assert orders_count() == 0
    with pytest.raises(approvals.ApprovalError):
        approvals.approve(held, aid, "alice")
    assert orders_count() == 0
    assert db.session.scalars(select(AuditEvent.action).where(AuditEvent.action.like("approval.%"))
                              .order_by(AuditEvent.id)).all() == ["approval.queue", "approval.rejected"]


def test_an_approval_expires(held, now):
    aid = queued(held, order(quantity=3, strategy="semi"))
    assert approvals.expire_due(now.now + dt.timedelta(seconds=59)) == 0
    now.now += dt.timedelta(seconds=61)
    assert approvals.pending(held) == []  # past its time: no longer offered
    assert approvals.expire_due(now.now) == 1
    assert approvals.expire_due(now.now) == 0
    assert db.session.get(Approval, aid).status == "expired"
    with pytest.raises(approvals.ApprovalError) as late:
        approvals.approve(held, aid, "alice")
    assert late.value.status == 409
    assert orders_count() == 0
    assert db.session.scalar(select(func.count()).select_from(Alert).where(Alert.kind == "approval_expired")) == 1


def test_approving_after_the_time_without_the_scheduler_expires_it(held, now):
    aid = queued(held, order(quantity=3, strategy="semi"))
    now.now += dt.timedelta(minutes=5)
    with pytest.raises(approvals.ApprovalError, match="expired"):
        approvals.approve(held, aid, "alice")
    assert db.session.get(Approval, aid).status == "expired"


def test_a_smart_order_waits_and_is_placed_as_a_smart_order(held, now):
    with pytest.raises(approvals.Queued) as caught:
        trading.place_smart_order(held, order(quantity=0, strategy="semi"), 4)
    row = db.session.get(Approval, caught.value.approval_id)
    assert (row.kind, row.order["position_size"]) == ("smart", 4)
    approvals.approve(held, row.id, "alice")
    assert trading.open_position(held, "INFY", "NSE", "MIS") == 4


def test_an_approved_order_meets_the_risk_checks_of_its_time(held, now):
    aid = queued(held, order(quantity=3, strategy="semi"))
    risk.kill(held, actor="t")
    done = approvals.approve(held, aid, "alice")
    assert done.status == "failed"
    assert "kill switch" in done.reason
    assert orders_count() == 0


def test_a_webhook_alert_waits_with_its_payload(app, now, monkeypatch):
    from zoneinfo import ZoneInfo

    from services.accounts.users import Actor
    from services.market import master_contract, symbol_index
    from services.strategies import strategy as strategies
    from services.strategies import webhooks
    from services.strategies.strategy import StrategyInput
    from tests.helpers.accounts import make_user

    master_contract.ensure_sample_contract(rows=200)
    symbol_index.reload()
    monkeypatch.setattr(webhooks, "now", lambda: dt.datetime(2026, 3, 10, 11, 0, tzinfo=ZoneInfo("Asia/Kolkata")))
    owner = make_user("trader1")
    actor = Actor(owner.username, owner.id, "127.0.0.1")
    s, webhook_id = strategies.create_strategy(actor, StrategyInput("Alpha", "tradingview", "LONG", False,
                                                                    dt.time(9, 20), dt.time(15, 0), dt.time(15, 15)))
    strategies.add_mapping(actor, s.id, "RELIANCE", "NSE", 5, "MIS")
    risk.set_limits(owner.id, "strategy", "Alpha", {"require_approval": True}, actor="t")

    reply = webhooks.strategy_alert(webhook_id, {"symbol": "RELIANCE", "action": "BUY"})
    assert reply.status == 200, reply.body
    assert "approval" in reply.body["message"]
    assert orders_count() == 0
    row = approvals.pending(owner.id)[0]
    assert '"RELIANCE"' in row.alert
    assert row.signal_id is not None
    done = approvals.approve(owner.id, row.id, "trader1")
    placed = db.session.scalars(select(Order).where(Order.orderid == done.orderid)).one()
    assert (placed.strategy, placed.signal_id, int(placed.quantity)) == ("Alpha", row.signal_id, 5)


def test_exits_and_nothing_to_do_are_never_held(app, users, now):
    alice, _ = users
    set_quote("INFY", "1500", bid="1500", ask="1500")
    trading.place_order(alice, order(quantity=10))
    risk.set_limits(alice, "account", "", {"require_approval": True}, actor="t")
    queued(alice, order(quantity=1))  # an entry waits
    assert trading.place_order(alice, order(action="SELL", quantity=4)).status == "complete"  # an exit does not
    assert trading.place_smart_order(alice, order(quantity=0), 6) is None  # nothing to do: nothing queued
    trading.place_smart_order(alice, order(quantity=0), 2)  # down to 2: an exit
    assert trading.open_position(alice, "INFY", "NSE", "MIS") == 2
    with pytest.raises(approvals.Queued):
        trading.place_smart_order(alice, order(quantity=0), -3)  # through flat to short: an entry
    assert db.session.scalar(select(func.count()).select_from(Approval)) == 2


def test_a_held_order_of_a_basket_or_split_is_accepted(held, now):
    results = trading.basket_order(held, "semi", [order(quantity=1), order(symbol="SBIN", quantity=2)])
    assert [(r["status"], isinstance(r.get("pending_order_id"), int)) for r in results] == [("success", True)] * 2
    split = trading.split_order(held, order(quantity=5, strategy="semi"), 2)
    assert [(r["status"], r["quantity"], isinstance(r.get("pending_order_id"), int)) for r in split["results"]] == \
        [("success", 2, True), ("success", 2, True), ("success", 1, True)]
    assert orders_count() == 0
    assert len(approvals.pending(held)) == 5


def test_an_approval_is_placed_only_in_the_mode_it_was_queued_in(app, users, kite):
    alice, _ = users
    connect_live(alice, kite)
    venues.set_analyze(alice, True)
    risk.set_limits(alice, "account", "", {"require_approval": True}, actor="t")
    set_quote("INFY", "1500", bid="1500", ask="1500")
    aid = queued(alice, order(quantity=3))
    assert (db.session.get(Approval, aid).mode, db.session.get(Approval, aid).broker) == ("analyze", "paper")
    venues.set_analyze(alice, False)  # the account went live meanwhile
    done = approvals.approve(alice, aid, "alice")
    assert (done.status, done.reason) == ("failed", "queued in analyze mode; the account is now live: not placed")
    assert kite.fake.trades == []
    assert orders_count() == 0


def test_hostile_ids_and_an_unexpected_error_fail_cleanly(held, now, monkeypatch):
    for huge in (2**31, 2**63, 10**30, 0, -1):
        with pytest.raises(approvals.ApprovalError) as caught:
            approvals.approve(held, huge, "alice")
        assert caught.value.status == 404
    aid = queued(held, order(quantity=3, strategy="semi"))

    def broken(*_a, **_kw):
        raise RuntimeError("a bug")

    monkeypatch.setattr(approvals.orders, "place_order", broken)
    done = approvals.approve(held, aid, "alice")
    assert (done.status, "internal error" in done.reason) == ("failed", True)
    assert db.session.get(Approval, aid).status == "failed"
