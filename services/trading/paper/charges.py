"""What one executed analyze-mode order costs, as an Indian discount broker's contract note shows it:
brokerage, STT/CTT, exchange transaction charges, the SEBI turnover fee, stamp duty and GST.

Pure code on Decimals: no database, no clock, no Flask. The statutory and exchange rates are dated data
in `charge_rates.toml` (read once, at import): a rate change is a new dated entry there, never a code
change, and a fill is charged at the rates in force on its trading day. The brokerage is the broker's
plan (`Plan`, from the ANALYZE_* settings through `plan_from`):

- delivery equity (CNC): `Plan.delivery` per order (default 0);
- options (equity, currency, commodity): `Plan.per_order` per order, flat (default Rs 20);
- everything else (intraday equity, futures): `Plan.per_order`, or `Plan.percent_cap` % of the turnover
  when that is lower (default Rs 20 or 0.03 %); a cap of 0 leaves the flat fee.

Turnover is quantity x price (for options quantity x premium; F&O quantities are already lots x lot
size). Each component is rounded to the paisa (ROUND_HALF_UP) per order; GST is 18 % of the rounded
brokerage + exchange charges + SEBI fee, so the components shown add up. Stamp duty is on the buyer only;
STT on both sides of a delivery trade and on the sell side otherwise (CTT for commodities, in `stt`).
"""

from __future__ import annotations

import datetime as dt
import tomllib
from bisect import bisect_right
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from pathlib import Path
from types import MappingProxyType
from typing import Any

from vocabulary import INDEX_EXCHANGES, Action, Exchange, Product

__all__ = [
    "DEFAULT_PLAN",
    "RATES",
    "SEGMENTS",
    "ZERO",
    "Charges",
    "Plan",
    "RateSet",
    "for_fill",
    "load_rates",
    "plan_from",
    "rates_on",
    "segment_of",
]

RATES_PATH = Path(__file__).with_name("charge_rates.toml")
PAISA = Decimal("0.01")
_NIL = Decimal("0.00")
_HUNDRED = Decimal(100)

# Segments, and the exchanges whose orders fall in each family of them.
EQUITY_DELIVERY = "equity_delivery"
EQUITY_INTRADAY = "equity_intraday"
EQUITY_FUTURES = "equity_futures"
EQUITY_OPTIONS = "equity_options"
CURRENCY_FUTURES = "currency_futures"
CURRENCY_OPTIONS = "currency_options"
COMMODITY_FUTURES = "commodity_futures"
COMMODITY_OPTIONS = "commodity_options"
SEGMENTS: tuple[str, ...] = (EQUITY_DELIVERY, EQUITY_INTRADAY, EQUITY_FUTURES, EQUITY_OPTIONS,
                             CURRENCY_FUTURES, CURRENCY_OPTIONS, COMMODITY_FUTURES, COMMODITY_OPTIONS)
OPTION_SEGMENTS = frozenset({EQUITY_OPTIONS, CURRENCY_OPTIONS, COMMODITY_OPTIONS})

_CASH = frozenset({Exchange.NSE, Exchange.BSE})
# Derivative exchange -> (futures segment, options segment).
_DERIVATIVES: dict[str, tuple[str, str]] = {
    Exchange.NFO: (EQUITY_FUTURES, EQUITY_OPTIONS),
    Exchange.BFO: (EQUITY_FUTURES, EQUITY_OPTIONS),
    Exchange.CDS: (CURRENCY_FUTURES, CURRENCY_OPTIONS),
    Exchange.BCD: (CURRENCY_FUTURES, CURRENCY_OPTIONS),
    Exchange.MCX: (COMMODITY_FUTURES, COMMODITY_OPTIONS),
    Exchange.NCDEX: (COMMODITY_FUTURES, COMMODITY_OPTIONS),
}
# The exchanges a segment's rate set may name in its `exchange` table.
_SEGMENT_EXCHANGES: dict[str, frozenset[str]] = {
    EQUITY_DELIVERY: _CASH,
    EQUITY_INTRADAY: _CASH,
    **{seg: frozenset(e for e, pair in _DERIVATIVES.items() if seg in pair)
       for seg in SEGMENTS if seg not in (EQUITY_DELIVERY, EQUITY_INTRADAY)},
}


def _q2(value: Decimal) -> Decimal:
    return value.quantize(PAISA, rounding=ROUND_HALF_UP)


# -- results -------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Charges:
    """The charges of one executed order, each in rupees rounded to the paisa."""

    brokerage: Decimal
    stt: Decimal  # STT, or CTT for commodities
    exchange: Decimal  # exchange transaction charges
    sebi: Decimal  # SEBI turnover fee
    stamp: Decimal  # stamp duty
    gst: Decimal  # on brokerage + exchange + sebi

    @property
    def total(self) -> Decimal:
        return self.brokerage + self.stt + self.exchange + self.sebi + self.stamp + self.gst

    def as_dict(self) -> dict[str, str]:
        """Every component and the total as strings with two decimals, for APIs and pages."""
        return {"brokerage": f"{self.brokerage:.2f}", "stt": f"{self.stt:.2f}", "exchange": f"{self.exchange:.2f}",
                "sebi": f"{self.sebi:.2f}", "stamp": f"{self.stamp:.2f}", "gst": f"{self.gst:.2f}",
                "total": f"{self.total:.2f}"}


