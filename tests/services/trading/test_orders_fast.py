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
from services.trading import orders, shapes
from services.trading.paper import account as paper
from services.trading.paper import batches
from tests.helpers import orders as fx
from tests.helpers import trading
from tests.helpers.orders import order, set_quote

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
    return paper._load_account(user_id, shapes.day_start())


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
    trading.place_order(alice, order(quantity=10))  # creates the funds row (full path)
    trading.funds(alice)  # the account is cached now
    for inp in (order(quantity=5), order(symbol="SBIN", quantity=3), order(action="SELL", quantity=15),
                order(action="SELL", quantity=2, product="NRML")):
        trading.place_order(alice, inp)
        cached = cache.get(paper.CACHE_NS, str(alice))
        assert cached is not None, "the cached account was dropped, not brought forward"
        assert _normal(cached) == _normal(_fresh(alice))
    _, queries = _count_sql(lambda: trading.funds(alice))
    assert queries == 0
    assert trading.positionbook(alice)
    assert len(trading.tradebook(alice)) == 5
    f = trading.funds(alice)
    # 15 bought at 1500.5 (the ask), 15 sold at 1499.5 (the bid): realized -15
    assert f["m2mrealized"] == "-15.00"


def test_a_fast_order_journals_its_fill_and_bumps_the_generation_in_its_transaction(app, users):
    alice, _ = users
    set_quote("INFY", "1500")
    trading.place_order(alice, order(quantity=1))
    before = _generation(alice)
    commits = []

    def ended(*_a):
        commits.append(1)

    # A commit, or (the PostgreSQL test harness runs each test in a transaction) a savepoint release.
    for name in ("commit", "release_savepoint"):
        event.listen(db.engine, name, ended)
    try:
        placed = trading.place_order(alice, order(quantity=2))
    finally:
        for name in ("commit", "release_savepoint"):
            event.remove(db.engine, name, ended)
    db.session.expire_all()
    row = db.session.scalar(select(Order).where(Order.orderid == placed.orderid))
    assert row.status.value == "complete"
    assert row.filled_quantity == 2
    assert row.average_price == Decimal("1500")
    fills = list(db.session.scalars(select(Fill).where(Fill.order_id == row.id)))
    assert [(f.quantity, f.price) for f in fills] == [(2, Decimal("1500"))]
    pos = db.session.scalar(select(Position).where(Position.user_id == alice))
    funds = db.session.scalar(select(Funds).where(Funds.user_id == alice))
    assert pos.quantity == 3
    assert funds.used_margin == pos.margin_blocked == Decimal(1500 * 3) / 5
    assert funds.available_cash == funds.opening_balance - funds.used_margin
    if not cache.current().uses_redis:
        assert _generation(alice) == before + 1
        assert len(commits) == 1, "the generation must be bumped in the order's own transaction"


def test_open_orders_send_an_order_through_the_full_path(app, users):
    alice, _ = users
    set_quote("INFY", "1500")
    trading.place_order(alice, order(quantity=1))
    trading.place_order(alice, order(pricetype="LIMIT", price="1490", quantity=1))  # stays open
    trading.orderbook(alice)
    set_quote("INFY", "1480")  # the open LIMIT order crosses: matched by the next order's housekeeping
    trading.place_order(alice, order(quantity=1))
    db.session.expire_all()
    assert db.session.scalar(select(func.count()).select_from(Fill)) == 3
    assert trading.open_position(alice, "INFY", "NSE", "MIS") == 3
    assert _normal(paper.account(alice)) == _normal(_fresh(alice))


def test_an_order_that_cannot_be_paid_for_is_still_rejected_and_journaled(app, users):
    alice, _ = users
    set_quote("INFY", "1500")
    trading.place_order(alice, order(quantity=1))
    with pytest.raises(orders.OrderError) as refused:
        trading.place_order(alice, order(quantity=10_000_000, product="CNC"))
    assert "Insufficient funds" in refused.value.message
    db.session.expire_all()
    statuses = sorted(s.value for s in db.session.scalars(select(Order.status)))
    assert statuses == ["complete", "rejected"]
    assert _normal(paper.account(alice)) == _normal(_fresh(alice))


