"""Concurrent orders of one user: smart orders reach their target once; funds never lose an update.
Each thread has its own app context (its own session and connection), as worker threads do."""

from __future__ import annotations

import threading
from decimal import Decimal

from sqlalchemy import func, select

from database import db
from database.order_db import Order
from database.portfolio_db import Funds, Position
from tests.helpers import orders as fx
from tests.helpers import trading
from tests.helpers.orders import order, set_quote

contract = fx.contract  # fixture
users = fx.users  # fixture

THREADS = 6


def _run_concurrently(app, fn) -> list:
    barrier = threading.Barrier(THREADS)
    results: list = [None] * THREADS

    def worker(i: int) -> None:
        with app.app_context():
            barrier.wait()
            try:
                results[i] = fn()
            except Exception as exc:  # noqa: BLE001 - reported by the assertion below
                results[i] = exc

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not any(t.is_alive() for t in threads)
    assert not [r for r in results if isinstance(r, Exception)], results
    return results


def test_concurrent_smart_orders_reach_the_target_once(app, users):
    alice, _ = users
    set_quote("INFY", "1500")
    set_quote("SBIN", "800")
    trading.place_order(alice, order(symbol="SBIN", quantity=1))  # the funds row exists: no incidental wait on it
    results = _run_concurrently(app, lambda: trading.place_smart_order(alice, order(quantity=1), position_size=10))
    assert sum(r is not None for r in results) == 1
    db.session.expire_all()
    assert trading.open_position(alice, "INFY", "NSE", "MIS") == 10
    assert db.session.scalar(select(func.count()).select_from(Order).where(Order.symbol == "INFY")) == 1


def test_concurrent_orders_keep_funds_and_positions_consistent(app, users):
    alice, _ = users
    set_quote("SBIN", "800")
    _run_concurrently(app, lambda: trading.place_order(alice, order(symbol="SBIN", quantity=1)))
    db.session.expire_all()
    pos = db.session.scalar(select(Position))
    funds = db.session.scalar(select(Funds))
    assert pos.quantity == THREADS
    assert funds.used_margin == pos.margin_blocked == Decimal(800 * THREADS) / 5
    assert db.session.scalar(select(func.count()).select_from(Funds)) == 1


def test_concurrent_first_orders_of_an_instrument_all_fill_and_the_position_is_exact(app, users):
    alice, _ = users
    set_quote("INFY", "1500")
    set_quote("SBIN", "800")
    # The funds row exists (an order in another instrument), so each order below takes the fast path:
    # all of them are the first of INFY for this user, and then all of them add to an existing position.
    trading.place_order(alice, order(symbol="SBIN", quantity=1))
    for round_ in (1, 2):
        _run_concurrently(app, lambda: trading.place_order(alice, order(quantity=1)))
        db.session.expire_all()
        pos = db.session.scalar(select(Position).where(Position.symbol == "INFY"))
        assert pos.quantity == pos.buy_quantity == THREADS * round_
        assert pos.buy_value == Decimal(1500 * THREADS * round_)
    funds = db.session.scalar(select(Funds))
    assert funds.used_margin == Decimal(800 + 1500 * THREADS * 2) / 5
    assert db.session.scalar(select(func.count()).select_from(Order)) == 1 + THREADS * 2
