"""The live venue: a use case's call carried to the user's broker session (brokers/), journaled.

Every function takes the live Venue (services.trading.venues) and runs inside the caller's use case;
each ends its own unit of work. A broker's refusal is answered by `venue.refused()`, which records what
must be recorded (a rejected order, an expired session) in a unit of its own.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict
from decimal import Decimal

from sqlalchemy import select

from brokers.base import BrokerError, BrokerPosition, BrokerQuote, ErrorKind, MarginOrder, OrderRequest
from database import db
from database.enums import Action, Mode, OrderStatus, PriceType
from database.order_db import Order
from database.unit import unit_of_work
from services.market import quotes, symbol_index
from services.market.symbol_index import SymbolInfo
from services.trading import journal, shapes
from services.trading.errors import OrderError, not_found
from services.trading.journal import OrderInput, Placed
from services.trading.venues import Venue
from vocabulary import OPEN_STATUSES

log = logging.getLogger("algobridge.orders")


def _request(inp: OrderInput, info: SymbolInfo) -> OrderRequest:
    return OrderRequest(symbol=info.brsymbol, exchange=info.brexchange, action=inp.action, quantity=inp.quantity,
                        pricetype=inp.pricetype, product=inp.product, price=inp.price,
                        trigger_price=inp.trigger_price, disclosed_quantity=inp.disclosed_quantity, token=info.token)


def _call(venue: Venue, fn, *args):
    """`fn(*args)` at the broker; its refusal becomes the OrderError to raise."""
    try:
        return fn(*args)
    except BrokerError as exc:
        raise venue.refused(exc) from None


# -- orders ----------------------------------------------------------------------------------------------
def place(venue: Venue, inp: OrderInput, info: SymbolInfo, *, signal_id: int | None = None,
          parent_id: int | None = None) -> Placed:
    """Send the order and journal it, accepted or refused, in one unit (joining the caller's); a refusal
    comes back as `Placed.error`, for the use case to raise once its unit has committed the record."""
    t0 = time.perf_counter()
    with unit_of_work():
        try:
            result = venue.client.place_order(_request(inp, info))
        except BrokerError as exc:
            order = journal.new_order(venue.user_id, inp, mode=Mode.LIVE, broker=venue.broker,
                                      orderid=journal.new_id(), status=OrderStatus.REJECTED, signal_id=signal_id,
                                      parent_id=parent_id, add=False)
            journal.reject(order, exc.message)
            venue.record_refusal(exc)
            return Placed(order.orderid, Mode.LIVE.value, OrderStatus.REJECTED.value, venue.broker,
                          (time.perf_counter() - t0) * 1000, error=venue.answer_to(exc))
        broker_ms = (time.perf_counter() - t0) * 1000
        status = journal.initial_status(inp.pricetype)
        journal.new_order(venue.user_id, inp, mode=Mode.LIVE, broker=venue.broker, orderid=result.orderid,
                          status=status, signal_id=signal_id, parent_id=parent_id)
    log.info("live order %s of user %s at %s: %s %s %s:%s", result.orderid, venue.user_id, venue.broker, inp.action,
             inp.quantity, inp.exchange, inp.symbol)
    return Placed(result.orderid, Mode.LIVE.value, status.value, venue.broker, broker_ms)


def positions(venue: Venue) -> list[BrokerPosition]:
    return _call(venue, venue.client.positions)


def position_quantity(venue: Venue, info: SymbolInfo, product: str) -> int:
    """The signed net quantity the broker holds of one instrument and product."""
    return int(sum(p.quantity for p in positions(venue)
                   if p.symbol == info.brsymbol and p.exchange == info.brexchange and p.product == product))


def open_position(venue: Venue, info: SymbolInfo, product: str) -> int:
    return position_quantity(venue, info, product)


def modify(venue: Venue, orderid: str, row: Order | None, inp: OrderInput, info: SymbolInfo) -> Placed:
    t0 = time.perf_counter()
    result = _call(venue, venue.client.modify_order, str(orderid), _request(inp, info))
    broker_ms = (time.perf_counter() - t0) * 1000
    with unit_of_work():
        if row is not None:
            row.quantity, row.pricetype = Decimal(inp.quantity), PriceType(inp.pricetype)
            row.price, row.trigger_price = Decimal(inp.price), Decimal(inp.trigger_price)
    status = row.status.value if row is not None else OrderStatus.OPEN.value
    return Placed(result.orderid, Mode.LIVE.value, status, venue.broker, broker_ms)


def cancel(venue: Venue, orderid: str, row: Order | None) -> str:
    try:
        venue.client.cancel_order(str(orderid))
    except BrokerError as exc:
        if exc.status == 404:
            raise not_found(orderid) from None
        raise venue.refused(exc) from None
    with unit_of_work():
        if row is not None:
            row.status = OrderStatus.CANCELLED
    return str(orderid)


def cancel_all(venue: Venue) -> tuple[list[str], list[str]]:
    canceled: list[str] = []
    failed: list[str] = []
    for order in _call(venue, venue.client.orderbook):
        if order.status not in OPEN_STATUSES:  # a broker's status is a plain string: compared by value
            continue
        try:
            venue.client.cancel_order(order.orderid)
            canceled.append(order.orderid)
        except BrokerError as exc:
            if exc.is_session_error:
                raise venue.refused(exc) from None
            failed.append(order.orderid)
    if canceled:
        with unit_of_work():
            for row in db.session.scalars(select(Order).where(Order.user_id == venue.user_id, Order.mode == Mode.LIVE,
                                                              Order.orderid.in_(canceled))):
                row.status = OrderStatus.CANCELLED
    return canceled, failed


def close_all(venue: Venue, strategy: str) -> int:
    count = 0
    for p in positions(venue):
        if not p.quantity:
            continue
        symbol = symbol_index.get_oa_symbol(p.symbol, p.exchange) or p.symbol
        info = symbol_index.get_symbol_info(symbol, p.exchange)
        if info is None:
            log.warning("close all: %s:%s is not in the master contract; skipped", p.exchange, p.symbol)
            continue
        inp = OrderInput(strategy=strategy, exchange=info.exchange, symbol=info.symbol,
                         action=Action.SELL.value if p.quantity > 0 else Action.BUY.value, quantity=abs(p.quantity),
                         product=p.product)
        placed = place(venue, inp, info)
        if placed.error is not None:
            raise placed.error
        count += 1
    return count


_STATUS_FIELDS = ("action", "average_price", "exchange", "order_status", "orderid", "price", "pricetype", "product",
                  "quantity", "symbol", "timestamp", "trigger_price")


def status(venue: Venue, orderid: str, row: Order | None) -> dict:
    try:
        bo = venue.client.order_status(str(orderid))
    except BrokerError as exc:
        if exc.status == 404 or exc.kind == "input":
            raise not_found(orderid) from None
        raise venue.refused(exc) from None
    if row is not None:
        with unit_of_work():
            shapes.sync_journal(row, bo)
    data = shapes.broker_order_data(bo)
    data["average_price"] = float(bo.average_price)
    return {k: data[k] for k in _STATUS_FIELDS}


def quote(venue: Venue, symbol: str, exchange: str) -> quotes.QuoteData:
    """The broker's quote, stored (a unit of its own) and returned. A live trader is never shown
    simulated prices as if they were the market's."""
    info = symbol_index.get_symbol_info(symbol, exchange.upper())
    if info is None:
        return quotes.get_quote(symbol, exchange)  # raises UnknownSymbolError
    key = (info.brexchange, info.brsymbol)
    found = _call(venue, venue.client.quotes, [key], {key: info.token}).get(key)
    if found is None:
        raise OrderError(f"{venue.broker} has no quote for {info.symbol} on {info.exchange}", 404)
    values = asdict(found)
    values.pop("timestamp", None)
    with unit_of_work():
        return quotes.get_quote(symbol, exchange, lambda _info: values, broker=venue.broker)


# -- books -----------------------------------------------------------------------------------------------
def orderbook(venue: Venue) -> dict:
    book = _call(venue, venue.client.orderbook)
    names = shapes.oa_symbols({(b.symbol, b.exchange) for b in book})
    orders = [shapes.broker_order_data(b, names[(b.symbol, b.exchange)]) for b in book]
    by_id = {b.orderid: b for b in book}
    if by_id:
        with unit_of_work():  # the journal's statuses kept current
            for row in db.session.scalars(select(Order).where(Order.user_id == venue.user_id, Order.mode == Mode.LIVE,
                                                              Order.orderid.in_(list(by_id)))):
                shapes.sync_journal(row, by_id[row.orderid])
    return {"orders": orders, "statistics": shapes.statistics(orders)}


def tradebook(venue: Venue) -> list:
    trades = _call(venue, venue.client.tradebook)
    names = shapes.oa_symbols({(t.symbol, t.exchange) for t in trades})
    return [{"action": t.action, "symbol": names[(t.symbol, t.exchange)], "exchange": t.exchange,
             "orderid": t.orderid, "product": t.product, "quantity": int(t.quantity),
             "average_price": shapes.num(t.average_price), "timestamp": shapes.fmt_time(t.timestamp),
             "trade_value": shapes.num(t.trade_value)} for t in trades]


def positionbook(venue: Venue) -> list:
    found = positions(venue)
    names = shapes.oa_symbols({(p.symbol, p.exchange) for p in found})
    return [{"symbol": names[(p.symbol, p.exchange)], "exchange": p.exchange, "product": p.product,
             "quantity": int(p.quantity), "average_price": shapes.num(p.average_price), "ltp": shapes.num(p.ltp),
             "pnl": shapes.num(p.pnl)} for p in found]


def holding_rows(venue: Venue) -> list[tuple]:
    """(symbol, exchange, product, quantity, average price, ltp) of each holding at the broker."""
    items = _call(venue, venue.client.holdings)
    names = shapes.oa_symbols({(h.symbol, h.exchange) for h in items})
    return [(names[(h.symbol, h.exchange)], h.exchange, h.product, Decimal(h.quantity), h.average_price, h.ltp)
            for h in items]


def funds(venue: Venue) -> dict:
    f = _call(venue, venue.client.funds)
    return {"availablecash": shapes.money(f.availablecash), "collateral": shapes.money(f.collateral),
            "m2mrealized": shapes.money(f.m2mrealized), "m2munrealized": shapes.money(f.m2munrealized),
            "utiliseddebits": shapes.money(f.utiliseddebits)}




# -- market data and margins -----------------------------------------------------------------------------
def _broker_quotes(venue: Venue, infos: list[SymbolInfo]) -> dict[tuple[str, str], BrokerQuote]:
    """The broker's quotes of `infos`, keyed by (symbol, exchange): one call, instruments it has no quote for
    left out."""
    keys = {(i.brexchange, i.brsymbol): i for i in infos}
    tokens = {k: i.token for k, i in keys.items()}
    found = _call(venue, venue.client.quotes, list(keys), tokens) if keys else {}
    return {(keys[k].symbol, keys[k].exchange): q for k, q in found.items() if k in keys}


def quotes_many(venue: Venue, infos: list[SymbolInfo]) -> dict[tuple[str, str], quotes.QuoteData]:
    """The broker's quotes in one call, each stored as `quote` stores one (one unit)."""
    out = {}
    with unit_of_work():
        for (symbol, exchange), q in _broker_quotes(venue, infos).items():
            values = asdict(q)
            out[(symbol, exchange)] = quotes.get_quote(symbol, exchange, lambda _info, v=values: v,
                                                       broker=venue.broker)
    return out


def depth(venue: Venue, info: SymbolInfo) -> quotes.Depth:
    """The broker's five levels a side."""
    q = _broker_quotes(venue, [info]).get((info.symbol, info.exchange))
    if q is None:
        raise OrderError(f"{venue.broker} has no quote for {info.symbol} on {info.exchange}", 404)
    with unit_of_work():
        data = quotes.get_quote(info.symbol, info.exchange, lambda _info: asdict(q), broker=venue.broker)
    levels = [tuple(quotes.Level(price=lv.price, quantity=int(lv.quantity), orders=int(lv.orders)) for lv in side)
              for side in (q.bids, q.asks)]
    return quotes.Depth(quote=data, ltq=int(q.ltq), bids=levels[0], asks=levels[1],
                        total_buy=int(q.total_buy_quantity), total_sell=int(q.total_sell_quantity))


def margin(venue: Venue, legs: list[tuple[SymbolInfo, OrderInput]]) -> dict:
    """The broker's margin for the basket (its own SPAN and exposure, hedges included)."""
    orders = [MarginOrder(exchange=info.brexchange, symbol=info.brsymbol, action=inp.action, quantity=inp.quantity,
                          product=inp.product, pricetype=inp.pricetype, price=inp.price,
                          trigger_price=inp.trigger_price, token=info.token) for info, inp in legs]
    try:
        m = venue.client.basket_margin(orders)
    except BrokerError as exc:
        if exc.kind == ErrorKind.UNSUPPORTED:
            raise OrderError(f"{venue.broker} has no margin API", 501) from None
        raise venue.refused(exc) from None
    out = {"total_margin_required": float(m.total), "span_margin": float(m.span), "exposure_margin": float(m.exposure)}
    if m.benefit:
        out["margin_benefit"] = float(m.benefit)
    return out
