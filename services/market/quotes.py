"""Quotes: the latest price of an instrument, from the live broker or from a deterministic simulator.

This module owns
- the quotes store (`quotes` table): `store_quote()` upserts what the connected live broker returns,
  `stored_quote()` reads it back;
- the price simulator: a seeded random walk per underlying around a base price (the sample contract's
  spot, or a stable made-up price), the same in every process and every run for a given seed and time,
  with no state to keep. A trading day's path runs from the previous close to the day's close (a Brownian
  bridge over the 375 minutes of the session, kept within sample_contract.DAY_BAND of the open, which is
  what lets the sample contract's chains promise ATM +/- 20 all day); closes follow a walk of daily shocks.
  Everything on an underlying derives from its one walk: a future is the forward spot x (1 + CARRY x
  years to its expiry), an option is Black-76 on that forward at the smile's volatility
  (`volatility()`), so the chain, its greeks and its synthetic future agree with the future and the
  underlying. Quotes keep bid < ltp < ask, and `depth()` adds five levels a side;
- `get_quote()`: what the paper broker calls. With a live broker it fetches (through the `fetch`
  callable the caller passes, so this module does not depend on an adapter's signature), stores and
  returns; otherwise a recent broker quote from the store, else the simulator. `get_depth()` is the
  simulator's depth (analyze mode).
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
import zlib
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from flask import current_app, has_app_context
from sqlalchemy import select

import config as config_module
from database import db, upsert
from database.symbol import Quote
from database.types import utcnow
from services.market import black76, sample_contract, symbol_index
from services.market.sample_contract import base_price, fallback_price
from vocabulary import DEFAULT_EXCHANGE_TIMEZONE

log = logging.getLogger("algobridge.symbols")

SESSION_OPEN = dt.time(9, 15)  # exchange time (EXCHANGE_TIMEZONE)
SESSION_MINUTES = 375
# A broker quote older than this is not served in place of the simulator when no broker is connected.
STORED_FRESH_SECONDS = 300
CARRY = 0.07  # a future's yearly cost of carry over its underlying (rate 0 for options: Black-76 on the forward)
DEPTH_LEVELS = 5
# The least a simulated price may be, in ticks: the best bid sits a tick below it and four more levels
# below that, all above zero. An option worth less (far out of the money, or expired) is raised to it,
# and its pair at the same strike by as much, so that put-call parity still holds.
MIN_TICKS = DEPTH_LEVELS + 1
_DAILY_SIGMA = 0.012
_WINDOW_DAYS = 20  # daily shocks summed over a window: a local random walk that stays near its base
_DERIVATIVES = ("FUT", "CE", "PE")
_INDEX_NAMES = frozenset([n for n, *_ in sample_contract.INDEX_DERIVATIVES]
                         + [ts.replace(" ", "") for ts, *_ in sample_contract.INDICES])
_COMMODITIES = frozenset(n for n, *_ in sample_contract.COMMODITIES)
_CURRENCIES = frozenset(p for p, _ in sample_contract.CURRENCIES)


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


@dataclass(frozen=True)
class Level:
    price: Decimal
    quantity: int
    orders: int


@dataclass(frozen=True)
class Depth:
    """The order book's five best levels a side, best first, around `quote` (its bid and ask are the best)."""

    quote: QuoteData
    ltq: int  # the last trade's quantity
    bids: tuple[Level, ...]
    asks: tuple[Level, ...]
    # A broker's totals cover its whole book, beyond the five levels; without them, the levels' sums.
    total_buy: int | None = None
    total_sell: int | None = None

    @property
    def total_buy_qty(self) -> int:
        return self.total_buy if self.total_buy is not None else sum(level.quantity for level in self.bids)

    @property
    def total_sell_qty(self) -> int:
        return self.total_sell if self.total_sell is not None else sum(level.quantity for level in self.asks)


def _tick(tick: Decimal | None) -> Decimal:
    return tick if tick and tick > 0 else Decimal("0.05")


def _round_tick(value: float, tick: Decimal) -> Decimal:
    """`value` to the nearest tick (half up), at least MIN_TICKS ticks."""
    return max(math.floor(value / float(tick) + 0.5), MIN_TICKS) * tick


def _seed(*parts: Any) -> int:
    return int.from_bytes(hashlib.blake2b(":".join(map(str, parts)).encode(), digest_size=8).digest(), "big")


def underlying_key(info: symbol_index.SymbolInfo) -> str:
    """The name of the walk an instrument follows: a derivative its underlying's, anything else its own."""
    name = (info.name or info.symbol) if info.instrumenttype in _DERIVATIVES else info.symbol
    return name.replace(" ", "").upper()


