"""Orders: place, smart, basket, split, modify, cancel, cancel all, close all, status, open position.

Each call is a unit of work that commits once. The user's mode decides where an order goes:
- analyze (the default, per user: setting "analyze_mode"): the paper broker (services.trading.paper.account and
  services.trading.paper.engine) with virtual funds; nothing reaches a live broker;
- live: the user's connected broker adapter (services.accounts.broker_login). A user whose connected "broker" is
  the paper broker trades on paper in either mode.
Every order is journaled (`orders`, with `fills` for paper fills), linked to its signal when it came
from a strategy. Calls about an existing order follow the order's own journal row (a paper order stays
a paper order after the user switches to live), and never see another user's orders (404).

Smart orders hold a per-user-symbol lock for the whole unit: pg_advisory_xact_lock on PostgreSQL (across
worker processes and hosts); on SQLite write_unit()'s BEGIN IMMEDIATE already serialises writers.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import os
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from sqlalchemy import select, text

from brokers.base import BrokerClient, BrokerError, OrderRequest
from database import cache, db, sqlite_write_turn, write_unit
from database.audit_db import AuditEvent
from database.auth_db import BrokerSession
from database.enums import Action, Exchange, Mode, OrderStatus, PriceType, Product
from database.order_db import Order
from database.portfolio_db import Funds, Position
from database.settings_db import Setting
from database.types import utcnow
from database.user_db import User
from services.accounts import broker_login
from services.market import symbol_index as token_db
from services.trading.books import order_status_data
from services.trading.paper import account as paper
from services.trading.paper.account import match_open_orders, square_off_due  # noqa: F401 - part of this module's API

log = logging.getLogger("algobridge.orders")

SETTING_KEY = "analyze_mode"
CACHE_NS = "analyze_mode"
NO_SESSION = "No live broker session: connect your broker or switch to analyze mode"
SESSION_EXPIRED = "The broker session has expired: connect your broker again or switch to analyze mode"
MAX_SPLIT_ORDERS = 100
INDEX_EXCHANGES = ("NSE_INDEX", "BSE_INDEX")


class OrderError(Exception):
    """An order call that cannot be done; `message` in words, `status` the HTTP status to answer."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.message = message
        self.status = status


@dataclass(frozen=True)
class OrderInput:
    strategy: str
    exchange: str
    symbol: str
    action: str
    quantity: int
    pricetype: str = "MARKET"
    product: str = "MIS"
    price: Decimal = Decimal(0)
    trigger_price: Decimal = Decimal(0)
    disclosed_quantity: int = 0


@dataclass(frozen=True)
class Placed:
    orderid: str
    mode: str  # "analyze" | "live"
    status: str  # our OrderStatus value after placement
    broker: str  # "paper" or the live broker's name
    broker_ms: float  # time spent in the broker call (paper engine or HTTP)


# -- analyze mode setting ----------------------------------------------------------------------------
def is_analyze(user_id: int) -> bool:
    """The user's mode: analyze (paper) unless switched to live. Cached; switching invalidates."""
    entry = cache.get_or_load(CACHE_NS, str(user_id), lambda: {"analyze": _load_analyze(user_id)})
    return bool(entry["analyze"])


def _load_analyze(user_id: int) -> bool:
    value = db.session.scalar(select(Setting.value).where(Setting.user_id == user_id, Setting.key == SETTING_KEY))
    return True if value is None else bool(value)


def set_analyze(user_id: int, analyze: bool, *, ip: str | None = None) -> None:
    """Switch the user's mode; audited; commits."""
    analyze = bool(analyze)
    row = db.session.scalars(select(Setting).where(Setting.user_id == user_id, Setting.key == SETTING_KEY)).first()
    before = True if row is None else bool(row.value)
    if row is None:
        db.session.add(Setting(user_id=user_id, key=SETTING_KEY, value=analyze, updated_by=user_id))
    else:
        row.value = analyze
        row.updated_by = user_id
    actor = db.session.scalar(select(User.username).where(User.id == user_id)) or "api"
    db.session.add(AuditEvent(user_id=user_id, actor=actor, action="analyzer.toggle", target_type="user",
                              target_id=str(user_id), ip=ip, before={SETTING_KEY: before},
                              after={SETTING_KEY: analyze}))
    db.session.flush()
    cache.invalidate(CACHE_NS, str(user_id), session=db.session)
    db.session.commit()
    log.info("user %s switched to %s mode", user_id, "analyze" if analyze else "live")


