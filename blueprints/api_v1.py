"""REST API v1 (`/api/v1/<name>`), wire-compatible with OpenAlgo: see docs/api.md.

HTTP only: parse the JSON body, validate it (pydantic; the message names the field), verify the API
key for the endpoint's scope, call the service, shape the answer, and log the call. Every response
under /api/v1 (errors, 405s and 429s included) is logged once, by an after-request hook, through
services.logs.recording: an `api_logs` row with the apikey removed, and for order calls an
`order_latency` row.

Rate limits per endpoint family, read from the configuration on every request (API_RATE_LIMIT,
ORDER_RATE_LIMIT, SMART_ORDER_RATE_LIMIT), keyed by a hash of the API key and the client address.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import math
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Annotated, Any, Literal

import orjson
from flask import Blueprint, Flask, Response, current_app, g, json, request, request_started
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, model_validator
from werkzeug.exceptions import HTTPException

from blueprints import traffic
from extensions import client_address, csrf, limiter
from services.accounts import api_keys, broker_login
from services.accounts.api_keys import ApiKeyError
from services.logs import recording as observability
from services.market import calendar, symbol_index
from services.market.quotes import UnknownSymbolError
from services.trading import books, orders, risk, venues
from services.trading.errors import OrderError
from services.trading.journal import OrderInput
from vocabulary import ACTIONS, EXCHANGES, MAX_BASKET, MAX_PRICE, MAX_QUANTITY, MAX_SPLIT_ORDERS, PRICE_TYPES, PRODUCTS

log = logging.getLogger("algobridge.api")

api_v1_bp = Blueprint("api_v1", __name__, url_prefix="/api/v1")
csrf.exempt(api_v1_bp)

PREFIX = "/api/v1/"
# The accepted values and the limits are the trading vocabulary's (EXCHANGES, ACTIONS, PRODUCTS,
# MAX_QUANTITY, MAX_PRICE, MAX_BASKET, MAX_SPLIT_ORDERS, imported above).
PRICETYPES = PRICE_TYPES
ORDER_ENDPOINTS = frozenset({"placeorder", "placesmartorder", "modifyorder", "cancelorder", "cancelallorder",
                             "closeposition", "basketorder", "splitorder", "optionsorder", "optionsmultiorder"})
ALREADY_MATCHED = "Positions Already Matched. No Action needed."
# Endpoints whose successful answers hold no secret and only JSON values: their api_logs row stores the
# answer as it is, without a redacting walk (an order book's would cost more than building the book).
# Requests are redacted on every endpoint.
PLAIN_RESPONSES = frozenset({"orderbook", "tradebook", "positionbook", "holdings", "funds", "orderstatus",
                             "openposition", "quotes", "search", "symbol", "ping", "analyzer"})


# -- per-request state -------------------------------------------------------------------------------
@dataclass(slots=True)
class Call:
    started: float
    validated: float | None = None
    user_id: int | None = None
    mode: str | None = None
    broker: str | None = None
    broker_ms: float = 0.0
    orderid: str | None = None
    symbol: str | None = None
    body: Any = None
    response: Any = None
    response_ms: float = 0.0
    error: str | None = None
    # What the API log keeps of a bulky answer (a contract's rows, candles) in place of the answer itself.
    logged: dict | None = None


def current_call() -> Call:
    call = g.get("_api_call")
    if call is None:
        call = g._api_call = Call(time.perf_counter())
    return call


def _start_timer(_app: Flask, **_extra: Any) -> None:
    if request.path.startswith(PREFIX):
        g._api_call = Call(time.perf_counter())


def _install_timer(state) -> None:
    # request_started is sent before every before-request function (the rate limiter's included), so
    # the times logged cover the whole of the request's handling.
    request_started.connect(_start_timer, state.app)


api_v1_bp.record_once(_install_timer)


# -- rate limits -----------------------------------------------------------------------------------
def _json_body() -> Any:
    """The body as JSON (any content type: alerts often post JSON as text/plain); None when it is not
    JSON, or nested too deeply for the parser (a RecursionError, which silent=True does not catch)."""
    try:
        return request.get_json(force=True, silent=True)
    except RecursionError:
        return None


def _rate_key() -> str:
    # Once per request (the body is parsed once too: Werkzeug keeps the parsed JSON on the request).
    found = g.get("_api_rate_key")
    if found is not None:
        return found
    body = _json_body() if request.method == "POST" else request.args
    key = body.get("apikey") if isinstance(body, Mapping) else None
    # surrogatepass: JSON may carry lone surrogates ("\ud800"), which strict UTF-8 cannot encode.
    who = (hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()[:16]
           if isinstance(key, str) and key else "nokey")
    found = g._api_rate_key = f"{who}:{client_address()}"
    return found


def _config_limit(name: str):
    return lambda: current_app.config[name]


api_limit = limiter.shared_limit(_config_limit("API_RATE_LIMIT"), scope="api_v1_api", key_func=_rate_key)
order_limit = limiter.shared_limit(_config_limit("ORDER_RATE_LIMIT"), scope="api_v1_orders", key_func=_rate_key)
smart_limit = limiter.shared_limit(_config_limit("SMART_ORDER_RATE_LIMIT"), scope="api_v1_smart",
                                   key_func=_rate_key)


# -- validation ------------------------------------------------------------------------------------
def no_bool(v: Any) -> Any:
    if isinstance(v, bool):
        raise ValueError("must be a number, not true/false")
    return v


def upper(v: Any) -> Any:
    return v.strip().upper() if isinstance(v, str) else v


Quantity = Annotated[int, BeforeValidator(no_bool), Field(gt=0, le=MAX_QUANTITY)]
Count = Annotated[int, BeforeValidator(no_bool), Field(ge=0, le=MAX_QUANTITY)]
Signed = Annotated[int, BeforeValidator(no_bool), Field(ge=-MAX_QUANTITY, le=MAX_QUANTITY)]
Price = Annotated[Decimal, BeforeValidator(no_bool), Field(ge=0, le=MAX_PRICE)]
Exchange = Annotated[Literal[EXCHANGES], BeforeValidator(upper)]  # type: ignore[valid-type]
Action = Annotated[Literal[ACTIONS], BeforeValidator(upper)]  # type: ignore[valid-type]
PriceType = Annotated[Literal[PRICETYPES], BeforeValidator(upper)]  # type: ignore[valid-type]
Product = Annotated[Literal[PRODUCTS], BeforeValidator(upper)]  # type: ignore[valid-type]
def no_nul(v: Any) -> Any:
    # PostgreSQL text cannot hold NUL: refuse it here rather than fail at the INSERT (SQLite would store it).
    if isinstance(v, str) and "\x00" in v:
        raise ValueError("must not contain NUL characters")
    return v


Text = BeforeValidator(no_nul)
# One instrument, one name: a symbol is upper-cased (and stripped) at the door, before any lookup, lock or
# row, as OpenAlgo does; the use case then journals the master contract's own spelling.
Symbol = Annotated[str, Field(min_length=1, max_length=64), Text, BeforeValidator(upper)]
Strategy = Annotated[str, Field(min_length=1, max_length=100), Text]
OrderId = Annotated[str, Field(min_length=1, max_length=64), Text]

ALLOWED = {"exchange": EXCHANGES, "action": ACTIONS, "pricetype": PRICETYPES, "product": PRODUCTS}


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid", coerce_numbers_to_str=True, str_strip_whitespace=True)


class Keyed(Body):
    apikey: Annotated[str, Field(min_length=1, max_length=256)]


class OrderFields(Body):
    exchange: Exchange
    symbol: Symbol
    action: Action
    quantity: Quantity
    pricetype: PriceType = "MARKET"
    product: Product = "MIS"
    price: Price = Decimal(0)
    trigger_price: Price = Decimal(0)
    disclosed_quantity: Count = 0


class PlaceOrder(OrderFields, Keyed):
    strategy: Strategy


class SmartOrder(PlaceOrder):
    quantity: Count  # type: ignore[assignment]  # may be 0: the position_size decides
    position_size: Signed


class SplitOrder(PlaceOrder):
    splitsize: Quantity

    @model_validator(mode="after")
    def _few_enough(self) -> SplitOrder:
        if math.ceil(self.quantity / self.splitsize) > MAX_SPLIT_ORDERS:
            raise ValueError(f"splitsize: quantity / splitsize gives more than {MAX_SPLIT_ORDERS} orders")
        return self


class BasketItem(OrderFields):
    pass


class BasketOrder(Keyed):
    strategy: Strategy
    orders: Annotated[list[BasketItem], Field(min_length=1, max_length=MAX_BASKET)]


class ModifyOrder(Keyed):
    strategy: Strategy
    exchange: Exchange
    symbol: Symbol
    orderid: OrderId
    action: Action
    product: Product
    pricetype: PriceType
    price: Price
    quantity: Quantity
    disclosed_quantity: Count
    trigger_price: Price


class WithOrderId(Keyed):
    strategy: Strategy
    orderid: OrderId


class StrategyOnly(Keyed):
    strategy: Strategy


class OpenPosition(Keyed):
    strategy: Strategy
    symbol: Symbol
    exchange: Exchange
    product: Product


class KeyOnly(Keyed):
    pass


class SymbolQuery(Keyed):
    symbol: Symbol
    exchange: Exchange


class SearchQuery(Keyed):
    query: Annotated[str, Field(min_length=1, max_length=100), Text]
    exchange: Exchange = None  # type: ignore[assignment]  # optional; null is not an exchange


class AnalyzerToggle(Keyed):
    mode: bool


# -- the market calendar -------------------------------------------------------------------------------
CALENDAR_YEARS = (2020, 2050)  # the years OpenAlgo's market calendar endpoints accept
_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def _year_or_now(v: Any) -> Any:
    # An explicit null is the current year, as an absent year is.
    return calendar.current_year() if v is None else no_bool(v)


def iso_date(v: Any) -> Any:
    if isinstance(v, str) and _ISO_DATE.match(v.strip()):
        try:
            return dt.date.fromisoformat(v.strip())
        except ValueError:
            pass
    raise ValueError("must be a date written YYYY-MM-DD, e.g. 2026-01-26")


CalendarYear = Annotated[int, BeforeValidator(_year_or_now), Field(ge=CALENDAR_YEARS[0], le=CALENDAR_YEARS[1])]


class MarketHolidays(Keyed):
    year: CalendarYear = None  # type: ignore[assignment]  # absent: the current year (the view decides)


class MarketTimings(Keyed):
    date: Annotated[dt.date, BeforeValidator(iso_date)]


def _loc(parts: tuple) -> str:
    out = ""
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out


def _describe(err: dict) -> str:
    loc = _loc(err.get("loc", ()))
    field = str(err["loc"][-1]) if err.get("loc") else ""
    kind, ctx = err["type"], err.get("ctx") or {}
    if kind == "missing":
        return f"Missing mandatory field: {loc}"
    if kind == "extra_forbidden":
        return f"unknown field: {loc}"
    if kind == "literal_error" and field in ALLOWED:
        return f"{loc} must be one of {', '.join(ALLOWED[field])}"
    if kind in ("int_parsing", "int_from_float", "int_type"):
        return f"{loc} must be a whole number"
    if kind in ("decimal_parsing", "decimal_type", "finite_number", "decimal_max_digits", "decimal_max_places",
                "decimal_whole_digits"):
        return f"{loc} must be a number"
    if kind == "greater_than":
        return f"{loc} must be greater than {ctx.get('gt')}"
    if kind == "greater_than_equal":
        return f"{loc} must not be negative" if str(ctx.get("ge")) == "0" else f"{loc} must be at least {ctx['ge']}"
    if kind in ("less_than_equal", "less_than"):
        return f"{loc} is out of range (at most {ctx.get('le', ctx.get('lt'))})"
    if kind == "string_too_short":
        return f"{loc} must not be empty"
    if kind == "string_too_long":
        return f"{loc} must be at most {ctx.get('max_length')} characters"
    if kind == "string_type":
        return f"{loc} must be a string"
    if kind in ("bool_parsing", "bool_type"):
        return f"{loc} must be true or false"
    if kind == "too_short":
        return f"{loc} must have at least {ctx.get('min_length')} item(s)"
    if kind == "too_long":
        return f"{loc} must have at most {ctx.get('max_length')} items"
    if kind == "list_type":
        return f"{loc} must be a list"
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        return f"{loc} must be an object" if loc else "the request body must be a JSON object"
    msg = str(err.get("msg", "invalid value")).removeprefix("Value error, ")
    return f"{loc} {msg}" if loc and not msg.startswith(f"{field}:") else msg


class ApiFailure(Exception):
    """An answer in words: {"status": "error", "message": ...} with `status`."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


