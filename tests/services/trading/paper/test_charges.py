"""Charges of analyze-mode fills: worked examples per segment, side and exchange, the brokerage plan, the
dated rates of charge_rates.toml. Every expected figure is worked out by hand in the comment above it
(turnover x rate, rounded half up to the paisa); GST is 18 % of brokerage + exchange + SEBI as rounded."""

from __future__ import annotations

import datetime as dt
import tomllib
from decimal import Decimal as D

import pytest

import config
from services.trading.paper import charges
from services.trading.paper.charges import ZERO, Charges, Plan, for_fill, plan_from, segment_of

AFTER_OCT_2024 = dt.date(2025, 6, 2)  # rates from 2024-10-01
BEFORE_OCT_2024 = dt.date(2024, 9, 30)  # F&O: rates from 2023-04-01
BUDGET_2026 = dt.date(2026, 4, 1)  # F&O STT of the Union Budget 2026-27


def C(brokerage, stt, exchange, sebi, stamp, gst) -> Charges:  # noqa: N802 - reads like the dataclass
    return Charges(*(D(v) for v in (brokerage, stt, exchange, sebi, stamp, gst)))


# (exchange, instrumenttype, product, action, quantity, price, date, expected charges, expected total)
EXAMPLES = [
    pytest.param(
        "NSE", "EQ", "CNC", "BUY", "100", "1500.00", AFTER_OCT_2024,
        # turnover 100 x 1500 = 150,000. brokerage: delivery 0. STT 0.1 % = 150.00.
        # exchange NSE 0.00297 % = 4.455 -> 4.46. SEBI 0.0001 % = 0.15. stamp 0.015 % = 22.50.
        # GST 18 % x (0 + 4.46 + 0.15 = 4.61) = 0.8298 -> 0.83. total 177.94
        C("0.00", "150.00", "4.46", "0.15", "22.50", "0.83"), "177.94", id="delivery-NSE-buy"),
    pytest.param(
        "BSE", "EQ", "CNC", "SELL", "40", "2345.60", AFTER_OCT_2024,
        # turnover 40 x 2345.60 = 93,824. STT 0.1 % = 93.824 -> 93.82. exchange BSE 0.00375 % = 3.5184 -> 3.52.
        # SEBI 0.093824 -> 0.09. stamp: none on a sell. GST 18 % x (0 + 3.52 + 0.09 = 3.61) = 0.6498 -> 0.65.
        # total 93.82 + 3.52 + 0.09 + 0.65 = 98.08
        C("0.00", "93.82", "3.52", "0.09", "0.00", "0.65"), "98.08", id="delivery-BSE-sell"),
    pytest.param(
        "NSE", "EQ", "MIS", "BUY", "500", "250.00", AFTER_OCT_2024,
        # turnover 125,000. brokerage min(20, 0.03 % = 37.50) = 20. STT: none on an intraday buy.
        # exchange 0.00297 % = 3.7125 -> 3.71. SEBI 0.125 -> 0.13. stamp 0.003 % = 3.75.
        # GST 18 % x (20 + 3.71 + 0.13 = 23.84) = 4.2912 -> 4.29. total 31.88
        C("20.00", "0.00", "3.71", "0.13", "3.75", "4.29"), "31.88", id="intraday-NSE-buy"),
    pytest.param(
        "NSE", "EQ", "MIS", "SELL", "10", "500.00", AFTER_OCT_2024,
        # the cap: turnover 5,000; brokerage min(20, 0.03 % = 1.50) = 1.50. STT 0.025 % = 1.25.
        # exchange 0.1485 -> 0.15. SEBI 0.005 -> 0.01. GST 18 % x (1.50 + 0.15 + 0.01 = 1.66) = 0.2988 -> 0.30.
        # total 1.50 + 1.25 + 0.15 + 0.01 + 0.30 = 3.21
        C("1.50", "1.25", "0.15", "0.01", "0.00", "0.30"), "3.21", id="intraday-NSE-sell-brokerage-cap"),
    pytest.param(
        "BSE", None, "MIS", "SELL", "200", "812.35", AFTER_OCT_2024,
        # turnover 162,470. brokerage min(20, 48.741) = 20. STT 0.025 % = 40.6175 -> 40.62.
        # exchange BSE 0.00375 % = 6.092625 -> 6.09. SEBI 0.16247 -> 0.16.
        # GST 18 % x (20 + 6.09 + 0.16 = 26.25) = 4.725 -> 4.73. total 71.60
        C("20.00", "40.62", "6.09", "0.16", "0.00", "4.73"), "71.60", id="intraday-BSE-sell"),
    pytest.param(
        "BSE", "EQ", "MIS", "BUY", "200", "812.35", AFTER_OCT_2024,
        # turnover 162,470. brokerage 20. STT 0. exchange 6.09. SEBI 0.16. stamp 0.003 % = 4.8741 -> 4.87.
        # GST 4.73 (as above). total 20 + 6.09 + 0.16 + 4.87 + 4.73 = 35.85
        C("20.00", "0.00", "6.09", "0.16", "4.87", "4.73"), "35.85", id="intraday-BSE-buy"),
    pytest.param(
        "NFO", "FUT", "NRML", "SELL", "75", "24000.00", AFTER_OCT_2024,
        # turnover 1,800,000. brokerage min(20, 540) = 20. STT 0.02 % = 360.00. exchange NSE 0.00173 % = 31.14.
        # SEBI 1.80. GST 18 % x (20 + 31.14 + 1.80 = 52.94) = 9.5292 -> 9.53. total 422.47
        C("20.00", "360.00", "31.14", "1.80", "0.00", "9.53"), "422.47", id="futures-NSE-sell"),
    pytest.param(
        "NFO", "FUTIDX", "MIS", "BUY", "75", "24000.00", AFTER_OCT_2024,
        # turnover 1,800,000. STT: none on a buy. stamp 0.002 % = 36.00. the rest as the sell above.
        # total 20 + 31.14 + 1.80 + 36.00 + 9.53 = 98.47
        C("20.00", "0.00", "31.14", "1.80", "36.00", "9.53"), "98.47", id="futures-NSE-buy"),
    pytest.param(
        "BFO", "FUT", "NRML", "SELL", "20", "80000.00", AFTER_OCT_2024,
        # turnover 1,600,000. brokerage 20. STT 0.02 % = 320.00. exchange: BSE charges nothing on futures.
        # SEBI 1.60. GST 18 % x (20 + 0 + 1.60 = 21.60) = 3.888 -> 3.89. total 345.49
        C("20.00", "320.00", "0.00", "1.60", "0.00", "3.89"), "345.49", id="futures-BSE-sell"),
    pytest.param(
        "BFO", "FUT", "NRML", "BUY", "20", "80000.00", AFTER_OCT_2024,
        # turnover 1,600,000. stamp 0.002 % = 32.00. total 20 + 0 + 1.60 + 32.00 + 3.89 = 57.49
        C("20.00", "0.00", "0.00", "1.60", "32.00", "3.89"), "57.49", id="futures-BSE-buy"),
    pytest.param(
        "NFO", "CE", "NRML", "SELL", "75", "120.50", AFTER_OCT_2024,
        # premium turnover 75 x 120.50 = 9,037.50. brokerage flat 20 on options (0.03 % would be 2.71).
        # STT 0.1 % = 9.0375 -> 9.04. exchange NSE 0.03503 % = 3.16583625 -> 3.17. SEBI 0.0090375 -> 0.01.
        # GST 18 % x (20 + 3.17 + 0.01 = 23.18) = 4.1724 -> 4.17. total 36.39
        C("20.00", "9.04", "3.17", "0.01", "0.00", "4.17"), "36.39", id="options-NSE-sell"),
    pytest.param(
        "NFO", "PE", "MIS", "BUY", "75", "120.50", AFTER_OCT_2024,
        # premium turnover 9,037.50. STT 0. stamp 0.003 % = 0.271125 -> 0.27. the rest as the sell above.
        # total 20 + 3.17 + 0.01 + 0.27 + 4.17 = 27.62
        C("20.00", "0.00", "3.17", "0.01", "0.27", "4.17"), "27.62", id="options-NSE-buy"),
    pytest.param(
        "BFO", "CE", "NRML", "BUY", "20", "310.00", AFTER_OCT_2024,
        # premium turnover 6,200. brokerage 20. exchange BSE 0.0325 % = 2.015 -> 2.02. SEBI 0.0062 -> 0.01.
        # stamp 0.003 % = 0.186 -> 0.19. GST 18 % x (20 + 2.02 + 0.01 = 22.03) = 3.9654 -> 3.97. total 26.19
        C("20.00", "0.00", "2.02", "0.01", "0.19", "3.97"), "26.19", id="options-BSE-buy"),
    pytest.param(
        "BFO", "OPTIDX", "NRML", "SELL", "20", "310.00", AFTER_OCT_2024,
        # premium turnover 6,200. STT 0.1 % = 6.20. no stamp. total 20 + 6.20 + 2.02 + 0.01 + 3.97 = 32.20
        C("20.00", "6.20", "2.02", "0.01", "0.00", "3.97"), "32.20", id="options-BSE-sell"),
    pytest.param(
        "CDS", "FUT", "NRML", "BUY", "5000", "83.2500", AFTER_OCT_2024,
        # turnover 416,250. brokerage min(20, 124.875) = 20. no STT on currency. exchange NSE 0.00035 % =
        # 1.456875 -> 1.46. SEBI 0.41625 -> 0.42. stamp 0.0001 % = 0.41625 -> 0.42.
        # GST 18 % x (20 + 1.46 + 0.42 = 21.88) = 3.9384 -> 3.94. total 26.24
        C("20.00", "0.00", "1.46", "0.42", "0.42", "3.94"), "26.24", id="currency-futures-NSE-buy"),
    pytest.param(
        "BCD", "FUTCUR", "NRML", "SELL", "5000", "83.2500", AFTER_OCT_2024,
        # turnover 416,250. exchange BSE 0.00045 % = 1.873125 -> 1.87. SEBI 0.42. no stamp on a sell.
        # GST 18 % x (20 + 1.87 + 0.42 = 22.29) = 4.0122 -> 4.01. total 26.30
        C("20.00", "0.00", "1.87", "0.42", "0.00", "4.01"), "26.30", id="currency-futures-BSE-sell"),
    pytest.param(
        "CDS", "CE", "NRML", "SELL", "10000", "0.2500", AFTER_OCT_2024,
        # premium turnover 2,500. brokerage flat 20. exchange NSE 0.0311 % = 0.7775 -> 0.78. SEBI 0.0025 -> 0.00.
        # GST 18 % x (20 + 0.78 + 0 = 20.78) = 3.7404 -> 3.74. total 24.52
        C("20.00", "0.00", "0.78", "0.00", "0.00", "3.74"), "24.52", id="currency-options-NSE-sell"),
    pytest.param(
        "BCD", "OPTCUR", "NRML", "BUY", "10000", "0.2500", AFTER_OCT_2024,
        # premium turnover 2,500. exchange BSE 0.001 % = 0.025 -> 0.03. SEBI 0.0025 -> 0.00.
        # stamp 0.0001 % = 0.0025 -> 0.00. GST 18 % x (20 + 0.03 = 20.03) = 3.6054 -> 3.61. total 23.64
        C("20.00", "0.00", "0.03", "0.00", "0.00", "3.61"), "23.64", id="currency-options-BSE-buy"),
    pytest.param(
        "MCX", "FUT", "NRML", "SELL", "100", "6500.00", AFTER_OCT_2024,
        # turnover 650,000. brokerage min(20, 195) = 20. CTT 0.01 % = 65.00. exchange MCX 0.0021 % = 13.65.
        # SEBI 0.65. GST 18 % x (20 + 13.65 + 0.65 = 34.30) = 6.174 -> 6.17. total 105.47
        C("20.00", "65.00", "13.65", "0.65", "0.00", "6.17"), "105.47", id="commodity-futures-MCX-sell"),
    pytest.param(
        "MCX", "FUTCOM", "MIS", "BUY", "100", "6500.00", AFTER_OCT_2024,
        # turnover 650,000. no CTT on a buy. stamp 0.002 % = 13.00. total 20 + 13.65 + 0.65 + 13.00 + 6.17 = 53.47
        C("20.00", "0.00", "13.65", "0.65", "13.00", "6.17"), "53.47", id="commodity-futures-MCX-buy"),
    pytest.param(
        "MCX", "CE", "NRML", "SELL", "100", "150.00", AFTER_OCT_2024,
        # premium turnover 15,000. brokerage flat 20. CTT 0.05 % = 7.50. exchange MCX 0.0418 % = 6.27.
        # SEBI 0.015 -> 0.02. GST 18 % x (20 + 6.27 + 0.02 = 26.29) = 4.7322 -> 4.73. total 38.52
        C("20.00", "7.50", "6.27", "0.02", "0.00", "4.73"), "38.52", id="commodity-options-MCX-sell"),
    pytest.param(
        "MCX", "PE", "NRML", "BUY", "100", "150.00", AFTER_OCT_2024,
        # premium turnover 15,000. stamp 0.003 % = 0.45. total 20 + 6.27 + 0.02 + 0.45 + 4.73 = 31.47
        C("20.00", "0.00", "6.27", "0.02", "0.45", "4.73"), "31.47", id="commodity-options-MCX-buy"),
    # -- the same orders on either side of a rate change --------------------------------------------
    pytest.param(
        "NFO", "FUT", "NRML", "SELL", "75", "24000.00", BEFORE_OCT_2024,
        # rates from 2023-04-01: turnover 1,800,000. STT 0.0125 % = 225.00. exchange 0.00183 % = 32.94.
        # SEBI 1.80. GST 18 % x (20 + 32.94 + 1.80 = 54.74) = 9.8532 -> 9.85. total 289.59
        C("20.00", "225.00", "32.94", "1.80", "0.00", "9.85"), "289.59", id="futures-NSE-sell-2024-09-30"),
    pytest.param(
        "NFO", "FUT", "NRML", "SELL", "75", "24000.00", dt.date(2026, 3, 31),
        # the day before the Budget 2026 rate: as futures-NSE-sell (STT 0.02 % = 360.00). total 422.47
        C("20.00", "360.00", "31.14", "1.80", "0.00", "9.53"), "422.47", id="futures-NSE-sell-2026-03-31"),
    pytest.param(
        "NFO", "FUT", "NRML", "SELL", "75", "24000.00", BUDGET_2026,
        # from 2026-04-01: STT 0.05 % = 900.00; the rest as from 2024-10-01. total 20 + 900 + 31.14 + 1.80 + 9.53
        # = 962.47
        C("20.00", "900.00", "31.14", "1.80", "0.00", "9.53"), "962.47", id="futures-NSE-sell-2026-04-01"),
    pytest.param(
        "NFO", "CE", "NRML", "SELL", "75", "120.50", BEFORE_OCT_2024,
        # rates from 2023-04-01: premium 9,037.50. STT 0.0625 % = 5.6484375 -> 5.65. exchange 0.0495 % =
        # 4.4735625 -> 4.47. SEBI 0.01. GST 18 % x (20 + 4.47 + 0.01 = 24.48) = 4.4064 -> 4.41. total 34.54
        C("20.00", "5.65", "4.47", "0.01", "0.00", "4.41"), "34.54", id="options-NSE-sell-2024-09-30"),
    pytest.param(
        "NFO", "CE", "NRML", "SELL", "75", "120.50", dt.date(2026, 4, 15),
        # from 2026-04-01: STT 0.15 % of 9,037.50 = 13.55625 -> 13.56; the rest as options-NSE-sell.
        # total 20 + 13.56 + 3.17 + 0.01 + 4.17 = 40.91
        C("20.00", "13.56", "3.17", "0.01", "0.00", "4.17"), "40.91", id="options-NSE-sell-2026-04-15"),
]