# -- helpers -----------------------------------------------------------------------------------------
def _symbol(symbol: str, exchange: str) -> token_db.SymbolInfo:
    info = token_db.get_symbol_info(symbol, exchange)
    if info is None:
        raise OrderError(f"Symbol {symbol} not found in exchange {exchange}", 404)
    return info


def _check(inp: OrderInput, *, smart: bool = False) -> None:
    """What the caller's schema cannot see: the fields that go together. A smart order's quantity may be 0."""
    if isinstance(inp.quantity, bool) or not isinstance(inp.quantity, int) or inp.quantity < (0 if smart else 1):
        raise OrderError("quantity must be a positive whole number", 400)
    if inp.price < 0 or inp.trigger_price < 0:
        raise OrderError("price and trigger_price must not be negative", 400)
    if inp.pricetype in ("LIMIT", "SL") and inp.price <= 0:
        raise OrderError(f"price is required for a {inp.pricetype} order", 400)
    if inp.pricetype in ("SL", "SL-M") and inp.trigger_price <= 0:
        raise OrderError(f"trigger_price is required for a {inp.pricetype} order", 400)


def _tradable(inp: OrderInput, *, smart: bool = False) -> token_db.SymbolInfo:
    _check(inp, smart=smart)
    info = _symbol(inp.symbol, inp.exchange)
    if info.exchange in INDEX_EXCHANGES:
        raise OrderError(f"{inp.symbol} is an index on {inp.exchange}: indices cannot be traded", 400)
    return info


@dataclass(frozen=True)
class _Live:
    active: broker_login.ActiveSession
    client: BrokerClient


def _live(user_id: int, *, for_live_order: bool = False) -> _Live | None:
    """The user's live broker client, or None when orders go to paper. Raises 403 without a session.
    `for_live_order`: a call about an order placed live, which goes to the broker whatever the mode."""
    if not for_live_order and is_analyze(user_id):
        return None
    active = broker_login.active_session(user_id)
    if active is None:
        raise OrderError(NO_SESSION, 403)
    if active.broker == paper.BROKER:
        return None
    try:
        token = broker_login.access_token(active)
        client = broker_login.broker(active.broker).session(token)
    except broker_login.BrokerLoginError:
        raise OrderError(SESSION_EXPIRED, 403) from None
    except BrokerError as exc:
        raise _broker_failure(active, exc) from None
    return _Live(active, client)


def _broker_failure(active: broker_login.ActiveSession, exc: BrokerError, order: Order | None = None) -> OrderError:
    """Record a broker's refusal (the order rejected, with an alert; a dead token expires the session),
    commit, and return the OrderError to raise."""
    if exc.is_session_error:
        row = db.session.get(BrokerSession, active.session_id)
        if row is not None:
            broker_login.mark_expired(row, reason="was refused by the broker")
        if order is not None:
            order.status = OrderStatus.REJECTED
            order.status_message = exc.message
        db.session.commit()
        log.warning("%s refused the session of user %s: marked expired", active.broker, active.user_id)
        return OrderError(SESSION_EXPIRED, 403)
    if order is not None:
        paper.reject(order, exc.message)
    db.session.commit()
    status = exc.status if exc.status and 400 <= exc.status < 600 else 400
    if exc.status == 403 or exc.status == 401:
        status = 400  # a refused order, not a bad API key
    log.warning("%s refused a call of user %s (%s): %s", active.broker, active.user_id, exc.kind.value, exc.message)
    return OrderError(exc.message, status)


def _new_order(user_id: int, inp: OrderInput, *, mode: Mode, broker: str, orderid: str, status: OrderStatus,
               signal_id: int | None = None, parent_id: int | None = None, now=None, add: bool = True) -> Order:
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


