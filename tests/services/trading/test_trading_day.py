"""One trading day (services.trading.shapes.day_start): it begins at SESSION_EXPIRY_TIME exchange time,
not at midnight, for the analyze-mode books and the day's P&L. The clock is controlled (`clock`), so
the tests pass at any hour of any day."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from services.trading import shapes
from tests.helpers import trading
from tests.helpers.clock import clock, local  # noqa: F401 - fixtures
from tests.helpers.orders import contract, order, set_quote, users  # noqa: F401 - fixtures


# -- the boundary ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("moment", "start", "day"), [
    ((2026, 12, 6, 21, 0), (2026, 12, 6, 3, 0), dt.date(2026, 12, 6)),             # the evening session
    ((2026, 12, 7, 0, 0), (2026, 12, 6, 3, 0), dt.date(2026, 12, 6)),              # midnight: the same day
    ((2026, 12, 7, 2, 30), (2026, 12, 6, 3, 0), dt.date(2026, 12, 6)),             # still Dec 6's session
    ((2026, 12, 7, 2, 59, 59, 999999), (2026, 12, 6, 3, 0), dt.date(2026, 12, 6)),
    ((2026, 12, 7, 3, 0), (2026, 12, 7, 3, 0), dt.date(2026, 12, 7)),              # 03:00:00 begins the next
    ((2026, 12, 7, 15, 30), (2026, 12, 7, 3, 0), dt.date(2026, 12, 7)),
    ((2027, 1, 1, 1, 0), (2026, 12, 31, 3, 0), dt.date(2026, 12, 31)),             # across a year's end
])
def test_the_trading_day_begins_at_the_session_expiry_time(app, moment, start, day):
    now = local(app, *moment)
    assert app.config["SESSION_EXPIRY_TIME"] == "03:00"
    assert shapes.day_start(now) == local(app, *start)
    assert shapes.day_start(now).tzinfo == dt.UTC
    assert shapes.trading_day(now) == day


def test_the_boundary_follows_the_setting(app, monkeypatch):
    now = local(app, 2026, 12, 7, 4, 0)
    assert shapes.day_start(now) == local(app, 2026, 12, 7, 3, 0)  # remembered for this setting...
    monkeypatch.setitem(app.config, "SESSION_EXPIRY_TIME", "04:30")
    assert shapes.day_start(now) == local(app, 2026, 12, 6, 4, 30)  # ...and not reused under another
    assert shapes.trading_day(now) == dt.date(2026, 12, 6)
    assert shapes.day_start(local(app, 2026, 12, 7, 4, 30)) == local(app, 2026, 12, 7, 4, 30)


def test_the_web_session_and_the_trading_day_end_together(app):
    from services.accounts import users as accounts

    for moment in [(2026, 12, 7, 1, 30), (2026, 12, 7, 3, 0), (2026, 12, 7, 12, 0)]:
        now = local(app, *moment)
        assert shapes.day_start(now) == accounts.last_expiry_boundary(now, *accounts.expiry_settings(app.config))


# -- the books -------------------------------------------------------------------------------------------------
def evening_session(app, clock, uid) -> None:  # noqa: F811
    """Dec 6, from 21:00 exchange time: a closed INFY trade (realized -44.85), an SBIN position left open."""
    clock.now = local(app, 2026, 12, 6, 21, 0)
    set_quote("INFY", "1500")
    trading.place_order(uid, order(quantity=13))
    clock.now = local(app, 2026, 12, 6, 21, 30)
    set_quote("INFY", "1496.55")
    trading.place_order(uid, order(action="SELL", quantity=13))
    clock.now = local(app, 2026, 12, 6, 23, 50)
    set_quote("SBIN", "800")
    trading.place_order(uid, order(symbol="SBIN", quantity=1))


def test_after_midnight_the_evening_is_still_today_and_at_three_the_day_rolls_over(app, users, clock):  # noqa: F811
    alice, _ = users
    evening_session(app, clock, alice)

    clock.now = local(app, 2026, 12, 7, 1, 30)
    set_quote("SBIN", "801")
    assert len(trading.orderbook(alice)["orders"]) == 3
    assert trading.orderbook(alice)["statistics"]["total_completed_orders"] == 3
    assert len(trading.tradebook(alice)) == 3
    positions = {p["symbol"]: p for p in trading.positionbook(alice)}
    assert (positions["INFY"]["quantity"], positions["INFY"]["pnl"]) == (0, -44.85)
    assert (positions["SBIN"]["quantity"], positions["SBIN"]["pnl"]) == (1, 1.0)
    funds = trading.funds(alice)
    assert (funds["m2mrealized"], funds["m2munrealized"]) == ("-44.85", "1.00")
    # the day's P&L: the positions of the day, realized + unrealized, agree with the funds
    day_pnl = sum(Decimal(str(p["pnl"])) for p in positions.values())
    assert day_pnl == Decimal(funds["m2mrealized"]) + Decimal(funds["m2munrealized"]) == Decimal("-43.85")

    clock.now = local(app, 2026, 12, 7, 2, 59, 59, 999999)  # the cached account is still the day's
    assert len(trading.orderbook(alice)["orders"]) == 3
    assert len(trading.tradebook(alice)) == 3

    clock.now = local(app, 2026, 12, 7, 3, 0)  # a new trading day: the cached account moves on
    set_quote("SBIN", "801")
    assert trading.orderbook(alice)["orders"] == []
    assert trading.tradebook(alice) == []
    assert [(p["symbol"], p["quantity"]) for p in trading.positionbook(alice)] == [("SBIN", 1)]  # still open
    assert trading.funds(alice)["m2mrealized"] == "-44.85"  # the account's realized P&L to date

    trading.place_order(alice, order(symbol="SBIN", action="SELL", quantity=1))  # the new day's first order
    assert [o["symbol"] for o in trading.orderbook(alice)["orders"]] == ["SBIN"]
    assert len(trading.tradebook(alice)) == 1


def test_orders_still_open_from_the_evening_stay_in_the_book_after_the_rollover(app, users, clock):  # noqa: F811
    alice, _ = users
    clock.now = local(app, 2026, 12, 6, 22, 0)
    set_quote("INFY", "1500")
    trading.place_order(alice, order(pricetype="LIMIT", price=1400, product="CNC"))
    clock.now = local(app, 2026, 12, 7, 3, 0, 1)
    set_quote("INFY", "1500")
    book = trading.orderbook(alice)
    assert [o["order_status"] for o in book["orders"]] == ["open"]
    assert trading.tradebook(alice) == []
