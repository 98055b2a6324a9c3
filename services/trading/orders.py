"""Orders: place, smart, basket, split, modify, cancel, cancel all, close all, status, open position.

Every use case takes the Venue of its call (services.trading.venues.venue_for: the one decision between
the analyze-mode exchange and the live broker session) and has one body that goes through it:
services.trading.paper.exchange or services.trading.live, which answer the same calls. Every order is
journaled (`orders`, with `fills` for analyze-mode fills), linked to its signal when it came from a
strategy. An order the venue rejects is journaled as rejected; the use case raises its OrderError only
after that record has committed.

Smart orders hold a per-user-symbol lock for the whole unit: pg_advisory_xact_lock on PostgreSQL (across
worker processes and hosts); on SQLite the unit's BEGIN IMMEDIATE already serialises writers.
"""

from __future__ import annotations

import logging
from types import ModuleType

from sqlalchemy import text

from database import db
from database.unit import unit_of_work
from services.market import symbol_index
from services.market.symbol_index import SymbolInfo
from services.trading import live, risk, rules
from services.trading.errors import NO_SESSION, SESSION_EXPIRED, OrderError, not_found
from services.trading.journal import OrderInput, Placed
from services.trading.paper import exchange as paper_exchange
from services.trading.venues import Venue, own_order
from vocabulary import INDEX_EXCHANGES, MAX_SPLIT_ORDERS, Action, needs_price, needs_trigger

__all__ = ["NO_SESSION", "SESSION_EXPIRED", "OrderError", "OrderInput", "Placed"]

log = logging.getLogger("algobridge.orders")


def through(venue: Venue) -> ModuleType:
    """The module that carries a use case's call to `venue`: both answer the same functions."""
    return paper_exchange if venue.is_analyze else live


# -- checks ------------------------------------------------------------------------------------------
def _symbol(symbol: str, exchange: str) -> SymbolInfo:
    try:  # a symbol of a contract still loading is "retry", never "not found"
        info = symbol_index.get_symbol_info_waiting(symbol, exchange)
    except symbol_index.ContractLoading as exc:
        raise OrderError(str(exc), 503) from None
    if info is None:
        raise OrderError(f"Symbol {symbol} not found in exchange {exchange}", 404)
    return info


def _check(inp: OrderInput, *, smart: bool = False) -> None:
    """What the caller's schema cannot see: the fields that go together. A smart order's quantity may be 0."""
    if isinstance(inp.quantity, bool) or not isinstance(inp.quantity, int) or inp.quantity < (0 if smart else 1):
        raise OrderError("quantity must be a positive whole number", 400)
    if inp.price < 0 or inp.trigger_price < 0:
        raise OrderError("price and trigger_price must not be negative", 400)
    if needs_price(inp.pricetype) and inp.price <= 0:
        raise OrderError(f"price is required for a {inp.pricetype} order", 400)
    if needs_trigger(inp.pricetype) and inp.trigger_price <= 0:
        raise OrderError(f"trigger_price is required for a {inp.pricetype} order", 400)


def _tradable(inp: OrderInput, venue: Venue | None = None, *, smart: bool = False, split: bool = False) -> SymbolInfo:
    _check(inp, smart=smart)
    info = _symbol(inp.symbol, inp.exchange)
    if info.exchange in INDEX_EXCHANGES:
        raise OrderError(f"{inp.symbol} is an index on {inp.exchange}: indices cannot be traded", 400)
    # The exchange's rules (a smart order's side comes later; a split's total is not one order's quantity).
    rules.enforce(venue, inp, info, sided=not smart, whole=not split)
    return info


def _accepted(placed: Placed) -> Placed:
    if placed.error is not None:
        raise placed.error
    return placed


def _canonical(inp: OrderInput, info: SymbolInfo) -> OrderInput:
    """`inp` under the master contract's own symbol and exchange (issue #13: one instrument, one name):
    what the journal, the positions, the smart-order lock and the paper account see."""
    if inp.symbol == info.symbol and inp.exchange == info.exchange:
        return inp
    return inp.but(symbol=info.symbol, exchange=info.exchange)


# -- placing -----------------------------------------------------------------------------------------
def place_order(venue: Venue, inp: OrderInput, *, signal_id: int | None = None,
                parent_id: int | None = None, evaluate: bool = True) -> Placed:
    """Place one order at the venue. Raises OrderError (after journaling a rejected order). `evaluate`: evaluate
    the P&L limits after it (False for a leg of a basket, split or multi-leg order: the caller does, once)."""
    info = _tradable(inp, venue)
    inp = _canonical(inp, info)
    if not risk.counts_orders(venue.user_id, inp.strategy):
        _held(venue, inp, info, signal_id)
        placed = _accepted(through(venue).place(venue, inp, info, signal_id=signal_id, parent_id=parent_id))
    else:  # count, decide and place under one per-user lock: concurrent orders never overshoot the count
        refused: OrderError | None = None
        with unit_of_work(write=True):
            _count_lock(venue.user_id)
            try:
                _held(venue, inp, info, signal_id)
                placed = through(venue).place(venue, inp, info, signal_id=signal_id, parent_id=parent_id)
            except OrderError as exc:  # a refusal's audit and alert, an approval's row: committed with this unit
                refused = exc
        if refused is not None:
            raise refused
        placed = _accepted(placed)
    if evaluate:
        risk.after_order(venue, inp.strategy)
    return placed