def _initial_status(pricetype: str) -> OrderStatus:
    return OrderStatus.TRIGGER_PENDING if pricetype in ("SL", "SL-M") else OrderStatus.OPEN


def _request(inp: OrderInput, info: token_db.SymbolInfo, quantity: int | None = None) -> OrderRequest:
    return OrderRequest(symbol=info.brsymbol, exchange=info.brexchange, action=inp.action,
                        quantity=quantity if quantity is not None else inp.quantity, pricetype=inp.pricetype,
                        product=inp.product, price=inp.price, trigger_price=inp.trigger_price,
                        disclosed_quantity=inp.disclosed_quantity)


def _smart_lock(user_id: int, inp: OrderInput) -> None:
    """Per user and instrument, across processes, until the unit ends (PostgreSQL advisory lock)."""
    if db.session.get_bind().dialect.name == "postgresql":
        key = f"algobridge:smart:{user_id}:{inp.exchange}:{inp.symbol}"
        db.session.execute(text("SELECT pg_advisory_xact_lock(hashtext(:k))"), {"k": key})


def _rollback_on_error(fn):
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except BaseException:
            db.session.rollback()
            raise

    wrapper.__name__ = fn.__name__
    wrapper.__doc__ = fn.__doc__
    return wrapper


# -- placing -----------------------------------------------------------------------------------------
def _place_paper_locked(user_id: int, inp: OrderInput, funds, now, *, signal_id=None, parent_id=None) -> Order:
    """Inside a unit holding the funds lock: journal the order and run it through the paper engine."""
    order = _new_order(user_id, inp, mode=Mode.ANALYZE, broker=paper.BROKER, orderid=paper.new_id(now),
                       status=_initial_status(inp.pricetype), signal_id=signal_id, parent_id=parent_id, now=now,
                       add=False)
    quote = paper.quote_for(inp.symbol, inp.exchange)
    positions = paper.Positions(user_id, [(inp.symbol, inp.exchange, inp.product)])
    paper.execute(order, quote, funds, positions, now, placing=True)
    db.session.add(order)
    db.session.flush()
    return order


def _commit_paper(order: Order, broker_ms: float) -> Placed:
    """Commit the unit and answer for a paper order (a rejected one is journaled, then raised)."""
    placed = Placed(order.orderid, Mode.ANALYZE.value, order.status.value, paper.BROKER, broker_ms)
    message = order.status_message
    db.session.commit()  # expires the row: the answer was read before
    if placed.status == OrderStatus.REJECTED.value:
        raise OrderError(message or "Order rejected", 400)
    return placed


def _place_live(user_id: int, live: _Live, inp: OrderInput, info, *, quantity: int | None = None,
                signal_id=None, parent_id=None) -> Placed:
    req = _request(inp, info, quantity)
    if quantity is not None:
        inp = OrderInput(**{**inp.__dict__, "quantity": quantity})
    t0 = time.perf_counter()
    try:
        result = live.client.place_order(req)
    except BrokerError as exc:
        order = _new_order(user_id, inp, mode=Mode.LIVE, broker=live.active.broker, orderid=paper.new_id(),
                           status=OrderStatus.REJECTED, signal_id=signal_id, parent_id=parent_id)
        raise _broker_failure(live.active, exc, order) from None
    broker_ms = (time.perf_counter() - t0) * 1000
    status = _initial_status(inp.pricetype)
    _new_order(user_id, inp, mode=Mode.LIVE, broker=live.active.broker, orderid=result.orderid, status=status,
               signal_id=signal_id, parent_id=parent_id)
    db.session.commit()
    log.info("live order %s of user %s at %s: %s %s %s:%s", result.orderid, user_id, live.active.broker, inp.action,
             inp.quantity, inp.exchange, inp.symbol)
    return Placed(result.orderid, Mode.LIVE.value, status.value, live.active.broker, broker_ms)


