"""The analyze-mode exchange as a venue: what each use case asks of it, with the same functions as the
live venue (services.trading.live).

Orders take the fast path when they can (services.trading.paper.batches: group commit); otherwise, and
inside a caller's unit (a smart order), the full path under the account's funds lock: housekeeping
(square-off, open orders matched), then the order through the matching engine. An order the exchange
rejects is journaled as rejected and comes back as `Placed.error`.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import time
from decimal import Decimal

from sqlalchemy import select

from database import db
from database.enums import Action, Mode, OrderStatus, PriceType, Product
from database.order_db import Order
from database.portfolio_db import Funds, Holding, Position
from database.types import utcnow
from database.unit import in_unit, unit_of_work
from services.market import options as market_options
from services.market import quotes
from services.market.symbol_index import SymbolInfo
from services.trading import journal, shapes
from services.trading.errors import OrderError
from services.trading.journal import OrderInput, Placed
from services.trading.paper import account, batches, hours, span
from services.trading.paper.account import BROKER
from services.trading.venues import Venue
from vocabulary import INDEX_EXCHANGES, OPEN_STATUSES

log = logging.getLogger("algobridge.orders")


def _locked(user_id: int) -> tuple[Funds, dt.datetime]:
    """Inside a write unit: the account's funds locked and brought up to date; (funds, now)."""
    now = utcnow()
    funds = account.lock_funds(user_id)
    account.housekeeping_locked(user_id, funds, now)
    return funds, now


def _answer(order: Order, broker_ms: float) -> Placed:
    error = OrderError(order.status_message or "Order rejected", 400) if order.status == OrderStatus.REJECTED else None
    return Placed(order.orderid, Mode.ANALYZE.value, order.status.value, BROKER, broker_ms, error=error)


def _execute_new(user_id: int, inp: OrderInput, funds: Funds, now: dt.datetime, *, signal_id: int | None,
                 parent_id: int | None) -> Order:
    """Inside a unit holding the funds lock: journal the order and run it through the engine."""
    order = journal.new_order(user_id, inp, mode=Mode.ANALYZE, broker=BROKER, orderid=journal.new_id(now),
                              status=journal.initial_status(inp.pricetype), signal_id=signal_id,
                              parent_id=parent_id, now=now, add=False)
    quote = account.quote_for(inp.symbol, inp.exchange)
    positions = account.Positions(user_id, [(inp.symbol, inp.exchange, inp.product)])
    account.execute(order, quote, funds, positions, now, placing=True)
    db.session.add(order)
    db.session.flush()
    return order


# -- orders ----------------------------------------------------------------------------------------------
def place(venue: Venue, inp: OrderInput, info: SymbolInfo, *, signal_id: int | None = None,
          parent_id: int | None = None) -> Placed:
    # The exchange's time (broker_ms): its book-keeping (funds lock, open orders, square-off, the fill), as a
    # live broker's round trip would be; the journal commit is the bridge's own.
    t0 = time.perf_counter()
    user_id = venue.user_id
    nested = in_unit()  # a smart order's unit, which holds the write lock already
    now = utcnow()
    # Outside the session, or an MIS order after the square-off: the full path refuses it or lets it rest.
    if not nested and hours.is_open(inp.exchange, now) and (
            inp.product != Product.MIS.value or hours.takes_mis(inp.exchange, now)):
        placed = batches.place(user_id, inp, now, t0, signal_id=signal_id, parent_id=parent_id)
        if placed is not None:
            return placed
    with contextlib.nullcontext() if nested else batches.writer_turn(), unit_of_work(write=True):
        funds, now = _locked(user_id)
        order = _execute_new(user_id, inp, funds, now, signal_id=signal_id, parent_id=parent_id)
        placed = _answer(order, (time.perf_counter() - t0) * 1000)
    return placed


