"""Options through the call's venue: resolve a contract from an underlying, an expiry and an offset; place
option orders; the option chain with its greeks; the greeks of one or many contracts; the synthetic future.

Contracts come from the master contract (services.market.options: pure look-ups), last prices from the venue
(`quotes_many` of the analyze-mode exchange or of the live broker: one call for many instruments), and orders
go through services.trading.orders like any other (journaled, checked against the exchange's lot rules, timed
by the API's latency log). Greeks and implied volatility are Black-76 (services.market.black76) on a forward:
the expiry's synthetic future (ATM strike + call - put), else the underlying's last price. Rates and
volatilities are percent here, as in the API; black76 takes fractions.

Every function takes the time (`now`, aware) for what depends on it (the expiries still to come, the time to
expiry); None is the current time.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal

from database.types import utcnow
from services.market import black76
from services.market import options as market
from services.market.options import Chain, OptionLookupError
from services.market.quotes import QuoteData
from services.market.symbol_index import SymbolInfo, get_symbol_info
from services.trading import orders, risk
from services.trading.errors import OrderError
from services.trading.journal import OrderInput, Placed
from services.trading.venues import Venue
from vocabulary import Action

NO_TIME_VALUE = "No time value left in the option's price: theoretical greeks (delta 1 in the money, the rest 0)"
EXPIRED = "Option has expired: greeks no longer apply"


@dataclass(frozen=True)
class OptionLeg:
    """One option order named by its offset from ATM (the request's `offset`: ATM, ITMn, OTMn)."""

    offset: str
    option_type: str
    action: str
    quantity: int
    pricetype: str = "MARKET"
    product: str = "MIS"
    price: Decimal = Decimal(0)
    trigger_price: Decimal = Decimal(0)
    disclosed_quantity: int = 0
    splitsize: int = 0
    expiry: dt.date | None = None  # the leg's own expiry (a calendar spread), else the request's


@dataclass(frozen=True)
class GreeksItem:
    symbol: str
    exchange: str
    underlying_symbol: str | None = None
    underlying_exchange: str | None = None


# -- time, quotes, the underlying -------------------------------------------------------------------------
def _today(now: dt.datetime) -> dt.date:
    return now.astimezone(black76.IST).date()


def _key(info: SymbolInfo) -> tuple[str, str]:
    return info.symbol, info.exchange


class _Quotes:
    """The quotes of one call, fetched from the venue in bulk and kept, so that nothing is asked twice."""

    def __init__(self, venue: Venue) -> None:
        self.venue = venue
        self.found: dict[tuple[str, str], QuoteData | None] = {}

    def fetch(self, infos: list[SymbolInfo]) -> None:
        missing = list({_key(i): i for i in infos if _key(i) not in self.found}.values())
        if missing:
            got = orders.through(self.venue).quotes_many(self.venue, missing)
            for info in missing:
                self.found[_key(info)] = got.get(_key(info))

    def quote(self, info: SymbolInfo) -> QuoteData | None:
        self.fetch([info])
        return self.found[_key(info)]

    def ltp(self, info: SymbolInfo) -> Decimal | None:
        q = self.quote(info)
        return q.ltp if q is not None and q.ltp > 0 else None

    def must_ltp(self, info: SymbolInfo) -> Decimal:
        ltp = self.ltp(info)
        if ltp is None:
            raise OrderError(f"No last price for {info.symbol} on {info.exchange}", 404)
        return ltp


@dataclass(frozen=True)
class _Underlying:
    text: str  # as the request wrote it
    name: str  # as the contract names its derivatives
    exchange: str  # where its options are listed
    expiry: dt.date | None  # named inside the underlying (NIFTY28NOV24FUT), else the request's
    spot: SymbolInfo  # the instrument whose last price sets ATM


def _underlying(underlying: str, exchange: str, expiry: dt.date | None, today: dt.date) -> _Underlying:
    name, inside = market.split_underlying(underlying)
    spot = market.underlying_instrument(name, exchange, today)
    if spot is None:
        raise OrderError(f"Symbol {name} not found in exchange {exchange.upper()}", 404)
    return _Underlying(underlying.strip().upper(), name, market.option_exchange(exchange), inside or expiry, spot)


def _chain(u: _Underlying, expiry: dt.date | None) -> Chain:
    if expiry is None:
        raise OrderError("expiry_date is required unless the underlying names its expiry (e.g. NIFTY28NOV24FUT)",
                         400)
    found = market.chain(u.name, u.exchange, expiry)
    if found is None:
        raise OrderError(f"No strikes found for {u.name} expiring {market.expiry_code(expiry)} on {u.exchange}: "
                         "check expiry_date (the expiry endpoint lists them) or update the master contract", 404)
    return found


def _resolve(chain: Chain, ltp: Decimal, offset: str, option_type: str, strike_int: Decimal | None) -> SymbolInfo:
    try:
        return market.resolve(chain, ltp, market.parse_offset(offset), option_type, strike_int)
    except OptionLookupError as exc:
        raise OrderError(exc.message, exc.status) from None
    except ValueError as exc:
        raise OrderError(f"offset {exc}", 400) from None


def _num(value: Decimal | float) -> float:
    return float(value)


# -- expiries and contracts -------------------------------------------------------------------------------
def expiry_dates(symbol: str, exchange: str, kind: str, *, now: dt.datetime | None = None) -> dict:
    """The `expiry` answer: `message` and `data`, the expiries (DD-MMM-YY) from today on, nearest first."""
    name, _inside = market.split_underlying(symbol)
    found = market.expiries(name, exchange, kind, _today(now or utcnow()))
    what = f"{name} {kind} in {exchange.upper()}"
    message = f"Found {len(found)} expiry dates for {what}" if found else f"No expiry dates found for {what}"
    return {"message": message, "data": [market.expiry_label(d) for d in found]}


def option_symbol(venue: Venue, underlying: str, exchange: str, offset: str, option_type: str,
                  expiry: dt.date | None = None, strike_int: Decimal | None = None, *,
                  now: dt.datetime | None = None) -> dict:
    """The `optionsymbol` answer: the listed contract `offset` from ATM, with its lot, tick and freeze quantity."""
    u = _underlying(underlying, exchange, expiry, _today(now or utcnow()))
    chain = _chain(u, u.expiry)
    ltp = _Quotes(venue).must_ltp(u.spot)
    info = _resolve(chain, ltp, offset, option_type, strike_int)
    return {"symbol": info.symbol, "exchange": info.exchange, "lotsize": info.lotsize,
            "tick_size": _num(info.tick_size), "freeze_qty": info.freeze_qty if info.freeze_qty is not None else 1,
            "underlying_ltp": _num(ltp)}


# -- orders -----------------------------------------------------------------------------------------------
def _order(strategy: str, info: SymbolInfo, leg: OptionLeg) -> OrderInput:
    return OrderInput(strategy=strategy, exchange=info.exchange, symbol=info.symbol, action=leg.action,
                      quantity=leg.quantity, pricetype=leg.pricetype, product=leg.product, price=leg.price,
                      trigger_price=leg.trigger_price, disclosed_quantity=leg.disclosed_quantity)


def _place(venue: Venue, strategy: str, info: SymbolInfo, leg: OptionLeg, *, evaluate: bool = True) -> Placed | dict:
    """One order through the order path, or a split (splitorder's answer) when the leg has a splitsize.
    `evaluate` False: the P&L limits are not evaluated after it (the caller does, once)."""
    inp = _order(strategy, info, leg)
    if leg.splitsize > 0:
        return orders.split_order(venue, inp, leg.splitsize, evaluate=evaluate)
    return orders.place_order(venue, inp, evaluate=evaluate)


def options_order(venue: Venue, strategy: str, underlying: str, exchange: str, leg: OptionLeg,
                  strike_int: Decimal | None = None, *, now: dt.datetime | None = None) -> tuple[dict, Placed | None]:
    """The `optionsorder` answer, and the order placed (None for a split, whose answer lists its orders).
    Raises OrderError as placeorder and splitorder do."""
    u = _underlying(underlying, exchange, leg.expiry, _today(now or utcnow()))
    chain = _chain(u, u.expiry)
    ltp = _Quotes(venue).must_ltp(u.spot)
    info = _resolve(chain, ltp, leg.offset, leg.option_type, strike_int)
    body = {"symbol": info.symbol, "exchange": info.exchange, "underlying": u.text, "underlying_ltp": _num(ltp),
            "offset": leg.offset, "option_type": leg.option_type}
    result = _place(venue, strategy, info, leg)
    if isinstance(result, dict):
        return {**body, **result}, None
    return {**body, "orderid": result.orderid}, result


def options_multi_order(venue: Venue, strategy: str, underlying: str, exchange: str, legs: list[OptionLeg],
                        expiry: dt.date | None = None, strike_int: Decimal | None = None, *,
                        now: dt.datetime | None = None) -> dict:
    """The `optionsmultiorder` answer. All legs resolve against one last price of the underlying; BUY legs
    are placed before SELL legs (margin: the hedges first), each group in request order; a leg that fails
    is reported in its result and the others go on. Results come in request order, numbered from 1. The P&L
    limits are evaluated once, after the last leg."""
    u = _underlying(underlying, exchange, expiry, _today(now or utcnow()))
    ltp = _Quotes(venue).must_ltp(u.spot)
    order = sorted(range(len(legs)), key=lambda i: (legs[i].action != Action.BUY, i))
    results: dict[int, dict] = {}
    any_placed = False
    for i in order:
        leg = legs[i]
        out = {"leg": i + 1, "symbol": None, "exchange": u.exchange, "offset": leg.offset,
               "option_type": leg.option_type, "action": leg.action, "product": leg.product, "mode": venue.label}
        try:
            info = _resolve(_chain(u, leg.expiry or u.expiry), ltp, leg.offset, leg.option_type, strike_int)
            out["symbol"], out["exchange"] = info.symbol, info.exchange
            placed = _place(venue, strategy, info, leg, evaluate=False)
        except risk.Queued as exc:  # held for approval (issue #19): accepted, placed once approved
            results[i] = {**out, "status": "success", "message": exc.message, "pending_order_id": exc.approval_id}
            continue
        except OrderError as exc:
            results[i] = {**out, "status": "error", "message": exc.message}
            continue
        if isinstance(placed, dict):
            any_placed = any_placed or any("orderid" in r for r in placed["results"])
            failed = [r for r in placed["results"] if r["status"] != "success"]
            out.update(total_quantity=placed["total_quantity"], split_size=placed["split_size"],
                       split_results=placed["results"])
            if failed:
                out.update(status="error", message=f"{len(failed)} of {len(placed['results'])} orders failed: "
                                                   f"{failed[0]['message']}")
            else:
                out["status"] = "success"
        else:
            any_placed = True
            out.update(status="success", orderid=placed.orderid)
        results[i] = out
    if any_placed:
        risk.after_order(venue, strategy)
    return {"underlying": u.text, "underlying_ltp": _num(ltp), "results": [results[i] for i in range(len(legs))]}


# -- the option chain -------------------------------------------------------------------------------------
def _empty_quote() -> dict:
    return {"open": 0.0, "high": 0.0, "low": 0.0, "ltp": 0.0, "ask": 0.0, "bid": 0.0, "prev_close": 0.0,
            "volume": 0, "oi": 0}


def _leg(info: SymbolInfo, label: str, q: QuoteData | None) -> dict:
    # Depth sizes are not in a quote (the depth endpoint has them): 0, as OpenAlgo sends when a broker has none.
    return {"symbol": info.symbol, "label": label, **(q.to_dict() if q is not None else _empty_quote()),
            "bid_qty": 0, "ask_qty": 0, "lotsize": info.lotsize, "tick_size": _num(info.tick_size)}


def _leg_greeks(kind: str, price: float, forward: float, strike: float, years: float, rate: float) -> dict | None:
    """IV (percent) and greeks of one priced leg of a chain; None for a leg without a price."""
    if price <= 0:
        return None
    sigma = black76.implied_vol(kind, price, forward, strike, years, rate)
    if sigma is None:  # no time value: the limit of the greeks as volatility goes to 0
        g = black76.greeks(kind, forward, strike, 0.0, 0.0)
        return {"implied_volatility": 0, "delta": g.delta, "gamma": 0, "theta": 0, "vega": 0}
    g = black76.greeks(kind, forward, strike, years, sigma, rate)
    return {"implied_volatility": round(sigma * 100, 2), "delta": round(g.delta, 4), "gamma": round(g.gamma, 6),
            "theta": round(g.theta, 4), "vega": round(g.vega, 4)}


def option_chain(venue: Venue, underlying: str, exchange: str, expiry: dt.date | None = None,
                 strike_count: int | None = None, with_greeks: bool = False, interest_rate: float = 0.0, *,
                 now: dt.datetime | None = None) -> dict:
    """The `optionchain` answer: `strike_count` listed strikes either side of ATM (all when None), each with
    its call and put (null when not listed), labelled from ATM; with greeks, each priced leg's implied
    volatility, delta, gamma, theta and vega on the forward of the chain's own ATM legs."""
    now = now or utcnow()
    u = _underlying(underlying, exchange, expiry, _today(now))
    chain = _chain(u, u.expiry)
    book = _Quotes(venue)
    spot = book.quote(u.spot)
    if spot is None or spot.ltp <= 0:
        raise OrderError(f"No last price for {u.spot.symbol} on {u.spot.exchange}", 404)
    atm = chain.atm_index(spot.ltp)
    rows = chain.labels(atm, strike_count)
    legs = [leg for strike, _, _ in rows for leg in (chain.calls.get(strike), chain.puts.get(strike)) if leg]
    book.fetch(legs)
    out = []
    for strike, ce_label, pe_label in rows:
        row: dict = {"strike": _num(strike)}
        for side, label, listed in (("ce", ce_label, chain.calls), ("pe", pe_label, chain.puts)):
            info = listed.get(strike)
            row[side] = _leg(info, label, book.found.get(_key(info))) if info is not None else None
        out.append(row)
    atm_strike = chain.strikes[atm]
    years = black76.years_to_expiry(now, u.exchange, chain.expiry)
    forward = None
    if with_greeks and years > 0:
        forward = _synthetic(chain, atm_strike, book) or spot.ltp
        for row in out:
            for side, kind in (("ce", "CE"), ("pe", "PE")):
                leg = row[side]
                found = leg and _leg_greeks(kind, leg["ltp"], _num(forward), row["strike"], years, interest_rate / 100)
                if found:
                    leg.update(found)
    return {"underlying": u.name, "underlying_symbol": u.spot.symbol, "underlying_exchange": u.spot.exchange,
            "underlying_ltp": _num(spot.ltp), "underlying_prev_close": _num(spot.prev_close),
            "expiry_date": market.expiry_code(chain.expiry),
            "expiry_ts": int(black76.expiry_moment(u.exchange, chain.expiry).timestamp()),
            "server_ts": int(now.timestamp()), "atm_strike": _num(atm_strike), "quotes_included": True,
            "greeks_included": forward is not None, "forward_price": _num(forward) if forward is not None else None,
            "chain": out}


def _synthetic(chain: Chain, strike: Decimal, book: _Quotes) -> Decimal | None:
    """Put-call parity on the ATM legs: strike + call - put; None when either leg has no price."""
    ce, pe = chain.calls.get(strike), chain.puts.get(strike)
    if ce is None or pe is None:
        return None
    book.fetch([ce, pe])
    c, p = book.ltp(ce), book.ltp(pe)
    return strike + c - p if c is not None and p is not None else None


def synthetic_future(venue: Venue, underlying: str, exchange: str, expiry: dt.date | None = None, *,
                     now: dt.datetime | None = None) -> dict:
    """The `syntheticfuture` answer: ATM strike + ATM call - ATM put, ATM from the underlying's last price."""
    u = _underlying(underlying, exchange, expiry, _today(now or utcnow()))
    chain = _chain(u, u.expiry)
    book = _Quotes(venue)
    ltp = book.must_ltp(u.spot)
    strike = chain.strikes[chain.atm_index(ltp)]
    ce, pe = (_resolve(chain, ltp, "ATM", kind, None) for kind in ("CE", "PE"))
    book.fetch([ce, pe])
    price = strike + book.must_ltp(ce) - book.must_ltp(pe)
    return {"underlying": u.text, "underlying_ltp": _num(ltp), "expiry": market.expiry_code(chain.expiry),
            "atm_strike": _num(strike), "synthetic_future_price": round(_num(price), 2)}


# -- greeks -----------------------------------------------------------------------------------------------
def _option(symbol: str, exchange: str) -> SymbolInfo:
    info = get_symbol_info(symbol, exchange)
    if info is None:
        raise OrderError(f"Symbol {symbol} not found in exchange {exchange}", 404)
    if info.instrumenttype not in ("CE", "PE") or info.expiry is None or not info.strike:
        raise OrderError(f"{info.symbol} on {info.exchange} is not an option", 400)
    return info


def _forward(info: SymbolInfo, item: GreeksItem, book: _Quotes, today: dt.date) -> Decimal:
    """The forward of an option's greeks: a non-base `underlying_symbol`'s last price (a future, say), else the
    expiry's synthetic future, else the underlying's last price."""
    name = market.base_name(info)
    if item.underlying_symbol and item.underlying_symbol.upper() != name:
        other = get_symbol_info(item.underlying_symbol, item.underlying_exchange or info.exchange)
        if other is None:
            raise OrderError(f"Symbol {item.underlying_symbol} not found in exchange "
                             f"{item.underlying_exchange or info.exchange}", 404)
        return book.must_ltp(other)
    exchange = item.underlying_exchange or info.exchange
    spot = market.underlying_instrument(name, exchange, today)
    if spot is None:
        raise OrderError(f"Symbol {name} not found in exchange {exchange}", 404)
    ltp = book.must_ltp(spot)
    chain = market.chain(name, info.exchange, info.expiry)  # type: ignore[arg-type]  # an option has one
    if chain is None:
        return ltp
    return _synthetic(chain, chain.strikes[chain.atm_index(ltp)], book) or ltp


def _long_date(d: dt.date) -> str:
    return f"{d.day:02d}-{market.MONTHS[d.month - 1].title()}-{d.year}"


def _greeks_answer(info: SymbolInfo, forward: float, price: float, rate_pct: float, now: dt.datetime,
                   expiry_time: dt.time | None, *, expired_ok: bool) -> dict:
    kind, strike = info.instrumenttype, _num(info.strike)  # type: ignore[arg-type]
    years = black76.years_to_expiry(now, info.exchange, info.expiry, expiry_time)  # type: ignore[arg-type]
    body = {"symbol": info.symbol, "exchange": info.exchange, "underlying": market.base_name(info),
            "strike": round(strike, 2), "option_type": kind, "expiry_date": _long_date(info.expiry),  # type: ignore[arg-type]
            "days_to_expiry": round(years * 365, 4), "spot_price": round(forward, 2),
            "option_price": round(price, 2), "interest_rate": round(rate_pct, 2)}
    zero = {"delta": 0, "gamma": 0, "theta": 0, "vega": 0, "rho": 0}
    if years <= 0:
        if not expired_ok:
            raise OrderError(f"Option has expired on {body['expiry_date']}", 400)
        return {**body, "implied_volatility": 0, "greeks": zero, "note": EXPIRED}
    rate = rate_pct / 100
    sigma = black76.implied_vol(kind, price, forward, strike, years, rate)
    if sigma is None:
        value = black76.intrinsic(kind, forward, strike)
        if price > black76.intrinsic(kind, forward, strike, years, rate) + 1e-9:
            raise OrderError(f"No volatility gives {info.symbol} a price of {price} on a forward of {forward}", 400)
        limit = black76.greeks(kind, forward, strike, 0.0, 0.0)
        return {**body, "implied_volatility": 0, "intrinsic_value": round(value, 2),
                "time_value": round(max(price - value, 0.0), 2), "greeks": {**zero, "delta": limit.delta},
                "note": NO_TIME_VALUE}
    g = black76.greeks(kind, forward, strike, years, sigma, rate)
    return {**body, "implied_volatility": round(sigma * 100, 2),
            "greeks": {"delta": round(g.delta, 4), "gamma": round(g.gamma, 6), "theta": round(g.theta, 4),
                       "vega": round(g.vega, 4), "rho": round(g.rho, 6)}}


def option_greeks(venue: Venue, item: GreeksItem, interest_rate: float = 0.0, forward_price: Decimal | None = None,
                  expiry_time: dt.time | None = None, *, now: dt.datetime | None = None) -> dict:
    """The `optiongreeks` answer. Raises OrderError: 404 unknown symbol or no price, 400 not an option or
    expired."""
    now = now or utcnow()
    info = _option(item.symbol, item.exchange)
    book = _Quotes(venue)
    if forward_price is None:
        forward = _forward(info, item, book, _today(now))
    else:
        forward = forward_price
    price = book.must_ltp(info)
    return _greeks_answer(info, _num(forward), _num(price), interest_rate, now, expiry_time, expired_ok=False)


def multi_option_greeks(venue: Venue, items: list[GreeksItem], interest_rate: float = 0.0,
                        expiry_time: dt.time | None = None, *, now: dt.datetime | None = None) -> dict:
    """The `multioptiongreeks` answer: `data` in request order (an answer per symbol, or its error), `summary`,
    and `status` success, partial or error. Quotes are asked in bulk and each forward once per expiry; an
    expired contract answers zeros. A refused broker session (403) fails the whole call."""
    now = now or utcnow()
    today = _today(now)
    book = _Quotes(venue)
    infos: list[SymbolInfo | OrderError] = []
    for item in items:
        try:
            infos.append(_option(item.symbol, item.exchange))
        except OrderError as exc:
            infos.append(exc)
    book.fetch([i for i in infos if isinstance(i, SymbolInfo)])
    data, failed = [], 0
    for item, info in zip(items, infos, strict=True):
        try:
            if isinstance(info, OrderError):
                raise info
            forward = _forward(info, item, book, today)
            answer = _greeks_answer(info, _num(forward), _num(book.must_ltp(info)), interest_rate, now, expiry_time,
                                    expired_ok=True)
            data.append({"status": "success", **answer})
        except OrderError as exc:
            if exc.status == 403:
                raise
            failed += 1
            data.append({"status": "error", "symbol": item.symbol, "exchange": item.exchange, "message": exc.message})
    ok = len(items) - failed
    out = {"status": "success" if not failed else ("partial" if ok else "error"), "data": data,
           "summary": {"total": len(items), "success": ok, "failed": failed}}
    if failed:
        messages = list(dict.fromkeys(d["message"] for d in data if d["status"] == "error"))[:3]
        out["message"] = (f"{failed} of {len(items)} option greeks calculations failed: " + "; ".join(messages))
    return out