def test_orders_of_two_users_bump_their_own_generation_rows(app, users):
    alice, bob = users
    set_quote("INFY", "1500")
    trading.place_order(alice, order(quantity=1))
    trading.place_order(bob, order(quantity=1))
    if cache.current().uses_redis:
        return  # no counters: the message after the commit carries the news
    a, b = _generation(alice), _generation(bob)
    trading.place_order(alice, order(quantity=1))
    db.session.expire_all()
    assert (_generation(alice), _generation(bob)) == (a + 1, b)
    assert db.session.scalar(select(CacheGeneration.generation).where(
        CacheGeneration.namespace == paper.CACHE_NS)) is None, "no row shared by every user's orders"


def test_a_full_path_unit_that_writes_orders_moves_the_funds_version(app, users):
    """The fast path tells a stale read by Funds.updated_at: an order that leaves the funds figures as
    they were (an open LIMIT order) must still move it."""
    alice, _ = users
    set_quote("INFY", "1500")
    trading.place_order(alice, order(quantity=1))
    db.session.expire_all()
    before = db.session.scalar(select(Funds.updated_at).where(Funds.user_id == alice))
    trading.place_order(alice, order(pricetype="LIMIT", price="1400", quantity=1))  # stays open
    db.session.expire_all()
    row = db.session.scalar(select(Funds).where(Funds.user_id == alice))
    assert row.updated_at > before
    assert row.used_margin == Decimal(1500) / 5  # the figures themselves did not change


# -- group commit (services.trading.paper.batches._FastBatches) ------------------------------------------------
@pytest.fixture
def no_generation_polls(app, monkeypatch):
    """The poller of other processes' cache generations (database.cache, without Redis) sees nothing new
    during the test: it could read a batch's generation bump between the commit and the moment this process
    marks the bump as its own, and then rightly drop the entry (it cannot tell whose bump it is), which
    would hide what the test checks: that this process brings its cached account forward batch by batch.
    Other processes' invalidations have tests of their own (tests/database/test_cache.py)."""
    two_level = cache.current()
    monkeypatch.setattr(two_level, "_read_generations", lambda: dict(two_level._seen))  # noqa: SLF001


def test_concurrent_orders_committed_in_batches_end_as_if_placed_one_by_one(app, users, caplog, no_generation_polls):
    import threading

    alice, _ = users
    set_quote("INFY", "1500", bid="1499.5", ask="1500.5")
    set_quote("SBIN", "800")
    trading.place_order(alice, order(symbol="SBIN", quantity=1))  # the funds row exists
    trading.funds(alice)  # the account is cached: every batch must bring it forward exactly
    plan = [("SBIN" if k % 5 == 4 else "INFY", "BUY" if k % 2 == 0 else "SELL", 2 if k % 2 == 0 else 1)
            for k in range(20)]
    threads, barrier, errors = 6, threading.Barrier(6), []
    batches._FAST.largest = 0

    def worker() -> None:
        with app.app_context():
            barrier.wait()
            try:
                for symbol, action, qty in plan:
                    trading.place_order(alice, order(symbol=symbol, action=action, quantity=qty))
            except Exception as exc:  # noqa: BLE001 - reported below
                errors.append(exc)

    running = [threading.Thread(target=worker) for _ in range(threads)]
    for t in running:
        t.start()
    for t in running:
        t.join(timeout=120)
    assert not errors
    assert not any(t.is_alive() for t in running)
    assert batches._FAST.largest > 1, "no two orders ever shared a transaction"
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
    first = trading.place_order(alice, order(quantity=1))
    before = db.session.scalar(select(func.count()).select_from(Order))
    jobs = [batches._fast_job(alice, order(quantity=q), utcnow(), time.perf_counter()) for q in (1, 2, 3)]
    jobs[1].values["orderid"] = first.orderid  # taken: the batch's insert of it fails
    batches._FAST._run(jobs)
    assert all(job.result is batches._ALONE for job in jobs)
    db.session.expire_all()
    assert db.session.scalar(select(func.count()).select_from(Order)) == before  # nothing of the batch stayed
    assert batches._place_fast_alone(jobs[0]).orderid == jobs[0].values["orderid"]
    with pytest.raises(IntegrityError, match="(?i)orderid|unique"):  # the taken order id, refused alone
        batches._place_fast_alone(jobs[1])
    db.session.rollback()
    assert batches._place_fast_alone(jobs[2]).orderid == jobs[2].values["orderid"]
    pos = db.session.scalar(select(Position).where(Position.symbol == "INFY"))
    assert pos.quantity == 1 + 1 + 3


