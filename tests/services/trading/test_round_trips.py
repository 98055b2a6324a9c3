"""Round trips rebuilt from the analyze-mode fills (services.trading.round_trips): FIFO matching, partial
closes, reversals, exit reasons, statistics; on both databases."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal as D
from zoneinfo import ZoneInfo

from database.enums import PriceType
from database.order_db import Order
from services.trading import round_trips as rt
from services.trading import shapes
from services.trading.journal import WEB_STRATEGY
from services.trading.paper import account as paper
from tests.helpers import orders as fx
from tests.helpers import trading
from tests.helpers.orders import order, set_quote

contract = fx.contract  # fixture
users = fx.users  # fixture

IST = ZoneInfo("Asia/Kolkata")
T0 = dt.datetime(2026, 4, 1, 4, 0, tzinfo=dt.UTC)


def fill(order_id, action, qty, price, minutes, reason="api", symbol="INFY", product="MIS"):
    return rt.FillRow(order_id=order_id, symbol=symbol, exchange="NSE", product=product, action=action,
                      quantity=D(qty), price=D(price), filled_at=T0 + dt.timedelta(minutes=minutes),
                      exit_reason=reason)


def shape(trip):
    return (trip.side, trip.quantity, trip.entry_price, trip.exit_price, trip.gross_pnl, trip.net_pnl)


def test_fifo_splits_a_partial_close_and_leaves_the_rest_open():
    trips, left = rt.match([fill(1, "BUY", 10, 100, 0), fill(2, "BUY", 10, 110, 5), fill(3, "SELL", 15, 120, 65)])
    assert [shape(t) for t in trips] == [("long", 10, 100, 120, 200, 200), ("long", 5, 110, 120, 50, 50)]
    assert trips[0].holding == dt.timedelta(minutes=65)
    assert trips[1].holding == dt.timedelta(minutes=60)
    assert all(t.charges == 0 for t in trips)
    assert [(lot.side, lot.quantity, lot.price) for lot in left[("INFY", "NSE", "MIS")]] == [("long", 5, 110)]


def test_a_reversal_closes_the_long_and_opens_a_short():
    trips, left = rt.match([fill(1, "BUY", 10, 100, 0), fill(2, "SELL", 15, 90, 1, reason="manual"),
                            fill(3, "BUY", 5, 80, 2, reason="stop")])
    assert [shape(t) for t in trips] == [("long", 10, 100, 90, -100, -100), ("short", 5, 90, 80, 50, 50)]
    assert [t.exit_reason for t in trips] == ["manual", "stop"]
    assert trips[1].entry_time == T0 + dt.timedelta(minutes=1)
    assert left == {}


def test_fills_of_one_order_pair_make_one_averaged_trip_and_keys_stay_apart():
    trips, left = rt.match([fill(1, "BUY", 4, 100, 0), fill(1, "BUY", 6, 101, 0),
                            fill(9, "SELL", 3, 50, 1, symbol="SBIN"),  # another instrument: its own book
                            fill(1, "BUY", 5, 100, 1, product="CNC"),
                            fill(2, "SELL", 5, 110, 2), fill(2, "SELL", 5, 112, 3)])
    assert len(trips) == 1
    trip = trips[0]
    assert (trip.quantity, trip.entry_price, trip.exit_price, trip.gross_pnl) == (10, D("100.6"), 111, 104)
    assert trip.exit_time == T0 + dt.timedelta(minutes=3)
    assert set(left) == {("SBIN", "NSE", "MIS"), ("INFY", "NSE", "CNC")}


def test_exit_reasons():
    def reason(**kw):
        values = {"strategy": "mine", "pricetype": PriceType.MARKET, "signal_id": None} | kw
        return rt.exit_reason(Order(**values))

    assert reason(strategy=paper.SQUAREOFF_STRATEGY) == "square-off"
    assert reason(pricetype=PriceType.SL) == "stop"
    assert reason(pricetype=PriceType.SL_M, signal_id=3) == "stop"
    assert reason(strategy=WEB_STRATEGY) == "manual"
    assert reason(signal_id=3) == "signal"
    assert reason() == "api"


def trip(net, minutes):
    at = T0 + dt.timedelta(minutes=minutes)
    return rt.RoundTrip(symbol="INFY", exchange="NSE", product="MIS", side="long", quantity=D(1), entry_time=T0,
                        entry_value=D(1000), exit_time=at, exit_value=D(1000) + D(net), exit_reason="api")


def test_statistics():
    trips = [trip(50, 4), trip(-100, 3), trip(200, 1), trip(50, 2)]  # exit order: +200 +50 -100 +50
    stats = rt.statistics(trips)
    assert (stats.count, stats.wins, stats.losses) == (4, 3, 1)
    assert stats.win_rate == 75
    assert (stats.average_win, stats.average_loss) == (100, -100)
    assert stats.profit_factor == 3  # 300 / 100
    assert stats.total_net_pnl == 200
    assert stats.max_drawdown == 100  # peak 250 after the second trip, 150 after the third
    no_loss = rt.statistics([trip(10, 1), trip(0, 2)])
    assert (no_loss.profit_factor, no_loss.losses, no_loss.wins, no_loss.max_drawdown) == (None, 0, 1, 0)
    empty = rt.statistics([])
    assert (empty.count, empty.win_rate, empty.average_win, empty.total_net_pnl) == (0, None, None, 0)


def test_round_trips_from_the_journal(app, users):
    alice, bob = users
    set_quote("INFY", "100")
    trading.place_order(alice, order(quantity=10))
    set_quote("INFY", "110")
    trading.place_order(alice, order(quantity=10))
    trading.place_order(bob, order(quantity=1))  # another user's fills are not alice's
    set_quote("INFY", "120")
    trading.place_order(alice, order(action="SELL", quantity=15))
    trips = rt.round_trips(alice, shapes.day_start())
    assert [shape(t) for t in trips] == [("long", 10, 100, 120, 200, 200), ("long", 5, 110, 120, 50, 50)]
    assert {t.exit_reason for t in trips} == {"api"}
    assert rt.round_trips(bob, shapes.day_start()) == []
    assert rt.round_trips(alice, shapes.day_start() + dt.timedelta(days=1)) == []  # closed before the period

    # the 5 left open are squared off at the next MIS square-off
    set_quote("INFY", "118")
    now = dt.datetime.now(IST)
    tomorrow = dt.datetime.combine(now.date() + dt.timedelta(days=1), dt.time(15, 16), tzinfo=IST)
    assert paper.square_off_due(alice, now=tomorrow) == 1
    trips = rt.round_trips(alice, shapes.day_start())
    assert [shape(t) for t in trips][0] == ("long", 5, 110, 118, 40, 40)
    assert trips[0].exit_reason == "square-off"
    stats = rt.statistics(trips)
    assert (stats.count, stats.total_net_pnl, stats.profit_factor) == (3, 290, None)
