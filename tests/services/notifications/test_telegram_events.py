"""What the bot tells, read by the lease holder's poll: fills and rejections from the order journal, new alerts
(not the rejections' own), waiting approvals once, the daily P&L summary at its time on trading days; and the
lease that makes one poller of many the active one."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select

from database import db, telegram_db
from database.alert_db import Alert
from database.enums import Role
from database.order_db import Order
from database.risk_db import QUEUED, Approval
from database.types import utcnow
from services.notifications.events import LEASE, LEASE_TTL, SETTLE, Notifier
from services.trading.orders import OrderError
from tests.helpers import trading
from tests.helpers.accounts import make_user
from tests.helpers.clock import local
from tests.helpers.orders import order, set_quote
from tests.services.notifications.conftest import ALICE_CHAT, BOB_CHAT, link


def _texts(calls) -> list[tuple[int, str]]:
    return [(p["chat_id"], p["text"]) for m, p in calls if m == "sendMessage"]


@pytest.fixture
def notifier(app):
    n = Notifier("test-holder", summary_time="")
    assert n.take_lease()
    assert n.poll() == []  # the baseline: nothing before now is told
    return n


def test_fills_and_rejections_of_linked_users_are_told_once(app, users, notifier):
    alice, bob = users
    link(alice, ALICE_CHAT)  # bob is not linked: his orders are nobody's business here
    set_quote("INFY", "1500", bid="1499.95", ask="1500.05")
    placed = trading.place_order(alice, order(quantity=10))
    trading.place_order(bob, order(quantity=1))
    resting = trading.place_order(alice, order(pricetype="LIMIT", price="1400", quantity=1))
    with pytest.raises(OrderError):
        trading.place_order(alice, order(quantity=100000, product="CNC"))  # far beyond the funds
    rejected = trading.orderbook(alice)["orders"][0]

    assert _texts(notifier.poll()) == [
        (ALICE_CHAT, f"Filled: BUY 10 INFY NSE MIS @ 1500.05 (analyze), order {placed.orderid}"),
        (ALICE_CHAT, f"Rejected: BUY 100000 INFY NSE CNC (analyze), order {rejected['orderid']}: "
                     f"{rejected.get('rejection_reason') or _reason(rejected['orderid'])}"),
    ]  # the resting limit order is news once it fills; the rejection's own alert is not told twice
    assert notifier.poll() == []
    set_quote("INFY", "1399", bid="1398.95", ask="1399.05")
    trading.orderbook(alice)  # the analyze account is brought up to date: the limit fills
    assert _texts(notifier.poll()) == [
        (ALICE_CHAT, f"Filled: BUY 1 INFY NSE MIS @ 1399.05 (analyze), order {resting.orderid}")]


def _reason(orderid: str) -> str:
    return db.session.scalar(select(Order.status_message).where(Order.orderid == orderid))


def test_new_alerts_go_to_their_users_chat_and_admin_alerts_to_linked_admins(app, users, notifier):
    alice, bob = users
    admin = make_user("root", Role.ADMIN).id
    link(alice, ALICE_CHAT)
    link(admin, BOB_CHAT)
    db.session.add_all([
        Alert(user_id=alice, kind="broker_session_expired", title="zerodha session ended",
              message="Connect the broker again to trade live."),
        Alert(user_id=alice, kind="risk_limit", title="Max loss reached", message=None),
        Alert(user_id=bob, kind="risk_limit", title="not linked"),
        Alert(user_id=None, kind="system", title="Disk almost full"),
        Alert(user_id=alice, kind="approval_queued", title="told with its buttons instead"),
    ])
    db.session.commit()
    assert _texts(notifier.poll()) == [
        (ALICE_CHAT, "Alert: zerodha session ended\nConnect the broker again to trade live."),
        (ALICE_CHAT, "Alert: Max loss reached"),
        (BOB_CHAT, "Alert: Disk almost full"),
    ]
    assert notifier.poll() == []  # still above the mark (not settled yet), but told already
    later = utcnow() + SETTLE * 2
    assert notifier.poll(later) == []  # settled: the mark moves past them
    # a new holder (another worker) starts at the mark kept on the lease row: nothing is told twice
    assert telegram_db.lease(LEASE).alert_mark == max(db.session.scalars(select(Alert.id)))
    successor = Notifier("successor", summary_time="")
    notifier.release_lease(later)
    assert successor.take_lease(later)
    db.session.add(Alert(user_id=alice, kind="risk_limit", title="Order rate limit reached"))
    db.session.commit()
    assert _texts(successor.poll(later)) == [(ALICE_CHAT, "Alert: Order rate limit reached")]


def test_waiting_approvals_are_told_once_with_their_buttons(app, users, notifier):
    alice, _ = users
    link(alice, ALICE_CHAT)
    row = Approval(user_id=alice, kind="place", order={"action": "BUY", "quantity": 1, "symbol": "SBIN",
                                                       "exchange": "NSE"},
                   strategy=None, status=QUEUED, created_at=utcnow(), expires_at=utcnow() + dt.timedelta(minutes=5))
    db.session.add(row)
    db.session.commit()
    [(method, params)] = notifier.poll()
    assert params["text"] == f"Approval needed #{row.id}: BUY 1 SBIN NSE"
    assert params["reply_markup"]["inline_keyboard"][0][0] == {"text": "Approve", "callback_data": f"ap:{row.id}"}
    assert notifier.poll() == []


def test_the_daily_summary_at_its_time_on_trading_days_once(app, users):
    alice, _ = users
    link(alice, ALICE_CHAT)
    set_quote("INFY", "1500", bid="1499.95", ask="1500.05")
    trading.place_order(alice, order(quantity=10))
    n = Notifier("test-holder", summary_time="15:45")
    monday = local(app, 2026, 12, 7, 15, 44)  # a trading day
    assert n.take_lease(monday)
    assert n.summary({alice: ALICE_CHAT}, monday) == []  # not yet
    sunday = local(app, 2026, 12, 6, 16, 0)
    assert n.summary({alice: ALICE_CHAT}, sunday) == []  # no session, no summary
    christmas = local(app, 2026, 12, 25, 16, 0)  # a weekday holiday
    assert n.summary({alice: ALICE_CHAT}, christmas) == []

    at = monday + dt.timedelta(minutes=1)
    [(chat, text)] = _texts(n.summary({alice: ALICE_CHAT}, at))
    assert chat == ALICE_CHAT
    assert text.startswith("Daily P&L 2026-12-07 (analyze mode):\nRealized 0.00\nUnrealized ")
    assert n.summary({alice: ALICE_CHAT}, at + dt.timedelta(hours=1)) == []  # once a day
    other = Notifier("another-worker", summary_time="15:45")
    n.release_lease(at)
    assert other.take_lease(at)
    assert other.summary({alice: ALICE_CHAT}, at + dt.timedelta(hours=2)) == []  # the day is on the lease row
    assert len(_texts(other.summary({alice: ALICE_CHAT}, at + dt.timedelta(days=1)))) == 1  # Tuesday's


def test_one_lease_holder_among_pollers_and_a_dead_holders_lease_is_taken_over(app):
    now = utcnow()
    first, second = Notifier("worker-1"), Notifier("worker-2")
    assert first.take_lease(now) is True
    assert second.take_lease(now) is False
    assert first.take_lease(now + dt.timedelta(seconds=10)) is True  # renewed
    assert second.take_lease(now + LEASE_TTL) is False  # first renewed it 10 s in: still its
    assert second.take_lease(now + LEASE_TTL + dt.timedelta(seconds=11)) is True  # first stopped renewing
    assert first.take_lease(now + LEASE_TTL + dt.timedelta(seconds=12)) is False
    second.release_lease(now + LEASE_TTL + dt.timedelta(seconds=13))
    assert first.take_lease(now + LEASE_TTL + dt.timedelta(seconds=13)) is True