# -- differential: the fast path against the full path --------------------------------------------------------------
def _ledger(user_id: int) -> dict:
    """What an account's orders leave behind, without ids and times: journal, fills, positions, funds."""
    db.session.rollback()
    journal = [(o.symbol, o.action.value, o.product.value, o.pricetype.value, o.quantity, o.filled_quantity,
                o.average_price, o.status.value, o.status_message)
               for o in db.session.scalars(select(Order).where(Order.user_id == user_id).order_by(Order.id))]
    fills = [(o.symbol, f.quantity, f.price) for f, o in db.session.execute(
        select(Fill, Order).join(Order, Order.id == Fill.order_id).where(Order.user_id == user_id)
        .order_by(Fill.id))]
    positions = sorted((p.symbol, p.product.value, p.quantity, p.average_price, p.realized_pnl, p.buy_quantity,
                        p.buy_value, p.sell_quantity, p.sell_value, p.margin_blocked)
                       for p in db.session.scalars(select(Position).where(Position.user_id == user_id)))
    f = db.session.scalars(select(Funds).where(Funds.user_id == user_id)).one()
    funds = (f.opening_balance, f.available_cash, f.used_margin, f.realized_pnl)
    return {"journal": journal, "fills": fills, "positions": positions, "funds": funds}


def _orders(seed: int, n: int) -> list:
    import random

    rnd = random.Random(seed)  # noqa: S311 - a reproducible sequence, not a secret
    out = []
    for _ in range(n):
        out.append(order(symbol=rnd.choice(("INFY", "SBIN", "RELIANCE")), action=rnd.choice(("BUY", "SELL")),
                         quantity=rnd.choice((1, 5, 10, 40, 100, 2500)), product=rnd.choice(("MIS", "NRML", "CNC"))))
    return out


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_the_fast_path_books_exactly_what_the_full_path_books(app, users, monkeypatch, seed):
    """The same orders, one account through the fast path, the other through the full path alone: the same
    journal (statuses and rejections included), fills, positions and funds."""
    alice, bob = users
    set_quote("INFY", "1500.25")
    set_quote("SBIN", "790.10")
    set_quote("RELIANCE", "2890.55")
    sequence = _orders(seed, 40)
    fast_taken = []
    real_place = batches.place

    def counting(*args, **kwargs):
        placed = real_place(*args, **kwargs)
        fast_taken.append(placed is not None)
        return placed

    monkeypatch.setattr(batches, "place", counting)
    for inp in sequence:
        try:
            trading.place_order(alice, inp)
        except orders.OrderError:
            pass
    monkeypatch.setattr(batches, "place", lambda *a, **k: None)  # bob: the full path only
    for inp in sequence:
        try:
            trading.place_order(bob, inp)
        except orders.OrderError:
            pass
    fast, full = _ledger(alice), _ledger(bob)
    assert sum(fast_taken) >= len(sequence) // 2  # the fast path really took most of alice's orders
    assert any(row[7] == "rejected" for row in fast["journal"])  # and the sequence holds refusals to compare
    assert fast == full