def _held(venue: Venue, inp: OrderInput, info: SymbolInfo, signal_id: int | None, *, current: int | None = None,
          kind: str = "place", position_size: int | None = None, queued: OrderInput | None = None) -> None:
    """The risk checks of an order about to be placed (issue #19): the kill switch, the day's block, the per-order
    limits; then approval (RiskRefusal, Queued). An order that only reduces the position is never held. The
    position (`current`, when the caller has it) is read at most once; `queued` is the order as held (a smart
    order's request, with `kind` "smart" and its `position_size`), by default `inp`."""
    held = risk.needs_approval(venue.user_id, inp.strategy)  # no query: the cache
    if held is not None and current is None:
        current = risk.position(venue, info, inp.product)
    risk.check_order(venue, inp, info, current=current)
    if held is not None and not risk.is_exit(inp.action, inp.quantity, current):
        raise risk.Queued(risk.queue(venue.user_id, queued or inp, held, kind=kind, position_size=position_size,
                                     signal_id=signal_id, venue=venue).id)


def _count_lock(user_id: int) -> None:
    """Per user, across processes, until the unit ends (PostgreSQL advisory lock; SQLite's write unit already
    serialises writers): the order count and the order it lets through are one step."""
    if db.session.get_bind().dialect.name == "postgresql":
        db.session.execute(text("SELECT pg_advisory_xact_lock(hashtext(:k))"), {"k": f"algobridge:orders:{user_id}"})


def _smart_lock(user_id: int, inp: OrderInput) -> None:
    """Per user and instrument, across processes, until the unit ends (PostgreSQL advisory lock)."""
    if db.session.get_bind().dialect.name == "postgresql":
        key = f"algobridge:smart:{user_id}:{inp.exchange}:{inp.symbol}"
        db.session.execute(text("SELECT pg_advisory_xact_lock(hashtext(:k))"), {"k": key})


def _smart_quantity(inp: OrderInput, current: int, position_size: int) -> tuple[str, int] | None:
    """OpenAlgo's rule: (action, quantity) to move `current` to `position_size`, or None."""
    if position_size == 0 and current == 0 and inp.quantity:
        return inp.action, inp.quantity  # flat and asked for flat with a quantity: a plain order
    diff = position_size - current
    if diff == 0:
        return None
    return (Action.BUY.value if diff > 0 else Action.SELL.value), abs(diff)


def place_smart_order(venue: Venue, inp: OrderInput, position_size: int, *,
                      signal_id: int | None = None) -> Placed | None:
    """Place the difference between `position_size` and the current net position (symbol, exchange,
    product), or nothing (None). Two concurrent smart orders for one instrument never both act."""
    info = _tradable(inp, venue, smart=True)
    inp = _canonical(inp, info)
    rules.lots(info, position_size, "position_size")
    side = through(venue)
    refused: OrderError | None = None
    with unit_of_work(write=True):
        _smart_lock(venue.user_id, inp)
        if risk.counts_orders(venue.user_id, inp.strategy):
            _count_lock(venue.user_id)
        try:
            current = side.position_quantity(venue, info, inp.product)
        except OrderError as exc:  # what the refusal recorded (an expired session) commits with this unit
            refused = exc
        else:
            plan = _smart_quantity(inp, current, position_size)
            if plan is None:
                return None
            action, qty = plan
            rules.enforce(venue, inp.but(action=action, quantity=qty), info)  # the order as placed: whole lots
            try:  # approval once the order is known: an exit (or nothing to do) is never held
                _held(venue, inp.but(action=action, quantity=qty), info, signal_id, current=current, kind="smart",
                      position_size=position_size, queued=inp)
            except OrderError as exc:  # a refusal's alert, an approval's row: committed with this unit
                refused = exc
            else:
                placed = side.place(venue, inp.but(action=action, quantity=qty), info, signal_id=signal_id)
    if refused is not None:
        raise refused
    log.info("smart order of user %s: %s:%s %s -> %s with %s %s", venue.user_id, inp.exchange, inp.symbol, current,
             position_size, action, qty)
    placed = _accepted(placed)
    risk.after_order(venue, inp.strategy)
    return placed


