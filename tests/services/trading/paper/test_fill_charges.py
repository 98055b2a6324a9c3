"""Charges on every analyze-mode fill, through the books: each trade carries its charges (the calculator's
figures: services.trading.paper.charges, whose worked examples are in test_charges.py), the funds are net
of them, the position book and the round trips show gross, charges and net; on the fast path (a MARKET
order on a quiet account), the full path (a resting LIMIT matched later) and the square-off."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal as D

import pytest

from services.trading import round_trips, shapes
from services.trading.paper import charges
from tests.helpers import trading
from tests.helpers.clock import clock, local  # noqa: F401 - fixtures
from tests.helpers.orders import contract, order, set_quote, users  # noqa: F401 - fixtures

START = D("10000000")


@pytest.fixture
def charged(app, monkeypatch):
    monkeypatch.setitem(app.config, "ANALYZE_CHARGES", True)


def expected(app, action, quantity, price, product="MIS", on=None) -> D:
    plan = charges.plan_from(app.config)
    return charges.for_fill(exchange="NSE", instrumenttype="EQ", product=product, action=action,
                            quantity=D(quantity), price=D(price), on=on or shapes.trading_day(), plan=plan).total


def test_a_round_trip_pays_its_charges_on_both_fills(app, users, charged):  # noqa: F811
    alice, _ = users
    set_quote("INFY", "1500")
    trading.place_order(alice, order(quantity=10))  # the fast path
    set_quote("INFY", "1510")
    trading.place_order(alice, order(action="SELL", quantity=10))
    buy_fee, sell_fee = expected(app, "BUY", 10, "1500"), expected(app, "SELL", 10, "1510")
    assert buy_fee > 0
    assert sell_fee > buy_fee

    sell, buy = trading.tradebook(alice)  # newest first
    assert (D(str(buy["charges"])), D(str(sell["charges"]))) == (buy_fee, sell_fee)
    assert buy["realized_pnl"] == 0
    assert sell["realized_pnl"] == 100
    assert D(str(sell["net_pnl"])) == 100 - sell_fee
    assert D(str(buy["net_pnl"])) == -buy_fee

    funds = trading.funds(alice)
    assert D(funds["m2mrealized"]) == 100 - buy_fee - sell_fee
    assert D(funds["availablecash"]) == START + 100 - buy_fee - sell_fee

    [position] = trading.positionbook(alice)
    assert position["gross_pnl"] == 100
    assert D(str(position["charges"])) == buy_fee + sell_fee
    assert D(str(position["pnl"])) == 100 - buy_fee - sell_fee

    [trip] = round_trips.round_trips(alice, shapes.day_start())
    assert trip.gross_pnl == 100
    assert trip.charges == buy_fee + sell_fee
    assert trip.net_pnl == 100 - buy_fee - sell_fee


def test_a_partial_exit_takes_its_share_of_the_entry_charges(app, users, charged):  # noqa: F811
    alice, _ = users
    set_quote("INFY", "1500")
    trading.place_order(alice, order(quantity=10))
    trading.place_order(alice, order(action="SELL", quantity=4))
    buy_fee, sell_fee = expected(app, "BUY", 10, "1500"), expected(app, "SELL", 4, "1500")
    [trip] = round_trips.round_trips(alice, shapes.day_start())
    assert trip.quantity == 4
    assert trip.charges == buy_fee * 4 / 10 + sell_fee


def test_a_resting_limit_is_charged_when_it_fills(app, users, charged):  # noqa: F811
    alice, _ = users
    set_quote("INFY", "1500")
    placed = trading.place_order(alice, order(quantity=5, pricetype="LIMIT", price="1490"))
    assert trading.tradebook(alice) == []
    set_quote("INFY", "1489")
    assert trading.order_status(alice, placed.orderid)["order_status"] == "complete"
    [trade] = trading.tradebook(alice)
    assert D(str(trade["charges"])) == expected(app, "BUY", 5, trade["average_price"])
    assert D(trading.funds(alice)["m2mrealized"]) == -D(str(trade["charges"]))


def test_delivery_pays_no_brokerage_but_its_taxes(app, users, charged):  # noqa: F811
    alice, _ = users
    set_quote("INFY", "1500")
    trading.place_order(alice, order(quantity=10, product="CNC"))
    [trade] = trading.tradebook(alice)
    fee = charges.for_fill(exchange="NSE", instrumenttype="EQ", product="CNC", action="BUY", quantity=D(10),
                           price=D(1500), on=shapes.trading_day(), plan=charges.plan_from(app.config))
    assert fee.brokerage == 0
    assert fee.stt > 0
    assert D(str(trade["charges"])) == fee.total


def test_the_square_off_is_charged_like_any_fill(app, users, charged, clock):  # noqa: F811
    alice, _ = users
    clock.now = local(app, 2026, 12, 7, 10, 0)
    set_quote("INFY", "1500")
    trading.place_order(alice, order(quantity=10))
    clock.now = local(app, 2026, 12, 7, 15, 20)
    set_quote("INFY", "1500")
    assert trading.positionbook(alice)[0]["quantity"] == 0
    fees = [D(str(t["charges"])) for t in trading.tradebook(alice)]
    assert fees == [expected(app, "SELL", 10, "1500", on=dt.date(2026, 12, 7)),
                    expected(app, "BUY", 10, "1500", on=dt.date(2026, 12, 7))]


def test_charges_can_be_turned_off(app, users, monkeypatch):  # noqa: F811
    monkeypatch.setitem(app.config, "ANALYZE_CHARGES", False)
    alice, _ = users
    set_quote("INFY", "1500")
    trading.place_order(alice, order(quantity=10))
    trading.place_order(alice, order(action="SELL", quantity=10))
    assert [t["charges"] for t in trading.tradebook(alice)] == [0, 0]
    assert trading.funds(alice)["m2mrealized"] == "0.00"


def test_the_brokerage_plan_is_a_setting(app, users, charged, monkeypatch):  # noqa: F811
    alice, _ = users
    set_quote("INFY", "1500")
    trading.place_order(alice, order(quantity=100))  # turnover 150,000: 0.03 % is 45, so the flat 20
    before = D(str(trading.tradebook(alice)[0]["charges"]))
    monkeypatch.setitem(app.config, "ANALYZE_BROKERAGE_PER_ORDER", "0")
    trading.place_order(alice, order(quantity=100))
    after = D(str(trading.tradebook(alice)[0]["charges"]))
    assert before - after == D("20") * D("1.18")  # the flat fee and its GST
