"""REST API v1, market data and margins: `multiquotes`, `depth`, `instruments` (GET) and `margin`.

HTTP only, on the API's blueprint and plumbing (blueprints.api_v1): validate, ask
services.trading.market_data through the call's venue, shape the answer. See docs/api.md.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from flask import current_app, request
from pydantic import BeforeValidator, Field

from blueprints.api_v1 import (
    Action,
    Body,
    Exchange,
    Keyed,
    Price,
    PriceType,
    Product,
    Quantity,
    Symbol,
    SymbolQuery,
    api_limit,
    api_v1_bp,
    current_call,
    error_answer,
    parse,
    respond,
    success,
    upper,
    venue_of,
)
from services.trading import market_data
from services.trading.journal import OrderInput
from vocabulary import EXCHANGES

MAX_MULTIQUOTES = 500  # a broker's one quote call (Kite: 500 instruments)
MAX_MARGIN_POSITIONS = 50  # OpenAlgo's limit


class QuoteItem(Body):
    # Free text here: an unknown exchange is an invalid symbol of the answer, not a refusal of the whole call.
    symbol: Annotated[str, Field(min_length=1, max_length=64), BeforeValidator(upper)]
    exchange: Annotated[str, Field(min_length=1, max_length=16), BeforeValidator(upper)]


class MultiQuotes(Keyed):
    symbols: Annotated[list[QuoteItem], Field(min_length=1, max_length=MAX_MULTIQUOTES)]


class MarginPosition(Body):
    symbol: Symbol
    exchange: Exchange
    action: Action
    quantity: Quantity
    product: Product
    pricetype: PriceType
    price: Price = 0  # type: ignore[assignment]
    trigger_price: Price = 0  # type: ignore[assignment]


class MarginQuery(Keyed):
    positions: Annotated[list[MarginPosition], Field(min_length=1, max_length=MAX_MARGIN_POSITIONS)]


def _lower(v: Any) -> Any:
    return v.strip().lower() if isinstance(v, str) else v


class InstrumentsQuery(Keyed):
    exchange: Exchange
    format: Annotated[Literal["json", "csv"], BeforeValidator(_lower)] = "json"


@api_v1_bp.post("/multiquotes", strict_slashes=False)
@api_limit
def multiquotes():
    data, uid = parse(MultiQuotes, "data")
    pairs = [(item.symbol, item.exchange) for item in data.symbols]
    valid = [p for p in pairs if p[1] in EXCHANGES]
    results, invalid = market_data.multiquotes(venue_of(uid), valid) if valid else ([], [])
    by_pair = {(r["symbol"], r["exchange"]): r for r in results}
    answer, bad = [], list(invalid)
    for symbol, exchange in pairs:
        if exchange not in EXCHANGES:
            bad.append({"symbol": symbol, "exchange": exchange})
            answer.append({"symbol": symbol, "exchange": exchange,
                           "error": f"exchange must be one of {', '.join(EXCHANGES)}"})
        else:
            answer.append(by_pair[(symbol, exchange)])
    if len(bad) == len(pairs):  # a 400 that names them (`invalid_symbols`), not the message alone
        return error_answer("None of the symbols is in the master contract", 400, invalid_symbols=bad)
    return success({"results": answer})


@api_v1_bp.post("/depth", strict_slashes=False)
@api_limit
def depth():
    data, uid = parse(SymbolQuery, "data")
    return success({"data": market_data.depth(venue_of(uid), data.symbol, data.exchange)})


@api_v1_bp.get("/instruments", strict_slashes=False)
@api_limit
def instruments():
    data, _uid = parse(InstrumentsQuery, "data", body=request.args.to_dict())
    rows = market_data.instruments(data.exchange)
    call = current_call()
    call.logged = {"status": "success", "exchange": data.exchange, "format": data.format, "rows": len(rows)}
    if data.format == "csv":
        resp = current_app.response_class(market_data.instruments_csv(rows), mimetype="text/csv")
        resp.headers["Content-Disposition"] = f"attachment; filename=instruments_{data.exchange}.csv"
        return resp
    return respond({"status": "success", "message": f"Found {len(rows)} instruments for {data.exchange}",
                    "data": rows})


@api_v1_bp.post("/margin", strict_slashes=False)
@api_limit
def margin():
    data, uid = parse(MarginQuery, "read")
    legs = [OrderInput(strategy="margin", exchange=p.exchange, symbol=p.symbol, action=p.action, quantity=p.quantity,
                       pricetype=p.pricetype, product=p.product, price=p.price, trigger_price=p.trigger_price)
            for p in data.positions]
    return success({"data": market_data.margin(venue_of(uid), legs)})