def parse(model: type[BaseModel], scope: str, body: Any = None) -> tuple[Any, int]:
    """The validated body (the request's JSON, or `body`: a GET's query arguments) and the user the key acts
    for; ApiFailure (400/403) otherwise."""
    call = current_call()
    body = _json_body() if body is None else body
    call.body = body
    if not isinstance(body, dict):
        raise ApiFailure("Invalid request: the body must be a JSON object")
    try:
        parsed = model.model_validate(body)
    except ValidationError as exc:
        errors = exc.errors(include_url=False, include_input=False)
        raise ApiFailure("; ".join(_describe(e) for e in errors[:5])) from None
    try:
        principal = api_keys.verify(parsed.apikey, scope)
    except ApiKeyError as exc:
        raise ApiFailure(str(exc) or "Invalid openalgo apikey", 403) from None
    call.user_id = principal.user_id
    risk.note_api_key(principal.key_id)  # per-API-key approvals (cleared when the request ends: api_v1_risk)
    traffic.set_user(principal.user_id)
    call.validated = time.perf_counter()
    return parsed, principal.user_id


def order_input(strategy: str, f: OrderFields):
    return OrderInput(strategy=strategy, exchange=f.exchange, symbol=f.symbol, action=f.action,
                      quantity=f.quantity, pricetype=f.pricetype, product=f.product, price=f.price,
                      trigger_price=f.trigger_price, disclosed_quantity=f.disclosed_quantity)


