"""REST API v1, options: `expiry`, `optionsymbol`, `optionsorder`, `optionsmultiorder`, `optionchain`,
`optiongreeks`, `multioptiongreeks`, `syntheticfuture` (docs/api.md, Options).

HTTP only, on the API's blueprint and plumbing (blueprints.api_v1): validate (expiries, offsets and option
types at the door, so that their errors read like every other field's), ask services.trading.options through
the call's venue, shape the answer. The two order calls count against ORDER_RATE_LIMIT and write a latency
row like placeorder; the greeks calls answer a bad API key with 401, as OpenAlgo's do.
"""

from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator, Field

from blueprints.api_v1 import (
    Action,
    ApiFailure,
    Body,
    Count,
    Exchange,
    Keyed,
    Price,
    PriceType,
    Product,
    Quantity,
    Strategy,
    Symbol,
    api_limit,
    api_v1_bp,
    current_call,
    no_bool,
    order_limit,
    parse,
    record_placed,
    respond,
    success,
    venue_of,
)
from services.market import options as market
from services.trading import options
from services.trading.options import GreeksItem, OptionLeg
from vocabulary import MAX_PRICE

MAX_LEGS = 20  # OpenAlgo's limit of optionsmultiorder
MAX_GREEKS_SYMBOLS = 50  # OpenAlgo's limit of multioptiongreeks
MAX_STRIKE_COUNT = 100
_HHMM = re.compile(r"^(\d{1,2}):(\d{2})$")


# -- fields --------------------------------------------------------------------------------------------
def _offset(v: str) -> str:
    market.parse_offset(v)
    return v.strip().upper()


def _option_type(v: str) -> str:
    kind = v.strip().upper()
    if kind not in ("CE", "PE"):
        raise ValueError("must be CE or PE")
    return kind


def _expiry(v: Any) -> dt.date | None:
    if v is None:
        return None
    if not isinstance(v, str):
        raise ValueError("must be a date written DDMMMYY, e.g. 28NOV24")
    return market.parse_expiry(v)


def _fno(v: str) -> str:
    if v not in market.FNO_EXCHANGES:
        raise ValueError(f"must be one of {', '.join(market.FNO_EXCHANGES)}")
    return v


def _options_product(v: str) -> str:
    if v not in ("MIS", "NRML"):
        raise ValueError("must be MIS or NRML: options are not delivered (CNC)")
    return v


def _kind(v: str) -> str:
    kind = v.strip().lower()
    if kind not in market.KINDS:
        raise ValueError("must be futures or options")
    return kind


def _hhmm(v: Any) -> dt.time | None:
    m = _HHMM.match(v.strip()) if isinstance(v, str) else None
    if v is None:
        return None
    if m is None or int(m[1]) > 23 or int(m[2]) > 59:
        raise ValueError("must be a time written HH:MM, e.g. 15:30")
    return dt.time(int(m[1]), int(m[2]))


Offset = Annotated[str, AfterValidator(_offset)]
OptionType = Annotated[str, AfterValidator(_option_type)]
ExpiryDate = Annotated[dt.date | None, BeforeValidator(_expiry)]
FnoExchange = Annotated[Exchange, AfterValidator(_fno)]
OptionsProduct = Annotated[Product, AfterValidator(_options_product)]
Kind = Annotated[str, AfterValidator(_kind)]
StrikeInt = Annotated[Decimal, BeforeValidator(no_bool), Field(gt=0, le=MAX_PRICE)]
ForwardPrice = Annotated[Decimal, BeforeValidator(no_bool), Field(gt=0, le=MAX_PRICE)]
Rate = Annotated[float, BeforeValidator(no_bool), Field(ge=0, le=100)]  # annual, percent
StrikeCount = Annotated[int, BeforeValidator(no_bool), Field(ge=1, le=MAX_STRIKE_COUNT)]
ExpiryTime = Annotated[dt.time | None, BeforeValidator(_hhmm)]


# -- bodies --------------------------------------------------------------------------------------------
class ExpiryQuery(Keyed):
    symbol: Symbol
    exchange: FnoExchange
    instrumenttype: Kind


class OptionTarget(Keyed):
    underlying: Symbol
    exchange: Exchange
    expiry_date: ExpiryDate = None
    strike_int: StrikeInt | None = None


class OptionSymbolQuery(OptionTarget):
    offset: Offset
    option_type: OptionType
    strategy: Strategy | None = None  # sent by the SDK (deprecated there); not used


class LegFields(Body):
    offset: Offset
    option_type: OptionType
    action: Action
    quantity: Quantity
    splitsize: Count = 0
    pricetype: PriceType = "MARKET"
    product: OptionsProduct = "MIS"
    price: Price = Decimal(0)
    trigger_price: Price = Decimal(0)
    disclosed_quantity: Count = 0


class OptionsOrder(LegFields, OptionTarget):
    strategy: Strategy


