"""Black-76 against published worked examples, its greeks against finite differences of its own price
function, and the implied volatility against the price it came from."""

from __future__ import annotations

import datetime as dt
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.market import black76 as b


def test_published_examples():
    # Haug, The Complete Guide to Option Pricing Formulas (2nd ed.), Black-76: F = X = 19, T = 0.75, r = 10 %,
    # sigma = 28 %: call = put = 1.7011.
    assert b.price("CE", 19, 19, 0.75, 0.28, 0.10) == pytest.approx(1.7011, abs=1e-4)
    assert b.price("PE", 19, 19, 0.75, 0.28, 0.10) == pytest.approx(1.7011, abs=1e-4)
    # Hull, Options, Futures and Other Derivatives, the crude-oil futures put: F = K = 20, r = 9 %, T = 4 months,
    # sigma = 25 %: 1.12 (to the cent the book gives).
    assert b.price("PE", 20, 20, 4 / 12, 0.25, 0.09) == pytest.approx(1.12, abs=0.005)


def _fd(f, x: float, h: float) -> float:
    return (f(x + h) - f(x - h)) / (2 * h)


CASES = [("CE", 22000, 22000, 7 / 365, 0.14, 0.0), ("PE", 22000, 21500, 30 / 365, 0.16, 0.065),
         ("CE", 1500, 1700, 60 / 365, 0.32, 0.07), ("PE", 83.4, 84.0, 20 / 365, 0.05, 0.0),
         ("CE", 6800, 6500, 2 / 365, 0.35, 0.0)]


@pytest.mark.parametrize(("kind", "f", "k", "t", "s", "r"), CASES)
def test_greeks_are_the_derivatives_of_the_price(kind, f, k, t, s, r):
    g = b.greeks(kind, f, k, t, s, r)

    def p(**over):
        args = {"forward": f, "strike": k, "years": t, "sigma": s, "rate": r} | over
        return b.price(kind, **args)

    h = f * 1e-4
    assert g.delta == pytest.approx(_fd(lambda x: p(forward=x), f, h), abs=1e-4)
    assert g.gamma == pytest.approx((p(forward=f + h) - 2 * p() + p(forward=f - h)) / h ** 2, abs=1e-4)
    assert g.vega == pytest.approx(_fd(lambda x: p(sigma=x), s, 1e-5) / 100, abs=1e-4)
    assert g.rho == pytest.approx(_fd(lambda x: p(rate=x), r, 1e-5) / 100, abs=1e-4)
    # Theta: the price's change as a calendar day passes (time to expiry shrinking).
    assert g.theta == pytest.approx(-_fd(lambda x: p(years=x), t, 1e-6) / 365, abs=1e-4)


def test_put_call_parity():
    for f, k, t, s, r in [(22000, 21000, 0.05, 0.15, 0.06), (100, 130, 1.0, 0.4, 0.0)]:
        c, p = b.price("CE", f, k, t, s, r), b.price("PE", f, k, t, s, r)
        assert c - p == pytest.approx(math.exp(-r * t) * (f - k), abs=1e-9)


@settings(max_examples=300, deadline=None)
@given(kind=st.sampled_from(["CE", "PE"]), moneyness=st.floats(0.7, 1.3), days=st.floats(0.5, 400),
       sigma=st.floats(0.03, 1.5), rate=st.floats(0, 0.12))
def test_implied_vol_recovers_the_sigma_of_a_price(kind, moneyness, days, sigma, rate):
    f, t = 1000.0, days / 365
    k = f * moneyness
    value = b.price(kind, f, k, t, sigma, rate)
    if value - b.intrinsic(kind, f, k, t, rate) < 1e-7 * f:
        return  # no time value left to read a volatility from (at double precision)
    assert b.implied_vol(kind, value, f, k, t, rate) == pytest.approx(sigma, rel=1e-4)


def test_no_time_value_no_volatility():
    assert b.implied_vol("CE", 100.0, 22100, 22000, 0.02) is None  # exactly intrinsic
    assert b.implied_vol("CE", 50.0, 22100, 22000, 0.02) is None  # below intrinsic
    assert b.implied_vol("PE", 30000.0, 22100, 22000, 0.02) is None  # above the strike
    assert b.implied_vol("CE", 10.0, 22100, 22000, 0.0) is None  # expired
    g = b.greeks("PE", 21000, 22000, 0.0, 0.2)
    assert (g.delta, g.gamma, g.theta, g.vega, g.rho) == (-1.0, 0.0, 0.0, 0.0, 0.0)
    assert b.price("CE", 22100, 22000, 0.0, 0.2) == pytest.approx(100.0)
    with pytest.raises(ValueError, match="CE or PE"):
        b.price("XX", 1, 1, 1, 1)


def test_years_to_the_exchange_cutoff():
    expiry = dt.date(2026, 12, 10)
    now = dt.datetime(2026, 12, 9, 15, 30, tzinfo=b.IST)
    assert b.years_to_expiry(now, "NFO", expiry) == pytest.approx(1 / 365)
    assert b.years_to_expiry(now, "MCX", expiry) == pytest.approx(32 / 24 / 365)
    assert b.years_to_expiry(now, "CDS", expiry) == pytest.approx(21 / 24 / 365)
    assert b.years_to_expiry(now, "NFO", expiry, dt.time(9, 30)) == pytest.approx(18 / 24 / 365)
    assert b.years_to_expiry(now + dt.timedelta(days=2), "NFO", expiry) == 0.0
    utc = now.astimezone(dt.UTC)  # the same moment in another zone
    assert b.years_to_expiry(utc, "NFO", expiry) == pytest.approx(1 / 365)