def position_quantity(venue: Venue, info: SymbolInfo, product: str) -> int:
    """Inside a write unit: the signed net quantity of one instrument and product, after housekeeping."""
    _locked(venue.user_id)
    key = (info.symbol, info.exchange, product)
    row = account.Positions(venue.user_id, [key]).get(key)
    return int(row.quantity) if row is not None else 0


def _open_order(user_id: int, orderid: str, verb: str) -> tuple[Order, Funds, dt.datetime]:
    """Inside a write unit: the user's paper order `orderid` under the funds lock, after housekeeping (it
    may have filled meanwhile): (order, locked funds, now); 400 unless it is still open."""
    funds, now = _locked(user_id)
    row = db.session.scalars(select(Order).where(Order.orderid == str(orderid), Order.user_id == user_id)).one()
    if row.status not in OPEN_STATUSES:
        raise OrderError(f"Order {orderid} cannot be {verb}: it is {row.status.value}", 400)
    return row, funds, now


def modify(venue: Venue, orderid: str, row: Order | None, inp: OrderInput, info: SymbolInfo) -> Placed:
    with unit_of_work(write=True):
        row, funds, now = _open_order(venue.user_id, orderid, "modified")
        if inp.pricetype == PriceType.MARKET.value and not hours.is_open(row.exchange.value, now):
            raise OrderError(hours.closed_message(row.exchange.value, now), 400)  # the order stays as it was
        t0 = time.perf_counter()
        row.quantity = Decimal(inp.quantity)
        row.pricetype = PriceType(inp.pricetype)
        row.price = Decimal(inp.price)
        row.trigger_price = Decimal(inp.trigger_price)
        row.disclosed_quantity = Decimal(inp.disclosed_quantity)
        row.status = journal.initial_status(inp.pricetype)
        row.updated_at = now
        quote = account.quote_for(row.symbol, row.exchange.value)
        positions = account.Positions(venue.user_id, [(row.symbol, row.exchange.value, row.product.value)])
        account.execute(row, quote, funds, positions, now, placing=True)
        return _answer(row, (time.perf_counter() - t0) * 1000)


def cancel(venue: Venue, orderid: str, row: Order | None) -> str:
    with unit_of_work(write=True):
        row, _funds, now = _open_order(venue.user_id, orderid, "cancelled")
        row.status = OrderStatus.CANCELLED
        row.updated_at = now
        orderid = row.orderid
    log.info("paper order %s of user %s cancelled", orderid, venue.user_id)
    return orderid


def cancel_all(venue: Venue) -> tuple[list[str], list[str]]:
    canceled: list[str] = []
    with unit_of_work(write=True):
        _funds, now = _locked(venue.user_id)
        for row in db.session.scalars(select(Order).where(Order.user_id == venue.user_id, Order.mode == Mode.ANALYZE,
                                                          Order.status.in_(OPEN_STATUSES))):
            row.status = OrderStatus.CANCELLED
            row.updated_at = now
            canceled.append(row.orderid)
    return canceled, []


def close_all(venue: Venue, strategy: str) -> int:
    user_id = venue.user_id
    with unit_of_work(write=True):
        funds, now = _locked(user_id)
        rows = list(db.session.scalars(select(Position).where(
            Position.user_id == user_id, Position.mode == Mode.ANALYZE, Position.quantity != 0)))
        positions = account.Positions(user_id)
        for row in rows:
            positions.rows[(row.symbol, row.exchange.value, row.product.value)] = row
        closed = sorted({r.exchange.value for r in rows if not hours.is_open(r.exchange.value, now)})
        if closed:  # all or nothing: "squared off" must be true of every position
            raise OrderError(f"{hours.closed_message(closed[0], now)} Positions on {', '.join(closed)} cannot "
                             f"be closed now; close the others one by one.", 400)
        book = account.quotes_for({(r.symbol, r.exchange.value) for r in rows})
        count = 0
        for row in rows:
            quote = book.get((row.symbol, row.exchange.value))
            if quote is None:
                continue
            inp = OrderInput(strategy=strategy, exchange=row.exchange.value, symbol=row.symbol,
                             action=Action.SELL.value if row.quantity > 0 else Action.BUY.value,
                             quantity=int(abs(row.quantity)), product=row.product.value)
            order = journal.new_order(user_id, inp, mode=Mode.ANALYZE, broker=BROKER, orderid=journal.new_id(now),
                                      status=OrderStatus.OPEN, now=now)
            account.execute(order, quote, funds, positions, now)
            count += 1
    return count