class MultiLeg(LegFields):
    expiry_date: ExpiryDate = None


class OptionsMultiOrder(OptionTarget):
    strategy: Strategy
    legs: Annotated[list[MultiLeg], Field(min_length=1, max_length=MAX_LEGS)]


class OptionChainQuery(Keyed):
    underlying: Symbol
    exchange: Exchange
    expiry_date: ExpiryDate = None
    strike_count: StrikeCount | None = None
    with_greeks: bool = False
    interest_rate: Rate | None = None


class SyntheticQuery(Keyed):
    underlying: Symbol
    exchange: Exchange
    expiry_date: ExpiryDate = None


class GreeksSymbol(Body):
    symbol: Symbol
    exchange: FnoExchange
    underlying_symbol: Symbol | None = None
    underlying_exchange: Exchange | None = None


class GreeksQuery(GreeksSymbol, Keyed):
    interest_rate: Rate | None = None
    forward_price: ForwardPrice | None = None
    expiry_time: ExpiryTime = None


class MultiGreeksQuery(Keyed):
    symbols: Annotated[list[GreeksSymbol], Field(min_length=1, max_length=MAX_GREEKS_SYMBOLS)]
    interest_rate: Rate | None = None
    expiry_time: ExpiryTime = None


def _leg(f: LegFields, expiry: dt.date | None) -> OptionLeg:
    return OptionLeg(offset=f.offset, option_type=f.option_type, action=f.action, quantity=f.quantity,
                     pricetype=f.pricetype, product=f.product, price=f.price, trigger_price=f.trigger_price,
                     disclosed_quantity=f.disclosed_quantity, splitsize=f.splitsize, expiry=expiry)


def _greeks_item(f: GreeksSymbol) -> GreeksItem:
    return GreeksItem(f.symbol, f.exchange, f.underlying_symbol, f.underlying_exchange)


def _parse_401(model: type[Keyed]) -> tuple[Any, int]:
    """parse(), with a refused API key answered 401 as OpenAlgo's greeks endpoints answer it."""
    try:
        return parse(model, "data")
    except ApiFailure as exc:
        if exc.status == 403:
            exc.status = 401
        raise


# -- endpoints -----------------------------------------------------------------------------------------
@api_v1_bp.post("/expiry", strict_slashes=False)
@api_limit
def expiry():
    data, _uid = parse(ExpiryQuery, "data")
    return respond({"status": "success", **options.expiry_dates(data.symbol, data.exchange, data.instrumenttype)})


@api_v1_bp.post("/optionsymbol", strict_slashes=False)
@api_limit
def optionsymbol():
    data, uid = parse(OptionSymbolQuery, "data")
    return success(options.option_symbol(venue_of(uid), data.underlying, data.exchange, data.offset,
                                         data.option_type, data.expiry_date, data.strike_int))


@api_v1_bp.post("/optionsorder", strict_slashes=False)
@order_limit
def optionsorder():
    data, uid = parse(OptionsOrder, "orders")
    body, placed = options.options_order(venue_of(uid), data.strategy, data.underlying, data.exchange,
                                         _leg(data, data.expiry_date), data.strike_int)
    current_call().symbol = body["symbol"]
    if placed is not None:
        record_placed(placed)
    return success(body)


@api_v1_bp.post("/optionsmultiorder", strict_slashes=False)
@order_limit
def optionsmultiorder():
    data, uid = parse(OptionsMultiOrder, "orders")
    legs = [_leg(leg, leg.expiry_date) for leg in data.legs]
    return success(options.options_multi_order(venue_of(uid), data.strategy, data.underlying, data.exchange, legs,
                                               data.expiry_date, data.strike_int))


@api_v1_bp.post("/optionchain", strict_slashes=False)
@api_limit
def optionchain():
    data, uid = parse(OptionChainQuery, "data")
    return success(options.option_chain(venue_of(uid), data.underlying, data.exchange, data.expiry_date,
                                        data.strike_count, data.with_greeks, data.interest_rate or 0.0))


@api_v1_bp.post("/syntheticfuture", strict_slashes=False)
@api_limit
def syntheticfuture():
    data, uid = parse(SyntheticQuery, "data")
    return success(options.synthetic_future(venue_of(uid), data.underlying, data.exchange, data.expiry_date))


@api_v1_bp.post("/optiongreeks", strict_slashes=False)
@api_limit
def optiongreeks():
    data, uid = _parse_401(GreeksQuery)
    return success(options.option_greeks(venue_of(uid), _greeks_item(data), data.interest_rate or 0.0,
                                         data.forward_price, data.expiry_time))


@api_v1_bp.post("/multioptiongreeks", strict_slashes=False)
@api_limit
def multioptiongreeks():
    data, uid = _parse_401(MultiGreeksQuery)
    return success(options.multi_option_greeks(venue_of(uid), [_greeks_item(s) for s in data.symbols],
                                               data.interest_rate or 0.0, data.expiry_time))