def venue_of(uid: int, orderid: str | None = None) -> venues.Venue:
    """The one venue decision of this call; its label goes into the answer and both log rows."""
    call = current_call()
    try:
        venue = venues.venue_for(uid, orderid=orderid)
    except OrderError:
        call.mode = venues.mode_label(uid)
        raise
    call.mode, call.broker = venue.label, venue.broker
    return venue


# -- responses -------------------------------------------------------------------------------------
_ORJSON_OPTIONS = orjson.OPT_SORT_KEYS | orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS


def _encode(body: dict) -> bytes | str:
    """The answer as JSON: orjson, with Flask's own choices (sorted keys; Decimals, dates and dataclasses
    through Flask's JSON provider). What orjson refuses (an integer beyond 64 bits, a lone surrogate)
    goes through Flask's encoder as a whole."""
    try:
        return orjson.dumps(body, default=current_app.json.default, option=_ORJSON_OPTIONS)
    except TypeError:
        return json.dumps(body)


def respond(body: dict, status: int = 200) -> Response:
    call = current_call()
    t = time.perf_counter()
    resp = current_app.response_class(_encode(body), status=status, mimetype="application/json")
    call.response_ms = (time.perf_counter() - t) * 1000
    call.response = body
    return resp


def success(body: dict, mode: str | None = None) -> Response:
    call = current_call()
    mode = mode or call.mode
    call.mode = mode
    out = {"status": "success", **body}
    if mode == "analyze":
        out["mode"] = "analyze"
    return respond(out)