@_rollback_on_error
def place_order(user_id: int, inp: OrderInput, *, signal_id: int | None = None, parent_id: int | None = None) -> Placed:
    """Place one order (paper or live by the user's mode). Commits; raises OrderError."""
    info = _tradable(inp)
    live = _live(user_id)
    if live is not None:
        return _place_live(user_id, live, inp, info, signal_id=signal_id, parent_id=parent_id)
    # The paper broker's time: its book-keeping (funds lock, open orders, square-off, the fill), as a live
    # broker's round trip would be; the journal commit is the bridge's own.
    t0 = time.perf_counter()
    now = utcnow()
    fast = _place_paper_fast(user_id, inp, now, t0, signal_id=signal_id, parent_id=parent_id)
    if fast is not None:
        return fast
    with _writer_turn():
        funds = paper.lock_funds(user_id)
        paper.housekeeping_locked(user_id, funds, now)
        order = _place_paper_locked(user_id, inp, funds, now, signal_id=signal_id, parent_id=parent_id)
        broker_ms = (time.perf_counter() - t0) * 1000
        return _commit_paper(order, broker_ms)


@contextlib.contextmanager
def _writer_turn():
    """Paper orders of this process take SQLite's write lock in turn (database.sqlite_write_turn); the
    unit commits or rolls back inside. PostgreSQL queues on the funds row lock itself."""
    with sqlite_write_turn(db.session.get_bind().dialect.name):
        try:
            yield
        except BaseException:
            db.session.rollback()
            raise


def _place_paper_fast(user_id: int, inp: OrderInput, now, t0: float, *, signal_id: int | None,
                      parent_id: int | None) -> Placed | None:
    """services.trading.paper.account.place_fast: the common order in a few statements, committed with the fast orders
    of the same account that arrive meanwhile (_FastBatches); None when it needs the full path."""
    return _FAST.place(_fast_job(user_id, inp, now, t0, signal_id=signal_id, parent_id=parent_id))


def _fast_job(user_id: int, inp: OrderInput, now, t0: float, *, signal_id: int | None = None,
              parent_id: int | None = None) -> _FastJob:
    quote = paper.quote_for(inp.symbol, inp.exchange)  # before the lock: from the cache
    values = {"user_id": user_id, "signal_id": signal_id, "parent_id": parent_id, "orderid": paper.new_id(now),
              "broker": paper.BROKER,
              "mode": Mode.ANALYZE, "strategy": (inp.strategy or None) and inp.strategy[:100], "symbol": inp.symbol,
              "exchange": Exchange(inp.exchange), "action": Action(inp.action), "pricetype": PriceType(inp.pricetype),
              "product": Product(inp.product), "quantity": Decimal(inp.quantity), "price": Decimal(inp.price),
              "trigger_price": Decimal(inp.trigger_price), "disclosed_quantity": Decimal(inp.disclosed_quantity),
              "status_message": None}
    return _FastJob(user_id, values, quote, now, t0)


class _FastJob:
    __slots__ = ("user_id", "values", "quote", "now", "t0", "result", "woken")

    def __init__(self, user_id: int, values: dict, quote, now: datetime, t0: float):
        self.user_id, self.values, self.quote, self.now, self.t0 = user_id, values, quote, now, t0
        self.result: Placed | None | object = _PENDING
        self.woken = threading.Lock()  # held until the job is answered or its thread is to lead
        self.woken.acquire()


_PENDING = object()  # a job not run yet
_ALONE = object()  # a job whose batch failed: its thread runs it again on its own


