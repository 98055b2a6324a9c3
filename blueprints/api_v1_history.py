"""REST API v1: `history` and `intervals` (docs/api.md, Market data), on the API blueprint of blueprints.api_v1.

`history` answers from the candle store, after fetching what it lacks through the call's venue (source "api"),
or from the store alone (source "db"). Its `api_logs` row keeps the request and the number of candles, not the
candles: a 1-minute week is thousands of rows, which the log would otherwise hold once per call.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

import orjson
from pydantic import BeforeValidator, model_validator

from blueprints.api_v1 import (
    ApiFailure,
    Exchange,
    Keyed,
    Symbol,
    api_limit,
    api_v1_bp,
    current_call,
    iso_date,
    parse,
    success,
    venue_of,
)
from services.market import history as store
from services.market.quotes import UnknownSymbolError
from services.trading import history

FIRST_DATE, LAST_DATE = dt.date(1990, 1, 1), dt.date(2099, 12, 31)


def _interval(v: Any) -> Any:
    v = v.strip() if isinstance(v, str) else v
    if v not in store.INTERVALS:
        raise ValueError(f"must be one of {', '.join(store.INTERVALS)}")
    return v


def _date(v: Any) -> dt.date:
    day = iso_date(v)
    if not FIRST_DATE <= day <= LAST_DATE:
        raise ValueError(f"must be a date from {FIRST_DATE.isoformat()} to {LAST_DATE.isoformat()}")
    return day


def _source(v: Any) -> Any:
    v = v.strip().lower() if isinstance(v, str) else v
    if v not in ("api", "db"):
        raise ValueError("must be api (the store, filled from the broker or the simulator) or db (the store only)")
    return v


Day = Annotated[dt.date, BeforeValidator(_date)]


class HistoryQuery(Keyed):
    symbol: Symbol
    exchange: Exchange
    interval: Annotated[str, BeforeValidator(_interval)]
    start_date: Day
    end_date: Day
    source: Annotated[Literal["api", "db"], BeforeValidator(_source)] = "api"

    @model_validator(mode="after")
    def _in_order(self) -> HistoryQuery:
        if self.start_date > self.end_date:
            raise ValueError("start_date must not be after end_date")
        return self


class IntervalsQuery(Keyed):
    pass


@api_v1_bp.post("/history", strict_slashes=False)
@api_limit
def history_endpoint():
    data, uid = parse(HistoryQuery, "data")
    call = current_call()
    call.symbol = data.symbol
    try:
        candles = history.history(venue_of(uid), data.symbol, data.exchange, data.interval, data.start_date,
                                  data.end_date, source=data.source)
    except UnknownSymbolError as exc:  # 404, as on every call naming a symbol (docs/api.md, difference 7)
        raise ApiFailure(str(exc), 404) from None
    except store.HistoryError as exc:
        raise ApiFailure(exc.message, exc.status) from None
    # The candles are JSON already (the database wrote them): embedded as they are.
    response = success({"data": orjson.Fragment(candles.json)})
    call.response = {"status": "success", "data": f"{candles.count} candles",
                     **({"mode": call.mode} if call.mode == "analyze" else {})}
    return response


@api_v1_bp.post("/intervals", strict_slashes=False)
@api_limit
def intervals_endpoint():
    _data, uid = parse(IntervalsQuery, "data")
    return success({"data": history.intervals(venue_of(uid))})