def error_answer(message: str, status: int, **extra: Any) -> Response:
    current_call().error = message
    return respond({"status": "error", "message": message, **extra}, status)


def record_placed(placed) -> None:
    call = current_call()
    call.mode, call.broker, call.broker_ms, call.orderid = placed.mode, placed.broker, placed.broker_ms, placed.orderid


# -- orders ----------------------------------------------------------------------------------------
@api_v1_bp.post("/placeorder", strict_slashes=False)
@order_limit
def placeorder():
    data, uid = parse(PlaceOrder, "orders")

    current_call().symbol = data.symbol
    placed = orders.place_order(venue_of(uid), order_input(data.strategy, data))
    record_placed(placed)
    return success({"orderid": placed.orderid})


@api_v1_bp.post("/placesmartorder", strict_slashes=False)
@smart_limit
def placesmartorder():
    data, uid = parse(SmartOrder, "orders")

    current_call().symbol = data.symbol
    placed = orders.place_smart_order(venue_of(uid), order_input(data.strategy, data), data.position_size)
    if placed is None:
        return success({"message": ALREADY_MATCHED})
    record_placed(placed)
    return success({"orderid": placed.orderid})


@api_v1_bp.post("/basketorder", strict_slashes=False)
@order_limit
def basketorder():
    data, uid = parse(BasketOrder, "orders")

    results = orders.basket_order(venue_of(uid), data.strategy, [order_input(data.strategy, o) for o in data.orders])
    return success({"results": results})


@api_v1_bp.post("/splitorder", strict_slashes=False)
@order_limit
def splitorder():
    data, uid = parse(SplitOrder, "orders")

    current_call().symbol = data.symbol
    result = orders.split_order(venue_of(uid), order_input(data.strategy, data), data.splitsize)
    return success(dict(result))