def basket_order(venue: Venue, strategy: str, inputs: list[OrderInput]) -> list[dict]:
    """Place each order on its own; one failing does not stop the others. The P&L limits are evaluated once,
    after the last."""
    results = []
    placed_under: list[str] = []
    for inp in inputs:
        inp = inp.but(strategy=strategy or inp.strategy)
        try:
            placed = place_order(venue, inp, evaluate=False)
            placed_under.append(inp.strategy)
            results.append({"symbol": inp.symbol, "status": "success", "orderid": placed.orderid})
        except risk.Queued as exc:  # held for approval: accepted (issue #19)
            results.append({"symbol": inp.symbol, "status": "success", "message": exc.message,
                            "pending_order_id": exc.approval_id})
        except OrderError as exc:
            results.append({"symbol": inp.symbol, "status": "error", "message": exc.message})
    if placed_under:
        risk.after_order(venue, placed_under)
    return results


def split_order(venue: Venue, inp: OrderInput, splitsize: int, *, evaluate: bool = True) -> dict:
    """Place `inp.quantity` as orders of `splitsize` (the remainder last), at most MAX_SPLIT_ORDERS. The P&L
    limits are evaluated once, after the last (`evaluate` False: not at all, the caller does)."""
    if splitsize <= 0:
        raise OrderError("splitsize must be a positive whole number", 400)
    full, rest = divmod(inp.quantity, splitsize)
    sizes = [splitsize] * full + ([rest] if rest else [])
    if len(sizes) > MAX_SPLIT_ORDERS:
        raise OrderError(f"splitsize {splitsize} would make {len(sizes)} orders; at most {MAX_SPLIT_ORDERS} are "
                         "allowed", 400)
    info = _tradable(inp, venue, split=True)
    rules.lots(info, splitsize, "splitsize")
    rules.freeze(info, splitsize, info.freeze_qty, "splitsize")  # each child is at most splitsize
    results = []
    for n, qty in enumerate(sizes, start=1):
        try:
            placed = place_order(venue, inp.but(quantity=qty), evaluate=False)
            results.append({"order_num": n, "quantity": qty, "status": "success", "orderid": placed.orderid})
        except risk.Queued as exc:  # held for approval: accepted (issue #19)
            results.append({"order_num": n, "quantity": qty, "status": "success", "message": exc.message,
                            "pending_order_id": exc.approval_id})
        except OrderError as exc:
            results.append({"order_num": n, "quantity": qty, "status": "error", "message": exc.message})
    if evaluate and any("orderid" in r for r in results):
        risk.after_order(venue, inp.strategy)
    return {"split_size": splitsize, "total_quantity": inp.quantity, "results": results}


# -- existing orders ---------------------------------------------------------------------------------
def _order_at(venue: Venue, orderid: str):
    """The journal row of `orderid` (None when only the broker may know it); 404 for an analyze-mode
    venue that has no such order."""
    row = venue.order if venue.orderid == str(orderid) else own_order(venue.user_id, orderid)
    if row is None and venue.is_analyze:
        raise not_found(orderid)
    return row


def modify_order(venue: Venue, orderid: str, inp: OrderInput) -> Placed:
    """Change quantity, price, trigger price and type of an open order (symbol, side, product stay)."""
    row = _order_at(venue, orderid)
    if row is not None:  # the rules apply to the order's own instrument and side
        inp = inp.but(symbol=row.symbol, exchange=row.exchange.value, action=row.action.value)
    info = _tradable(inp, venue)
    inp = _canonical(inp, info)
    # the order as modified meets the risk limits (issue #19): an exit only while it still only reduces
    checked = inp if row is None else inp.but(strategy=row.strategy or "", product=row.product.value)
    risk.check_order(venue, checked, info, modify=True)
    return _accepted(through(venue).modify(venue, orderid, row, inp, info))


def cancel_order(venue: Venue, orderid: str) -> str:
    """Cancel an open order; 404 for an unknown order or another user's."""
    return through(venue).cancel(venue, orderid, _order_at(venue, orderid))


def cancel_all_orders(venue: Venue) -> tuple[list[str], list[str]]:
    """Cancel every open order of the user at the venue: (cancelled ids, ids that failed)."""
    return through(venue).cancel_all(venue)


def close_all_positions(venue: Venue, strategy: str = "Close All") -> int:
    """Square off every open position at market. Returns how many orders were placed."""
    return through(venue).close_all(venue, strategy)


def order_status(venue: Venue, orderid: str) -> dict:
    """The orderstatus data (docs/api.md) of one of the user's orders."""
    return through(venue).status(venue, orderid, _order_at(venue, orderid))


def open_position(venue: Venue, symbol: str, exchange: str, product: str) -> int:
    """The signed net quantity of one instrument and product (0 when flat)."""
    return through(venue).open_position(venue, _symbol(symbol, exchange), product)