@pytest.mark.parametrize(("exchange", "itype", "product", "action", "qty", "price", "on", "expected", "total"),
                         EXAMPLES)
def test_worked_examples(exchange, itype, product, action, qty, price, on, expected, total):
    got = for_fill(exchange=exchange, instrumenttype=itype, product=product, action=action, quantity=D(qty),
                   price=D(price), on=on)
    assert got == expected
    assert got.total == D(total)


# -- the brokerage plan ------------------------------------------------------------------------------
def test_delivery_brokerage_is_the_plans_flat_fee():
    plan = Plan(per_order=D(20), percent_cap=D("0.03"), delivery=D("15.5"), enabled=True)
    got = for_fill(exchange="NSE", instrumenttype="EQ", product="CNC", action="BUY", quantity=D(100),
                   price=D("1500.00"), on=AFTER_OCT_2024, plan=plan)
    # as delivery-NSE-buy with brokerage 15.50: GST 18 % x (15.50 + 4.46 + 0.15 = 20.11) = 3.6198 -> 3.62.
    # total 15.50 + 150.00 + 4.46 + 0.15 + 22.50 + 3.62 = 196.23
    assert got == C("15.50", "150.00", "4.46", "0.15", "22.50", "3.62")
    assert got.total == D("196.23")


def test_a_cap_of_zero_leaves_the_flat_fee():
    plan = Plan(per_order=D(20), percent_cap=D(0), delivery=D(0), enabled=True)
    got = for_fill(exchange="NSE", instrumenttype="EQ", product="MIS", action="SELL", quantity=D(10),
                   price=D("500.00"), on=AFTER_OCT_2024, plan=plan)
    # as intraday-NSE-sell-brokerage-cap with brokerage 20: GST 18 % x (20 + 0.15 + 0.01 = 20.16) = 3.6288 -> 3.63
    assert got == C("20.00", "1.25", "0.15", "0.01", "0.00", "3.63")


