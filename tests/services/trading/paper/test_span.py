"""The analyze-mode SPAN approximation: the scenario walk's figures where they can be worked by hand, and the
directions that matter to a trader (hedges cost less, a bought option costs its premium)."""

from __future__ import annotations

import datetime as dt

import pytest

from services.market import black76
from services.trading.paper.span import PARAMETERS, Leg, margin

NOW = dt.datetime(2026, 12, 7, 10, 0, tzinfo=black76.IST)
EXPIRY = dt.date(2026, 12, 24)
YEARS = black76.years_to_expiry(NOW, "NFO", EXPIRY)


def option(strike: float, kind: str, qty: int, spot: float = 22000, sigma: float = 0.14) -> Leg:
    return Leg("NIFTY", "index", kind, qty, black76.price(kind, spot, strike, YEARS, sigma), spot, strike, EXPIRY)


def future(qty: int, price: float = 22050) -> Leg:
    return Leg("NIFTY", "index", "FUT", qty, price, price, 0, EXPIRY)


def test_a_future_costs_its_price_scan_range_and_exposure():
    scan, _, exposure = PARAMETERS["index"]
    for qty in (75, -75):
        m = margin([future(qty)], NOW)
        assert float(m.span) == pytest.approx(75 * 22050 * scan, abs=0.01)  # the full move: worse than 35 % of 2x
        assert float(m.exposure) == pytest.approx(75 * 22050 * exposure, abs=0.01)
        assert m.total == m.span + m.exposure


def test_a_bought_option_costs_its_premium_only():
    leg = option(22000, "CE", 75)
    m = margin([leg], NOW)
    assert (m.span, m.exposure) == (0, 0)
    assert float(m.total) == pytest.approx(75 * leg.price, abs=0.01)


def test_a_sold_option_costs_its_worst_scenario_or_the_minimum():
    atm = margin([option(22000, "CE", -75)], NOW)
    far = margin([option(26000, "CE", -75)], NOW)
    _, short_min, exposure = PARAMETERS["index"]
    assert float(far.span) == pytest.approx(75 * 22000 * short_min, abs=0.01)  # nothing can happen to it but the floor
    assert atm.span > far.span
    assert float(atm.exposure) == pytest.approx(75 * 22000 * exposure, abs=0.01)


def test_hedges_cost_less_than_their_legs():
    short_straddle = [option(22000, "CE", -75), option(22000, "PE", -75)]
    spread = [option(22000, "PE", -75), option(21800, "PE", 75)]
    covered = [future(-75), option(22000, "CE", 75)]
    for basket in (short_straddle, spread, covered):
        together = margin(basket, NOW)
        alone = sum(margin([leg], NOW).total for leg in basket)
        assert together.total < alone
        assert together.benefit == alone - together.total
    # Groups do not offset each other: a BANKNIFTY future does not hedge NIFTY.
    other = Leg("BANKNIFTY", "index", "FUT", 15, 48000, 48000, 0, EXPIRY)
    assert margin([future(-75), other], NOW).total == margin([future(-75)], NOW).total + margin([other], NOW).total


def test_cash_equity_blocks_value_or_the_intraday_share():
    buy = Leg("INFY", "equity", "EQ", 10, 1500, 1500, product="CNC")
    mis = Leg("INFY", "equity", "EQ", -10, 1500, 1500, product="MIS", leverage=5)
    sell_holding = Leg("INFY", "equity", "EQ", -10, 1500, 1500, product="CNC")
    assert float(margin([buy], NOW).total) == 15000
    assert float(margin([mis], NOW).total) == 3000
    assert margin([sell_holding], NOW).total == 0
