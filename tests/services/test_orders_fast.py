"""The fast path of paper orders (services.trading.paper.account.place_fast): the same journal and books as the full
path, the cached account brought forward in place (equal to a fresh load), and the cache generation
bumped in the order's own transaction."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

import pytest
from sqlalchemy import event, func, select
from sqlalchemy.exc import IntegrityError

from database import cache, db
from database.cache import CacheGeneration
from database.order_db import Fill, Order
from database.portfolio_db import Funds, Position
from services.trading import books, orders
from services.trading.paper import account as paper
from tests.services import test_orders_fixtures as fx
from tests.services.test_orders_fixtures import order, set_quote

contract = fx.contract  # fixture
users = fx.users  # fixture


def _normal(value):
    """Numbers compared by value ("1500.0000" == "1500.00"), everything else as is."""
    if isinstance(value, dict):
        return {k: _normal(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_normal(v) for v in value]
    if isinstance(value, str):
        try:
            return Decimal(value)
        except InvalidOperation:
            return value
    return value


def _fresh(user_id: int) -> dict:
    return paper._load_account(user_id, books.day_start())


def _count_sql(fn):
    seen = []

    def hook(*_a):
        seen.append(1)

    event.listen(db.engine, "before_cursor_execute", hook)
    try:
        result = fn()
    finally:
        event.remove(db.engine, "before_cursor_execute", hook)
    return result, len(seen)


def _generation(user_id: int) -> int:
    return db.session.scalar(select(CacheGeneration.generation).where(
        CacheGeneration.namespace == cache.generation_row(paper.CACHE_NS, str(user_id)))) or 0


def test_fast_orders_keep_the_cached_account_equal_to_a_fresh_load(app, users):
    alice, _ = users
    set_quote("INFY", "1500", bid="1499.5", ask="1500.5")
    set_quote("SBIN", "800")
    orders.place_order(alice, order(quantity=10))  # creates the funds row (full path)
    books.funds(alice)  # the account is cached now
    for inp in (order(quantity=5), order(symbol="SBIN", quantity=3), order(action="SELL", quantity=15),
                order(action="SELL", quantity=2, product="NRML")):
        orders.place_order(alice, inp)
        cached = cache.get(paper.CACHE_NS, str(alice))
        assert cached is not None, "the cached account was dropped, not brought forward"
        assert _normal(cached) == _normal(_fresh(alice))
    _, queries = _count_sql(lambda: books.funds(alice))
    assert queries == 0
    assert books.positionbook(alice) and len(books.tradebook(alice)) == 5
    f = books.funds(alice)
    # 15 bought at 1500.5 (the ask), 15 sold at 1499.5 (the bid): realized -15
    assert f["m2mrealized"] == "-15.00"


def test_a_fast_order_journals_its_fill_and_bumps_the_generation_in_its_transaction(app, users):
    alice, _ = users
    set_quote("INFY", "1500")
    orders.place_order(alice, order(quantity=1))
    before = _generation(alice)
    commits = []

    def ended(*_a):
        commits.append(1)

    # A commit, or (the PostgreSQL test harness runs each test in a transaction) a savepoint release.
    for name in ("commit", "release_savepoint"):
        event.listen(db.engine, name, ended)
    try:
        placed = orders.place_order(alice, order(quantity=2))
    finally:
        for name in ("commit", "release_savepoint"):
            event.remove(db.engine, name, ended)
    db.session.expire_all()
    row = db.session.scalar(select(Order).where(Order.orderid == placed.orderid))
    assert row.status.value == "complete" and row.filled_quantity == 2 and row.average_price == Decimal("1500")
    fills = list(db.session.scalars(select(Fill).where(Fill.order_id == row.id)))
    assert [(f.quantity, f.price) for f in fills] == [(2, Decimal("1500"))]
    pos = db.session.scalar(select(Position).where(Position.user_id == alice))
    funds = db.session.scalar(select(Funds).where(Funds.user_id == alice))
    assert pos.quantity == 3 and funds.used_margin == pos.margin_blocked == Decimal(1500 * 3) / 5
    assert funds.available_cash == funds.opening_balance - funds.used_margin
    if not cache.current().uses_redis:
        assert _generation(alice) == before + 1
        assert len(commits) == 1, "the generation must be bumped in the order's own transaction"


def test_open_orders_send_an_order_through_the_full_path(app, users):
    alice, _ = users
    set_quote("INFY", "1500")
    orders.place_order(alice, order(quantity=1))
    orders.place_order(alice, order(pricetype="LIMIT", price="1490", quantity=1))  # stays open
    books.orderbook(alice)
    set_quote("INFY", "1480")  # the open LIMIT order crosses: matched by the next order's housekeeping
    orders.place_order(alice, order(quantity=1))
    db.session.expire_all()
    assert db.session.scalar(select(func.count()).select_from(Fill)) == 3
    assert orders.open_position(alice, "INFY", "NSE", "MIS") == 3
    assert _normal(paper.account(alice)) == _normal(_fresh(alice))


def test_an_order_that_cannot_be_paid_for_is_still_rejected_and_journaled(app, users):
    alice, _ = users
    set_quote("INFY", "1500")
    orders.place_order(alice, order(quantity=1))
    try:
        orders.place_order(alice, order(quantity=10_000_000, product="CNC"))
    except orders.OrderError as exc:
        assert "Insufficient funds" in exc.message
    else:  # pragma: no cover - reported by the assertion
        raise AssertionError("the order was not rejected")
    db.session.expire_all()
    statuses = sorted(s.value for s in db.session.scalars(select(Order.status)))
    assert statuses == ["complete", "rejected"]
    assert _normal(paper.account(alice)) == _normal(_fresh(alice))


def test_orders_of_two_users_bump_their_own_generation_rows(app, users):
    alice, bob = users
    set_quote("INFY", "1500")
    orders.place_order(alice, order(quantity=1))
    orders.place_order(bob, order(quantity=1))
    if cache.current().uses_redis:
        return  # no counters: the message after the commit carries the news
    a, b = _generation(alice), _generation(bob)
    orders.place_order(alice, order(quantity=1))
    db.session.expire_all()
    assert (_generation(alice), _generation(bob)) == (a + 1, b)
    assert db.session.scalar(select(CacheGeneration.generation).where(
        CacheGeneration.namespace == paper.CACHE_NS)) is None, "no row shared by every user's orders"


def test_a_full_path_unit_that_writes_orders_moves_the_funds_version(app, users):
    """The fast path tells a stale read by Funds.updated_at: an order that leaves the funds figures as
    they were (an open LIMIT order) must still move it."""
    alice, _ = users
    set_quote("INFY", "1500")
    orders.place_order(alice, order(quantity=1))
    db.session.expire_all()
    before = db.session.scalar(select(Funds.updated_at).where(Funds.user_id == alice))
    orders.place_order(alice, order(pricetype="LIMIT", price="1400", quantity=1))  # stays open
    db.session.expire_all()
    row = db.session.scalar(select(Funds).where(Funds.user_id == alice))
    assert row.updated_at > before
    assert row.used_margin == Decimal(1500) / 5  # the figures themselves did not change


# -- group commit (services.trading.orders._FastBatches) ---------------------------------------------------------
def test_concurrent_orders_committed_in_batches_end_as_if_placed_one_by_one(app, users, caplog):
    import threading

    alice, _ = users
    set_quote("INFY", "1500", bid="1499.5", ask="1500.5")
    set_quote("SBIN", "800")
    orders.place_order(alice, order(symbol="SBIN", quantity=1))  # the funds row exists
    books.funds(alice)  # the account is cached: every batch must bring it forward exactly
    plan = [("SBIN" if k % 5 == 4 else "INFY", "BUY" if k % 2 == 0 else "SELL", 2 if k % 2 == 0 else 1)
            for k in range(20)]
    threads, barrier, errors = 6, threading.Barrier(6), []
    orders._FAST.largest = 0

    def worker() -> None:
        with app.app_context():
            barrier.wait()
            try:
                for symbol, action, qty in plan:
                    orders.place_order(alice, order(symbol=symbol, action=action, quantity=qty))
            except Exception as exc:  # noqa: BLE001 - reported below
                errors.append(exc)

    running = [threading.Thread(target=worker) for _ in range(threads)]
    for t in running:
        t.start()
    for t in running:
        t.join(timeout=120)
    assert not errors and not any(t.is_alive() for t in running)
    assert orders._FAST.largest > 1, "no two orders ever shared a transaction"
    assert "run again on its own" not in caplog.text  # every batch was written as a batch
    db.session.expire_all()
    assert db.session.scalar(select(func.count()).select_from(Order)) == 1 + threads * len(plan)
    assert db.session.scalar(select(func.count()).select_from(Fill)) == 1 + threads * len(plan)
    for symbol, extra in (("INFY", 0), ("SBIN", 1)):
        bought = extra + threads * sum(q for s, a, q in plan if s == symbol and a == "BUY")
        sold = threads * sum(q for s, a, q in plan if s == symbol and a == "SELL")
        pos = db.session.scalar(select(Position).where(Position.symbol == symbol))
        assert (pos.buy_quantity, pos.sell_quantity, pos.quantity) == (bought, sold, bought - sold)
    funds = db.session.scalar(select(Funds))
    assert funds.used_margin == db.session.scalar(select(func.sum(Position.margin_blocked)))
    cached = cache.get(paper.CACHE_NS, str(alice))
    assert cached is not None, "the cached account was dropped, not brought forward batch by batch"
    assert _normal(cached) == _normal(_fresh(alice))


def test_a_failing_batch_runs_each_order_again_alone_and_the_error_stays_with_its_order(app, users):
    import time

    from database.types import utcnow

    alice, _ = users
    set_quote("INFY", "1500")
    first = orders.place_order(alice, order(quantity=1))
    before = db.session.scalar(select(func.count()).select_from(Order))
    jobs = [orders._fast_job(alice, order(quantity=q), utcnow(), time.perf_counter()) for q in (1, 2, 3)]
    jobs[1].values["orderid"] = first.orderid  # taken: the batch's insert of it fails
    orders._FAST._run(jobs)
    assert all(job.result is orders._ALONE for job in jobs)
    db.session.expire_all()
    assert db.session.scalar(select(func.count()).select_from(Order)) == before  # nothing of the batch stayed
    assert orders._place_fast_alone(jobs[0]).orderid == jobs[0].values["orderid"]
    with pytest.raises(IntegrityError, match="(?i)orderid|unique"):  # the taken order id, refused alone
        orders._place_fast_alone(jobs[1])
    db.session.rollback()
    assert orders._place_fast_alone(jobs[2]).orderid == jobs[2].values["orderid"]
    pos = db.session.scalar(select(Position).where(Position.symbol == "INFY"))
    assert pos.quantity == 1 + 1 + 3