def status(venue: Venue, orderid: str, row: Order | None) -> dict:
    account.refresh(venue.user_id)
    row = db.session.scalars(select(Order).where(Order.orderid == str(orderid),
                                                 Order.user_id == venue.user_id)).one()
    return shapes.order_status_data(row)


def open_position(venue: Venue, info: SymbolInfo, product: str) -> int:
    account.refresh(venue.user_id)
    qty = db.session.scalar(select(Position.quantity).where(
        Position.user_id == venue.user_id, Position.mode == Mode.ANALYZE, Position.symbol == info.symbol,
        Position.exchange == info.exchange, Position.product == product))
    return int(qty or 0)


def quote(venue: Venue, symbol: str, exchange: str) -> quotes.QuoteData:
    """A recent broker quote from the store, else the simulator's."""
    return quotes.get_quote(symbol, exchange)


# -- books -----------------------------------------------------------------------------------------------
# The order book is a pure function of the cached account's order list, which is never changed in place
# (account.account(): a change of the account, here or in another process, gives a new snapshot with a
# new list). So the book built from one list is kept per user and reused while the account hands out
# that same list: a user with many orders is not re-shaped on every read. The entry holds the list
# itself, so its identity cannot be reused by another object meanwhile.
_books: dict[int, tuple[list, dict]] = {}
_BOOKS_MAX = 10_000


def orderbook(venue: Venue) -> dict:
    """Shared between readers: do not change it."""
    account.refresh(venue.user_id)
    rows = account.account(venue.user_id)["orders"]
    cached = _books.get(venue.user_id)
    if cached is not None and cached[0] is rows:
        return cached[1]
    orders = [dict(o) for o in rows]
    book = {"orders": orders, "statistics": shapes.statistics(orders)}
    if len(_books) >= _BOOKS_MAX:
        _books.clear()  # a bound, not an eviction policy: rebuilding a book is cheap
    _books[venue.user_id] = (rows, book)
    return book


def tradebook(venue: Venue) -> list:
    account.refresh(venue.user_id)
    return [dict(t) for t in account.account(venue.user_id)["trades"]]


def positionbook(venue: Venue) -> list:
    account.refresh(venue.user_id)
    rows = account.account(venue.user_id)["positions"]
    book = account.quotes_for({(r["symbol"], r["exchange"]) for r in rows})
    out = []
    for r in rows:
        state = account.account_position_state(r)
        quote = book.get((r["symbol"], r["exchange"]))
        ltp = quote.ltp if quote else state.average_price
        gross = state.realized_pnl + state.unrealized(ltp)
        out.append({"symbol": r["symbol"], "exchange": r["exchange"], "product": r["product"],
                    "quantity": int(state.quantity), "average_price": shapes.num(state.average_price),
                    "ltp": shapes.num(ltp), "pnl": shapes.num(gross - state.charges),
                    "gross_pnl": shapes.num(gross), "charges": shapes.num(state.charges)})
    return out


def holding_rows(venue: Venue) -> list[tuple]:
    """(symbol, exchange, product, quantity, average price, ltp) of each analyze-mode holding."""
    found = list(db.session.scalars(select(Holding).where(Holding.user_id == venue.user_id,
                                                          Holding.mode == Mode.ANALYZE, Holding.quantity != 0)))
    book = account.quotes_for({(h.symbol, h.exchange.value) for h in found})
    rows = []
    for h in found:
        quote = book.get((h.symbol, h.exchange.value))
        rows.append((h.symbol, h.exchange.value, Product.CNC.value, h.quantity, h.average_price,
                     quote.ltp if quote else h.average_price))
    return rows


