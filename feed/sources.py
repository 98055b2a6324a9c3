"""Where ticks come from: the simulator (analyze mode) or a user's broker stream (live mode).

A source is told which instruments to stream (`subscribe`, `unsubscribe`: the hub calls them once per
instrument, however many clients want it) and hands every tick to `emit(source_key, tick)` on the event
loop. Database and symbol lookups run on the server's worker threads inside the application context.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import logging
import time
from collections import defaultdict
from collections.abc import Callable
from decimal import Decimal
from typing import Any

from feed.protocol import DEPTH, LTP, Tick
from services.market import quotes, symbol_index
from services.trading import risk, venues
from services.trading.order_events import JournalWatcher
from services.trading.paper import engine, hours
from services.trading.paper.ticks import match_ticks

log = logging.getLogger("algobridge.feed")

Instrument = tuple[str, str]  # (symbol, exchange)
Emit = Callable[[str, Tick], None]
ANALYZE = "analyze"


def _ms(moment: dt.datetime) -> int:
    return int(moment.timestamp() * 1000)


def simulated_tick(sim: quotes.PriceSimulator, info: symbol_index.SymbolInfo, at: float) -> Tick:
    d = sim.depth(info, at)
    q = d.quote
    now = int(at * 1000)
    return Tick(symbol=info.symbol, exchange=info.exchange, ltp=float(q.ltp), ltt=_ms(q.updated_at), timestamp=now,
                open=float(q.open), high=float(q.high), low=float(q.low), close=float(q.prev_close),
                volume=int(q.volume), ltq=d.ltq,
                average_price=round((float(q.high) + float(q.low) + float(q.ltp)) / 3, 2),
                total_buy_quantity=d.total_buy_qty, total_sell_quantity=d.total_sell_qty, oi=int(q.oi),
                upper_circuit=round(float(q.prev_close) * 1.2, 2), lower_circuit=round(float(q.prev_close) * 0.8, 2),
                bids=tuple((float(lv.price), lv.quantity, lv.orders) for lv in d.bids),
                asks=tuple((float(lv.price), lv.quantity, lv.orders) for lv in d.asks))


class SimulatorSource:
    """Analyze mode: every subscribed instrument ticks each `interval` seconds while its exchange is open
    (services.trading.paper.hours: the market calendar, or always), and the ticks match resting paper
    orders. One per feed process, shared by every analyze-mode client.

    `clock` is the simulator's time (tests may run it fast: each real second a simulated minute)."""

    key = ANALYZE
    broker = "paper"

    def __init__(self, app: Any, run: Callable, emit: Emit, interval: float = 1.0,
                 clock: Callable[[], float] = time.time, watcher: JournalWatcher | None = None) -> None:
        self.app, self.run, self.emit, self.interval, self.clock = app, run, emit, interval, clock
        self.watcher = watcher
        self.infos: dict[Instrument, symbol_index.SymbolInfo] = {}
        self.task: asyncio.Task | None = None

    def lookup(self, symbol: str, exchange: str) -> str | None:
        """None when the instrument can be streamed, else why not (worker thread, app context)."""
        return None if symbol_index.get_symbol_info(symbol, exchange) else \
            f"Symbol {symbol} not found in exchange {exchange}"

    async def subscribe(self, items: list[Instrument], mode: int) -> None:
        found = await self.run(lambda: {i: symbol_index.get_symbol_info(*i) for i in items})
        self.infos.update({i: info for i, info in found.items() if info is not None})
        if self.task is None:
            self.task = asyncio.get_running_loop().create_task(self._loop())

    async def unsubscribe(self, items: list[Instrument]) -> None:
        for i in items:
            self.infos.pop(i, None)

    async def close(self) -> None:
        if self.task:
            self.task.cancel()

    def _ticks(self, infos: list[symbol_index.SymbolInfo]) -> list[Tick]:
        at = self.clock()
        now = dt.datetime.fromtimestamp(at, dt.UTC)
        sim = quotes.simulator()
        if sim.clock is not self.clock:
            sim = quotes.PriceSimulator(sim.seed, self.clock, sim.tz)
        out = [simulated_tick(sim, info, at) for info in infos if hours.is_open(info.exchange, now)]
        if out and self.watcher is not None:
            book = {(t.symbol, t.exchange): engine.Quote(ltp=_dec(t.ltp), bid=_dec(t.bids[0][0] if t.bids else t.ltp),
                                                         ask=_dec(t.asks[0][0] if t.asks else t.ltp)) for t in out}
            match_ticks(book, list(self.watcher.open_rows()), now)
            risk.on_ticks(book, now, modes=("analyze",))  # P&L limits on the simulator's prices (issue #19)
        return out

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            started = loop.time()
            if self.infos:
                try:
                    infos = list(self.infos.values())
                    for tick in await self.run(functools.partial(self._ticks, infos)):
                        if (tick.symbol, tick.exchange) in self.infos:
                            self.emit(self.key, tick)
                except Exception:
                    log.exception("simulated ticks failed")
            await asyncio.sleep(max(0.0, self.interval - (loop.time() - started)))