def test_a_lower_per_order_fee_beats_the_cap():
    plan = Plan(per_order=D(10), percent_cap=D("0.05"), delivery=D(0), enabled=True)
    got = for_fill(exchange="NFO", instrumenttype="FUT", product="NRML", action="SELL", quantity=D(75),
                   price=D("24000.00"), on=AFTER_OCT_2024, plan=plan)
    # brokerage min(10, 0.05 % of 1,800,000 = 900) = 10. GST 18 % x (10 + 31.14 + 1.80 = 42.94) = 7.7292 -> 7.73
    assert got == C("10.00", "360.00", "31.14", "1.80", "0.00", "7.73")


def test_charges_off_cost_nothing():
    plan = plan_from({"ANALYZE_CHARGES": False})
    got = for_fill(exchange="NFO", instrumenttype="FUT", product="NRML", action="SELL", quantity=D(75),
                   price=D("24000.00"), on=AFTER_OCT_2024, plan=plan)
    assert got == ZERO
    assert got.total == 0
    assert got.as_dict() == {k: "0.00" for k in ("brokerage", "stt", "exchange", "sebi", "stamp", "gst", "total")}


def test_the_default_settings_give_the_default_plan():
    settings = {s.name: s.parse(s.name, s.default) for s in config.SETTINGS
                if s.name.startswith(("ANALYZE_CHARGES", "ANALYZE_BROKERAGE_"))}
    assert set(settings) == {"ANALYZE_CHARGES", "ANALYZE_BROKERAGE_PER_ORDER", "ANALYZE_BROKERAGE_PERCENT",
                             "ANALYZE_BROKERAGE_DELIVERY"}
    assert plan_from(settings) == charges.DEFAULT_PLAN == Plan(D(20), D("0.03"), D(0), True)
    assert plan_from({}) == charges.DEFAULT_PLAN


