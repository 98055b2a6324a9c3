"""The analyze-mode market: one walk per underlying, futures on its forward, options by Black-76 on it, quotes
with bid < ltp < ask and five levels of depth, all deterministic."""

from __future__ import annotations

import datetime as dt
import math
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.market import black76, quotes, sample_contract, symbol_index

IST = ZoneInfo("Asia/Kolkata")
DAY = dt.date(2024, 3, 20)  # a Wednesday; NIFTY's weekly expires on Thursday the 21st, its month on the 28th


def at(day: dt.date, hour: int, minute: int = 0) -> float:
    return dt.datetime.combine(day, dt.time(hour, minute), IST).timestamp()


def info(symbol, exchange="NSE", itype="EQ", name=None, expiry=None, strike=None, tick="0.05", lot=1):
    return symbol_index.SymbolInfo(symbol, symbol, name, exchange, exchange, "1", expiry, strike, lot, itype,
                                   Decimal(tick))


def option(name, expiry, strike, kind, exchange="NFO", lot=25, tick="0.05"):
    return info(f"{name}{expiry:%d%b%y}{strike}{kind}".upper(), exchange, kind, name, expiry, Decimal(str(strike)),
                tick, lot)


def future(name, expiry, exchange="NFO", lot=25, tick="0.05"):
    return info(f"{name}{expiry:%d%b%y}FUT".upper(), exchange, "FUT", name, expiry, None, tick, lot)


def check_depth(depth: quotes.Depth, inst: symbol_index.SymbolInfo) -> None:
    q, tick = depth.quote, inst.tick_size
    assert Decimal(0) < q.bid < q.ltp < q.ask
    assert q.low <= q.ltp <= q.high
    assert q.low <= q.open <= q.high
    for side in (depth.bids, depth.asks):
        assert len(side) == 5
        for level in side:
            assert level.price % tick == 0
            assert level.quantity > 0
            assert 1 <= level.orders <= level.quantity
            if inst.instrumenttype in ("FUT", "CE", "PE"):
                assert level.quantity % inst.lotsize == 0  # whole lots
    assert depth.bids[0].price == q.bid
    assert depth.asks[0].price == q.ask
    assert all(a.price - b.price >= tick for a, b in zip(depth.bids, depth.bids[1:], strict=False))
    assert all(b.price - a.price >= tick for a, b in zip(depth.asks, depth.asks[1:], strict=False))
    assert depth.bids[-1].price > 0
    assert depth.total_buy_qty == sum(level.quantity for level in depth.bids)
    assert depth.total_sell_qty == sum(level.quantity for level in depth.asks)
    assert depth.ltq > 0


def test_quotes_and_depth_are_deterministic():
    inst = option("NIFTY", dt.date(2024, 3, 28), 22000, "CE")
    a, b = quotes.PriceSimulator(seed=3), quotes.PriceSimulator(seed=3)
    t = at(DAY, 11)
    assert a.quote(inst, at=t) == b.quote(inst, at=t)
    assert a.depth(inst, at=t) == b.depth(inst, at=t)
    assert quotes.PriceSimulator(seed=4).quote(inst, at=t).ltp != a.quote(inst, at=t).ltp
    later = a.quote(inst, at=t + 3600)
    assert later.ltp != a.quote(inst, at=t).ltp
    assert (later.open, later.prev_close) == (a.quote(inst, at=t).open, a.quote(inst, at=t).prev_close)


UNDERLYINGS = ["NIFTY", "BANKNIFTY", "SENSEX", "RELIANCE", "IDEA", "TATASTEEL", "CRUDEOIL", "USDINR", "UNLISTEDCO"]


@settings(max_examples=300, deadline=None)
@given(name=st.sampled_from(UNDERLYINGS), kind=st.sampled_from(["EQ", "INDEX", "FUT", "CE", "PE"]),
       tick=st.sampled_from(["0.05", "0.0025", "0.01", "0.1", "1"]), moneyness=st.floats(-0.6, 0.6),
       days=st.integers(-3, 120), minutes=st.integers(-600, 1440 * 9), lot=st.sampled_from([1, 25, 1250]))
