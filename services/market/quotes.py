"""Quotes: the latest price of an instrument, from the live broker or from a deterministic simulator.

This module owns
- the quotes store (`quotes` table): `store_quote()` upserts what the connected live broker returns,
  `stored_quote()` reads it back;
- the price simulator: a seeded random walk per instrument around a base price (the sample
  contract's spot, or a stable made-up price), the same in every process and every run for a given
  seed and time, with no state to keep. A trading day's path runs from the previous close to the
  day's close (a Brownian bridge over the 375 minutes of the session); closes follow a walk of daily
  shocks. Futures carry a small premium; options are priced from their simulated underlying
  (intrinsic value plus a time value that shrinks with distance and expiry).
- `get_quote()`: what the paper broker calls. With a live broker it fetches (through the `fetch`
  callable the caller passes, so this module does not depend on an adapter's signature), stores and
  returns; otherwise a recent broker quote from the store, else the simulator.
- the `quotes` API endpoint asks the call's venue (services.trading): analyze mode get_quote(), live
  mode the broker's adapter through `fetch`.
Prices are Decimal, rounded to the instrument's tick.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import logging
import math
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from decimal import ROUND_HALF_UP, Decimal
from typing import Any
from zoneinfo import ZoneInfo

from flask import current_app, has_app_context
from sqlalchemy import select

import config as config_module
from database import db, upsert
from database.symbol import Quote
from database.types import utcnow
from services.market import symbol_index
from services.market.sample_contract import base_price, fallback_price
from vocabulary import DEFAULT_EXCHANGE_TIMEZONE

log = logging.getLogger("algobridge.symbols")

SESSION_OPEN = dt.time(9, 15)  # exchange time (EXCHANGE_TIMEZONE)
SESSION_MINUTES = 375
# A broker quote older than this is not served in place of the simulator when no broker is connected.
STORED_FRESH_SECONDS = 300
_DAILY_SIGMA = 0.012
_WINDOW_DAYS = 20  # daily shocks summed over a window: a local random walk that stays near its base


class UnknownSymbolError(LookupError):
    """The symbol is not in the master contract for that exchange (API: 404)."""


@dataclass
class QuoteData:
    ltp: Decimal
    bid: Decimal
    ask: Decimal
    open: Decimal
    high: Decimal
    low: Decimal
    prev_close: Decimal
    volume: int
    oi: int
    source: str
    updated_at: dt.datetime

    def to_dict(self) -> dict[str, Any]:
        """The `quotes` data (docs/api.md): open, high, low, ltp, ask, bid, prev_close, volume, oi."""
        return {
            "open": float(self.open),
            "high": float(self.high),
            "low": float(self.low),
            "ltp": float(self.ltp),
            "ask": float(self.ask),
            "bid": float(self.bid),
            "prev_close": float(self.prev_close),
            "volume": int(self.volume),
            "oi": int(self.oi),
        }


def _round_tick(value: float, tick: Decimal) -> Decimal:
    tick = tick if tick and tick > 0 else Decimal("0.05")
    steps = (Decimal(repr(value)) / tick).quantize(Decimal(1), rounding=ROUND_HALF_UP)
    return max(steps, Decimal(1)) * tick


def _seed(*parts: Any) -> int:
    return int.from_bytes(hashlib.blake2b(":".join(map(str, parts)).encode(), digest_size=8).digest(), "big")


class PriceSimulator:
    """Deterministic prices: the same (seed, instrument, time) gives the same quote everywhere."""

    def __init__(self, seed: int = 0, clock: Callable[[], float] = time.time,
                 tz: dt.tzinfo | None = None) -> None:
        """`tz` is the exchange's zone (the session opens at SESSION_OPEN in it, and days turn at its
        midnight); the default is EXCHANGE_TIMEZONE's default."""
        self.seed = seed
        self.clock = clock
        self.tz = tz or ZoneInfo(DEFAULT_EXCHANGE_TIMEZONE)

    # -- the underlying walk ------------------------------------------------------------------
    def _shock(self, key: str, day: int) -> float:
        return random.Random(_seed(self.seed, key, day)).gauss(0.0, 1.0)  # noqa: S311 - a simulation

    def _close(self, key: str, base: float, day: int) -> float:
        total = sum(self._shock(key, d) for d in range(day - _WINDOW_DAYS + 1, day + 1))
        return base * math.exp(_DAILY_SIGMA * total / math.sqrt(_WINDOW_DAYS) * 2)

    @functools.lru_cache(maxsize=4096)  # noqa: B019 - bounded, and simulators live as long as the process
    def _day_path(self, key: str, base: float, day: int) -> tuple[float, tuple[float, ...], tuple[float, ...],
                                                                  tuple[float, ...]]:
        """(prev close, log-price path, running high, running low) over the session's minutes."""
        prev = self._close(key, base, day - 1)
        close = self._close(key, base, day)
        rng = random.Random(_seed(self.seed, key, day, "intraday"))  # noqa: S311 - a simulation, not a secret
        sd = _DAILY_SIGMA / math.sqrt(SESSION_MINUTES)
        walk = [0.0]
        for _ in range(SESSION_MINUTES):
            walk.append(walk[-1] + rng.gauss(0.0, sd))
        a, b, end = math.log(prev), math.log(close), walk[-1]
        path, highs, lows = [], [], []
        hi = lo = None
        for m, w in enumerate(walk):
            f = m / SESSION_MINUTES
            p = math.exp(a + f * (b - a) + (w - f * end))
            path.append(p)
            hi = p if hi is None or p > hi else hi
            lo = p if lo is None or p < lo else lo
            highs.append(hi)
            lows.append(lo)
        return prev, tuple(path), tuple(highs), tuple(lows)

    def _when(self, at: float | None) -> tuple[int, int, dt.datetime]:
        now = dt.datetime.fromtimestamp(self.clock() if at is None else at, self.tz)
        day = now.date().toordinal()
        minutes = (now.hour * 60 + now.minute) - (SESSION_OPEN.hour * 60 + SESSION_OPEN.minute)
        return day, min(max(minutes, 0), SESSION_MINUTES), now

    def spot(self, key: str, base: Decimal, at: float | None = None) -> tuple[float, float, float, float, float, int]:
        """(ltp, open, high, low, prev close, minute of session) of the walk named `key`."""
        day, minute, _ = self._when(at)
        prev, path, highs, lows = self._day_path(key, float(base), day)
        return path[minute], path[0], highs[minute], lows[minute], prev, minute

    # -- instruments ---------------------------------------------------------------------------
    def quote(self, info: symbol_index.SymbolInfo, at: float | None = None) -> QuoteData:
        tick = info.tick_size
        itype = info.instrumenttype
        underlying = (info.name or info.symbol) if itype in ("FUT", "CE", "PE") else info.symbol
        key = underlying.replace(" ", "").upper()

        base = base_price(key) or fallback_price(key)
        s, o, h, lo, prev, minute = self.spot(key, base, at)
        day, _, now = self._when(at)
        if itype == "FUT":
            years = max((info.expiry.toordinal() - day) / 365, 0) if info.expiry else 0
            carry = 1 + 0.07 * years
            s, o, h, lo, prev = (x * carry for x in (s, o, h, lo, prev))
        elif itype in ("CE", "PE"):
            s, o, h, lo, prev = (self._option(info, x, day) for x in (s, o, h, lo, prev))
            h, lo = max(s, o, h, lo), min(s, o, h, lo)
        rng = random.Random(_seed(self.seed, info.exchange, info.symbol, day))  # noqa: S311 - a simulation, not a secret
        volume = int(rng.uniform(2e4, 5e6) * minute / SESSION_MINUTES)
        oi = int(rng.uniform(1e4, 5e6)) if itype in ("FUT", "CE", "PE") else 0
        ltp = _round_tick(s, tick)
        spread = tick if tick > 0 else Decimal("0.05")
        return QuoteData(
            ltp=ltp,
            bid=max(ltp - spread, spread),
            ask=ltp + spread,
            open=_round_tick(o, tick),
            high=max(_round_tick(h, tick), ltp),
            low=min(_round_tick(lo, tick), ltp),
            prev_close=_round_tick(prev, tick),
            volume=volume,
            oi=oi,
            source="simulator",
            updated_at=now.astimezone(dt.UTC),
        )

    @staticmethod
    def _option(info: symbol_index.SymbolInfo, spot: float, day: int) -> float:
        strike = float(info.strike or 0)
        days = max((info.expiry.toordinal() - day) if info.expiry else 0, 0) + 0.5
        is_index = (info.name or "").endswith(("NIFTY", "SENSEX", "BANKEX"))
        vol = 0.15 if is_index else 0.3
        sd = spot * vol * math.sqrt(days / 365)
        intrinsic = max(spot - strike, 0.0) if info.instrumenttype == "CE" else max(strike - spot, 0.0)
        time_value = 0.4 * sd * math.exp(-0.5 * ((strike - spot) / sd) ** 2) if sd > 0 else 0.0
        return intrinsic + time_value