def test_plan_from_reads_strings_and_floats_exactly():
    plan = plan_from({"ANALYZE_BROKERAGE_PER_ORDER": "15", "ANALYZE_BROKERAGE_PERCENT": 0.05,
                      "ANALYZE_BROKERAGE_DELIVERY": 0.1, "ANALYZE_CHARGES": "off"})
    assert plan == Plan(D(15), D("0.05"), D("0.1"), False)
    with pytest.raises(ValueError, match="ANALYZE_BROKERAGE_PER_ORDER"):
        plan_from({"ANALYZE_BROKERAGE_PER_ORDER": "-1"})
    with pytest.raises(ValueError, match="ANALYZE_CHARGES"):
        plan_from({"ANALYZE_CHARGES": "maybe"})


# -- results -----------------------------------------------------------------------------------------
def test_as_dict_has_two_decimals_and_the_total():
    got = for_fill(exchange="NSE", instrumenttype="EQ", product="CNC", action="BUY", quantity=D(100),
                   price=D("1500"), on=AFTER_OCT_2024)
    assert got.as_dict() == {"brokerage": "0.00", "stt": "150.00", "exchange": "4.46", "sebi": "0.15",
                             "stamp": "22.50", "gst": "0.83", "total": "177.94"}


def test_a_datetime_counts_as_its_date():
    at = dt.datetime(2026, 4, 1, 9, 15, tzinfo=dt.UTC)
    got = for_fill(exchange="NFO", instrumenttype="FUT", product="NRML", action="SELL", quantity=D(75),
                   price=D("24000"), on=at)
    assert got.stt == D("900.00")