class _FastBatches:
    """Group commit of one account's fast paper orders in this process.

    Every order of an account takes that account's funds lock (SQLite: the write lock), so under load
    its orders queue there one after another, each paying a transaction of its own. Here they queue in
    memory instead: the first thread in line runs every order waiting behind it (at most MAX_BATCH) in
    one transaction, in arrival order, each exactly as it would have run alone (place_fast on the state
    the one before left), commits once, hands each waiting thread its answer, and wakes the next thread
    in line to run the orders that arrived meanwhile. No thread runs more than one batch. An order the
    fast path declines (None) takes the full path in its own thread afterwards; when a batch fails,
    each of its orders is run again alone, so an error stays with the order that caused it."""

    MAX_BATCH = 32

    def __init__(self) -> None:
        self.largest = 0  # the most orders one batch of this process committed (bench, tests)
        self._reset()
        os.register_at_fork(after_in_child=self._reset)

    def _reset(self) -> None:
        self._lock = threading.Lock()  # a fork may happen while another thread holds it
        self._lines: dict[int, collections.deque[_FastJob]] = {}

    def place(self, job: _FastJob) -> Placed | None:
        with self._lock:
            line = self._lines.get(job.user_id)
            first = line is None
            if first:
                line = self._lines[job.user_id] = collections.deque()
            line.append(job)
        if not first:
            job.woken.acquire()  # answered, or at the head of the line: run the batch
        if job.result is _PENDING:
            with self._lock:
                batch = [line.popleft() for _ in range(min(len(line), self.MAX_BATCH))]
            try:
                self._run(batch)
            finally:
                for other in batch:
                    if other.result is _PENDING:  # _run raised before answering it (BaseException)
                        other.result = _ALONE
                    if other is not job:
                        other.woken.release()
                with self._lock:
                    if line:
                        line[0].woken.release()  # the next batch is theirs
                    else:
                        del self._lines[job.user_id]
        if job.result is _ALONE:
            return _place_fast_alone(job)
        return job.result

    def _run(self, batch: list[_FastJob]) -> None:
        fills = []
        try:
            with _writer_turn():
                write_unit()
                planned = paper.place_fast_batch(batch[0].user_id, [(j.values, j.quote, j.now) for j in batch])
                for job, fill in zip(batch, planned, strict=True):
                    if fill is not None:
                        fills.append((job, fill))
                    else:
                        job.result = None  # the full path, in its own thread
                done = time.perf_counter()
                db.session.commit()
            self.largest = max(self.largest, len(fills))
        except Exception as exc:
            if len(batch) == 1:
                raise  # the order of this thread alone: its error is its own
            log.warning("a batch of %s paper orders failed (%s); each is run again on its own", len(batch),
                        str(exc).splitlines()[0][:300])
            for job in batch:
                job.result = _ALONE
            return
        for job, fill in fills:
            fill.committed()
            job.result = Placed(job.values["orderid"], Mode.ANALYZE.value, OrderStatus.COMPLETE.value, paper.BROKER,
                                (done - job.t0) * 1000)


_FAST = _FastBatches()


def _place_fast_alone(job: _FastJob) -> Placed | None:
    with _writer_turn():
        write_unit()
        fill = paper.place_fast(job.user_id, job.values, job.quote, job.now)
        if fill is None:
            db.session.rollback()
            return None
        broker_ms = (time.perf_counter() - job.t0) * 1000
        db.session.commit()
    fill.committed()
    return Placed(job.values["orderid"], Mode.ANALYZE.value, OrderStatus.COMPLETE.value, paper.BROKER, broker_ms)


def _smart_quantity(inp: OrderInput, current: int, position_size: int) -> tuple[str, int] | None:
    """OpenAlgo's rule: (action, quantity) to move `current` to `position_size`, or None."""
    if position_size == 0 and current == 0 and inp.quantity:
        return inp.action, inp.quantity  # flat and asked for flat with a quantity: a plain order
    diff = position_size - current
    if diff == 0:
        return None
    return ("BUY" if diff > 0 else "SELL"), abs(diff)


@_rollback_on_error
def place_smart_order(user_id: int, inp: OrderInput, position_size: int, *,
                      signal_id: int | None = None) -> Placed | None:
    """Place the difference between `position_size` and the current net position (symbol, exchange,
    product), or nothing (None). Two concurrent smart orders for one instrument never both act."""
    info = _tradable(inp, smart=True)
    live = _live(user_id)
    write_unit()
    _smart_lock(user_id, inp)
    if live is not None:
        current = sum(p.quantity for p in _broker_positions(user_id, live)
                      if p.symbol == info.brsymbol and p.exchange == info.brexchange and p.product == inp.product)
        plan = _smart_quantity(inp, current, position_size)
        if plan is None:
            db.session.commit()  # releases the lock
            return None
        action, qty = plan
        return _place_live(user_id, live, OrderInput(**{**inp.__dict__, "action": action, "quantity": qty}), info,
                           signal_id=signal_id)
    now = utcnow()
    funds = paper.lock_funds(user_id)
    paper.housekeeping_locked(user_id, funds, now)
    key = (inp.symbol, inp.exchange, inp.product)
    row = paper.Positions(user_id, [key]).get(key)
    current = int(row.quantity) if row is not None else 0
    plan = _smart_quantity(inp, current, position_size)
    if plan is None:
        db.session.commit()
        return None
    action, qty = plan
    t0 = time.perf_counter()
    order = _place_paper_locked(user_id, OrderInput(**{**inp.__dict__, "action": action, "quantity": qty}), funds, now,
                                signal_id=signal_id)
    broker_ms = (time.perf_counter() - t0) * 1000
    log.info("smart order of user %s: %s:%s %s -> %s with %s %s", user_id, inp.exchange, inp.symbol, current,
             position_size, action, qty)
    return _commit_paper(order, broker_ms)