def funds(venue: Venue) -> dict:
    """availablecash = opening balance + realized P&L - margin in use; m2munrealized from current quotes."""
    account.refresh(venue.user_id)
    snap = account.account(venue.user_id)
    state = account.account_funds_state(snap)
    open_rows = [(r["symbol"], r["exchange"], account.account_position_state(r)) for r in snap["positions"]]
    open_rows = [row for row in open_rows if row[2].quantity != 0]
    book = account.quotes_for({(s, e) for s, e, _ in open_rows})
    unrealized = sum((pos.unrealized(book[(s, e)].ltp) for s, e, pos in open_rows if (s, e) in book), Decimal(0))
    collateral = snap["funds"]["collateral"] if snap["funds"] is not None else 0
    return {"availablecash": shapes.money(state.available), "collateral": shapes.money(collateral),
            "m2mrealized": shapes.money(state.realized_pnl), "m2munrealized": shapes.money(unrealized),
            "utiliseddebits": shapes.money(state.used_margin)}


# -- market data and margins -----------------------------------------------------------------------------
def quotes_many(venue: Venue, infos: list[SymbolInfo]) -> dict[tuple[str, str], quotes.QuoteData]:
    """The quotes of known instruments, keyed by (symbol, exchange)."""
    return quotes.get_quotes(infos)


def depth(venue: Venue, info: SymbolInfo) -> quotes.Depth:
    """Five levels a side around the simulated price."""
    return quotes.get_depth(info.symbol, info.exchange)


def _span_kind(info: SymbolInfo, spot: SymbolInfo | None) -> str:
    """The kind of underlying whose SPAN parameters a leg takes; an index is what the contract lists on an index
    exchange (NSE_INDEX, BSE_INDEX)."""
    if info.instrumenttype not in ("FUT", "CE", "PE"):
        return "equity"
    if info.exchange in ("MCX", "NCDEX"):
        return "commodity"
    if info.exchange in ("CDS", "BCD"):
        return "currency"
    return "index" if spot is not None and spot.exchange in INDEX_EXCHANGES else "stock"


def margin(venue: Venue, legs: list[tuple[SymbolInfo, OrderInput]]) -> dict:
    """The basket's margin by the SPAN approximation of services.trading.paper.span, each leg at its order's
    price (a priced order) or its last price; an option's scenarios move its underlying (its index or stock, else
    its nearest future: services.market.options). The legs' and underlyings' quotes are read in one go."""
    lev = account.leverage()
    today = utcnow().date()
    unders = {info.symbol: market_options.underlying_instrument(info.name or "", info.exchange, today)
              for info, _inp in legs if info.instrumenttype in ("FUT", "CE", "PE")}
    found = quotes.get_quotes([info for info, _inp in legs] + [u for u in unders.values() if u is not None])
    built = []
    for info, inp in legs:
        kind = _span_kind(info, unders.get(info.symbol))
        last = found[(info.symbol, info.exchange)].ltp
        price = inp.price if inp.price > 0 else last
        under = price if kind == "equity" else last
        if info.instrumenttype in ("CE", "PE"):
            spot = unders[info.symbol]
            # An option whose underlying is not listed: its scenarios move around its strike.
            under = found[(spot.symbol, spot.exchange)].ltp if spot is not None else (info.strike or price)
        sign = 1 if inp.action == Action.BUY else -1
        built.append(span.Leg(group=(info.name or info.symbol).upper(), kind=kind, instrument=info.instrumenttype,
                              quantity=sign * inp.quantity, price=float(price), underlying=float(under),
                              strike=float(info.strike or 0), expiry=info.expiry, exchange=info.exchange,
                              product=inp.product, leverage=float(lev.mis)))
    m = span.margin(built, utcnow())
    return {"total_margin_required": float(m.total), "span_margin": float(m.span),
            "exposure_margin": float(m.exposure), "margin_benefit": float(m.benefit)}
