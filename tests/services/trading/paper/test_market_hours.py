"""Analyze mode follows the market calendar (ANALYZE_MARKET_HOURS=exchange): MARKET orders only in the
session, LIMIT and SL orders placed outside wait for the open, nothing fills on a holiday, MIS positions
are squared off at each exchange's time; `always` is a practice market open around the clock. The
clock is controlled (`clock`): these tests pass at any hour of any day."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from database import db
from database.symbol import SymToken
from services.market import symbol_index
from services.trading.errors import OrderError
from services.trading.paper import account as paper
from tests.helpers import trading
from tests.helpers.clock import clock, local  # noqa: F401 - fixtures
from tests.helpers.orders import contract, order, set_quote, users  # noqa: F401 - fixtures

CRUDE = "CRUDEOIL18DEC26FUT"


@pytest.fixture
def exchange_hours(app, monkeypatch):
    monkeypatch.setitem(app.config, "ANALYZE_MARKET_HOURS", "exchange")


@pytest.fixture
def crude(app, contract):  # noqa: F811
    db.session.add(SymToken(symbol=CRUDE, brsymbol="CRUDEOIL26DECFUT", name="CRUDEOIL", exchange="MCX",
                            brexchange="MCX", token="472790", expiry=dt.date(2026, 12, 18), lotsize=100,
                            instrumenttype="FUT", tick_size=Decimal("1")))
    db.session.commit()
    symbol_index.reload()


def status_of(uid, orderid) -> str:
    return trading.order_status(uid, orderid)["order_status"]


def test_a_market_order_on_a_listed_holiday_is_refused_with_the_next_open(app, users, clock, exchange_hours):  # noqa: F811
    alice, _ = users
    clock.now = local(app, 2026, 12, 25, 11, 0)  # Christmas, a Friday: NSE is closed
    set_quote("INFY", "1500")
    with pytest.raises(OrderError) as info:
        trading.place_order(alice, order(quantity=1))
    assert info.value.status == 400
    assert "Market closed" in info.value.message
    assert "Mon 28 Dec 2026 09:15" in info.value.message  # Saturday and Sunday skipped
    assert trading.positionbook(alice) == []
    assert trading.orderbook(alice)["orders"][0]["order_status"] == "rejected"  # journaled, as a broker would


@pytest.mark.parametrize("moment", [
    (2026, 12, 5, 11, 0),     # a Saturday
    (2026, 12, 7, 9, 14),     # a Monday, a minute before the open
    (2026, 12, 7, 15, 30),    # the close
    (2026, 12, 7, 23, 58),    # the night
])
def test_market_orders_outside_the_session_are_refused(app, users, clock, exchange_hours, moment):  # noqa: F811
    alice, _ = users
    clock.now = local(app, *moment)
    set_quote("INFY", "1500")
    with pytest.raises(OrderError, match="Market closed"):
        trading.place_order(alice, order(quantity=1))


def test_a_limit_placed_on_saturday_fills_on_monday_at_the_open_when_the_price_crosses(app, users, clock,  # noqa: F811
                                                                                        exchange_hours):
    alice, _ = users
    clock.now = local(app, 2026, 12, 5, 11, 0)  # Saturday
    set_quote("INFY", "1490")  # already below the limit: it would fill at once in a session
    placed = trading.place_order(alice, order(quantity=2, pricetype="LIMIT", price="1500"))
    assert placed.error is None
    assert status_of(alice, placed.orderid) == "open"

    clock.now = local(app, 2026, 12, 6, 12, 0)  # Sunday: still closed, nothing fills on a read
    set_quote("INFY", "1490")
    assert status_of(alice, placed.orderid) == "open"

    clock.now = local(app, 2026, 12, 7, 9, 14, 59)  # Monday, before the open
    set_quote("INFY", "1490")
    assert status_of(alice, placed.orderid) == "open"

    clock.now = local(app, 2026, 12, 7, 9, 15, 1)  # the open: the price still crosses
    set_quote("INFY", "1490")
    assert status_of(alice, placed.orderid) == "complete"
    [position] = trading.positionbook(alice)
    assert position["quantity"] == 2


def test_a_stop_placed_outside_the_session_waits_and_triggers_in_it(app, users, clock, exchange_hours):  # noqa: F811
    alice, _ = users
    clock.now = local(app, 2026, 12, 7, 8, 0)
    set_quote("INFY", "1500")
    placed = trading.place_order(alice, order(action="BUY", quantity=1, pricetype="SL-M", trigger_price="1510"))
    assert status_of(alice, placed.orderid) == "trigger pending"
    set_quote("INFY", "1520")
    assert status_of(alice, placed.orderid) == "trigger pending"  # crossed, but the exchange is closed
    clock.now = local(app, 2026, 12, 7, 9, 20)
    set_quote("INFY", "1520")
    assert status_of(alice, placed.orderid) in ("open", "complete")
    trading.positionbook(alice)
    assert status_of(alice, placed.orderid) == "complete"


def test_close_all_outside_the_session_is_refused(app, users, clock, exchange_hours):  # noqa: F811
    alice, _ = users
    clock.now = local(app, 2026, 12, 7, 10, 0)
    set_quote("INFY", "1500")
    trading.place_order(alice, order(quantity=1, product="CNC"))
    clock.now = local(app, 2026, 12, 7, 20, 0)
    set_quote("INFY", "1500")
    with pytest.raises(OrderError, match="Tue 08 Dec 2026 09:15"):
        trading.close_all_positions(alice)
    assert trading.positionbook(alice)[0]["quantity"] == 1


def test_mis_positions_are_squared_off_at_each_exchanges_time(app, users, crude, clock, exchange_hours):  # noqa: F811
    alice, _ = users
    clock.now = local(app, 2026, 12, 7, 10, 0)  # a Monday
    set_quote("INFY", "1500")
    set_quote(CRUDE, "5400", exchange="MCX")
    trading.place_order(alice, order(quantity=3))
    trading.place_order(alice, order(symbol=CRUDE, exchange="MCX", quantity=100))

    def open_quantities():
        return {p["exchange"]: p["quantity"] for p in trading.positionbook(alice)}

    clock.now = local(app, 2026, 12, 7, 15, 14)
    set_quote("INFY", "1500")
    set_quote(CRUDE, "5400", exchange="MCX")
    assert open_quantities() == {"NSE": 3, "MCX": 100}
    clock.now = local(app, 2026, 12, 7, 15, 16)  # after NSE's 15:15: NSE closed out, MCX still trades
    set_quote("INFY", "1500")
    set_quote(CRUDE, "5400", exchange="MCX")
    assert open_quantities() == {"NSE": 0, "MCX": 100}
    clock.now = local(app, 2026, 12, 7, 23, 31)  # after MCX's square-off
    set_quote(CRUDE, "5400", exchange="MCX")
    assert open_quantities() == {"NSE": 0, "MCX": 0}
    squared = [o for o in trading.orderbook(alice)["orders"] if o["action"] == "SELL"]
    assert len(squared) == 2


def test_no_square_off_on_a_holiday(app, users, clock, exchange_hours):  # noqa: F811
    alice, _ = users
    clock.now = local(app, 2026, 12, 24, 15, 0)  # Thursday before Christmas
    set_quote("INFY", "1500")
    trading.place_order(alice, order(quantity=3))
    clock.now = local(app, 2026, 12, 24, 15, 16)
    set_quote("INFY", "1500")
    assert trading.positionbook(alice)[0]["quantity"] == 0  # squared off on Thursday
    assert paper.hours.squareoff_cutoff("NSE", local(app, 2026, 12, 25, 16, 0)) == local(app, 2026, 12, 24, 15, 15)
    assert paper.hours.squareoff_cutoff("NSE", local(app, 2026, 12, 28, 15, 16)) == local(app, 2026, 12, 28, 15, 15)


def test_a_practice_market_fills_on_a_sunday_night(app, users, clock, monkeypatch):  # noqa: F811
    monkeypatch.setitem(app.config, "ANALYZE_MARKET_HOURS", "always")
    alice, _ = users
    clock.now = local(app, 2026, 12, 6, 23, 58)  # a Sunday
    set_quote("INFY", "1500")
    placed = trading.place_order(alice, order(quantity=1))
    assert placed.error is None
    assert status_of(alice, placed.orderid) == "complete"
    # ...and its MIS positions are still squared off every day at the exchange's time
    assert paper.hours.squareoff_cutoff("NSE", local(app, 2026, 12, 6, 23, 58)) == local(app, 2026, 12, 6, 15, 15)
    assert paper.hours.squareoff_cutoff("MCX", local(app, 2026, 12, 6, 23, 58)) == local(app, 2026, 12, 6, 23, 30)


def test_one_square_off_time_for_every_exchange_when_set(app, clock, monkeypatch, exchange_hours):  # noqa: F811
    monkeypatch.setitem(app.config, "MIS_SQUAREOFF_TIME", "15:00")
    now = local(app, 2026, 12, 8, 10, 0)  # Tuesday morning: the last square-off was Monday's
    assert paper.hours.squareoff_cutoff("NSE", now) == local(app, 2026, 12, 7, 15, 0)
    assert paper.hours.squareoff_cutoff("MCX", now) == local(app, 2026, 12, 7, 15, 0)
    assert paper.hours.squareoff_cutoff("NSE", local(app, 2026, 12, 8, 15, 1)) == local(app, 2026, 12, 8, 15, 0)


def test_mis_orders_are_refused_between_the_square_off_and_the_close(app, users, clock, exchange_hours):  # noqa: F811
    alice, _ = users
    clock.now = local(app, 2026, 12, 7, 15, 20)  # NSE: squared off at 15:15, open until 15:30
    set_quote("INFY", "1500")
    with pytest.raises(OrderError, match=r"MIS orders are not taken after the intraday square-off \(NSE: 15:15"):
        trading.place_order(alice, order(quantity=1))
    assert trading.place_order(alice, order(quantity=1, product="CNC")).error is None  # delivery still trades
    clock.now = local(app, 2026, 12, 7, 16, 0)  # after the close: an MIS LIMIT for tomorrow rests
    set_quote("INFY", "1500")
    resting = trading.place_order(alice, order(quantity=1, pricetype="LIMIT", price="1490"))
    assert status_of(alice, resting.orderid) == "open"


def test_modifying_a_resting_order_to_market_while_closed_leaves_it_as_it_was(app, users, clock,  # noqa: F811
                                                                               exchange_hours):
    alice, _ = users
    clock.now = local(app, 2026, 12, 5, 11, 0)  # Saturday
    set_quote("INFY", "1500")
    placed = trading.place_order(alice, order(quantity=2, pricetype="LIMIT", price="1490"))
    with pytest.raises(OrderError, match="Market closed"):
        trading.modify_order(alice, placed.orderid, order(quantity=2, pricetype="MARKET"))
    state = trading.order_status(alice, placed.orderid)
    assert (state["order_status"], state["pricetype"], state["price"]) == ("open", "LIMIT", 1490.0)


def test_close_all_is_all_or_nothing_across_open_and_closed_exchanges(app, users, crude, clock,  # noqa: F811
                                                                      exchange_hours):
    alice, _ = users
    clock.now = local(app, 2026, 12, 7, 10, 0)
    set_quote("INFY", "1500")
    set_quote(CRUDE, "5400", exchange="MCX")
    trading.place_order(alice, order(quantity=1, product="CNC"))
    trading.place_order(alice, order(symbol=CRUDE, exchange="MCX", quantity=100, product="NRML"))
    clock.now = local(app, 2026, 12, 7, 20, 0)  # MCX trades, NSE is closed
    set_quote("INFY", "1500")
    set_quote(CRUDE, "5400", exchange="MCX")
    with pytest.raises(OrderError, match="Positions on NSE cannot be closed now"):
        trading.close_all_positions(alice)
    assert {p["exchange"]: p["quantity"] for p in trading.positionbook(alice)} == {"NSE": 1, "MCX": 100}


def test_an_mis_position_on_mcx_does_not_hold_nse_orders_off_the_fast_path(app, users, crude, clock,  # noqa: F811
                                                                           exchange_hours, monkeypatch):
    alice, _ = users
    clock.now = local(app, 2026, 12, 7, 10, 0)
    set_quote(CRUDE, "5400", exchange="MCX")
    trading.place_order(alice, order(symbol=CRUDE, exchange="MCX", quantity=100))  # MIS, due at 23:30
    clock.now = local(app, 2026, 12, 7, 15, 20)  # after NSE's square-off, before MCX's
    set_quote("INFY", "1500")
    set_quote(CRUDE, "5400", exchange="MCX")
    planned = []
    original = paper.place_fast_batch
    monkeypatch.setattr(paper, "place_fast_batch",
                        lambda uid, items: planned.extend(original(uid, items)) or planned[-len(items):])
    trading.place_order(alice, order(quantity=1, product="CNC"))
    assert len(planned) == 1
    assert planned[0] is not None  # filled by the fast path: the MCX position is not due yet


def test_analyze_mode_keeps_trading_when_the_shipped_lists_run_out(app, users, clock, exchange_hours):  # noqa: F811
    alice, _ = users
    clock.now = local(app, 2028, 1, 3, 10, 0)  # a Monday of a year without a holiday list: the regular week
    set_quote("INFY", "1500")
    assert trading.place_order(alice, order(quantity=1)).error is None
    clock.now = local(app, 2028, 1, 3, 15, 16)
    set_quote("INFY", "1500")
    assert trading.positionbook(alice)[0]["quantity"] == 0  # and squared off at 15:15