ZERO = Charges(_NIL, _NIL, _NIL, _NIL, _NIL, _NIL)


# -- the brokerage plan ----------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Plan:
    per_order: Decimal  # rupees per executed intraday, futures or options order
    percent_cap: Decimal  # percent of turnover when lower than per_order (not options); 0: no cap
    delivery: Decimal  # rupees per executed delivery (CNC) order
    enabled: bool  # False: no charges at all


DEFAULT_PLAN = Plan(per_order=Decimal(20), percent_cap=Decimal("0.03"), delivery=Decimal(0), enabled=True)

_PLAN_SETTINGS = {"per_order": "ANALYZE_BROKERAGE_PER_ORDER", "percent_cap": "ANALYZE_BROKERAGE_PERCENT",
                  "delivery": "ANALYZE_BROKERAGE_DELIVERY"}


def _amount(name: str, raw: Any) -> Decimal:
    try:
        # str() first: a float setting (20.0, 0.03) becomes the decimal it was written as.
        value = Decimal(str(raw).strip())
    except (InvalidOperation, ValueError):
        raise ValueError(f"{name}={raw!r} is not a number") from None
    if not value.is_finite() or value < 0:
        raise ValueError(f"{name}={raw!r} must be a number of at least 0")
    return value


def _flag(name: str, raw: Any) -> bool:
    if isinstance(raw, bool):
        return raw
    text = str(raw).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"{name}={raw!r} is not a boolean")


def plan_from(config: Mapping[str, Any]) -> Plan:
    """The brokerage plan of a configuration (ANALYZE_CHARGES, ANALYZE_BROKERAGE_PER_ORDER,
    ANALYZE_BROKERAGE_PERCENT, ANALYZE_BROKERAGE_DELIVERY); a missing setting takes its default."""
    amounts = {field: _amount(name, config[name]) if config.get(name) is not None else getattr(DEFAULT_PLAN, field)
               for field, name in _PLAN_SETTINGS.items()}
    enabled = config.get("ANALYZE_CHARGES")
    return Plan(**amounts, enabled=True if enabled is None else _flag("ANALYZE_CHARGES", enabled))


# -- the rates -------------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class RateSet:
    """One dated entry of charge_rates.toml, its percentages turned into fractions of turnover."""

    effective: dt.date
    stt_buy: Decimal
    stt_sell: Decimal
    stamp_buy: Decimal
    sebi: Decimal
    gst: Decimal  # fraction of brokerage + exchange + sebi
    exchange: Mapping[str, Decimal]
    source: str


_RATE_KEYS = ("stt_buy", "stt_sell", "stamp_buy", "sebi", "gst")
_ENTRY_KEYS = frozenset({"from", "source", "exchange", *_RATE_KEYS})


def _fraction(where: str, key: str, raw: Any) -> Decimal:
    if isinstance(raw, bool) or not isinstance(raw, int | Decimal):
        raise ValueError(f"{where}: {key} = {raw!r} is not a number")
    value = Decimal(raw)
    if value < 0 or value >= _HUNDRED:
        raise ValueError(f"{where}: {key} = {raw} is not a percentage between 0 and 100")
    return value / _HUNDRED


def _rate_set(segment: str, n: int, entry: Any) -> RateSet:
    where = f"charge rates, [[{segment}]] entry {n + 1}"
    if not isinstance(entry, dict):
        raise ValueError(f"{where}: not a table")
    missing, unknown = _ENTRY_KEYS - entry.keys(), entry.keys() - _ENTRY_KEYS
    if missing or unknown:
        raise ValueError(f"{where}: missing {sorted(missing)}, unknown {sorted(unknown)}")
    effective = entry["from"]
    if type(effective) is not dt.date:
        raise ValueError(f"{where}: from = {effective!r} is not a date (YYYY-MM-DD)")
    source = entry["source"]
    if not isinstance(source, str) or not source.strip():
        raise ValueError(f"{where}: source names no published source")
    table = entry["exchange"]
    if not isinstance(table, dict) or not table:
        raise ValueError(f"{where}: exchange must be a table of exchange = percentage")
    strays = table.keys() - _SEGMENT_EXCHANGES[segment]
    if strays:
        raise ValueError(f"{where}: exchanges {sorted(strays)} do not trade {segment}")
    by_exchange = {Exchange(k).value: _fraction(where, f"exchange.{k}", v) for k, v in table.items()}
    return RateSet(effective=effective, source=" ".join(source.split()), exchange=MappingProxyType(by_exchange),
                   **{k: _fraction(where, k, entry[k]) for k in _RATE_KEYS})