def test_every_quote_has_bid_below_last_below_ask_and_five_ordered_levels(name, kind, tick, moneyness, days,
                                                                         minutes, lot):
    sim = quotes.PriceSimulator()
    now = at(DAY, 9, 15) + minutes * 60  # nights and a weekend included
    expiry = DAY + dt.timedelta(days=days)
    if kind in ("CE", "PE"):
        spot = float(quotes.base_price(name) or quotes.fallback_price(name))
        strike = Decimal(str(round(spot * math.exp(moneyness), 2)))
        inst = info("X", "NFO", kind, name, expiry, strike, tick, lot)
    elif kind == "FUT":
        inst = info("X", "NFO", kind, name, expiry, None, tick, lot)
    else:
        inst = info(name, "NSE", kind, None, None, None, tick)
    check_depth(sim.depth(inst, at=now), inst)


def test_a_day_stays_within_the_band_of_its_open():
    sim = quotes.PriceSimulator()
    for key in ("NIFTY", "SENSEX", "ADANIENT", "IDEA"):
        base = quotes.base_price(key)
        for d in range(60):
            day = DAY + dt.timedelta(days=d)
            _, o, high, low, _, _ = sim.spot(key, base, at=at(day, 15, 30))  # the day's extremes at its close
            assert math.log(high / o) <= sample_contract.DAY_BAND + 1e-12
            assert math.log(o / low) <= sample_contract.DAY_BAND + 1e-12
            assert o == pytest.approx(sim.session_open(key, day))


def test_a_future_is_its_underlying_carried_to_expiry():
    sim = quotes.PriceSimulator()
    expiry, t = dt.date(2024, 3, 28), at(DAY, 11)
    spot = sim.quote(info("NIFTY", "NSE_INDEX", "INDEX"), at=t).ltp
    fut = sim.quote(future("NIFTY", expiry), at=t)
    forward = sim.forward("NIFTY", "NFO", expiry, at=t)
    years = black76.years_to_expiry(dt.datetime.fromtimestamp(t, IST), "NFO", expiry)
    assert forward == pytest.approx(float(spot) * (1 + quotes.CARRY * years), abs=0.05)
    assert abs(fut.ltp - Decimal(str(forward))) <= Decimal("0.025")
    assert spot < fut.ltp < spot * Decimal("1.01")
    # past its cut-off a future is its underlying
    after = at(expiry, 16)
    assert sim.forward("NIFTY", "NFO", expiry, at=after) == pytest.approx(float(sim.spot(
        "NIFTY", quotes.base_price("NIFTY"), at=after)[0]))


def chain(sim, name, expiry, t, step, exchange="NFO"):
    """(strike, call quote, put quote) for 41 strikes around the forward."""
    forward = sim.forward(name, exchange, expiry, at=t)
    mid = round(forward / step)
    out = []
    for i in range(-20, 21):
        k = (mid + i) * step
        out.append((k, sim.quote(option(name, expiry, k, "CE", exchange), at=t),
                    sim.quote(option(name, expiry, k, "PE", exchange), at=t)))
    return forward, out


@pytest.mark.parametrize(("name", "expiry", "step", "exchange"), [
    ("NIFTY", dt.date(2024, 3, 21), 50, "NFO"),  # tomorrow's weekly
    ("NIFTY", dt.date(2024, 4, 25), 50, "NFO"),
    ("SENSEX", dt.date(2024, 3, 26), 100, "BFO"),
    ("RELIANCE", dt.date(2024, 3, 28), 50, "NFO"),
])
def test_put_call_parity_holds_on_a_whole_chain(name, expiry, step, exchange):
    sim = quotes.PriceSimulator()
    tick = Decimal("0.05")
    for t in (at(DAY, 9, 15), at(DAY, 12, 30), at(DAY, 15, 30)):
        forward, strikes = chain(sim, name, expiry, t, step, exchange)
        for k, call, put in strikes:
            assert abs(float(call.ltp - put.ltp) - (forward - k)) <= float(tick) + 1e-9, (k, call.ltp, put.ltp)
        # the synthetic future (ATM strike + CE - PE) is the future, within rounding
        k, call, put = strikes[20]
        assert abs(k + call.ltp - put.ltp - Decimal(str(forward))) <= tick
        calls = [c.ltp for _, c, _ in strikes]
        puts = [p.ltp for _, _, p in strikes]
        assert calls == sorted(calls, reverse=True)
        assert puts == sorted(puts)