# -- segments and refusals -----------------------------------------------------------------------------
@pytest.mark.parametrize(("exchange", "itype", "product", "segment"), [
    ("NSE", "EQ", "CNC", "equity_delivery"),
    ("BSE", None, "CNC", "equity_delivery"),
    ("NSE", "EQ", "NRML", "equity_delivery"),
    ("NSE", "EQ", "MIS", "equity_intraday"),
    ("NFO", "FUT", "NRML", "equity_futures"),
    ("BFO", "FUTSTK", "MIS", "equity_futures"),
    ("NFO", "ce", "NRML", "equity_options"),
    ("BFO", "OPTSTK", "NRML", "equity_options"),
    ("CDS", "FUTCUR", "NRML", "currency_futures"),
    ("BCD", "PE", "NRML", "currency_options"),
    ("MCX", "FUT", "NRML", "commodity_futures"),
    ("MCX", "OPTFUT", "NRML", "commodity_options"),
])
def test_segment_of(exchange, itype, product, segment):
    assert segment_of(exchange, itype, product) == segment


@pytest.mark.parametrize(("exchange", "itype", "message"), [
    ("NSE_INDEX", "INDEX", "index"),
    ("BSE_INDEX", None, "index"),
    ("NSE", "INDEX", "cannot be traded"),
    ("NSE", "FUT", "cannot be traded"),
    ("NFO", None, "futures from options"),
    ("MCX", "EQ", "futures from options"),
    ("LSE", "EQ", "unknown exchange"),
])
def test_what_cannot_be_charged(exchange, itype, message):
    with pytest.raises(ValueError, match=message):
        segment_of(exchange, itype, "NRML")
    with pytest.raises(ValueError, match=message):
        for_fill(exchange=exchange, instrumenttype=itype, product="NRML", action="BUY", quantity=D(1),
                 price=D(100), on=AFTER_OCT_2024)


