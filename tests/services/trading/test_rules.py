"""The exchange's order rules (services.trading.rules): pure functions over an order and its contract."""

from __future__ import annotations

import dataclasses
import datetime as dt
from decimal import Decimal

import pytest

from services.market.symbol_index import SymbolInfo
from services.trading import rules
from services.trading.errors import OrderError
from services.trading.journal import OrderInput


def info(symbol="INFY", exchange="NSE", lotsize=1, tick="0.05") -> SymbolInfo:
    return SymbolInfo(symbol=symbol, brsymbol=symbol, name=symbol, exchange=exchange, brexchange=exchange,
                      token="1", expiry=None, strike=None, lotsize=lotsize, instrumenttype="EQ",
                      tick_size=Decimal(tick))


NIFTY_FUT = SymbolInfo(symbol="NIFTY30APR26FUT", brsymbol="NIFTY26APRFUT", name="NIFTY", exchange="NFO",
                       brexchange="NFO", token="13238786", expiry=dt.date(2026, 4, 30), strike=None, lotsize=75,
                       instrumenttype="FUT", tick_size=Decimal("0.05"))


def order(action="BUY", quantity=1, pricetype="LIMIT", price="1000", trigger_price="0", symbol="INFY",
          exchange="NSE") -> OrderInput:
    return OrderInput(strategy="t", exchange=exchange, symbol=symbol, action=action, quantity=quantity,
                      pricetype=pricetype, product="MIS", price=Decimal(price), trigger_price=Decimal(trigger_price))


def refusal(fn, *args, **kwargs) -> str:
    with pytest.raises(OrderError) as exc:
        fn(*args, **kwargs)
    assert exc.value.status == 400
    return exc.value.message


# -- lots ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("quantity", [75, 150, 75 * 1000, 0])
def test_whole_lots_pass(quantity):
    rules.lots(NIFTY_FUT, quantity)


@pytest.mark.parametrize(("quantity", "examples"), [(7, "75 or 150"), (1, "75 or 150"), (74, "75 or 150"),
                                                    (76, "75 or 150"), (100, "75 or 150"), (151, "150 or 225")])
def test_part_lots_are_refused_with_the_lot_and_examples(quantity, examples):
    assert refusal(rules.lots, NIFTY_FUT, quantity) == (
        f"quantity {quantity} is not a whole number of lots: NIFTY30APR26FUT trades in lots of 75 (e.g. {examples})")


def test_the_brief_example_message():
    msg = refusal(rules.check, order(quantity=7, pricetype="MARKET", price="0", symbol="NIFTY30APR26FUT",
                                     exchange="NFO"), NIFTY_FUT)
    assert msg == "quantity 7 is not a whole number of lots: NIFTY30APR26FUT trades in lots of 75 (e.g. 75 or 150)"


def test_negative_position_size_and_named_fields():
    rules.lots(NIFTY_FUT, -150, "position_size")
    assert refusal(rules.lots, NIFTY_FUT, -100, "position_size").startswith(
        "position_size -100 is not a whole number of lots: NIFTY30APR26FUT trades in lots of 75 (e.g. 75 or 150)")
    assert refusal(rules.lots, NIFTY_FUT, 50, "splitsize").startswith("splitsize 50 is not a whole number of lots")


@pytest.mark.parametrize("exchange", ["NFO", "BFO", "CDS", "BCD", "MCX", "NCDEX"])
def test_every_derivative_exchange_trades_in_lots(exchange):
    with pytest.raises(OrderError):
        rules.lots(info("X", exchange, lotsize=10), 15)


@pytest.mark.parametrize("exchange", ["NSE", "BSE"])
def test_cash_exchanges_have_no_lots(exchange):
    rules.lots(info("X", exchange, lotsize=10), 15)


def test_a_lot_of_one_allows_any_quantity():
    rules.lots(info("X", "MCX", lotsize=1), 17)
    rules.lots(info("X", "MCX", lotsize=0), 17)


# -- the freeze quantity ---------------------------------------------------------------------------------
def test_freeze_quantity_refuses_above_it_and_checks_nothing_without_one():
    rules.freeze(NIFTY_FUT, 10**9)
    rules.freeze(NIFTY_FUT, 1800, 1800)
    msg = refusal(rules.freeze, NIFTY_FUT, 1875, 1800)
    assert msg == ("quantity 1875 is above the freeze quantity of NIFTY30APR26FUT: at most 1800 in one order; "
                   "use splitorder with a splitsize of at most 1800")
    assert refusal(rules.freeze, NIFTY_FUT, 1875, 1800, "splitsize") == (
        "splitsize 1875 is above the freeze quantity of NIFTY30APR26FUT: at most 1800 in one order; "
        "use a splitsize of at most 1800")
    with pytest.raises(OrderError, match="freeze quantity"):
        rules.check(order(quantity=1875, symbol="NIFTY30APR26FUT", exchange="NFO"), NIFTY_FUT, freeze_qty=1800)


