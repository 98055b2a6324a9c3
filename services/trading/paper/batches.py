"""Group commit of one account's fast analyze-mode orders in this process (see _FastBatches).

`place(user_id, inp, now, t0)` takes the common order (services.trading.paper.account.place_fast: a few
statements) and commits it with the fast orders of the same account that arrive meanwhile; it answers
None when the order needs the full path (services.trading.paper.exchange).
"""

from __future__ import annotations

import collections
import contextlib
import logging
import os
import threading
import time
from datetime import datetime
from decimal import Decimal

from database import db, sqlite_write_turn
from database.enums import Action, Exchange, Mode, OrderStatus, PriceType, Product
from database.unit import unit_of_work
from services.trading.journal import OrderInput, Placed, new_id
from services.trading.paper import account
from services.trading.paper.account import BROKER

log = logging.getLogger("algobridge.orders")


def place(user_id: int, inp: OrderInput, now: datetime, t0: float, *, signal_id: int | None = None,
          parent_id: int | None = None) -> Placed | None:
    """The order placed and committed by the fast path, or None when it needs the full path."""
    return _FAST.place(_fast_job(user_id, inp, now, t0, signal_id=signal_id, parent_id=parent_id))


@contextlib.contextmanager
def writer_turn():
    """Paper orders of this process take SQLite's write lock in turn (database.sqlite_write_turn); the
    unit opens and ends inside. PostgreSQL queues on the funds row lock itself."""
    with sqlite_write_turn(db.session.get_bind().dialect.name):
        yield


def _fast_job(user_id: int, inp: OrderInput, now, t0: float, *, signal_id: int | None = None,
              parent_id: int | None = None) -> _FastJob:
    quote = account.quote_for(inp.symbol, inp.exchange)  # before the lock: from the cache
    values = {"user_id": user_id, "signal_id": signal_id, "parent_id": parent_id, "orderid": new_id(now),
              "broker": BROKER,
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
            with writer_turn(), unit_of_work(write=True):
                planned = account.place_fast_batch(batch[0].user_id, [(j.values, j.quote, j.now) for j in batch])
                for job, fill in zip(batch, planned, strict=True):
                    if fill is not None:
                        fills.append((job, fill))
                    else:
                        job.result = None  # the full path, in its own thread
                done = time.perf_counter()
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
            job.result = Placed(job.values["orderid"], Mode.ANALYZE.value, OrderStatus.COMPLETE.value, BROKER,
                                (done - job.t0) * 1000)


_FAST = _FastBatches()


def _place_fast_alone(job: _FastJob) -> Placed | None:
    with writer_turn(), unit_of_work(write=True):
        fill = account.place_fast(job.user_id, job.values, job.quote, job.now)
        broker_ms = (time.perf_counter() - job.t0) * 1000
    if fill is None:
        return None
    fill.committed()
    return Placed(job.values["orderid"], Mode.ANALYZE.value, OrderStatus.COMPLETE.value, BROKER, broker_ms)
