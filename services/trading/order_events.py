"""What changed in the order journal: new orders and status changes, both modes, read by polling.

The WebSocket feed pushes order updates to an order's owner, and the analyze-mode exchange's tick matching
needs the resting orders; both read them here, from the `orders` table, so the trading path pays nothing
(no publish per order). A watcher keeps, in memory, the orders still open and the recent ones; each poll
reads only by primary key: the rows above a low-water id (new orders), and the open ones it tracks (their
fills, cancellations, modifications). The low-water mark trails the highest id seen by SETTLE seconds,
because on PostgreSQL ids are handed out before commit and a lower id can become visible after a higher
one; rows above it are read again at every poll, and reported once per change.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from decimal import Decimal

from sqlalchemy import func, select

from database import db
from database.order_db import Order
from database.unit import unit_of_work
from services.trading.shapes import num
from vocabulary import OPEN_STATUSES

__all__ = ["JournalWatcher", "OrderRow", "order_update"]

SETTLE = 5.0  # seconds a transaction may take between taking an id and committing it
_CHUNK = 500  # ids per IN list
_OPEN = frozenset(s.value for s in OPEN_STATUSES)
_COLUMNS = (Order.id, Order.user_id, Order.orderid, Order.broker, Order.mode, Order.symbol, Order.exchange,
            Order.action, Order.pricetype, Order.product, Order.quantity, Order.price, Order.trigger_price,
            Order.filled_quantity, Order.average_price, Order.status, Order.status_message)


@dataclass(frozen=True, slots=True)
class OrderRow:
    id: int
    user_id: int
    orderid: str
    broker: str
    mode: str
    symbol: str
    exchange: str
    action: str
    pricetype: str
    product: str
    quantity: Decimal
    price: Decimal
    trigger_price: Decimal
    filled_quantity: Decimal
    average_price: Decimal
    status: str
    status_message: str | None

    @property
    def is_open(self) -> bool:
        return self.status in _OPEN


def _row(r) -> OrderRow:
    v = lambda x: getattr(x, "value", x)  # noqa: E731 - str enums from the ORM, plain strings from raw rows
    return OrderRow(r.id, r.user_id, r.orderid, r.broker, v(r.mode), r.symbol, v(r.exchange), v(r.action),
                    v(r.pricetype), v(r.product), r.quantity, r.price, r.trigger_price, r.filled_quantity or 0,
                    r.average_price or 0, v(r.status), r.status_message)


def order_update(row: OrderRow) -> dict:
    """OpenAlgo's `order_update` message for a journal row."""
    filled = Decimal(row.filled_quantity or 0)
    pending = Decimal(row.quantity) - filled if row.is_open else Decimal(0)
    return {"type": "order_update", "user_id": row.user_id, "mode": row.mode, "broker": row.broker,
            "orderid": row.orderid, "symbol": row.symbol, "exchange": row.exchange, "action": row.action,
            "quantity": int(row.quantity), "price": num(row.price), "trigger_price": num(row.trigger_price),
            "pricetype": row.pricetype, "product": row.product, "order_status": row.status,
            "filled_quantity": int(filled), "pending_quantity": int(pending), "average_price": num(row.average_price),
            "rejection_reason": (row.status_message or "") if row.status == "rejected" else ""}


class JournalWatcher:
    """Polls the journal; `poll()` answers the rows that appeared or changed since the previous poll.

    Not thread-safe: one poller per process. Needs an application context."""

    def __init__(self, clock: Callable[[], float] = time.monotonic, settle: float = SETTLE) -> None:
        self.clock = clock
        self.settle = settle
        self.low: int | None = None  # every row at or below it that matters is in `open` or done with
        self.marks: list[tuple[float, int]] = []  # (when, highest id seen then), to advance `low`
        self.seen: dict[int, OrderRow] = {}  # rows above `low`, and open rows below it

    def open_rows(self) -> Iterable[OrderRow]:
        return (r for r in self.seen.values() if r.is_open)

    def _read(self) -> list[OrderRow]:
        stmt = select(*_COLUMNS)
        if self.low is None:  # the first poll: every open order (once), and the high-water id
            rows = [_row(r) for r in db.session.execute(stmt.where(Order.status.in_(OPEN_STATUSES)))]
            self.low = db.session.scalar(select(func.max(Order.id))) or 0
            return rows
        rows = [_row(r) for r in db.session.execute(stmt.where(Order.id > self.low))]
        tracked = [i for i, r in self.seen.items() if i <= self.low and r.is_open]
        for start in range(0, len(tracked), _CHUNK):
            rows += [_row(r) for r in db.session.execute(stmt.where(Order.id.in_(tracked[start:start + _CHUNK])))]
        return rows

    def poll(self) -> list[OrderRow]:
        first = self.low is None
        with unit_of_work():
            rows = self._read()
        changed = [r for r in rows if self.seen.get(r.id) != r]
        for r in rows:
            self.seen[r.id] = r
        now = self.clock()
        top = max((r.id for r in rows), default=self.low or 0)
        self.marks.append((now, max(top, self.low or 0)))
        settled = [m for t, m in self.marks if t <= now - self.settle]
        if settled:
            self.low = max(self.low or 0, max(settled))
            self.marks = [(t, m) for t, m in self.marks if t > now - self.settle]
            # done with: rows at or below the mark that are no longer open
            for i in [i for i, r in self.seen.items() if i <= self.low and not r.is_open]:
                del self.seen[i]
        return [] if first else changed