def test_enforce_takes_the_contracts_freeze_quantity():
    frozen = dataclasses.replace(NIFTY_FUT, freeze_qty=1800)
    big = order(quantity=1875, pricetype="MARKET", price="0", symbol="NIFTY30APR26FUT", exchange="NFO")
    rules.enforce(None, big, NIFTY_FUT)  # none in the contract: not known, not checked
    with pytest.raises(OrderError, match="above the freeze quantity"):
        rules.enforce(None, big, frozen)
    rules.enforce(None, big, frozen, whole=False)  # a split's total: its splitsize is checked instead
    rules.enforce(None, big.but(quantity=1800), frozen)


# -- above zero ------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("pricetype", "price", "trigger", "field"), [
    ("LIMIT", "0", "0", "price"), ("LIMIT", "-1", "0", "price"), ("SL", "0", "5", "price"),
    ("SL", "5", "0", "trigger_price"), ("SL-M", "0", "0", "trigger_price"), ("SL-M", "0", "-0.05", "trigger_price"),
])
def test_prices_the_order_uses_are_above_zero(pricetype, price, trigger, field):
    msg = refusal(rules.positive, order(pricetype=pricetype, price=price, trigger_price=trigger))
    assert msg.startswith(f"{field} ")
    assert msg.endswith(f"of a {pricetype} order must be above zero")


def test_a_market_order_needs_no_price():
    rules.check(order(pricetype="MARKET", price="0"), info())
    rules.check(order(pricetype="MARKET", price="1000.03"), info())  # not used, so not checked


# -- the tick ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("price", ["1000", "1000.05", "1000.050", "1000.0500000", "0.05", "999.95", "1E+3",
                                   "1000000000000.00"])
def test_prices_on_the_tick_pass(price):
    rules.on_tick(order(price=price), info())


def test_the_brief_tick_example():
    assert refusal(rules.on_tick, order(price="1000.03"), info()) == \
        "price 1000.03 is not on the tick of 0.05: use 1000.00 or 1000.05"


@pytest.mark.parametrize(("price", "use"), [
    ("1000.01", "1000.00 or 1000.05"), ("1000.049", "1000.00 or 1000.05"), ("1000.0500001", "1000.05 or 1000.10"),
    ("999.99", "999.95 or 1000.00"), ("0.01", "0.05"), ("0.049999", "0.05"),
])
def test_prices_off_the_tick_name_the_nearest_ticks(price, use):
    assert refusal(rules.on_tick, order(price=price), info()) == \
        f"price {price} is not on the tick of 0.05: use {use}"


def test_a_tiny_positive_price_fails_on_the_tick():
    msg = refusal(rules.check, order(price="1e-30"), info())
    assert msg == f"price 0.{'0' * 29}1 is not on the tick of 0.05: use 0.05"


def test_trigger_prices_are_on_the_tick_too():
    msg = refusal(rules.on_tick, order(pricetype="SL-M", price="0", trigger_price="999.97"), info())
    assert msg == "trigger_price 999.97 is not on the tick of 0.05: use 999.95 or 1000.00"
    msg = refusal(rules.on_tick, order(pricetype="SL", price="1000.05", trigger_price="1000.02"), info())
    assert msg.startswith("trigger_price 1000.02 is not on the tick of 0.05")


def test_the_trigger_of_a_limit_order_is_not_checked():
    rules.on_tick(order(pricetype="LIMIT", price="1000", trigger_price="0.01"), info())


@pytest.mark.parametrize(("tick", "price", "msg"), [
    ("0.0025", "83.1230", "price 83.1230 is not on the tick of 0.0025: use 83.1225 or 83.1250"),
    ("0.0500", "10.02", "price 10.02 is not on the tick of 0.05: use 10.00 or 10.05"),  # as the database holds it
    ("1", "5400.5", "price 5400.5 is not on the tick of 1: use 5400 or 5401"),
    ("10", "71005", "price 71005 is not on the tick of 10: use 71000 or 71010"),
    ("0.01", "1.001", "price 1.001 is not on the tick of 0.01: use 1.00 or 1.01"),
])
def test_other_ticks(tick, price, msg):
    assert refusal(rules.on_tick, order(price=price), info(tick=tick)) == msg


@pytest.mark.parametrize(("tick", "price"), [("0.0025", "83.1225"), ("1", "5400"), ("10", "71010"),
                                             ("0.0500", "10.05"), ("0.05", "1E+12")])
def test_other_ticks_on_the_tick(tick, price):
    rules.on_tick(order(price=price), info(tick=tick))


def test_a_contract_without_a_tick_checks_none():
    rules.on_tick(order(price="1000.03"), info(tick="0"))


def test_many_decimals_are_exact_not_float():
    # 0.1 + 0.2 in float is 0.30000000000000004; in Decimal a price of 0.30 on a 0.05 tick passes
    rules.on_tick(order(price=str(Decimal("0.1") + Decimal("0.2"))), info())
    with pytest.raises(OrderError):
        rules.on_tick(order(price="1000.05" + "0" * 40 + "1"), info())


