"""The scheduler closes what is due on time, without waiting for a read."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from database import db
from database.order_db import Order
from services.runtime import scheduler
from tests.helpers import trading
from tests.helpers.orders import contract, order, set_quote, users  # noqa: F401 - fixtures

IST = ZoneInfo("Asia/Kolkata")


def test_a_run_after_the_squareoff_time_closes_mis_positions(app, users):  # noqa: F811
    alice, _bob = users
    set_quote("INFY", "1500")
    trading.place_order(alice, order(quantity=10))
    now = dt.datetime.now(IST)
    # The next 15:15 square-off after now (today's or tomorrow's, by the time of day the test runs).
    due = dt.datetime.combine(now.date(), dt.time(15, 15), tzinfo=IST)
    if due <= now + dt.timedelta(minutes=2):
        due = dt.datetime.combine(now.date() + dt.timedelta(days=1), dt.time(15, 15), tzinfo=IST)
    before, after = due - dt.timedelta(minutes=1), due + dt.timedelta(minutes=1)
    scheduler.run_once(app, since=now, until=before)
    assert trading.open_position(alice, "INFY", "NSE", "MIS") == 10  # not yet
    nxt = scheduler.run_once(app, since=before, until=after)
    assert nxt == after
    db.session.rollback()
    assert trading.open_position(alice, "INFY", "NSE", "MIS") == 0
    squared = db.select(db.func.count()).select_from(Order).where(Order.strategy == "Auto Square-off")
    assert db.session.scalar(squared) == 1


def test_a_failing_job_does_not_stop_the_others(app, users, monkeypatch, caplog):  # noqa: F811
    from services.trading.paper import account as paper

    def boom(**_kw):
        raise RuntimeError("quote feed down")

    monkeypatch.setattr(paper, "square_off_due", boom)
    scheduler.run_once(app, since=dt.datetime.now(dt.UTC))
    assert "scheduled MIS square-off failed" in caplog.text