@api_v1_bp.post("/modifyorder", strict_slashes=False)
@order_limit
def modifyorder():
    data, uid = parse(ModifyOrder, "orders")

    current_call().symbol = data.symbol
    placed = orders.modify_order(venue_of(uid, data.orderid), data.orderid, order_input(data.strategy, data))
    record_placed(placed)
    return success({"orderid": placed.orderid})


@api_v1_bp.post("/cancelorder", strict_slashes=False)
@order_limit
def cancelorder():
    data, uid = parse(WithOrderId, "orders")

    orderid = orders.cancel_order(venue_of(uid, data.orderid), data.orderid)
    current_call().orderid = orderid
    return success({"orderid": orderid})


@api_v1_bp.post("/cancelallorder", strict_slashes=False)
@order_limit
def cancelallorder():
    _data, uid = parse(StrategyOnly, "orders")

    canceled, failed = orders.cancel_all_orders(venue_of(uid))
    return success({"message": f"Canceled {len(canceled)} orders. Failed to cancel {len(failed)} orders.",
                     "canceled_orders": list(canceled), "failed_cancellations": list(failed)})


@api_v1_bp.post("/closeposition", strict_slashes=False)
@order_limit
def closeposition():
    _data, uid = parse(StrategyOnly, "orders")

    orders.close_all_positions(venue_of(uid))
    return success({"message": "All Open Positions Squared Off"})


@api_v1_bp.post("/orderstatus", strict_slashes=False)
@api_limit
def orderstatus():
    data, uid = parse(WithOrderId, "read")

    return success({"data": orders.order_status(venue_of(uid, data.orderid), data.orderid)})


@api_v1_bp.post("/openposition", strict_slashes=False)
@api_limit
def openposition():
    data, uid = parse(OpenPosition, "read")

    quantity = orders.open_position(venue_of(uid), data.symbol, data.exchange, data.product)
    return success({"quantity": quantity})


# -- books and account -----------------------------------------------------------------------------
def _book(getter: str) -> Response:
    _data, uid = parse(KeyOnly, "read")
    return success({"data": getattr(books, getter)(venue_of(uid))})


def _book_view(getter: str):
    def view() -> Response:
        return _book(getter)

    view.__name__ = getter
    return view


# orderbook, tradebook, positionbook, holdings, funds: one shape each, read through the call's venue.
for _getter in ("orderbook", "tradebook", "positionbook", "holdings", "funds"):
    api_v1_bp.post(f"/{_getter}", strict_slashes=False)(api_limit(_book_view(_getter)))


@api_v1_bp.post("/analyzer", strict_slashes=False)
@api_limit
def analyzer():
    _data, uid = parse(KeyOnly, "read")

    data = books.analyzer_status(uid)
    current_call().mode = data.get("mode")
    return respond({"status": "success", "data": data})


@api_v1_bp.post("/analyzer/toggle", strict_slashes=False)
@api_limit
def analyzer_toggle():
    # Switching a user to live trading is an order-level permission, not a read.
    data, uid = parse(AnalyzerToggle, "orders")

    venues.set_analyze(uid, data.mode, ip=client_address())
    status = dict(books.analyzer_status(uid))
    status["message"] = f"Analyzer mode switched to {status.get('mode', 'analyze' if data.mode else 'live')}"
    current_call().mode = status.get("mode")
    return respond({"status": "success", "data": status})


# -- data and status -------------------------------------------------------------------------------
@api_v1_bp.post("/quotes", strict_slashes=False)
@api_limit
def quotes():
    data, uid = parse(SymbolQuery, "data")
    quote = books.quote(venue_of(uid), data.symbol, data.exchange)
    return respond({"status": "success", "data": quote.to_dict()})


@api_v1_bp.post("/search", strict_slashes=False)
@api_limit
def search():
    data, _uid = parse(SearchQuery, "data")
    found = [info.to_dict() for info in symbol_index.search(data.query, data.exchange)]
    return respond({"status": "success", "message": f"Found {len(found)} matching symbols", "data": found})


@api_v1_bp.post("/symbol", strict_slashes=False)
@api_limit
def symbol():
    data, _uid = parse(SymbolQuery, "data")
    info = symbol_index.get_symbol_info(data.symbol, data.exchange)
    if info is None:
        raise ApiFailure(f"Symbol {data.symbol} not found in exchange {data.exchange}", 404)
    return respond({"status": "success", "data": info.to_dict()})


