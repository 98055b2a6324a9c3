"""Analyze-mode orders through the service: fills, P&L, funds, open orders, rejections, square-off."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal as D
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select

from database import db
from database.alert_db import Alert
from database.enums import OrderStatus, SnapshotReason
from database.order_db import Fill, Order
from database.portfolio_db import Funds, PortfolioSnapshot, Position
from services.trading import books, venues
from services.trading.orders import OrderError
from services.trading.paper import account as paper
from tests.helpers import orders as fx
from tests.helpers import trading
from tests.helpers.orders import order, set_quote

contract = fx.contract  # fixture
users = fx.users  # fixture

IST = ZoneInfo("Asia/Kolkata")


def test_buy_sell_round_trip_books_the_pnl(app, users):
    alice, _ = users
    assert venues.is_analyze(alice)
    set_quote("INFY", "1500", bid="1499.95", ask="1500.05")
    placed = trading.place_order(alice, order(quantity=10))
    assert (placed.mode, placed.status, placed.broker) == ("analyze", "complete", "paper")
    assert placed.orderid.isdigit()
    row = db.session.scalar(select(Order).where(Order.orderid == placed.orderid))
    assert row.average_price == D("1500.05")
    assert row.filled_quantity == 10
    fill = db.session.scalar(select(Fill).where(Fill.order_id == row.id))
    assert (fill.quantity, fill.price) == (10, D("1500.05"))

    funds = trading.funds(alice)
    assert funds["utiliseddebits"] == "3000.10"  # 15000.50 / 5 (MIS)
    assert funds["availablecash"] == "9996999.90"
    set_quote("INFY", "1510", bid="1509.95", ask="1510.05")
    assert trading.funds(alice)["m2munrealized"] == "99.50"
    assert trading.positionbook(alice) == [{"symbol": "INFY", "exchange": "NSE", "product": "MIS", "quantity": 10,
                                          "average_price": 1500.05, "ltp": 1510.0, "pnl": 99.5,
                                          "gross_pnl": 99.5, "charges": 0.0}]  # the tests' app charges nothing

    trading.place_order(alice, order(action="SELL", quantity=10))
    funds = trading.funds(alice)
    assert funds == {"availablecash": "10000099.00", "collateral": "0.00", "m2mrealized": "99.00",
                     "m2munrealized": "0.00", "utiliseddebits": "0.00"}
    assert trading.open_position(alice, "INFY", "NSE", "MIS") == 0
    trades = trading.tradebook(alice)
    assert [t["action"] for t in trades] == ["SELL", "BUY"]
    assert trades[0]["average_price"] == 1509.95
    assert trades[0]["trade_value"] == 15099.5
    ob = trading.orderbook(alice)
    assert ob["statistics"] == {"total_buy_orders": 1, "total_sell_orders": 1, "total_completed_orders": 2,
                                "total_open_orders": 0, "total_rejected_orders": 0}
    assert set(ob["orders"][0]) == {"action", "symbol", "exchange", "orderid", "product", "quantity", "price",
                                    "pricetype", "order_status", "trigger_price", "timestamp"}


def test_unknown_symbol_and_index_are_refused(app, users):
    alice, _ = users
    with pytest.raises(OrderError) as info:
        trading.place_order(alice, order(symbol="NOPE"))
    assert (info.value.status, info.value.message) == (404, "Symbol NOPE not found in exchange NSE")
    with pytest.raises(OrderError) as info:
        trading.place_order(alice, order(symbol="NIFTY", exchange="NSE_INDEX"))
    assert info.value.status == 400
    assert db.session.scalar(select(func.count()).select_from(Order)) == 0


def test_insufficient_funds_is_journaled_as_rejected_with_an_alert(app, users):
    alice, _ = users
    app.config["ANALYZE_STARTING_FUNDS"] = 100000
    try:
        set_quote("RELIANCE", "2900")
        with pytest.raises(OrderError) as info:
            trading.place_order(alice, order(symbol="RELIANCE", quantity=100, product="CNC"))
    finally:
        app.config["ANALYZE_STARTING_FUNDS"] = 10000000
    assert info.value.status == 400
    assert info.value.message == "Insufficient funds: margin required 290000.00, available 100000.00"
    row = db.session.scalar(select(Order))
    assert row.status == OrderStatus.REJECTED
    assert "Insufficient funds" in row.status_message
    alert = db.session.scalar(select(Alert))
    assert alert.kind == "order_rejected"
    assert alert.user_id == alice
    assert row.orderid in alert.message
    assert db.session.scalar(select(func.count()).select_from(Fill)) == 0
    assert trading.funds(alice)["availablecash"] == "100000.00"
    assert trading.orderbook(alice)["statistics"]["total_rejected_orders"] == 1


def test_limit_order_waits_then_fills_when_the_price_crosses(app, users):
    alice, _ = users
    set_quote("SBIN", "800")
    placed = trading.place_order(alice, order(symbol="SBIN", pricetype="LIMIT", price="790"))
    assert placed.status == "open"
    assert trading.order_status(alice, placed.orderid)["order_status"] == "open"
    assert trading.open_position(alice, "SBIN", "NSE", "MIS") == 0
    set_quote("SBIN", "789.5")
    status = trading.order_status(alice, placed.orderid)
    assert status["order_status"] == "complete"
    assert status["average_price"] == 789.5
    assert trading.open_position(alice, "SBIN", "NSE", "MIS") == 10


def test_sl_m_triggers_and_fills_at_market(app, users):
    alice, _ = users
    set_quote("SBIN", "800")
    trading.place_order(alice, order(symbol="SBIN", quantity=5))
    stop = trading.place_order(alice, order(symbol="SBIN", action="SELL", quantity=5, pricetype="SL-M",
                                           trigger_price="795"))
    assert stop.status == "trigger pending"
    set_quote("SBIN", "797")
    assert trading.orderbook(alice)["statistics"]["total_open_orders"] == 1
    set_quote("SBIN", "794", bid="793.95", ask="794.05")
    assert trading.open_position(alice, "SBIN", "NSE", "MIS") == 0
    assert trading.order_status(alice, stop.orderid)["average_price"] == 793.95
    assert trading.funds(alice)["m2mrealized"] == "-30.25"


def test_sl_triggers_then_waits_as_a_limit(app, users):
    alice, _ = users
    set_quote("INFY", "1500")
    placed = trading.place_order(alice, order(pricetype="SL", price="1505", trigger_price="1502"))
    assert placed.status == "trigger pending"
    set_quote("INFY", "1508")  # triggered, but above the limit: open
    assert trading.order_status(alice, placed.orderid)["order_status"] == "open"
    set_quote("INFY", "1504")
    assert trading.order_status(alice, placed.orderid)["order_status"] == "complete"


def test_cancel_and_modify_open_orders(app, users):
    alice, _ = users
    set_quote("INFY", "1500")
    placed = trading.place_order(alice, order(pricetype="LIMIT", price="1400"))
    modified = trading.modify_order(alice, placed.orderid, order(pricetype="LIMIT", price="1450", quantity=4))
    assert modified.orderid == placed.orderid
    assert modified.status == "open"
    data = trading.order_status(alice, placed.orderid)
    assert (data["price"], data["quantity"]) == (1450.0, 4)
    assert trading.modify_order(alice, placed.orderid, order(pricetype="LIMIT", price="1500", quantity=4)).status \
        == "complete"
    with pytest.raises(OrderError, match="cannot be cancelled: it is complete"):
        trading.cancel_order(alice, placed.orderid)
    second = trading.place_order(alice, order(pricetype="LIMIT", price="1400"))
    third = trading.place_order(alice, order(pricetype="LIMIT", price="1300"))
    assert trading.cancel_order(alice, second.orderid) == second.orderid
    assert trading.order_status(alice, second.orderid)["order_status"] == "cancelled"
    assert trading.cancel_all_orders(alice) == ([third.orderid], [])
    with pytest.raises(OrderError) as info:
        trading.cancel_order(alice, "999999")
    assert info.value.status == 404


def test_close_all_positions(app, users):
    alice, _ = users
    set_quote("INFY", "1500")
    set_quote("SBIN", "800")
    trading.place_order(alice, order(quantity=3))
    trading.place_order(alice, order(symbol="SBIN", action="SELL", quantity=7, product="NRML"))
    assert trading.close_all_positions(alice) == 2
    assert all(p["quantity"] == 0 for p in trading.positionbook(alice))
    assert trading.funds(alice)["utiliseddebits"] == "0.00"


def test_ids_issued_at_one_moment_never_repeat(app):
    """A close-all, a batch or a square-off give many orders and trades one `now`: their ids differ."""
    from services.trading import journal
    now = dt.datetime(2026, 12, 7, 4, 0, tzinfo=dt.UTC)
    ids = [journal.new_id(now) for _ in range(20_000)]  # twice the random digits' range: chance alone repeats
    assert len(set(ids)) == len(ids)
    assert all(len(i) == 21 and i.isdigit() for i in ids)


def test_close_all_of_many_positions_in_one_moment(app, users):
    alice, _ = users
    for symbol, price in (("INFY", "1500"), ("SBIN", "800"), ("RELIANCE", "2900")):
        set_quote(symbol, price)
        for product in ("MIS", "NRML", "CNC"):
            trading.place_order(alice, order(symbol=symbol, quantity=2, product=product))
    assert trading.close_all_positions(alice) == 9
    assert all(p["quantity"] == 0 for p in trading.positionbook(alice))


def test_mis_positions_are_squared_off_after_the_squareoff_time(app, users):
    alice, bob = users
    set_quote("INFY", "1500")
    trading.place_order(alice, order(quantity=10))
    trading.place_order(alice, order(quantity=5, product="CNC"))
    pending = trading.place_order(alice, order(pricetype="LIMIT", price="1000"))
    trading.place_order(bob, order(action="SELL", quantity=2))
    now = dt.datetime.now(IST)
    assert paper.square_off_due(alice, now=now) == 0  # traded after the last square-off moment
    set_quote("INFY", "1520")
    tomorrow = dt.datetime.combine(now.date() + dt.timedelta(days=1), dt.time(15, 16), tzinfo=IST)
    assert paper.square_off_due(now=tomorrow) == 2  # every user: alice's long and bob's short
    assert trading.open_position(alice, "INFY", "NSE", "MIS") == 0
    assert trading.open_position(alice, "INFY", "NSE", "CNC") == 5  # delivery is not squared off
    assert trading.open_position(bob, "INFY", "NSE", "MIS") == 0
    assert db.session.scalar(select(Order.status).where(Order.orderid == pending.orderid)) == OrderStatus.CANCELLED
    squared = db.session.scalars(select(Order).where(Order.strategy == "Auto Square-off")).all()
    assert sorted((o.user_id, o.action.value) for o in squared) == sorted([(alice, "SELL"), (bob, "BUY")])
    snaps = db.session.scalars(select(PortfolioSnapshot).where(PortfolioSnapshot.user_id == alice)).all()
    assert [s.reason for s in snaps] == [SnapshotReason.SQUAREOFF]
    assert snaps[0].realized_pnl == D("200")
    funds = db.session.scalar(select(Funds).where(Funds.user_id == alice))
    assert funds.realized_pnl == D("200")
    assert funds.used_margin == D("7500")  # the CNC position
    assert paper.square_off_due(now=tomorrow) == 0


def test_square_off_runs_lazily_on_reads(app, users):
    alice, _ = users
    set_quote("INFY", "1500")
    trading.place_order(alice, order(quantity=10))
    row = db.session.scalar(select(Position))
    row.updated_at = row.updated_at - dt.timedelta(days=2)
    db.session.commit()
    assert trading.positionbook(alice)[0]["quantity"] == 0


def test_cross_user_isolation(app, users):
    alice, bob = users
    set_quote("INFY", "1500")
    mine = trading.place_order(alice, order(pricetype="LIMIT", price="1400"))
    trading.place_order(alice, order(quantity=2))
    for call in (lambda: trading.cancel_order(bob, mine.orderid), lambda: trading.order_status(bob, mine.orderid),
                 lambda: trading.modify_order(bob, mine.orderid, order(pricetype="LIMIT", price="1450"))):
        with pytest.raises(OrderError) as info:
            call()
        assert info.value.status == 404
    assert trading.orderbook(bob)["orders"] == []
    assert trading.tradebook(bob) == []
    assert trading.positionbook(bob) == []
    assert trading.cancel_all_orders(bob) == ([], [])
    assert trading.close_all_positions(bob) == 0
    assert trading.order_status(alice, mine.orderid)["order_status"] == "open"
    assert trading.open_position(alice, "INFY", "NSE", "MIS") == 2
    assert trading.funds(bob)["availablecash"] == "10000000.00"


def test_smart_order_places_the_difference(app, users):
    alice, _ = users
    set_quote("INFY", "1500")
    assert trading.place_smart_order(alice, order(quantity=0), position_size=0) is None
    placed = trading.place_smart_order(alice, order(quantity=1), position_size=10)
    assert placed.status == "complete"
    assert trading.open_position(alice, "INFY", "NSE", "MIS") == 10
    assert trading.place_smart_order(alice, order(quantity=1), position_size=10) is None
    trading.place_smart_order(alice, order(action="SELL", quantity=1), position_size=-4)
    assert trading.open_position(alice, "INFY", "NSE", "MIS") == -4
    row = db.session.scalars(select(Order).order_by(Order.id.desc())).first()
    assert (row.action.value, row.quantity) == ("SELL", 14)
    # Flat and asked for flat with a quantity: OpenAlgo places the order as given.
    assert trading.place_smart_order(alice, order(symbol="SBIN", quantity=3), position_size=0) is not None


def test_basket_and_split(app, users):
    alice, _ = users
    set_quote("INFY", "1500")
    results = trading.basket_order(alice, "basket", [order(quantity=1), order(symbol="NOPE")])
    assert results[0]["status"] == "success"
    assert results[0]["orderid"]
    assert results[1] == {"symbol": "NOPE", "status": "error", "message": "Symbol NOPE not found in exchange NSE"}
    split = trading.split_order(alice, order(quantity=25), 10)
    assert split["split_size"] == 10
    assert split["total_quantity"] == 25
    assert [(r["order_num"], r["quantity"], r["status"]) for r in split["results"]] == [
        (1, 10, "success"), (2, 10, "success"), (3, 5, "success")]
    assert trading.open_position(alice, "INFY", "NSE", "MIS") == 26
    with pytest.raises(OrderError, match="at most 100"):
        trading.split_order(alice, order(quantity=1000), 1)


def test_analyze_toggle(app, users):
    alice, bob = users
    assert books.analyzer_status(alice) == {"mode": "analyze", "analyze_mode": True, "total_logs": 0}
    venues.set_analyze(alice, False)
    assert books.analyzer_status(alice)["mode"] == "live"
    assert venues.is_analyze(bob)
    with pytest.raises(OrderError) as info:
        trading.place_order(alice, order())
    assert info.value.status == 403
    assert "No live broker session" in info.value.message
    venues.set_analyze(alice, True)
    assert venues.is_analyze(alice)


@pytest.mark.parametrize(("changes", "message"), [
    ({"quantity": 0}, "quantity must be a positive whole number"),
    ({"pricetype": "LIMIT"}, "price is required for a LIMIT order"),
    ({"pricetype": "SL", "price": 10}, "trigger_price is required for a SL order"),
    ({"pricetype": "SL-M"}, "trigger_price is required for a SL-M order"),
])
def test_fields_that_go_together(app, users, changes, message):
    alice, _ = users
    with pytest.raises(OrderError) as info:
        trading.place_order(alice, order(**changes))
    assert (info.value.status, info.value.message) == (400, message)
