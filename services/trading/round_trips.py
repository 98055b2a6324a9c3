"""Round trips: the analyze-mode fills rebuilt as closed trades, with their statistics (issue #13).

A read-side view of the journal: nothing is stored. The user's analyze-mode fills (`fills` joined to
their `orders`) are replayed per (symbol, exchange, product) in fill order, and entries are matched to
exits first in, first out. Each quantity closed from one entry order by one exit order is one round trip
(a partial close splits a record; the fills of one order are averaged); a fill that more than closes the
position (long 10, sell 15) closes the long and opens a short of the rest.

A trip's charges are its share of the charges of the fills it matched: each fill's charges spread
over its quantity (an entry fill split between two exits gives each its part). Fills from before
charges were recorded carry 0.

Live mode keeps no round trips: the broker's own trade book is the live record.
"""

from __future__ import annotations

import datetime as dt
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal

from sqlalchemy import select

from database import db
from database.enums import Action, Mode, PriceType
from database.order_db import Fill, Order
from services.trading.journal import WEB_STRATEGY
from services.trading.paper.account import SQUAREOFF_STRATEGY

ZERO = Decimal(0)
LONG, SHORT = "long", "short"
STOP_TYPES = (PriceType.SL, PriceType.SL_M)


@dataclass(frozen=True)
class FillRow:
    """One fill with what the matching needs of its order."""

    order_id: int
    symbol: str
    exchange: str
    product: str
    action: str  # BUY or SELL
    quantity: Decimal
    price: Decimal
    filled_at: dt.datetime
    exit_reason: str  # the reason this fill's order would give, were it an exit
    charges: Decimal = ZERO  # the fill's brokerage, taxes and fees

    @property
    def charge_rate(self) -> Decimal:
        """Charges per unit."""
        return self.charges / self.quantity if self.quantity else ZERO


@dataclass
class RoundTrip:
    symbol: str
    exchange: str
    product: str
    side: str  # long or short
    quantity: Decimal
    entry_time: dt.datetime  # the first entry fill's
    entry_value: Decimal  # sum of quantity x price of the entry fills matched
    exit_time: dt.datetime  # the last exit fill's
    exit_value: Decimal
    exit_reason: str
    charges: Decimal = ZERO  # the matched share of its fills' charges

    @property
    def entry_price(self) -> Decimal:
        """The average entry price."""
        return self.entry_value / self.quantity

    @property
    def exit_price(self) -> Decimal:
        """The average exit price."""
        return self.exit_value / self.quantity

    @property
    def gross_pnl(self) -> Decimal:
        return self.exit_value - self.entry_value if self.side == LONG else self.entry_value - self.exit_value

    @property
    def net_pnl(self) -> Decimal:
        return self.gross_pnl - self.charges

    @property
    def holding(self) -> dt.timedelta:
        return self.exit_time - self.entry_time


@dataclass
class _Lot:
    """What is still open of one entry order's fills."""

    order_id: int
    side: str
    quantity: Decimal
    price: Decimal
    time: dt.datetime
    charge_rate: Decimal = ZERO  # the entry fill's charges per unit


def exit_reason(order: Order) -> str:
    """Why an order closed a position: the analyze-mode square-off, a stop, the web pages, a strategy
    webhook's signal, or else the API."""
    if order.strategy == SQUAREOFF_STRATEGY:
        return "square-off"
    if order.pricetype in STOP_TYPES:
        return "stop"
    if order.strategy == WEB_STRATEGY:
        return "manual"
    if order.signal_id is not None:
        return "signal"
    return "api"