# -- stop-loss sides -----------------------------------------------------------------------------------------
def test_a_buy_sl_triggers_at_or_below_its_price():
    rules.stop_sides(order("BUY", pricetype="SL", price="105", trigger_price="104.95"))
    rules.stop_sides(order("BUY", pricetype="SL", price="105", trigger_price="105"))
    assert refusal(rules.stop_sides, order("BUY", pricetype="SL", price="100", trigger_price="105")) == (
        "trigger_price 105 is above the price 100 of a BUY SL order: a BUY stop-loss triggers at or below its "
        "limit price (trigger_price <= 100)")


def test_a_sell_sl_triggers_at_or_above_its_price():
    rules.stop_sides(order("SELL", pricetype="SL", price="95", trigger_price="95.05"))
    rules.stop_sides(order("SELL", pricetype="SL", price="95", trigger_price="95.00"))
    assert refusal(rules.stop_sides, order("SELL", pricetype="SL", price="100.00", trigger_price="95.00")) == (
        "trigger_price 95.00 is below the price 100.00 of a SELL SL order: a SELL stop-loss triggers at or above "
        "its limit price (trigger_price >= 100.00)")


def test_sl_m_has_no_limit_price_to_compare():
    rules.stop_sides(order("BUY", pricetype="SL-M", price="0", trigger_price="105"))
    rules.stop_sides(order("SELL", pricetype="SL-M", price="0", trigger_price="95"))


# -- stops against the market ----------------------------------------------------------------------------------
LTP = Decimal("100.00")


@pytest.mark.parametrize(("action", "pricetype", "price", "trigger"), [
    ("BUY", "SL-M", "0", "100.05"), ("BUY", "SL", "101", "100.05"), ("SELL", "SL-M", "0", "99.95"),
    ("SELL", "SL", "99", "99.95"),
])
def test_stops_on_the_right_side_of_the_market_pass(action, pricetype, price, trigger):
    rules.stop_against_market(order(action, pricetype=pricetype, price=price, trigger_price=trigger), LTP)
    rules.check(order(action, pricetype=pricetype, price=price, trigger_price=trigger), info(), ltp=LTP)


def test_a_buy_stop_at_or_below_the_market_is_refused():
    assert refusal(rules.stop_against_market, order("BUY", pricetype="SL-M", price="0", trigger_price="100"),
                   LTP) == ("trigger_price 100 of a BUY SL-M order must be above the last traded price 100: a BUY "
                            "stop triggers above the market (allowed: trigger_price > 100)")
    assert refusal(rules.stop_against_market, order("BUY", pricetype="SL", price="101", trigger_price="99.95"),
                   LTP) == ("trigger_price 99.95 of a BUY SL order must be above the last traded price 100: a BUY "
                            "stop triggers above the market (allowed: 100 < trigger_price <= 101)")


def test_a_sell_stop_at_or_above_the_market_is_refused():
    assert refusal(rules.stop_against_market, order("SELL", pricetype="SL-M", price="0", trigger_price="100.05"),
                   LTP) == ("trigger_price 100.05 of a SELL SL-M order must be below the last traded price 100: a "
                            "SELL stop triggers below the market (allowed: trigger_price < 100)")
    assert refusal(rules.stop_against_market, order("SELL", pricetype="SL", price="99", trigger_price="100"),
                   LTP) == ("trigger_price 100 of a SELL SL order must be below the last traded price 100: a SELL "
                            "stop triggers below the market (allowed: 99 <= trigger_price < 100)")


def test_the_last_price_reads_without_trailing_zeros():
    msg = refusal(rules.stop_against_market, order("BUY", pricetype="SL-M", price="0", trigger_price="1499.95"),
                  Decimal("1500.0500"))
    assert "the last traded price 1500.05:" in msg
    assert msg.endswith("(allowed: trigger_price > 1500.05)")


def test_without_a_price_or_a_stop_the_market_rule_checks_nothing():
    rules.stop_against_market(order("BUY", pricetype="SL-M", price="0", trigger_price="50"), None)
    rules.stop_against_market(order("BUY", pricetype="LIMIT", price="50"), LTP)
    rules.check(order("BUY", pricetype="SL-M", price="0", trigger_price="50"), info())


def test_check_runs_the_rules_in_order_and_sided_false_leaves_the_side_out():
    bad_side = order("BUY", pricetype="SL", price="100", trigger_price="105")
    rules.check(bad_side, info(), sided=False)
    with pytest.raises(OrderError, match="at or below its limit price"):
        rules.check(bad_side, info())
    # lots come before prices
    msg = refusal(rules.check, order(quantity=7, price="1000.03", symbol="NIFTY30APR26FUT", exchange="NFO"),
                  NIFTY_FUT)
    assert msg.startswith("quantity 7 is not a whole number of lots")
    # the tick before the side
    msg = refusal(rules.check, order("BUY", pricetype="SL", price="100.01", trigger_price="105"), info())
    assert msg.startswith("price 100.01 is not on the tick")


def test_enforce_without_a_venue_uses_no_quote():
    rules.enforce(None, order("BUY", pricetype="SL-M", price="0", trigger_price="0.05"), info())