def _dec(value: float) -> Decimal:
    return Decimal(str(value))


class BrokerSource:
    """Live mode: one user's broker stream (brokers.base BrokerClient.stream), opened on first use. Its
    reconnects and resubscribes are the stream's; its status changes go to the user's connections. A stream
    that ends by itself (the broker refused the session, the retries ran out) is let go: the next
    subscription opens a new one on the user's current session, with everything still wanted."""

    def __init__(self, user_id: int, app: Any, run: Callable, emit: Emit,
                 status: Callable[[int, str, str], None]) -> None:
        self.user_id, self.app, self.run, self.emit, self.status = user_id, app, run, emit, status
        self.key = f"live:{user_id}"
        self.broker = ""
        self.stream: Any = None
        self.tokens: dict[str, Instrument] = {}
        self.by_instrument: dict[Instrument, str] = {}
        self.modes: dict[str, int] = {}  # token -> the mode asked of the stream
        self.generation = self.ended = 0  # the current stream's number; the last one that ended by itself
        self.loop: asyncio.AbstractEventLoop | None = None

    def lookup(self, symbol: str, exchange: str) -> str | None:
        return None if symbol_index.get_token(symbol, exchange) else f"Symbol {symbol} not found in exchange {exchange}"

    def _open(self) -> Any:
        venue = venues.venue_for(self.user_id)  # OrderError (403) without a live session
        if venue.client is None:
            raise RuntimeError("No live broker session: connect your broker or switch to analyze mode")
        self.broker = venue.broker
        self.generation = gen = self.generation + 1
        return venue.client.stream(self._on_tick, lambda status, text: self._on_status(gen, status, text))

    def _call(self, fn: Callable, *args: Any) -> None:  # from the stream's thread onto the loop
        loop = self.loop
        if loop is not None:
            try:
                loop.call_soon_threadsafe(fn, *args)
            except RuntimeError:  # the loop is closed: the feed has stopped
                pass

    def _on_tick(self, st: Any) -> None:  # the stream's thread
        token = str(st.token)
        instrument = self.tokens.get(token)
        # A bare last-price packet for an instrument asked in a richer mode (it was in flight when the mode
        # changed) would show quote clients zeros for the day's prices: the richer packet follows.
        if instrument is None or (st.mode == LTP and self.modes.get(token, LTP) > LTP):
            return
        tick = Tick(symbol=instrument[0], exchange=instrument[1], ltp=float(st.ltp),
                    ltt=_ms(st.ltt) if st.ltt else 0, timestamp=_ms(st.timestamp) if st.timestamp else 0,
                    open=float(st.open or 0), high=float(st.high or 0), low=float(st.low or 0),
                    close=float(st.close or 0), volume=int(st.volume or 0), ltq=int(st.ltq or 0),
                    average_price=float(st.average_price or 0), total_buy_quantity=int(st.total_buy_quantity or 0),
                    total_sell_quantity=int(st.total_sell_quantity or 0), oi=int(st.oi or 0),
                    upper_circuit=float(st.upper_circuit or 0), lower_circuit=float(st.lower_circuit or 0),
                    bids=tuple((float(lv.price), int(lv.quantity), int(lv.orders)) for lv in st.bids or ()),
                    asks=tuple((float(lv.price), int(lv.quantity), int(lv.orders)) for lv in st.asks or ()))
        self._call(self.emit, self.key, tick)

    def _on_status(self, gen: int, status: str, text: str) -> None:  # the stream's thread
        self._call(self._status_changed, gen, status, text)

    def _status_changed(self, gen: int, status: str, text: str) -> None:
        if status == "closed":
            self.ended = max(self.ended, gen)
        self.status(self.user_id, status, text)

    async def subscribe(self, items: list[Instrument], mode: int) -> None:
        self.loop = asyncio.get_running_loop()
        fresh = self.stream is None or self.ended == self.generation
        if fresh:
            old, self.stream = self.stream, await self.run(self._open)
            if old is not None:
                await self.run(old.close)
        mode = min(mode, DEPTH)
        tokens = await self.run(lambda: {i: symbol_index.get_token(*i) for i in items})
        for instrument, token in tokens.items():
            if token:
                self.tokens[str(token)] = instrument
                self.by_instrument[instrument] = str(token)
                self.modes[str(token)] = mode
        wanted = {str(t): mode for t in tokens.values() if t}
        by_mode: dict[int, list[str]] = defaultdict(list)
        for token, m in (self.modes if fresh else wanted).items():  # a new stream: everything still wanted
            by_mode[m].append(token)
        for m, group in by_mode.items():
            await self.run(functools.partial(self.stream.subscribe, group, m))

    async def unsubscribe(self, items: list[Instrument]) -> None:
        tokens = [self.by_instrument.pop(i) for i in items if i in self.by_instrument]
        for t in tokens:
            self.tokens.pop(t, None)
            self.modes.pop(t, None)
        if tokens and self.stream is not None:
            await self.run(functools.partial(self.stream.unsubscribe, tokens))

    async def close(self) -> None:
        if self.stream is not None:
            stream, self.stream = self.stream, None
            await self.run(stream.close)