def basket_order(user_id: int, strategy: str, inputs: list[OrderInput]) -> list[dict]:
    """Place each order on its own; one failing does not stop the others."""
    results = []
    for inp in inputs:
        inp = OrderInput(**{**inp.__dict__, "strategy": strategy or inp.strategy})
        try:
            placed = place_order(user_id, inp)
            results.append({"symbol": inp.symbol, "status": "success", "orderid": placed.orderid})
        except OrderError as exc:
            results.append({"symbol": inp.symbol, "status": "error", "message": exc.message})
    return results


def split_order(user_id: int, inp: OrderInput, splitsize: int) -> dict:
    """Place `inp.quantity` as orders of `splitsize` (the remainder last), at most MAX_SPLIT_ORDERS."""
    if splitsize <= 0:
        raise OrderError("splitsize must be a positive whole number", 400)
    full, rest = divmod(inp.quantity, splitsize)
    sizes = [splitsize] * full + ([rest] if rest else [])
    if len(sizes) > MAX_SPLIT_ORDERS:
        raise OrderError(f"splitsize {splitsize} would make {len(sizes)} orders; at most {MAX_SPLIT_ORDERS} are "
                         "allowed", 400)
    _tradable(inp)
    results = []
    for n, qty in enumerate(sizes, start=1):
        try:
            placed = place_order(user_id, OrderInput(**{**inp.__dict__, "quantity": qty}))
            results.append({"order_num": n, "quantity": qty, "status": "success", "orderid": placed.orderid})
        except OrderError as exc:
            results.append({"order_num": n, "quantity": qty, "status": "error", "message": exc.message})
    return {"split_size": splitsize, "total_quantity": inp.quantity, "results": results}


# -- existing orders ---------------------------------------------------------------------------------
def _journal(user_id: int, orderid: str, *, lock: bool = False) -> Order | None:
    """The user's journal row for `orderid`; 404 when only another user has one."""
    q = select(Order).where(Order.orderid == str(orderid))
    if lock:
        q = q.with_for_update()
    rows = list(db.session.scalars(q))
    own = [r for r in rows if r.user_id == user_id]
    if own:
        return own[0]
    if rows:
        raise OrderError(f"Order {orderid} not found", 404)
    return None


def _not_found(orderid: str) -> OrderError:
    return OrderError(f"Order {orderid} not found", 404)


def _open_paper_order(user_id: int, orderid: str, verb: str) -> tuple[Order, Funds, datetime]:
    """The user's paper order `orderid` in a new write unit holding the funds lock, after housekeeping
    (it may have filled meanwhile): (order, locked funds, now); 400 unless it is still open."""
    db.session.rollback()
    write_unit()
    now = utcnow()
    funds = paper.lock_funds(user_id)
    paper.housekeeping_locked(user_id, funds, now)
    row = _journal(user_id, orderid)
    if row.status not in paper.LIVE_STATUSES:
        raise OrderError(f"Order {orderid} cannot be {verb}: it is {row.status.value}", 400)
    return row, funds, now


