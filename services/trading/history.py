"""History through the call's venue: which source fills the candle store (services.market.history) for a call.

Analyze mode's candles are the quote simulator's (deterministic, stored as the "simulator" series); live mode's
come from the user's broker session (`BrokerClient.history`, the intervals it serves in HISTORY_INTERVALS),
stored under the broker's name, so simulated and real candles never mix. Either way the store answers, and the
source is called only for the days it lacks.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

from brokers.base import BrokerError
from services.accounts import broker_login
from services.market import history as store
from services.market import symbol_index
from services.market.quotes import UnknownSymbolError
from services.market.symbol_index import SymbolInfo
from services.trading import venues
from services.trading.venues import Venue

__all__ = ["fill", "history", "intervals", "source_for", "source_name"]

DERIVATIVES = ("FUT", "CE", "PE")  # open interest is asked for these


def source_for(venue: Venue | None) -> store.Source:
    """The venue's source of candles: the simulator for analyze mode (and for None: a download without a user),
    the live broker session's historical API for live mode. A broker's refusal is answered as the venue answers
    any (OrderError: 403 for a dead session, else the broker's message and status)."""
    if venue is None or venue.is_analyze:
        return store.simulator_source()
    client = venue.client

    def fetch(info: SymbolInfo, interval: str, start: dt.datetime, end: dt.datetime) -> list[tuple]:
        try:
            candles = client.history(info.brexchange, info.brsymbol, info.token, interval, start, end,
                                     oi=info.instrumenttype in DERIVATIVES)
        except BrokerError as exc:
            raise venue.refused(exc) from None
        return [(c.timestamp.timestamp(), c.open, c.high, c.low, c.close, c.volume, c.oi) for c in candles]

    return store.Source(venue.broker, tuple(getattr(client, "HISTORY_INTERVALS", ())), fetch)


def source_name(user_id: int) -> str | None:
    """The name the user's current mode stores candles under (for pages: no broker call is made): the
    simulator's in analyze mode, the connected broker's in live mode, None in live mode without a session."""
    if venues.is_analyze(user_id):
        return store.simulator_source().name
    active = broker_login.active_session(user_id)
    return active.broker if active is not None and active.broker != venues.PAPER else None


def _info(symbol: str, exchange: str) -> SymbolInfo:
    info = symbol_index.get_symbol_info(symbol, exchange)
    if info is None:
        raise UnknownSymbolError(f"Symbol {symbol} not found in exchange {exchange}")
    return info


def history(venue: Venue, symbol: str, exchange: str, interval: str, start: dt.date, end: dt.date, *,
            source: str = "api", now: dt.datetime | None = None) -> store.Candles:
    """The `history` data: `source` "api" serves the store after fetching what it lacks from the venue's
    source, "db" the store alone. UnknownSymbolError, store.HistoryError, OrderError (the broker's refusal)."""
    info = _info(symbol, exchange)
    return store.history(info, interval, start, end, source_for(venue), fetch=source != "db", now=now)


def fill(venue: Venue | None, symbol: str, exchange: str, interval: str, start: dt.date, end: dt.date, *,
         now: dt.datetime | None = None, progress: Callable[[int], None] | None = None) -> int:
    """Fill the store with [start, end] of `interval` from the venue's source (None: the simulator), however
    long the span (`flask history download`). Returns the candles stored; `progress(days)` as days are done."""
    info = _info(symbol, exchange)
    return store.fill(info, interval, start, end, source_for(venue), now=now, progress=progress)


def intervals(venue: Venue) -> dict[str, list[str]]:
    """The `intervals` data: what the venue's source serves natively and what the store builds from it."""
    return store.grouped(store.available(source_for(venue).native))
