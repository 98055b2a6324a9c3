"""What the journal holds, read afresh (the session rolled back first, so rows other units committed
show): the signals received and the orders placed, oldest first."""

from __future__ import annotations

from sqlalchemy import select

from database import db
from database.order_db import Order, Signal


def signals() -> list[Signal]:
    db.session.rollback()
    return list(db.session.scalars(select(Signal).order_by(Signal.id)))


def journal() -> list[Order]:
    db.session.rollback()
    return list(db.session.scalars(select(Order).order_by(Order.id)))