def match(fills: Iterable[FillRow]) -> tuple[list[RoundTrip], dict[tuple[str, str, str], list[_Lot]]]:
    """FIFO matching of fills (in fill order) into round trips, in the order they closed; and what is
    left open per (symbol, exchange, product)."""
    books: dict[tuple[str, str, str], deque[_Lot]] = {}
    trips: list[RoundTrip] = []
    # (key, entry order, exit order) -> its trip: the fills of one order pair make one record
    pairs: dict[tuple[tuple[str, str, str], int, int], RoundTrip] = {}
    for f in fills:
        key = (f.symbol, f.exchange, f.product)
        lots = books.setdefault(key, deque())
        side = LONG if f.action == Action.BUY else SHORT
        left = f.quantity
        while left > 0 and lots and lots[0].side != side:
            lot = lots[0]
            qty = min(left, lot.quantity)
            pair = (key, lot.order_id, f.order_id)
            trip = pairs.get(pair)
            if trip is None:
                trip = RoundTrip(symbol=f.symbol, exchange=f.exchange, product=f.product, side=lot.side,
                                 quantity=ZERO, entry_time=lot.time, entry_value=ZERO, exit_time=f.filled_at,
                                 exit_value=ZERO, exit_reason=f.exit_reason)
                pairs[pair] = trip
                trips.append(trip)
            trip.quantity += qty
            trip.entry_value += qty * lot.price
            trip.exit_value += qty * f.price
            trip.charges += qty * (lot.charge_rate + f.charge_rate)
            trip.exit_time = f.filled_at
            lot.quantity -= qty
            left -= qty
            if lot.quantity == 0:
                lots.popleft()
        if left > 0:
            last = lots[-1] if lots else None
            rate = f.charge_rate
            if last is not None and last.order_id == f.order_id and last.price == f.price and \
                    last.charge_rate == rate:
                last.quantity += left  # another fill of the same order at the same price
            else:
                lots.append(_Lot(order_id=f.order_id, side=side, quantity=left, price=f.price, time=f.filled_at,
                                 charge_rate=rate))
    return trips, {k: list(v) for k, v in books.items() if v}


def _fills(user_id: int, until: dt.datetime | None) -> list[FillRow]:
    """The user's analyze-mode fills up to `until`, oldest first: one query."""
    query = (select(Fill.quantity, Fill.price, Fill.filled_at, Fill.charges, Order)
             .join(Order, Order.id == Fill.order_id)
             .where(Order.user_id == user_id, Order.mode == Mode.ANALYZE)
             .order_by(Fill.filled_at, Fill.id))
    if until is not None:
        query = query.where(Fill.filled_at < until)
    out = []
    for qty, price, at, fee, order in db.session.execute(query):
        out.append(FillRow(order_id=order.id, symbol=order.symbol, exchange=order.exchange.value,
                           product=order.product.value, action=order.action.value, quantity=Decimal(qty),
                           price=Decimal(price), filled_at=at, exit_reason=exit_reason(order),
                           charges=Decimal(fee)))
    return out


def round_trips(user_id: int, since: dt.datetime, until: dt.datetime | None = None) -> list[RoundTrip]:
    """The user's analyze-mode round trips that closed in [since, until), newest exit first.

    The fills are read from the start of the account, not from `since`: a trip closed in the period may
    have opened before it (a CNC position carried overnight), and only the replay of the earlier fills
    knows what an exit fill closes. Still one query."""
    trips, _ = match(_fills(user_id, until))
    kept = [t for t in trips if t.exit_time >= since]
    kept.sort(key=lambda t: t.exit_time, reverse=True)
    return kept


@dataclass(frozen=True)
class Statistics:
    count: int
    wins: int
    losses: int
    win_rate: Decimal | None  # percent of the trips with a positive net P&L; None without trips
    average_win: Decimal | None
    average_loss: Decimal | None  # negative
    profit_factor: Decimal | None  # gross wins / gross losses; None without a loss
    total_net_pnl: Decimal
    max_drawdown: Decimal  # the largest fall of the cumulative net P&L from its peak (0 or more)


def statistics(trips: Sequence[RoundTrip]) -> Statistics:
    """The statistics of a list of trips (any order: the drawdown follows their exit order)."""
    nets = [t.net_pnl for t in trips]
    won = [n for n in nets if n > 0]
    lost = [n for n in nets if n < 0]
    gross_win, gross_loss = sum(won, ZERO), -sum(lost, ZERO)
    peak = cumulative = drawdown = ZERO
    for trip in sorted(trips, key=lambda t: t.exit_time):
        cumulative += trip.net_pnl
        peak = max(peak, cumulative)
        drawdown = max(drawdown, peak - cumulative)
    return Statistics(
        count=len(trips), wins=len(won), losses=len(lost),
        win_rate=Decimal(len(won) * 100) / len(trips) if trips else None,
        average_win=gross_win / len(won) if won else None,
        average_loss=-gross_loss / len(lost) if lost else None,
        profit_factor=gross_win / gross_loss if lost else None,
        total_net_pnl=sum(nets, ZERO), max_drawdown=drawdown)