@_rollback_on_error
def modify_order(user_id: int, orderid: str, inp: OrderInput) -> Placed:
    """Change quantity, price, trigger price and type of an open order (symbol, side, product stay)."""
    _tradable(inp)
    row = _journal(user_id, orderid)
    if row is not None and row.mode == Mode.ANALYZE:
        row, funds, now = _open_paper_order(user_id, orderid, "modified")
        t0 = time.perf_counter()
        row.quantity = Decimal(inp.quantity)
        row.pricetype = PriceType(inp.pricetype)
        row.price = Decimal(inp.price)
        row.trigger_price = Decimal(inp.trigger_price)
        row.disclosed_quantity = Decimal(inp.disclosed_quantity)
        row.status = _initial_status(inp.pricetype)
        row.updated_at = now
        quote = paper.quote_for(row.symbol, row.exchange.value)
        positions = paper.Positions(user_id, [(row.symbol, row.exchange.value, row.product.value)])
        paper.execute(row, quote, funds, positions, now, placing=True)
        broker_ms = (time.perf_counter() - t0) * 1000
        return _commit_paper(row, broker_ms)
    live = _live(user_id, for_live_order=row is not None)
    if live is None:
        raise _not_found(orderid)
    info = _symbol(inp.symbol, inp.exchange)
    t0 = time.perf_counter()
    try:
        result = live.client.modify_order(str(orderid), _request(inp, info))
    except BrokerError as exc:
        raise _broker_failure(live.active, exc) from None
    broker_ms = (time.perf_counter() - t0) * 1000
    if row is not None:
        row.quantity, row.pricetype = Decimal(inp.quantity), PriceType(inp.pricetype)
        row.price, row.trigger_price = Decimal(inp.price), Decimal(inp.trigger_price)
    db.session.commit()
    return Placed(result.orderid, Mode.LIVE.value, row.status.value if row is not None else OrderStatus.OPEN.value,
                  live.active.broker, broker_ms)


@_rollback_on_error
def cancel_order(user_id: int, orderid: str) -> str:
    """Cancel an open order; 404 for an unknown order or another user's."""
    row = _journal(user_id, orderid)
    if row is not None and row.mode == Mode.ANALYZE:
        row, _funds, now = _open_paper_order(user_id, orderid, "cancelled")
        row.status = OrderStatus.CANCELLED
        row.updated_at = now
        db.session.commit()
        log.info("paper order %s of user %s cancelled", orderid, user_id)
        return row.orderid
    live = _live(user_id, for_live_order=row is not None)
    if live is None:
        raise _not_found(orderid)
    try:
        live.client.cancel_order(str(orderid))
    except BrokerError as exc:
        if exc.status == 404:
            db.session.rollback()
            raise _not_found(orderid) from None
        raise _broker_failure(live.active, exc) from None
    if row is not None:
        row.status = OrderStatus.CANCELLED
    db.session.commit()
    return str(orderid)


@_rollback_on_error
def cancel_all_orders(user_id: int) -> tuple[list[str], list[str]]:
    """Cancel every open order of the user (paper ones; and the live broker's in live mode)."""
    canceled: list[str] = []
    failed: list[str] = []
    live = _live(user_id)
    write_unit()
    now = utcnow()
    funds = paper.lock_funds(user_id)
    paper.housekeeping_locked(user_id, funds, now)
    for row in db.session.scalars(select(Order).where(Order.user_id == user_id, Order.mode == Mode.ANALYZE,
                                                      Order.status.in_(paper.LIVE_STATUSES))):
        row.status = OrderStatus.CANCELLED
        row.updated_at = now
        canceled.append(row.orderid)
    db.session.commit()
    if live is not None:
        try:
            book = live.client.orderbook()
        except BrokerError as exc:
            raise _broker_failure(live.active, exc) from None
        for order in book:
            if order.status not in ("open", "trigger pending"):
                continue
            try:
                live.client.cancel_order(order.orderid)
                canceled.append(order.orderid)
            except BrokerError as exc:
                if exc.is_session_error:
                    raise _broker_failure(live.active, exc) from None
                failed.append(order.orderid)
        if canceled:
            for row in db.session.scalars(select(Order).where(Order.user_id == user_id, Order.mode == Mode.LIVE,
                                                              Order.orderid.in_(canceled))):
                row.status = OrderStatus.CANCELLED
        db.session.commit()
    return canceled, failed


