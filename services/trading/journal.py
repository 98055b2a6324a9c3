"""The order journal: every order through the bridge, live or analyze, as an `orders` row.

What a use case hands a venue (`OrderInput`), what a venue answers (`Placed`), and the journal rows
both venues write: a new order, its initial status, a rejection (with its alert).
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import random
import threading
from dataclasses import dataclass
from decimal import Decimal

from flask import current_app
from sqlalchemy import select

import config as config_module
from database import db
from database.alert_db import Alert
from database.enums import Action, Exchange, Mode, OrderStatus, PriceType, Product
from database.order_db import Order
from database.types import utcnow
from services.trading.errors import OrderError
from vocabulary import needs_trigger

log = logging.getLogger("algobridge.orders")

WEB_STRATEGY = "Web"  # the strategy of the orders placed from the web pages (modify, close, close all)


@dataclass(frozen=True)
class OrderInput:
    strategy: str
    exchange: str
    symbol: str
    action: str
    quantity: int
    pricetype: str = PriceType.MARKET.value
    product: str = Product.MIS.value
    price: Decimal = Decimal(0)
    trigger_price: Decimal = Decimal(0)
    disclosed_quantity: int = 0

    def but(self, **changes) -> OrderInput:
        """A copy with some fields changed."""
        return OrderInput(**{**self.__dict__, **changes})


@dataclass(frozen=True)
class Placed:
    orderid: str
    mode: str  # the venue's label: "analyze" | "live"
    status: str  # our OrderStatus value after placement
    broker: str  # "paper" or the live broker's name
    broker_ms: float  # time spent at the venue (the analyze-mode exchange's book-keeping, or the broker's HTTP)
    error: OrderError | None = None  # set when the venue rejected the order (journaled as rejected)


# Order and trade ids need to be unique, not unguessable. Within a process they are unique by
# construction: the microsecond part never repeats or goes back (many ids of one batch or one
# close-all share a `now`; each takes the next free microsecond). Between processes the 4 random digits
# of a generator seeded from the OS once per process (again in every forked worker) keep them apart.
_IDS = random.Random()  # noqa: S311 - uniqueness only; access to an order is checked by its owner
os.register_at_fork(after_in_child=_IDS.seed)
_last = [0, -1]  # [yymmdd, micros] of the last id of this process
_last_lock = threading.Lock()


def new_id(now: dt.datetime | None = None) -> str:
    """A numeric id unique across processes: exchange date, microsecond of the day, 4 random digits."""
    local = (now or utcnow()).astimezone(config_module.exchange_tz(current_app.config))
    day = (local.year % 100) * 10_000 + local.month * 100 + local.day
    micros = ((local.hour * 60 + local.minute) * 60 + local.second) * 1_000_000 + local.microsecond
    with _last_lock:
        if day == _last[0] and micros <= _last[1]:
            micros = _last[1] + 1
        _last[0], _last[1] = day, micros
    return f"{day:06d}{micros:011d}{_IDS.randrange(10_000):04d}"


def initial_status(pricetype: str) -> OrderStatus:
    return OrderStatus.TRIGGER_PENDING if needs_trigger(pricetype) else OrderStatus.OPEN


def new_order(user_id: int, inp: OrderInput, *, mode: Mode, broker: str, orderid: str, status: OrderStatus,
              signal_id: int | None = None, parent_id: int | None = None, now: dt.datetime | None = None,
              add: bool = True) -> Order:
    """A journal row; `add=False` leaves adding it to the session to the caller (paper fills add it filled)."""
    now = now or utcnow()
    order = Order(user_id=user_id, signal_id=signal_id, parent_id=parent_id, orderid=orderid, broker=broker, mode=mode,
                  strategy=(inp.strategy or None) and inp.strategy[:100], symbol=inp.symbol,
                  exchange=Exchange(inp.exchange), action=Action(inp.action), pricetype=PriceType(inp.pricetype),
                  product=Product(inp.product), quantity=Decimal(inp.quantity), filled_quantity=Decimal(0),
                  price=Decimal(inp.price), trigger_price=Decimal(inp.trigger_price),
                  disclosed_quantity=Decimal(inp.disclosed_quantity), average_price=Decimal(0), status=status,
                  placed_at=now, updated_at=now)
    if add:
        db.session.add(order)
    return order


def status_messages(user_id: int, orderids: list[str]) -> dict[str, str]:
    """The journal's message of each of the user's orders that has one (a rejection's reason), by order id:
    the order book page shows it beside the status."""
    if not orderids:
        return {}
    rows = db.session.execute(select(Order.orderid, Order.status_message).where(
        Order.user_id == user_id, Order.orderid.in_(orderids), Order.status_message.is_not(None)))
    return {orderid: message for orderid, message in rows if message}


def reject(order: Order, message: str) -> None:
    """Mark `order` rejected with the reason, and raise an alert for the trader."""
    order.status = OrderStatus.REJECTED
    order.status_message = message
    db.session.add(order)
    db.session.add(Alert(user_id=order.user_id, severity="warning", kind="order_rejected",
                         title=f"Order rejected: {order.action.value} {order.quantity} {order.symbol}",
                         message=f"Order {order.orderid} ({order.exchange.value}:{order.symbol}) was rejected: "
                                 f"{message}"))
    log.info("%s order %s of user %s rejected: %s", order.mode.value, order.orderid, order.user_id, message)