@functools.lru_cache(maxsize=1024)
def _atm_vol(key: str) -> float:
    u = (zlib.crc32(key.encode()) % 1000) / 1000  # a stable spread of levels within each asset class
    if key in _INDEX_NAMES or key.endswith(("NIFTY", "SENSEX", "BANKEX")):
        return 0.13 + 0.03 * u
    if key in _CURRENCIES:
        return 0.05 + 0.03 * u
    if key in _COMMODITIES:
        return 0.20 + 0.10 * u
    return 0.25 + 0.10 * u


def volatility(underlying: str, strike: float, forward: float) -> float:
    """The simulator's implied volatility (a fraction) of an option on `underlying` at `strike` when its
    forward is `forward`: a level per underlying (indices 13-16 %, stocks 25-35 %, commodities 20-30 %,
    currencies 5-8 %) on a gentle smile in log-moneyness, higher for low strikes as equity skews are."""
    k = math.log(strike / forward) if strike > 0 and forward > 0 else 0.0
    k = min(max(k, -1.0), 1.0)
    return _atm_vol(underlying.replace(" ", "").upper()) * (1.0 - 0.5 * k + 2.0 * k * k)


def _base(key: str) -> Decimal:
    return base_price(key) or fallback_price(key)


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
        """(prev close, price path, running high, running low) over the session's minutes."""
        prev = self._close(key, base, day - 1)
        close = self._close(key, base, day)
        rng = random.Random(_seed(self.seed, key, day, "intraday"))  # noqa: S311 - a simulation, not a secret
        sd = _DAILY_SIGMA / math.sqrt(SESSION_MINUTES)
        walk = [0.0]
        for _ in range(SESSION_MINUTES):
            walk.append(walk[-1] + rng.gauss(0.0, sd))
        a, b, end = math.log(prev), math.log(close), walk[-1]
        band = sample_contract.DAY_BAND  # rarely reached (see there); a close beyond it opens the next day gapped
        path, highs, lows = [], [], []
        hi = lo = None
        for m, w in enumerate(walk):
            f = m / SESSION_MINUTES
            p = math.exp(a + min(max(f * (b - a) + (w - f * end), -band), band))
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

    def session_open(self, underlying: str, day: dt.date) -> float:
        """The walk's price at the session open of `day` (the previous close): what the sample contract's
        chains of that day are centred on."""
        key = underlying.replace(" ", "").upper()
        return self._close(key, float(_base(key)), day.toordinal() - 1)  # the day's path starts there

    def forward(self, underlying: str, exchange: str, expiry: dt.date, at: float | None = None) -> float:
        """The unrounded forward of `underlying` for `expiry` at `at`: the future's price, and the forward
        its options are priced on."""
        key = underlying.replace(" ", "").upper()
        now = self._when(at)[2]
        s = self.spot(key, _base(key), at)[0]
        return s * (1 + CARRY * black76.years_to_expiry(now, exchange, expiry))

    # -- instruments ---------------------------------------------------------------------------
    def quote(self, info: symbol_index.SymbolInfo, at: float | None = None) -> QuoteData:
        tick = _tick(info.tick_size)
        itype = info.instrumenttype
        key = underlying_key(info)
        day, minute, now = self._when(at)
        prev, path, highs, lows = self._day_path(key, float(_base(key)), day)
        s, o, h, lo = path[minute], path[0], highs[minute], lows[minute]
        if itype in _DERIVATIVES and info.expiry is not None:
            t_now = black76.years_to_expiry(now, info.exchange, info.expiry)
            if itype == "FUT":
                s, h, lo = (x * (1 + CARRY * t_now) for x in (s, h, lo))
            else:
                s, h, lo = (self._option(info, key, x, t_now) for x in (s, h, lo))
            o, prev = self._anchors(info, key, day)
            h, lo = max(s, o, h, lo), min(s, o, h, lo)
        volume, oi = self._daily(info.exchange, info.symbol, day, itype in _DERIVATIVES)
        ltp = _round_tick(s, tick)
        return QuoteData(
            ltp=ltp,
            bid=ltp - tick,
            ask=ltp + tick,
            open=_round_tick(o, tick),
            high=max(_round_tick(h, tick), ltp),
            low=min(_round_tick(lo, tick), ltp),
            prev_close=_round_tick(prev, tick),
            volume=int(volume * minute / SESSION_MINUTES),
            oi=oi,
            source="simulator",
            updated_at=now.astimezone(dt.UTC),
        )

    @functools.lru_cache(maxsize=8192)  # noqa: B019 - bounded, as _day_path
    def _anchors(self, info: symbol_index.SymbolInfo, key: str, day: int) -> tuple[float, float]:
        """(open, previous close) of a derivative, each priced at its own moment (today's open, yesterday's
        close), so that they stay put through the day."""
        prev, path, _, _ = self._day_path(key, float(_base(key)), day)
        out = []
        for spot, moment in ((path[0], self._at(day, 0)), (prev, self._at(day - 1, SESSION_MINUTES))):
            years = black76.years_to_expiry(moment, info.exchange, info.expiry)
            out.append(spot * (1 + CARRY * years) if info.instrumenttype == "FUT"
                       else self._option(info, key, spot, years))
        return out[0], out[1]

    def _at(self, day: int, minute: int) -> dt.datetime:
        start = dt.datetime.combine(dt.date.fromordinal(day), SESSION_OPEN, self.tz)
        return start + dt.timedelta(minutes=minute)

    @functools.lru_cache(maxsize=8192)  # noqa: B019 - bounded, as _day_path
    def _daily(self, exchange: str, symbol: str, day: int, derivative: bool) -> tuple[float, int]:
        """(the session's volume, open interest) of an instrument on a day."""
        rng = random.Random(_seed(self.seed, exchange, symbol, day))  # noqa: S311 - a simulation, not a secret
        volume = rng.uniform(2e4, 5e6)
        return volume, int(rng.uniform(1e4, 5e6)) if derivative else 0

    @staticmethod
    def _option(info: symbol_index.SymbolInfo, key: str, spot: float, years: float) -> float:
        """Black-76 on the forward, plus what lifts the cheaper of the strike's call and put to MIN_TICKS
        (added to both, so C - P = F - K still holds)."""
        forward = spot * (1 + CARRY * years)
        strike = float(info.strike or 0)
        if strike <= 0:
            return forward if info.instrumenttype == "CE" else 0.0
        call = black76.price("CE", forward, strike, years, volatility(key, strike, forward))
        put = call - (forward - strike)  # parity, at rate 0
        lift = max(MIN_TICKS * float(_tick(info.tick_size)) - min(call, put), 0.0)
        return (call if info.instrumenttype == "CE" else put) + lift

    def depth(self, info: symbol_index.SymbolInfo, at: float | None = None) -> Depth:
        """The quote with five levels a side: the best bid and ask are the quote's, the others one to three
        ticks further each (never down to zero); quantities in lots for F&O, stable within a minute."""
        q = self.quote(info, at)
        tick = _tick(info.tick_size)
        day, minute, _ = self._when(at)
        rng = random.Random(_seed(self.seed, info.exchange, info.symbol, day, minute, "depth"))  # noqa: S311
        lot = max(info.lotsize, 1) if info.instrumenttype in _DERIVATIVES else 0
        # Cash instruments trade in shares: about a lakh of rupees a level, at least one share.
        unit = lot or max(int(100_000 / float(q.ltp)), 1)

        def level(price: Decimal, i: int) -> Level:
            units = rng.randint(1, 4 + 4 * i)
            return Level(price=price, quantity=units * (lot or rng.randint(1, unit)), orders=rng.randint(1, units))

        bids, asks = [], []
        bid, ask = q.bid, q.ask
        for i in range(DEPTH_LEVELS):
            if i:
                room = int(bid / tick) - (DEPTH_LEVELS - i)  # the ticks left above the levels still to come
                bid -= tick * min(rng.randint(1, 3), room)
                ask += tick * rng.randint(1, 3)
            bids.append(level(bid, i))
            asks.append(level(ask, i))
        ltq = (lot or 1) * rng.randint(1, 10 if lot else 200)
        return Depth(quote=q, ltq=ltq, bids=tuple(bids), asks=tuple(asks))


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
    return None if row is None else _row_quote(row)


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


