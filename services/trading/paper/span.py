"""The analyze-mode margin of a basket: an approximation of the exchanges' SPAN, in pure arithmetic.

What the exchange does (NSCCL/ICCL/MCXCCL, SPAN by CME): every derivative position of one underlying is
revalued under sixteen scenarios — the underlying up and down by 1/3, 2/3 and 3/3 of its price scan range
(PSR), each with volatility up and down by the volatility scan range (VSR), plus two extreme moves of twice
the PSR of which 35 % counts — and the worst loss of the group is its SPAN margin, no less than a minimum
charge per short option. An exposure margin (a flat percentage of the notional) comes on top for futures and
short options; a bought option costs its premium. Hedged legs offset inside a group, which is the basket's
margin benefit.

What this module does: exactly that scenario walk, with Black-76 (services.market.black76) revaluing the
options at the implied volatility read from their own price, and with flat parameters per kind of underlying
(below) in place of the clearing corporations' daily risk parameter files, which are not available offline.
Cash equities take their value (CNC) or their value over the intraday leverage (MIS), as the analyze-mode
account blocks. The results are the right size and move the right way (hedges reduce them, deep OTM shorts
cost the minimum); they are not the exchange's figures to the rupee.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal

from services.market import black76

# (price scan range, short option minimum, exposure) as fractions of the underlying's notional, by kind of
# underlying: index derivatives, stock derivatives, commodities, currencies. Set near the exchanges' typical
# figures for 2024-2026 (NSE index futures ~ 9 % SPAN + 2 % exposure; stocks ~ 15 % + 3.5 %).
PARAMETERS = {"index": (0.09, 0.03, 0.02), "stock": (0.15, 0.05, 0.035), "commodity": (0.08, 0.03, 0.01),
              "currency": (0.03, 0.01, 0.01)}
VOL_SCAN = 0.04  # volatility points (absolute) of the VSR
EXTREME_MOVE, EXTREME_WEIGHT = 2.0, 0.35
DEFAULT_VOL = 0.20  # when a leg's own price gives no implied volatility (no time value left)
_MOVES = ((0.0, 1.0), (1 / 3, 1.0), (-1 / 3, 1.0), (2 / 3, 1.0), (-2 / 3, 1.0), (1.0, 1.0), (-1.0, 1.0))


@dataclass(frozen=True, slots=True)
class Leg:
    """One position of the basket. `quantity` is signed (+ bought, - sold); prices per unit."""

    group: str  # the underlying (and kind) it is margined with, e.g. "NIFTY"
    kind: str  # "index" | "stock" | "commodity" | "currency" | "equity"
    instrument: str  # "EQ" | "FUT" | "CE" | "PE"
    quantity: int
    price: float  # the leg's own price (the order's limit price, else its last price)
    underlying: float  # the underlying's price (for a future: its own price)
    strike: float = 0.0
    expiry: dt.date | None = None
    exchange: str = "NFO"
    product: str = "NRML"
    leverage: float = 1.0  # cash equities: the product's leverage (MIS 5 => a fifth of the value)


@dataclass(frozen=True, slots=True)
class Margin:
    total: Decimal
    span: Decimal
    exposure: Decimal
    premium: Decimal  # bought options' premium (and cash equities' blocked value), inside `total`
    benefit: Decimal  # the sum of the legs margined alone, less the basket's total (>= 0)


def _money(x: float) -> Decimal:
    return Decimal(str(round(x, 2)))


def _value(leg: Leg, move: float, vol_shift: float, now: dt.datetime, sigma: float) -> float:
    """The leg's value per unit after the underlying moves by `move` (a fraction) and vol by `vol_shift`."""
    forward = leg.underlying * (1 + move)
    if leg.instrument == "FUT":
        return forward
    years = black76.years_to_expiry(now, leg.exchange, leg.expiry) if leg.expiry else 0.0
    return black76.price(leg.instrument, forward, leg.strike, years, max(sigma + vol_shift, 1e-4))


def _sigma(leg: Leg, now: dt.datetime) -> float:
    if leg.instrument not in ("CE", "PE") or not leg.expiry:
        return DEFAULT_VOL
    years = black76.years_to_expiry(now, leg.exchange, leg.expiry)
    found = black76.implied_vol(leg.instrument, leg.price, leg.underlying, leg.strike, years)
    return found if found is not None else DEFAULT_VOL


def _group_span(legs: list[Leg], now: dt.datetime) -> tuple[float, float]:
    """(SPAN, exposure) of the derivative legs of one underlying."""
    scan, short_min, exposure_rate = PARAMETERS.get(legs[0].kind, PARAMETERS["stock"])
    sigmas = [_sigma(leg, now) for leg in legs]
    base = [_value(leg, 0.0, 0.0, now, s) for leg, s in zip(legs, sigmas, strict=True)]
    worst = 0.0
    scenarios = [(m * scan, v * VOL_SCAN, 1.0) for m, _ in _MOVES for v in (1, -1)]
    scenarios += [(EXTREME_MOVE * scan, 0.0, EXTREME_WEIGHT), (-EXTREME_MOVE * scan, 0.0, EXTREME_WEIGHT)]
    for move, vol_shift, weight in scenarios:
        loss = sum((b - _value(leg, move, vol_shift, now, s)) * leg.quantity
                   for leg, s, b in zip(legs, sigmas, base, strict=True))
        worst = max(worst, loss * weight)
    # The bought options' value is paid as premium (counted apart): a group's risk beyond it is its SPAN.
    long_value = sum(b * leg.quantity for leg, b in zip(legs, base, strict=True)
                     if leg.instrument in ("CE", "PE") and leg.quantity > 0)
    # The short option minimum charge counts the options sold net of those bought in the group (a spread's
    # bought leg covers its sold one).
    net_short = -sum(leg.quantity for leg in legs if leg.instrument in ("CE", "PE"))
    minimum = max(net_short, 0) * legs[0].underlying * short_min
    exposed = sum(abs(leg.quantity) * leg.underlying for leg in legs
                  if leg.instrument == "FUT" or (leg.instrument in ("CE", "PE") and leg.quantity < 0))
    return max(worst - long_value, minimum, 0.0), exposed * exposure_rate


def margin(legs: Iterable[Leg], now: dt.datetime, *, alone: bool = True) -> Margin:
    """The basket's margin. Legs of one group offset each other; groups add up."""
    legs = list(legs)
    span = exposure = premium = 0.0
    groups: dict[str, list[Leg]] = {}
    for leg in legs:
        if leg.instrument == "EQ":
            if leg.quantity > 0 or leg.product != "CNC":  # selling CNC holdings blocks nothing
                premium += abs(leg.quantity) * leg.price / (leg.leverage if leg.product == "MIS" else 1.0)
            continue
        if leg.instrument in ("CE", "PE") and leg.quantity > 0:
            premium += leg.quantity * leg.price
        groups.setdefault(leg.group, []).append(leg)
    for group in groups.values():
        s, e = _group_span(group, now)
        span += s
        exposure += e
    total = span + exposure + premium
    benefit = 0.0
    if alone and len(legs) > 1:
        separate = sum(float(margin([leg], now, alone=False).total) for leg in legs)
        benefit = max(separate - total, 0.0)
    return Margin(total=_money(total), span=_money(span), exposure=_money(exposure), premium=_money(premium),
                  benefit=_money(benefit))
