"""Analyze mode's matching on market ticks: a resting LIMIT or SL order fills when a tick crosses it.

The feed (feed/) ticks every subscribed instrument and hands the ticks here with the open orders it
knows of (services.trading.order_events). Orders the ticks do not cross cost nothing: the decision is
the paper engine's, made first on the known rows without a lock; only an account with a crossed order
opens a unit, takes its funds lock, reads those orders again (they may have been filled, cancelled or
modified meanwhile) and runs them through account.execute(), the path every paper fill takes (session
hours, funds, charges, positions).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections import defaultdict
from collections.abc import Iterable, Mapping

from sqlalchemy import select

from database import db
from database.enums import Mode
from database.order_db import Order
from database.unit import unit_of_work
from services.trading.order_events import OrderRow
from services.trading.paper import account, engine
from vocabulary import OPEN_STATUSES, OrderStatus, needs_trigger

log = logging.getLogger("algobridge.orders")

Instrument = tuple[str, str]  # (symbol, exchange)


def crosses(row: OrderRow, quote: engine.Quote) -> bool:
    """Would this tick change the resting order (fill it, or trigger a stop)?"""
    triggered = needs_trigger(row.pricetype) and row.status == OrderStatus.OPEN
    decision = engine.decide(row.action, row.pricetype, row.price, row.trigger_price, quote, triggered=triggered)
    return decision.status != row.status


def match_ticks(ticks: Mapping[Instrument, engine.Quote], open_orders: Iterable[OrderRow],
                now: dt.datetime) -> int:
    """Fill or trigger the resting analyze-mode orders among `open_orders` that `ticks` cross, at `now`;
    one unit per account. Returns how many orders changed state."""
    wanted: dict[int, list[int]] = defaultdict(list)
    for row in open_orders:
        quote = ticks.get((row.symbol, row.exchange))
        if row.mode == Mode.ANALYZE and row.is_open and quote is not None and crosses(row, quote):
            wanted[row.user_id].append(row.id)
    changed = 0
    for user_id, ids in wanted.items():
        try:
            changed += _match_user(user_id, ids, ticks, now)
        except Exception:  # one account's failure must not stop the others' fills
            log.exception("tick matching failed for the paper account of user %s", user_id)
    return changed


def _match_user(user_id: int, ids: list[int], ticks: Mapping[Instrument, engine.Quote], now: dt.datetime) -> int:
    with unit_of_work(write=True):
        funds = account.lock_funds(user_id)
        orders = list(db.session.scalars(
            select(Order).where(Order.id.in_(ids), Order.user_id == user_id, Order.mode == Mode.ANALYZE,
                                Order.status.in_(OPEN_STATUSES)).order_by(Order.id)
            .execution_options(populate_existing=True)))
        positions = account.Positions(user_id, [(o.symbol, o.exchange.value, o.product.value) for o in orders])
        changed = 0
        for order in orders:
            before = order.status
            account.execute(order, ticks[(order.symbol, order.exchange.value)], funds, positions, now)
            if order.status != before:
                order.updated_at = now
                changed += 1
        return changed