def test_a_date_before_the_first_rates_is_refused():
    with pytest.raises(ValueError, match=r"no equity_delivery charge rates for 2024-09-30: .* from 2024-10-01"):
        for_fill(exchange="NSE", instrumenttype="EQ", product="CNC", action="BUY", quantity=D(1), price=D(100),
                 on=BEFORE_OCT_2024)
    with pytest.raises(ValueError, match="from 2023-04-01"):
        for_fill(exchange="NFO", instrumenttype="FUT", product="NRML", action="BUY", quantity=D(1), price=D(100),
                 on=dt.date(2023, 3, 31))


def test_an_exchange_without_a_rate_is_refused():
    with pytest.raises(ValueError, match="no BFO transaction charge among the equity_options rates from 2023-04-01"):
        for_fill(exchange="BFO", instrumenttype="CE", product="NRML", action="BUY", quantity=D(1), price=D(100),
                 on=BEFORE_OCT_2024)
    with pytest.raises(ValueError, match="no NCDEX transaction charge"):
        for_fill(exchange="NCDEX", instrumenttype="FUT", product="NRML", action="BUY", quantity=D(1), price=D(100),
                 on=AFTER_OCT_2024)


@pytest.mark.parametrize(("action", "qty", "price"), [("HOLD", "1", "100"), ("BUY", "0", "100"), ("SELL", "1", "-1")])
def test_nonsense_orders_are_refused(action, qty, price):
    with pytest.raises(ValueError):  # noqa: PT011 - the message varies with the nonsense
        for_fill(exchange="NSE", instrumenttype="EQ", product="MIS", action=action, quantity=D(qty),
                 price=D(price), on=AFTER_OCT_2024)