_simulator = PriceSimulator()


def simulator() -> PriceSimulator:
    """The process's simulator (seed from the app config QUOTE_SIMULATOR_SEED when set, sessions in
    EXCHANGE_TIMEZONE)."""
    global _simulator

    if has_app_context():
        seed = int(current_app.config.get("QUOTE_SIMULATOR_SEED", 0) or 0)
        tz = config_module.exchange_tz(current_app.config)
        if seed != _simulator.seed or tz != _simulator.tz:
            _simulator = PriceSimulator(seed, tz=tz)
    return _simulator


# --------------------------------------------------------------------------------------------
# The store


def _info(symbol: str, exchange: str) -> symbol_index.SymbolInfo:
    info = symbol_index.get_symbol_info(symbol, exchange)
    if info is None:
        raise UnknownSymbolError(f"Symbol {symbol} not found in exchange {exchange}")
    return info


def store_quote(symbol: str, exchange: str, data: Mapping[str, Any] | QuoteData, source: str) -> None:
    """Upsert the latest quote of an instrument (adds to the current unit of work; the caller commits)."""
    values = asdict(data) if isinstance(data, QuoteData) else dict(data)
    row = {"symbol": symbol, "exchange": exchange, "source": source[:16], "updated_at": utcnow()}
    for field in ("ltp", "bid", "ask", "open", "high", "low", "prev_close"):
        v = values.get(field, 0)
        row[field] = v if isinstance(v, Decimal) else Decimal(str(v or 0))
    for field in ("volume", "oi"):
        row[field] = int(values.get(field) or 0)
    table = Quote.__table__
    stmt = upsert(table, db.session.get_bind().dialect.name).values(**row)
    update = {k: stmt.excluded[k] for k in row if k not in ("symbol", "exchange")}
    db.session.execute(stmt.on_conflict_do_update(index_elements=["exchange", "symbol"], set_=update))


