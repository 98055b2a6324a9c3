"""The paper engine's arithmetic: fill rules, margin by product, positions and P&L, funds."""

from __future__ import annotations

from decimal import Decimal as D

import pytest

from services.trading.paper import engine
from services.trading.paper.engine import FundsState, Leverage, PositionState, Quote, apply_fill, decide

LEV = Leverage(mis=D(5), nrml=D(1))


# -- fill rules ------------------------------------------------------------------------------------
def test_market_fills_at_the_ask_or_bid_else_ltp():
    q = Quote(ltp=D("100"), bid=D("99.95"), ask=D("100.05"))
    assert decide("BUY", "MARKET", D(0), D(0), q) == engine.Decision("complete", D("100.05"))
    assert decide("SELL", "MARKET", D(0), D(0), q) == engine.Decision("complete", D("99.95"))
    bare = Quote(ltp=D("100"))
    assert decide("BUY", "MARKET", D(0), D(0), bare).price == D("100")
    assert decide("SELL", "MARKET", D(0), D(0), bare).price == D("100")


def test_limit_fills_only_when_the_price_crosses_never_worse_than_the_limit():
    q = Quote(ltp=D("100"), bid=D("99.95"), ask=D("100.05"))
    assert decide("BUY", "LIMIT", D("99"), D(0), q).status == "open"
    assert decide("BUY", "LIMIT", D("100"), D(0), q) == engine.Decision("complete", D("100"))
    assert decide("BUY", "LIMIT", D("101"), D(0), q) == engine.Decision("complete", D("100.05"))
    assert decide("SELL", "LIMIT", D("101"), D(0), q).status == "open"
    assert decide("SELL", "LIMIT", D("99"), D(0), q) == engine.Decision("complete", D("99.95"))


def test_stop_orders_wait_for_their_trigger():
    below = Quote(ltp=D("99"))
    above = Quote(ltp=D("101"))
    # Buy stop: triggers when the price rises to the trigger.
    assert decide("BUY", "SL-M", D(0), D("100"), below).status == "trigger pending"
    assert decide("BUY", "SL-M", D(0), D("100"), above) == engine.Decision("complete", D("101"))
    # Sell stop: triggers when the price falls to the trigger.
    assert decide("SELL", "SL-M", D(0), D("100"), above).status == "trigger pending"
    assert decide("SELL", "SL-M", D(0), D("100"), below).price == D("99")
    # SL: once triggered, a limit at its price.
    assert decide("BUY", "SL", D("100.5"), D("100"), above).status == "open"
    assert decide("BUY", "SL", D("101.5"), D("100"), above).price == D("101")
    assert decide("BUY", "SL", D("100.5"), D("100"), Quote(ltp=D("100.2")), triggered=True).price == D("100.2")


# -- margin ----------------------------------------------------------------------------------------
def test_margin_by_product():
    assert LEV.margin("CNC", D("10000")) == D("10000")
    assert LEV.margin("MIS", D("10000")) == D("2000")
    assert Leverage(mis=D(5), nrml=D(2)).margin("NRML", D("-10000")) == D("5000")


# -- positions -------------------------------------------------------------------------------------
def test_buy_sell_round_trip_pnl():
    pos, r1 = apply_fill(PositionState(), "BUY", D(10), D("100"))
    assert (pos.quantity, pos.average_price, r1) == (D(10), D("100"), 0)
    pos, r2 = apply_fill(pos, "BUY", D(10), D("110"))
    assert (pos.quantity, pos.average_price) == (D(20), D("105"))
    assert pos.unrealized(D("120")) == D("300")
    pos, r3 = apply_fill(pos, "SELL", D(20), D("112.5"))
    assert pos.quantity == 0
    assert pos.average_price == 0
    assert r3 == D("150")
    assert pos.realized_pnl == D("150")
    assert (pos.buy_value, pos.sell_value) == (D("2100"), D("2250"))
    assert pos.sell_value - pos.buy_value == pos.realized_pnl


def test_partial_close_keeps_the_average():
    pos, _ = apply_fill(PositionState(), "BUY", D(10), D("100"))
    pos, realized = apply_fill(pos, "SELL", D(4), D("90"))
    assert realized == D("-40")
    assert (pos.quantity, pos.average_price) == (D(6), D("100"))
    assert pos.unrealized(D("95")) == D("-30")


def test_reversal_through_zero_opens_the_rest_at_the_fill_price():
    pos, _ = apply_fill(PositionState(), "BUY", D(10), D("100"))
    pos, realized = apply_fill(pos, "SELL", D(15), D("110"))
    assert realized == D("100")
    assert (pos.quantity, pos.average_price) == (D(-5), D("110"))
    assert pos.unrealized(D("100")) == D("50")  # short gains when the price falls


def test_short_then_cover():
    pos, _ = apply_fill(PositionState(), "SELL", D(10), D("200"))
    pos, _ = apply_fill(pos, "SELL", D(10), D("190"))
    assert (pos.quantity, pos.average_price) == (D(-20), D("195"))
    pos, realized = apply_fill(pos, "BUY", D(20), D("180"))
    assert realized == D("300")
    assert pos.quantity == 0


def test_average_price_is_kept_at_four_decimals():
    pos, _ = apply_fill(PositionState(), "BUY", D(3), D("100"))
    pos, _ = apply_fill(pos, "BUY", D(3), D("100.05"))
    pos, _ = apply_fill(pos, "BUY", D(1), D("100.05"))
    assert pos.average_price == D("100.0286")


# -- funds -----------------------------------------------------------------------------------------
def test_funds_block_on_open_and_release_on_close():
    funds = FundsState(opening_balance=D("100000"))
    r = engine.fill(PositionState(), funds, "MIS", "BUY", D(100), D("500"), LEV)
    assert r.margin_change == D("10000")
    assert r.funds.used_margin == D("10000")
    assert r.funds.available == D("90000")
    r2 = engine.fill(r.position, r.funds, "MIS", "SELL", D(50), D("510"), LEV)
    assert r2.realized == D("500")
    assert r2.funds.used_margin == D("5000")
    assert r2.funds.available == D("100000") + D("500") - D("5000")
    r3 = engine.fill(r2.position, r2.funds, "MIS", "SELL", D(50), D("490"), LEV)
    assert r3.funds.used_margin == 0
    assert r3.funds.realized_pnl == D("0")
    assert r3.funds.available == D("100000")


def test_insufficient_funds_and_cnc_short_sale_are_refused():
    funds = FundsState(opening_balance=D("1000"))
    with pytest.raises(engine.InsufficientFunds, match="margin required 5000.00, available 1000.00"):
        engine.fill(PositionState(), funds, "CNC", "BUY", D(10), D("500"), LEV)
    with pytest.raises(engine.CannotSell):
        engine.fill(PositionState(), funds, "CNC", "SELL", D(1), D("500"), LEV)
    # Reducing a position needs no funds, whatever the balance.
    pos = PositionState(quantity=D(10), average_price=D("500"))
    broke = FundsState(opening_balance=D(0), used_margin=D("1000"))
    assert engine.fill(pos, broke, "MIS", "SELL", D(10), D("400"), LEV).funds.used_margin == 0


def test_fill_quantity_must_be_positive():
    with pytest.raises(ValueError, match="fill quantity must be positive"):
        apply_fill(PositionState(), "BUY", D(0), D(1))
