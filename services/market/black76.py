"""Black-76: the price, greeks and implied volatility of an option on a forward, and the time to an expiry.

Pure arithmetic (no database, no Flask), shared by the analyze-mode simulator (which prices options from
the simulated underlying), the option chain and the greeks endpoints, so that what the simulator quotes is
what the greeks endpoint reads back.

Conventions (those of docs/api.md): `sigma` and `rate` are fractions here (the API speaks percent); theta is
per calendar day, vega per volatility point (0.01 of sigma), rho per 1 % of rate; time is calendar time in
years of 365 days to the exchange's cut-off on the expiry date.

The implied volatility is solved here rather than with a library: the ones that do it (py_vollib, scipy)
weigh more than the thirty lines below, and Black-76's price is monotone in sigma, so a Newton step kept
inside a shrinking bracket converges in a handful of iterations for every price that has one.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from vocabulary import DEFAULT_EXCHANGE_TIMEZONE

IST = ZoneInfo(DEFAULT_EXCHANGE_TIMEZONE)
YEAR_SECONDS = 365 * 86_400
SIGMA_MIN, SIGMA_MAX = 1e-6, 10.0  # 0.0001 % to 1,000 %: the bracket the solver searches
# The exchanges' expiry cut-offs (IST): equity derivatives at the close, currency options at 12:30, commodity
# options late in the evening session.
_CUTOFFS = {"NFO": dt.time(15, 30), "BFO": dt.time(15, 30), "CDS": dt.time(12, 30), "BCD": dt.time(12, 30),
            "MCX": dt.time(23, 30), "NCDEX": dt.time(23, 30)}


@dataclass(frozen=True, slots=True)
class Greeks:
    delta: float
    gamma: float
    theta: float  # per calendar day
    vega: float  # per volatility point
    rho: float  # per 1 % of rate


def _cdf(x: float) -> float:
    return 0.5 * (1.0 + math.erf(x / math.sqrt(2.0)))


def _pdf(x: float) -> float:
    return math.exp(-0.5 * x * x) / math.sqrt(2.0 * math.pi)


def _is_call(option_type: str) -> bool:
    kind = option_type.upper()
    if kind not in ("CE", "PE", "C", "P", "CALL", "PUT"):
        raise ValueError(f"option_type must be CE or PE, not {option_type!r}")
    return kind in ("CE", "C", "CALL")


def intrinsic(option_type: str, forward: float, strike: float, years: float = 0.0, rate: float = 0.0) -> float:
    """The discounted intrinsic value: the price with no time value left."""
    value = forward - strike if _is_call(option_type) else strike - forward
    return max(value, 0.0) * math.exp(-rate * years)


def _d1_d2(forward: float, strike: float, years: float, sigma: float) -> tuple[float, float]:
    sd = sigma * math.sqrt(years)
    d1 = (math.log(forward / strike) + 0.5 * sd * sd) / sd
    return d1, d1 - sd


def price(option_type: str, forward: float, strike: float, years: float, sigma: float, rate: float = 0.0) -> float:
    """The option's price; its intrinsic value when there is no time or no volatility left."""
    call = _is_call(option_type)
    if years <= 0 or sigma <= 0 or forward <= 0 or strike <= 0:
        return intrinsic(option_type, forward, strike, max(years, 0.0), rate)
    d1, d2 = _d1_d2(forward, strike, years, sigma)
    disc = math.exp(-rate * years)
    if call:
        return disc * (forward * _cdf(d1) - strike * _cdf(d2))
    return disc * (strike * _cdf(-d2) - forward * _cdf(-d1))


def greeks(option_type: str, forward: float, strike: float, years: float, sigma: float,
           rate: float = 0.0) -> Greeks:
    """Delta and gamma with respect to the forward; theta, vega and rho in the units above. With no time or
    no volatility left: delta +-1 in the money (0 out of it), the rest 0."""
    call = _is_call(option_type)
    if years <= 0 or sigma <= 0 or forward <= 0 or strike <= 0:
        itm = forward > strike if call else strike > forward
        return Greeks(delta=(1.0 if call else -1.0) if itm else 0.0, gamma=0.0, theta=0.0, vega=0.0, rho=0.0)
    d1, d2 = _d1_d2(forward, strike, years, sigma)
    disc = math.exp(-rate * years)
    root = math.sqrt(years)
    value = price(option_type, forward, strike, years, sigma, rate)
    density = _pdf(d1)
    delta = disc * _cdf(d1) if call else -disc * _cdf(-d1)
    gamma = disc * density / (forward * sigma * root)
    # V = e^(-rT) B(T): -dV/dT = r V - e^(-rT) F n(d1) sigma / (2 sqrt T), per year; the same for calls and puts.
    theta_year = rate * value - disc * forward * density * sigma / (2.0 * root)
    vega = disc * forward * density * root
    rho = -years * value  # dV/dr
    return Greeks(delta=delta, gamma=gamma, theta=theta_year / 365.0, vega=vega / 100.0, rho=rho / 100.0)


def implied_vol(option_type: str, option_price: float, forward: float, strike: float, years: float,
                rate: float = 0.0) -> float | None:
    """The sigma at which `price` gives `option_price`; None when no sigma does (no time left, a price at or
    below the discounted intrinsic value, or above the most an option can be worth)."""
    call = _is_call(option_type)
    if years <= 0 or forward <= 0 or strike <= 0 or not math.isfinite(option_price):
        return None
    disc = math.exp(-rate * years)
    floor = intrinsic(option_type, forward, strike, years, rate)
    ceiling = disc * (forward if call else strike)
    if option_price <= floor + 1e-12 or option_price >= ceiling:
        return None
    lo, hi = SIGMA_MIN, SIGMA_MAX
    if price(option_type, forward, strike, years, hi, rate) < option_price:
        return None
    sigma = 0.3
    for _ in range(100):
        diff = price(option_type, forward, strike, years, sigma, rate) - option_price
        if abs(diff) < 1e-10 * max(1.0, option_price):
            return sigma
        if diff > 0:
            hi = sigma
        else:
            lo = sigma
        d1, _ = _d1_d2(forward, strike, years, sigma)
        vega = disc * forward * _pdf(d1) * math.sqrt(years)
        step = sigma - diff / vega if vega > 0 else None
        # Newton while it stays inside the bracket, bisection otherwise: never diverges, usually quadratic.
        sigma = step if step is not None and lo < step < hi else 0.5 * (lo + hi)
        if hi - lo < 1e-12:
            break
    return sigma


def cutoff(exchange: str, expiry_time: dt.time | None = None) -> dt.time:
    """The time of day (IST) at which a contract of `exchange` expires: `expiry_time` when given."""
    if expiry_time is not None:
        return expiry_time
    return _CUTOFFS.get(exchange.upper(), dt.time(15, 30))


def expiry_moment(exchange: str, expiry: dt.date, expiry_time: dt.time | None = None) -> dt.datetime:
    return dt.datetime.combine(expiry, cutoff(exchange, expiry_time), IST)


def years_to_expiry(now: dt.datetime, exchange: str, expiry: dt.date, expiry_time: dt.time | None = None) -> float:
    """Calendar time from `now` (aware) to the expiry's cut-off, in years of 365 days; 0 once it has passed."""
    seconds = (expiry_moment(exchange, expiry, expiry_time) - now).total_seconds()
    return max(seconds, 0.0) / YEAR_SECONDS