def stored_quote(symbol: str, exchange: str) -> QuoteData | None:
    row = db.session.execute(select(Quote).where(Quote.symbol == symbol, Quote.exchange == exchange)).scalar()
    if row is None:
        return None
    return QuoteData(ltp=row.ltp, bid=row.bid, ask=row.ask, open=row.open, high=row.high, low=row.low,
                     prev_close=row.prev_close, volume=row.volume, oi=row.oi, source=row.source,
                     updated_at=row.updated_at)


def get_quote(symbol: str, exchange: str, fetch: Callable[[symbol_index.SymbolInfo], Mapping[str, Any]] | None = None,
              broker: str = "broker") -> QuoteData:
    """The latest quote of (symbol, exchange).

    `fetch(info)` is the connected live broker's quote call for that instrument (info carries
    brsymbol, brexchange and token), returning a mapping with ltp/bid/ask/open/high/low/prev_close/
    volume/oi; its answer is stored (the caller commits) and returned. Without `fetch`, a broker quote
    stored in the last STORED_FRESH_SECONDS is returned, else the simulator's.
    Raises UnknownSymbolError for a symbol not in the contract.
    """
    exchange = exchange.upper()
    info = _info(symbol, exchange)
    if fetch is not None:
        data = dict(fetch(info))
        store_quote(info.symbol, info.exchange, data, broker)
        return QuoteData(**{k: _dec(data.get(k)) for k in ("ltp", "bid", "ask", "open", "high", "low", "prev_close")},
                         volume=int(data.get("volume") or 0), oi=int(data.get("oi") or 0), source=broker,
                         updated_at=utcnow())
    stored = stored_quote(info.symbol, info.exchange)
    if (stored is not None and stored.source != "simulator"
            and (utcnow() - stored.updated_at).total_seconds() <= STORED_FRESH_SECONDS):
        return stored
    return simulator().quote(info)


def _dec(v: Any) -> Decimal:
    return v if isinstance(v, Decimal) else Decimal(str(v or 0))


def ltp(symbol: str, exchange: str,
        fetch: Callable[[symbol_index.SymbolInfo], Mapping[str, Any]] | None = None) -> Decimal:
    """The last price the analyze-mode exchange fills against."""
    return get_quote(symbol, exchange, fetch).ltp


def feed_simulated(pairs: list[tuple[str, str]]) -> int:
    """Write simulated quotes of these instruments into the store (demos); the caller commits."""
    sim = simulator()
    n = 0
    for symbol, exchange in pairs:
        info = symbol_index.get_symbol_info(symbol, exchange)
        if info is not None:
            store_quote(info.symbol, info.exchange, sim.quote(info), "simulator")
            n += 1
    return n