def _row_quote(row: Quote) -> QuoteData:
    return QuoteData(ltp=row.ltp, bid=row.bid, ask=row.ask, open=row.open, high=row.high, low=row.low,
                     prev_close=row.prev_close, volume=row.volume, oi=row.oi, source=row.source,
                     updated_at=row.updated_at)


def get_quotes(infos: list[symbol_index.SymbolInfo]) -> dict[tuple[str, str], QuoteData]:
    """`get_quote` (without a broker) of many known instruments, keyed by (symbol, exchange): the fresh broker
    quotes in the store read in one query, the simulator's for the rest (an option chain is one query, not
    one per strike)."""
    if not infos:
        return {}
    since = utcnow() - dt.timedelta(seconds=STORED_FRESH_SECONDS)
    keys = {(i.symbol, i.exchange) for i in infos}
    fresh = {}
    for exchange in {i.exchange for i in infos}:
        names = [s for s, e in keys if e == exchange]
        for row in db.session.scalars(select(Quote).where(
                Quote.exchange == exchange, Quote.symbol.in_(names), Quote.source != "simulator",
                Quote.updated_at >= since)):
            fresh[(row.symbol, row.exchange)] = _row_quote(row)
    sim = simulator()
    return {(i.symbol, i.exchange): fresh.get((i.symbol, i.exchange)) or sim.quote(i) for i in infos}


def get_depth(symbol: str, exchange: str) -> Depth:
    """The simulator's five levels a side of (symbol, exchange), analyze mode's `depth`.
    Raises UnknownSymbolError for a symbol not in the contract."""
    return simulator().depth(_info(symbol, exchange.upper()))


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