@api_v1_bp.post("/ping", strict_slashes=False)
@api_limit
def ping():
    _data, uid = parse(KeyOnly, "data")
    venue = venue_of(uid)  # live mode needs a live broker session, as every broker call does
    active = broker_login.active_session(uid) if venue.is_analyze else venue.active
    return respond({"status": "success", "data": {"message": "pong", "broker": active.broker if active else "paper"}})


@api_v1_bp.post("/market/holidays", strict_slashes=False)
@api_limit
def market_holidays():
    data, _uid = parse(MarketHolidays, "data")
    year = data.year if data.year is not None else calendar.current_year()
    try:
        found = calendar.holidays(year)
    except calendar.CalendarError as exc:  # a year without calendar data: the message names the years there are
        raise ApiFailure(str(exc)) from None
    return respond({"status": "success", "year": year, "timezone": calendar.timezone_name(), "data": found})


@api_v1_bp.post("/market/timings", strict_slashes=False)
@api_limit
def market_timings():
    data, _uid = parse(MarketTimings, "data")
    try:
        found = calendar.timings(data.date)
    except calendar.CalendarError as exc:
        raise ApiFailure(str(exc)) from None
    return respond({"status": "success", "data": found})


# -- errors ----------------------------------------------------------------------------------------
def _retry_after() -> int:
    current = limiter.current_limit
    if current is not None:
        try:
            return max(1, int(current.reset_at - time.time()))
        except Exception:  # noqa: BLE001, S110 - the storage may be unreachable: fall back to one second
            pass
    return 1


@api_v1_bp.errorhandler(429)
def _rate_limited(exc: HTTPException) -> Response:
    retry = _retry_after()
    resp = error_answer(f"Rate limit exceeded ({exc.description}): retry after {retry} s", 429, retry_after=retry)
    resp.headers["Retry-After"] = str(retry)
    return resp


@api_v1_bp.errorhandler(ApiFailure)
def _failure(exc: ApiFailure) -> Response:
    return error_answer(exc.message, exc.status)


@api_v1_bp.errorhandler(HTTPException)
def _http_error(exc: HTTPException) -> Response:
    return error_answer(exc.description or exc.name, exc.code or 500)


@api_v1_bp.errorhandler(Exception)
def _unexpected(exc: Exception) -> Response:
    if isinstance(exc, OrderError):
        return error_answer(exc.message or str(exc), exc.status or 400)
    if isinstance(exc, UnknownSymbolError):
        return error_answer(str(exc), 404)
    log.exception("unhandled error in %s", request.path)
    return error_answer("internal error", 500)


# -- logging ---------------------------------------------------------------------------------------
@api_v1_bp.after_app_request
def _log_call(response: Response) -> Response:
    path = request.path
    if not path.startswith(PREFIX):
        return response
    try:
        _record(path[len(PREFIX):].strip("/") or "?", response)
    except Exception:  # noqa: BLE001 - logging must never fail the call
        log.exception("could not log the API call to %s", path)
    return response


def _record(api_type: str, response: Response) -> None:
    call = current_call()
    end = time.perf_counter()
    total_ms = (end - call.started) * 1000
    body = call.body if call.body is not None else _json_body()
    payload = call.logged if call.logged is not None and response.status_code == 200 else call.response
    if payload is None and response.is_json:
        payload = response.get_json(silent=True)
    status = response.status_code
    if api_type in ORDER_ENDPOINTS and call.user_id is not None and call.mode is None:
        try:  # a call refused before its venue was decided (validation): the user's mode as its label
            call.mode = venues.mode_label(call.user_id)
        except Exception:  # noqa: BLE001 - the mode is a label here; the call's answer is already made
            call.mode = None
    observability.log_api_call(api_type, call.user_id, call.mode, body, payload, status, total_ms, client_address(),
                               redact_response=not (status == 200 and (api_type in PLAIN_RESPONSES
                                                                       or call.logged is not None)
                                                    and call.response is not None))
    if api_type in ORDER_ENDPOINTS and call.user_id is not None:
        validated = call.validated if call.validated is not None else end
        observability.log_order_latency(
            user_id=call.user_id, endpoint=api_type, mode=call.mode or "live",
            broker=call.broker or ("paper" if call.mode == "analyze" else None), orderid=call.orderid,
            symbol=call.symbol, validation_ms=(validated - call.started) * 1000, broker_ms=call.broker_ms,
            response_ms=call.response_ms, total_ms=total_ms, is_success=status < 400, error=call.error)