@_rollback_on_error
def close_all_positions(user_id: int, strategy: str = "Close All") -> int:
    """Square off every open position at market. Returns how many orders were placed."""
    live = _live(user_id)
    if live is not None:
        count = 0
        for p in _broker_positions(user_id, live):
            if not p.quantity:
                continue
            symbol = token_db.get_oa_symbol(p.symbol, p.exchange) or p.symbol
            info = token_db.get_symbol_info(symbol, p.exchange)
            if info is None:
                log.warning("close all: %s:%s is not in the master contract; skipped", p.exchange, p.symbol)
                continue
            inp = OrderInput(strategy=strategy, exchange=info.exchange, symbol=info.symbol,
                             action="SELL" if p.quantity > 0 else "BUY", quantity=abs(p.quantity), product=p.product)
            _place_live(user_id, live, inp, info)
            count += 1
        return count
    write_unit()
    now = utcnow()
    funds = paper.lock_funds(user_id)
    paper.housekeeping_locked(user_id, funds, now)
    rows = list(db.session.scalars(select(Position).where(Position.user_id == user_id, Position.mode == Mode.ANALYZE,
                                                          Position.quantity != 0)))
    positions = paper.Positions(user_id)
    for row in rows:
        positions.rows[(row.symbol, row.exchange.value, row.product.value)] = row
    book = paper.quotes_for({(r.symbol, r.exchange.value) for r in rows})
    count = 0
    for row in rows:
        quote = book.get((row.symbol, row.exchange.value))
        if quote is None:
            continue
        inp = OrderInput(strategy=strategy, exchange=row.exchange.value, symbol=row.symbol,
                         action="SELL" if row.quantity > 0 else "BUY", quantity=int(abs(row.quantity)),
                         product=row.product.value)
        order = _new_order(user_id, inp, mode=Mode.ANALYZE, broker=paper.BROKER, orderid=paper.new_id(now),
                           status=OrderStatus.OPEN, now=now)
        paper.execute(order, quote, funds, positions, now)
        count += 1
    db.session.commit()
    return count


def _broker_positions(user_id: int, live: _Live):
    try:
        return live.client.positions()
    except BrokerError as exc:
        raise _broker_failure(live.active, exc) from None


@_rollback_on_error
def order_status(user_id: int, orderid: str) -> dict:
    """API.md orderstatus data of one of the user's orders."""
    row = _journal(user_id, orderid)
    if row is not None and row.mode == Mode.ANALYZE:
        paper.refresh(user_id)
        row = _journal(user_id, orderid)
        return order_status_data(row)
    live = _live(user_id, for_live_order=row is not None)
    if live is None:
        raise _not_found(orderid)
    try:
        bo = live.client.order_status(str(orderid))
    except BrokerError as exc:
        if exc.status == 404 or exc.kind == "input":
            db.session.rollback()
            raise _not_found(orderid) from None
        raise _broker_failure(live.active, exc) from None
    if row is not None:
        from services.trading.books import sync_journal

        sync_journal(row, bo)
        db.session.commit()
    from services.trading.books import broker_order_data

    data = broker_order_data(bo)
    data["average_price"] = float(bo.average_price)
    return {k: data[k] for k in ("action", "average_price", "exchange", "order_status", "orderid", "price",
                                 "pricetype", "product", "quantity", "symbol", "timestamp", "trigger_price")}


@_rollback_on_error
def open_position(user_id: int, symbol: str, exchange: str, product: str) -> int:
    """The signed net quantity of one instrument and product (0 when flat)."""
    info = _symbol(symbol, exchange)
    live = _live(user_id)
    if live is not None:
        return int(sum(p.quantity for p in _broker_positions(user_id, live)
                       if p.symbol == info.brsymbol and p.exchange == info.brexchange and p.product == product))
    paper.refresh(user_id)
    qty = db.session.scalar(select(Position.quantity).where(
        Position.user_id == user_id, Position.mode == Mode.ANALYZE, Position.symbol == info.symbol,
        Position.exchange == info.exchange, Position.product == product))
    return int(qty or 0)