def load_rates(text: str) -> dict[str, tuple[RateSet, ...]]:
    """Parse and check the text of a charge_rates.toml: every segment present, each entry complete with a
    source, entries in strictly increasing date order. ValueError names what is wrong."""
    try:
        data = tomllib.loads(text, parse_float=Decimal)
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"charge rates: {exc}") from None
    strays = data.keys() - set(SEGMENTS)
    if strays:
        raise ValueError(f"charge rates: unknown segments {sorted(strays)}")
    out: dict[str, tuple[RateSet, ...]] = {}
    for segment in SEGMENTS:
        entries = data.get(segment)
        if not isinstance(entries, list) or not entries:
            raise ValueError(f"charge rates: no [[{segment}]] entry")
        sets = tuple(_rate_set(segment, n, e) for n, e in enumerate(entries))
        for before, after in zip(sets, sets[1:], strict=False):
            if after.effective <= before.effective:
                raise ValueError(f"charge rates, [[{segment}]]: entry from {after.effective} follows the one from "
                                 f"{before.effective}; entries must be in increasing date order")
        out[segment] = sets
    return out


RATES: dict[str, tuple[RateSet, ...]] = load_rates(RATES_PATH.read_text(encoding="utf-8"))
_DATES: dict[str, tuple[dt.date, ...]] = {seg: tuple(r.effective for r in sets) for seg, sets in RATES.items()}


def rates_on(segment: str, on: dt.date) -> RateSet:
    """The rate set of `segment` in force on `on` (ValueError before the segment's first entry)."""
    if type(on) is not dt.date:
        on = on.date() if isinstance(on, dt.datetime) else on
    dates = _DATES[segment]
    i = bisect_right(dates, on)
    if not i:
        raise ValueError(f"no {segment} charge rates for {on}: the earliest in charge_rates.toml are from {dates[0]}")
    return RATES[segment][i - 1]


# -- one order -------------------------------------------------------------------------------------------
def segment_of(exchange: str, instrumenttype: str | None, product: str) -> str:
    """The charge segment of an order: e.g. ("NSE", "EQ", "CNC") -> "equity_delivery",
    ("NFO", "CE", "NRML") -> "equity_options". ValueError for an index or an unknown combination."""
    kind = (instrumenttype or "").upper()
    if exchange in _CASH:
        if kind in ("", "EQ"):
            return EQUITY_INTRADAY if product == Product.MIS else EQUITY_DELIVERY
    elif exchange in _DERIVATIVES:
        futures, options = _DERIVATIVES[exchange]
        if kind.startswith("FUT"):
            return futures
        if kind in ("CE", "PE") or kind.startswith("OPT"):
            return options
        raise ValueError(f"{exchange} order of instrument type {instrumenttype!r}: cannot tell futures from options")
    elif exchange in INDEX_EXCHANGES:
        raise ValueError(f"{exchange} is an index: it cannot be traded")
    else:
        raise ValueError(f"unknown exchange {exchange!r}")
    raise ValueError(f"{exchange} order of instrument type {instrumenttype!r} cannot be traded or charged")


def for_fill(*, exchange: str, instrumenttype: str | None, product: str, action: str, quantity: Decimal,
             price: Decimal, on: dt.date, plan: Plan | None = None) -> Charges:
    """The charges of one executed order of `quantity` units at `price` (the premium for options) on the
    trading day `on`, under `plan` (default: DEFAULT_PLAN). ZERO when the plan has charges off."""
    if plan is None:
        plan = DEFAULT_PLAN
    if not plan.enabled:
        return ZERO
    if action == Action.BUY:
        buy = True
    elif action == Action.SELL:
        buy = False
    else:
        raise ValueError(f"action {action!r} is neither BUY nor SELL")
    if quantity <= 0 or price < 0:
        raise ValueError(f"cannot charge a fill of {quantity} at {price}")
    segment = segment_of(exchange, instrumenttype, product)
    rates = rates_on(segment, on)
    exchange_rate = rates.exchange.get(exchange)
    if exchange_rate is None:
        raise ValueError(f"no {exchange} transaction charge among the {segment} rates from {rates.effective} "
                         "(charge_rates.toml)")
    turnover = quantity * price

    if segment == EQUITY_DELIVERY:
        brokerage = plan.delivery
    elif segment in OPTION_SEGMENTS or not plan.percent_cap:
        brokerage = plan.per_order
    else:
        brokerage = min(plan.per_order, turnover * plan.percent_cap / _HUNDRED)
    brokerage = _q2(brokerage)
    exchange_fee = _q2(turnover * exchange_rate)
    sebi = _q2(turnover * rates.sebi)
    return Charges(
        brokerage=brokerage,
        stt=_q2(turnover * (rates.stt_buy if buy else rates.stt_sell)),
        exchange=exchange_fee,
        sebi=sebi,
        stamp=_q2(turnover * rates.stamp_buy) if buy else _NIL,
        gst=_q2((brokerage + exchange_fee + sebi) * rates.gst),
    )