# -- the rates file ----------------------------------------------------------------------------------
def test_every_entry_of_every_segment_is_dated_sourced_and_in_order():
    with open(charges.RATES_PATH, "rb") as fh:
        data = tomllib.load(fh)
    assert set(data) == set(charges.SEGMENTS)
    for segment, entries in data.items():
        assert entries, segment
        dates = [e["from"] for e in entries]
        assert all(type(d) is dt.date for d in dates), segment
        assert dates == sorted(set(dates)), f"{segment}: entries out of date order or repeated"
        for e in entries:
            assert isinstance(e.get("source"), str), (segment, e["from"])
            assert len(e["source"].split()) >= 5, (segment, e["from"])  # names a source, not a placeholder


def _minimal_rates(**override: str) -> str:
    """A valid rates text: one entry per segment (`override` replaces a segment's entries)."""
    exchanges = {"equity_delivery": "NSE", "equity_intraday": "NSE", "equity_futures": "NFO",
                 "equity_options": "NFO", "currency_futures": "CDS", "currency_options": "CDS",
                 "commodity_futures": "MCX", "commodity_options": "MCX"}
    entry = ('[[{seg}]]\nfrom = 2024-10-01\nstt_buy = 0\nstt_sell = 0.1\nstamp_buy = 0.003\nsebi = 0.0001\n'
             'gst = 18\nexchange = {{ {ex} = 0.001 }}\nsource = "an exchange circular of 2024-09-27"\n')
    return "\n".join(override.get(seg, entry.format(seg=seg, ex=ex)) for seg, ex in exchanges.items())


def test_the_loader_refuses_unsorted_unsourced_or_misspelt_entries():
    assert charges.load_rates(charges.RATES_PATH.read_text(encoding="utf-8")) == charges.RATES
    good = charges.load_rates(_minimal_rates())
    assert good["currency_options"][0].exchange == {"CDS": D("0.00001")}  # 0.001 % as a fraction
    base = _minimal_rates().split("[[equity_futures]]")[1].split("\n\n")[0]
    later, earlier = "[[equity_futures]]" + base, "[[equity_futures]]" + base.replace("2024-10-01", "2023-04-01")
    assert [r.effective for r in charges.load_rates(_minimal_rates(equity_futures=earlier + "\n" + later))[
        "equity_futures"]] == [dt.date(2023, 4, 1), dt.date(2024, 10, 1)]
    with pytest.raises(ValueError, match="increasing date order"):
        charges.load_rates(_minimal_rates(equity_futures=later + "\n" + earlier))
    with pytest.raises(ValueError, match="increasing date order"):
        charges.load_rates(_minimal_rates(equity_futures=later + "\n" + later))
    with pytest.raises(ValueError, match="source names no published source"):
        charges.load_rates(_minimal_rates().replace('"an exchange circular of 2024-09-27"', '"  "', 1))
    with pytest.raises(ValueError, match=r"missing \['source'\]"):
        charges.load_rates(_minimal_rates().replace('source = "an exchange circular of 2024-09-27"', "", 1))
    with pytest.raises(ValueError, match=r"unknown \['stt_sel'\]"):
        charges.load_rates(_minimal_rates().replace("stt_sell = 0.1", "stt_sell = 0.1\nstt_sel = 0.1", 1))
    with pytest.raises(ValueError, match=r"exchanges \['NSE'\] do not trade commodity_futures"):
        charges.load_rates(_minimal_rates(commodity_futures=_minimal_rates().split("\n\n")[6].replace(
            "{ MCX = 0.001 }", "{ MCX = 0.001, NSE = 0.001 }")))
    with pytest.raises(ValueError, match=r"no \[\[commodity_options\]\] entry"):
        charges.load_rates(_minimal_rates(commodity_options=""))
    with pytest.raises(ValueError, match="not a percentage"):
        charges.load_rates(_minimal_rates().replace("gst = 18", "gst = 180", 1))