def test_the_greeks_endpoint_recovers_the_simulators_volatility():
    # As optiongreeks does it: Black-76 at rate 0 on the chain's synthetic future, T to the cut-off.
    sim = quotes.PriceSimulator()
    for name, expiry, step in (("NIFTY", dt.date(2024, 3, 28), 50), ("INFY", dt.date(2024, 4, 25), 20),
                               ("BANKNIFTY", dt.date(2024, 4, 24), 100)):
        t = at(DAY, 13, 7)
        forward, strikes = chain(sim, name, expiry, t, step)
        atm, call, put = strikes[20]
        synthetic = atm + float(call.ltp - put.ltp)
        years = black76.years_to_expiry(dt.datetime.fromtimestamp(t, IST), "NFO", expiry)
        for k, call, put in strikes[10:31]:
            for kind, q in (("CE", call), ("PE", put)):
                iv = black76.implied_vol(kind, float(q.ltp), synthetic, k, years)
                assert iv == pytest.approx(quotes.volatility(name, k, forward), abs=1e-3), (name, k, kind)


def test_the_smile_is_per_underlying_and_gentle():
    assert 0.13 <= quotes.volatility("NIFTY", 22000, 22000) <= 0.16
    assert 0.13 <= quotes.volatility("SENSEX", 73000, 73000) <= 0.16
    assert 0.25 <= quotes.volatility("RELIANCE", 2900, 2900) <= 0.35
    atm = quotes.volatility("NIFTY", 22000, 22000)
    low, high = quotes.volatility("NIFTY", 20000, 22000), quotes.volatility("NIFTY", 24000, 22000)
    assert low > atm  # the equity skew
    assert low + high > 2 * atm  # convex
    assert high / atm < 1.05  # gentle
    assert quotes.volatility("NIFTY", 22000, 22000) != quotes.volatility("BANKNIFTY", 48000, 48000)


def test_an_expired_option_is_worth_its_intrinsic_value_and_the_floor():
    sim = quotes.PriceSimulator()
    expiry = DAY
    t = at(DAY, 15, 45)  # after the 15:30 cut-off
    spot = sim.forward("NIFTY", "NFO", expiry, at=t)
    k = round(spot / 50) * 50 - 200
    floor = quotes.MIN_TICKS * Decimal("0.05")
    call = sim.quote(option("NIFTY", expiry, k, "CE"), at=t)
    put = sim.quote(option("NIFTY", expiry, k, "PE"), at=t)
    assert put.ltp == floor  # out of the money: nothing but the floor
    # in the money: the intrinsic value and the same lift, so that parity still holds
    assert abs(call.ltp - (Decimal(str(spot)) - k + floor)) <= Decimal("0.025")
    # no time value left, so the quote does not move until the next day
    assert sim.quote(option("NIFTY", expiry, k, "PE"), at=t + 1800).ltp == floor


def test_get_depth_answers_from_the_simulator(app):
    from services.market import master_contract as mc

    mc.import_rows(sample_contract.generate(800, today=DAY))
    depth = quotes.get_depth("INFY", "nse")
    inst = symbol_index.get_symbol_info("INFY", "NSE")
    check_depth(depth, inst)
    with pytest.raises(quotes.UnknownSymbolError, match="Symbol NOPE not found in exchange NSE"):
        quotes.get_depth("NOPE", "NSE")
