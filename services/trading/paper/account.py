"""Analyze mode's book-keeping: the paper engine (services.trading.paper.engine) run against the database.

The engine decides; this module loads the rows it needs (the user's Funds row, locked, and the
Position rows), hands the engine plain values, and writes back the Order, Fill, Position and Funds
rows. Every function here runs inside the caller's unit of work and only adds and flushes, except
the public entry points `match_open_orders`, `square_off_due` and `refresh`, which are units of
their own and commit once.

Concurrency: all analyze-mode writes of a user take the user's Funds row first (SELECT ... FOR
UPDATE on PostgreSQL; on SQLite write_unit()'s BEGIN IMMEDIATE already serialises writers), so two
orders of the same user never book against stale funds or positions, in any process. On PostgreSQL
(READ COMMITTED) a statement that waited for the lock still reads the other tables as of its start,
before the previous holder committed: what a unit reads after taking the lock must come from a later
statement. Every unit that writes a user's orders or positions also moves Funds.updated_at (the
`_touch_locked_funds` hook; the fast path writes it itself), which lets the fast path take the lock
and read in one statement and tell when that read is stale (see place_fast).

Open orders (LIMIT not crossed, SL/SL-M waiting for their trigger) are matched against current
quotes whenever the user's books are read or a new order is placed, while their exchange is in
session (services.trading.paper.hours). MIS positions still open at their exchange's square-off time
are closed at market at the first read or order after it (or by a scheduler calling
`square_off_due()`): a position is due when it was last traded before its exchange's most recent
square-off moment. Every fill pays its charges (services.trading.paper.charges): the position keeps
them apart from its gross realized P&L, the funds' realized P&L is net of them.
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal

from flask import current_app
from sqlalchemy import and_, bindparam, case, event, insert, literal, or_, select, update
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import Session

from database import cache, db, upsert
from database.cache import CacheGeneration
from database.enums import Action, Mode, OrderStatus, PriceType, Product, SnapshotReason
from database.order_db import Fill, Order
from database.portfolio_db import Funds, PortfolioSnapshot, Position
from database.symbol import Quote as QuoteRow
from database.types import utcnow
from database.unit import unit_of_work
from services.market import quotes, symbol_index
from services.trading import shapes
from services.trading.journal import new_id, reject
from services.trading.paper import charges, engine, hours
from vocabulary import OPEN_STATUSES, TRADABLE_EXCHANGES, needs_trigger

log = logging.getLogger("algobridge.orders")

BROKER = "paper"
SQUAREOFF_STRATEGY = "Auto Square-off"

PosKey = tuple[str, str, str]  # (symbol, exchange, product)


# -- settings ----------------------------------------------------------------------------------------
def leverage() -> engine.Leverage:
    cfg = current_app.config
    return engine.Leverage(mis=Decimal(cfg["MIS_LEVERAGE"]), nrml=Decimal(cfg["NRML_LEVERAGE"]))


def starting_funds() -> Decimal:
    return Decimal(current_app.config["ANALYZE_STARTING_FUNDS"])


def squareoff_cutoff(now: dt.datetime) -> dt.datetime:
    """The latest MIS square-off moment of any exchange at or before `now`, in UTC (services.trading.
    paper.hours): the square-off snapshots are taken after it."""
    return hours.latest_squareoff(now)


def _is_due(exchange: str, traded_at: dt.datetime, now: dt.datetime) -> bool:
    """Is an MIS position of `exchange` last traded at `traded_at` due for square-off at `now`?"""
    return traded_at < hours.squareoff_cutoff(exchange, now)


def _due_clause(column_exchange, column_time, now: dt.datetime):
    """SQL: rows of an exchange whose `column_time` is before that exchange's last square-off moment."""
    return or_(*[and_(column_exchange == exchange, column_time < cutoff)
                 for exchange, cutoff in hours.cutoffs(now).items()])


def _snapshot_has_due(snap: dict, cutoffs: dict[str, dt.datetime]) -> bool:
    """Has the cached account an open MIS position due for square-off at these cutoffs?"""
    oldest = snap["mis_oldest"]
    if oldest is None or dt.datetime.fromisoformat(oldest) >= max(cutoffs.values()):
        return False
    return any(p["product"] == Product.MIS and Decimal(p["quantity"]) != 0
               and dt.datetime.fromisoformat(p["updated_at"]) < cutoffs.get(p["exchange"], hours.NEVER)
               for p in snap["positions"])



_PLAN = "ALGOBRIDGE_CHARGE_PLAN"  # app.config: (the settings' values, the brokerage plan parsed from them)
_PLAN_SETTINGS = ("ANALYZE_CHARGES", "ANALYZE_BROKERAGE_PER_ORDER", "ANALYZE_BROKERAGE_PERCENT",
                  "ANALYZE_BROKERAGE_DELIVERY")


def fill_charges(symbol: str, exchange: str, product: str, action: str, quantity: Decimal, price: Decimal,
                 now: dt.datetime) -> Decimal:
    """What an executed order of `quantity` at `price` costs in brokerage, taxes and fees (at the rates of
    the trading day of `now`: services.trading.paper.charges)."""
    cfg = current_app.config
    key = tuple(cfg.get(name) for name in _PLAN_SETTINGS)
    cached = cfg.get(_PLAN)
    if cached is None or cached[0] != key:  # parsed once per value of the settings
        cached = cfg[_PLAN] = (key, charges.plan_from(cfg))
    plan = cached[1]
    if not plan.enabled:
        return Decimal(0)
    info = symbol_index.get_symbol_info(symbol, exchange)
    try:
        return charges.for_fill(exchange=exchange, instrumenttype=info.instrumenttype if info else None,
                                product=product, action=action, quantity=quantity, price=price,
                                on=shapes.trading_day(now), plan=plan).total
    except ValueError as exc:  # no published rates for this exchange or date: the fill goes uncharged
        if (exchange, str(exc)) not in _UNCHARGED:
            _UNCHARGED.add((exchange, str(exc)))
            log.warning("no charges for %s:%s fills: %s", exchange, symbol, exc)
        return Decimal(0)


_UNCHARGED: set[tuple[str, str]] = set()  # (exchange, reason) already warned about


# -- unit of work ------------------------------------------------------------------------------------
def lock_funds(user_id: int) -> Funds:
    """The user's analyze-mode Funds row, created with the starting funds on first use, locked."""
    stmt = (select(Funds).where(Funds.user_id == user_id, Funds.mode == Mode.ANALYZE)
            .with_for_update().execution_options(populate_existing=True))
    row = db.session.scalars(stmt).first()
    if row is None:
        start = starting_funds()
        values = {"user_id": user_id, "mode": Mode.ANALYZE.value, "opening_balance": start, "available_cash": start,
                  "collateral": Decimal(0), "used_margin": Decimal(0), "realized_pnl": Decimal(0),
                  "unrealized_pnl": Decimal(0), "updated_at": utcnow()}
        db.session.execute(upsert(Funds.__table__, db.session.get_bind().dialect.name).values(**values)
                           .on_conflict_do_nothing(index_elements=["user_id", "mode"]))
        changed(user_id)
        row = db.session.scalars(stmt).one()
    db.session.info.setdefault(_LOCKED, set()).add(row)
    return row


_LOCKED = "algobridge.paper_locked_funds"  # session.info: the Funds rows lock_funds() locked in this unit
_TICK = dt.timedelta(microseconds=1)


def next_version(previous: dt.datetime | None, now: dt.datetime) -> dt.datetime:
    """A Funds.updated_at after `previous`: `now`, or one microsecond later than `previous`."""
    return now if previous is None or now > previous else previous + _TICK


@event.listens_for(Session, "before_flush")
def _touch_locked_funds(session: Session, _ctx, _instances) -> None:
    """A unit that writes orders, fills or positions moves the Funds.updated_at of the accounts it locked."""
    locked = session.info.get(_LOCKED)
    if not locked:
        return
    # session.dirty also holds objects whose attributes were set to the values they had (matching
    # open orders on a read does that): only a net change counts, or every read would write.
    if any(isinstance(obj, (Order, Position, Fill)) for obj in session.new) or any(
        isinstance(obj, (Order, Position, Fill)) and session.is_modified(obj) for obj in session.dirty
    ):
        now = utcnow()
        for row in locked:
            if row in session:
                row.updated_at = next_version(row.updated_at, now)


@event.listens_for(Session, "after_transaction_end")
def _forget_locks(session: Session, transaction) -> None:
    if transaction.parent is None:  # the unit ended: its row locks went with it
        session.info.pop(_LOCKED, None)


def read_funds(user_id: int) -> Funds | None:
    return db.session.scalars(select(Funds).where(Funds.user_id == user_id, Funds.mode == Mode.ANALYZE)).first()


def funds_state(row: Funds) -> engine.FundsState:
    return engine.FundsState(opening_balance=row.opening_balance, realized_pnl=row.realized_pnl,
                             used_margin=row.used_margin)


def default_funds_state() -> engine.FundsState:
    return engine.FundsState(opening_balance=starting_funds())


def _store_funds(row: Funds, state: engine.FundsState) -> None:
    row.realized_pnl = state.realized_pnl
    row.used_margin = state.used_margin
    row.available_cash = state.available


def position_state(row: Position | None) -> engine.PositionState:
    if row is None:
        return engine.PositionState()
    return engine.PositionState(quantity=row.quantity, average_price=row.average_price,
                                realized_pnl=row.realized_pnl, buy_quantity=row.buy_quantity,
                                buy_value=row.buy_value, sell_quantity=row.sell_quantity, sell_value=row.sell_value,
                                charges=row.charges)


def _store_position(row: Position, state: engine.PositionState, margin: Decimal, now: dt.datetime) -> None:
    row.quantity = state.quantity
    row.average_price = state.average_price
    row.realized_pnl = state.realized_pnl
    row.buy_quantity, row.buy_value = state.buy_quantity, state.buy_value
    row.sell_quantity, row.sell_value = state.sell_quantity, state.sell_value
    row.charges = state.charges
    row.margin_blocked = margin
    row.updated_at = now


class Positions:
    """The user's analyze-mode Position rows of one unit of work, loaded in one query."""

    def __init__(self, user_id: int, keys: Iterable[PosKey] = ()):
        self.user_id = user_id
        self.rows: dict[PosKey, Position] = {}
        symbols = {k[0] for k in keys}
        if symbols:
            q = select(Position).where(Position.user_id == user_id, Position.mode == Mode.ANALYZE,
                                       Position.symbol.in_(symbols))
            for row in db.session.scalars(q):
                self.rows[(row.symbol, row.exchange.value, row.product.value)] = row

    def get(self, key: PosKey) -> Position | None:
        return self.rows.get(key)

    def get_or_add(self, key: PosKey) -> Position:
        row = self.rows.get(key)
        if row is None:
            z = Decimal(0)
            row = Position(user_id=self.user_id, mode=Mode.ANALYZE, symbol=key[0], exchange=key[1], product=key[2],
                           quantity=z, average_price=z, buy_quantity=z, buy_value=z, sell_quantity=z, sell_value=z,
                           realized_pnl=z, charges=z, margin_blocked=z)
            db.session.add(row)
            self.rows[key] = row
        return row


# -- quotes ------------------------------------------------------------------------------------------
_QUOTES = QuoteRow.__table__
_Q_STORED = select(_QUOTES.c.exchange, _QUOTES.c.ltp, _QUOTES.c.bid, _QUOTES.c.ask, _QUOTES.c.updated_at).where(
    _QUOTES.c.symbol == bindparam("symbol"), _QUOTES.c.source != "simulator")
QUOTES_NS = "paper_stored_quotes"
cache.shard_by_key(QUOTES_NS)


def _stored_broker_quotes(symbol: str) -> dict:
    """{exchange: [ltp, bid, ask, updated_at]} (strings) of the broker quotes stored for `symbol`, cached
    (dropped after any commit that writes the quotes table: the session hooks below)."""
    def load() -> dict:
        rows = db.session.connection().execute(_Q_STORED, {"symbol": symbol})
        return {getattr(ex, "value", ex): [str(ltp), str(bid), str(ask), at.isoformat()]
                for ex, ltp, bid, ask, at in rows}

    return cache.get_or_load(QUOTES_NS, symbol, load)


def quote_for(symbol: str, exchange: str) -> engine.Quote:
    """The quote an order of (symbol, exchange) fills against: quotes_for()'s rule, from the cache (no
    query per order); services.market.quotes.get_quote() for what the cache cannot answer (it raises for an
    unknown symbol)."""
    found = quotes_for([(symbol, exchange)]).get((symbol, exchange))
    if found is not None:
        return found
    q = quotes.get_quote(symbol, exchange)
    return engine.Quote(ltp=q.ltp, bid=q.bid, ask=q.ask)


def quotes_for(pairs: Iterable[tuple[str, str]]) -> dict[tuple[str, str], engine.Quote]:
    """Quotes of many instruments: a fresh stored broker quote, else the simulator's (services.market.quotes.
    get_quote's rule, in bulk; the stored quotes come from the cache)."""
    wanted = set(pairs)
    if not wanted:
        return {}
    now = utcnow()
    out: dict[tuple[str, str], engine.Quote] = {}
    for symbol in {s for s, _ in wanted}:
        for exchange, (ltp, bid, ask, at) in _stored_broker_quotes(symbol).items():
            if (symbol, exchange) in wanted and \
                    (now - dt.datetime.fromisoformat(at)).total_seconds() <= quotes.STORED_FRESH_SECONDS:
                out[(symbol, exchange)] = engine.Quote(ltp=Decimal(ltp), bid=Decimal(bid), ask=Decimal(ask))
    sim = quotes.simulator()
    infos = symbol_index.get_symbol_info_bulk(wanted - out.keys())
    for key, info in infos.items():
        if info is not None:
            q = sim.quote(info)
            out[key] = engine.Quote(ltp=q.ltp, bid=q.bid, ask=q.ask)
    return out


# -- execution ---------------------------------------------------------------------------------------
def execute(order: Order, quote: engine.Quote, funds: Funds, positions: Positions, now: dt.datetime, *,
            placing: bool = False, squaring_off: bool = False) -> None:
    """Try to fill `order` against `quote`: fill (Position, Funds, Fill), leave it waiting, or reject it.

    When `placing`, an order that does not fill at once is still checked against the funds (at its limit
    price, or the ltp for SL-M), so an order that could never be paid for is refused at the door.
    Outside the exchange's session (services.trading.paper.hours) nothing fills: a MARKET order being
    placed is refused with the next open, any other waits. The square-off's own orders (`squaring_off`)
    close what was due at the square-off moment, whenever they run.
    """
    key = (order.symbol, order.exchange.value, order.product.value)
    action, product, qty = order.action.value, order.product.value, order.quantity
    closed = not squaring_off and not hours.is_open(order.exchange.value, now)
    if closed and placing and order.pricetype == PriceType.MARKET:
        reject(order, hours.closed_message(order.exchange.value, now))
        return
    if placing and product == Product.MIS and not hours.takes_mis(order.exchange.value, now):
        reject(order, hours.mis_closed_message(order.exchange.value, now))
        return
    triggered = needs_trigger(order.pricetype) and order.status == OrderStatus.OPEN and not placing
    decision = engine.Decision(order.status) if closed else engine.decide(
        action, order.pricetype.value, order.price, order.trigger_price, quote, triggered=triggered)
    pos_row = positions.get(key)
    pos = position_state(pos_row)
    lev = leverage()
    if decision.status != OrderStatus.COMPLETE:
        if placing:
            est = order.price if order.price > 0 else quote.ltp
            try:
                engine.check_order(pos, funds_state(funds), product, action, qty, est, lev)
            except (engine.InsufficientFunds, engine.CannotSell) as exc:
                reject(order, str(exc))
                return
        order.status = OrderStatus(decision.status)
        return
    price = decision.price
    fee = fill_charges(order.symbol, order.exchange.value, product, action, qty, price, now)
    try:
        result = engine.fill(pos, funds_state(funds), product, action, qty, price, lev, fee)
    except (engine.InsufficientFunds, engine.CannotSell) as exc:
        reject(order, str(exc))
        return
    pos_row = positions.get_or_add(key)
    _store_position(pos_row, result.position, result.position.margin(product, lev), now)
    _store_funds(funds, result.funds)
    order.status = OrderStatus.COMPLETE
    order.filled_quantity = qty
    order.average_price = price
    order.status_message = None
    order.updated_at = now
    if order.id is None:
        db.session.add(order)  # a new order joins the session filled: one INSERT, no UPDATE after
        db.session.flush()
    db.session.add(Fill(order_id=order.id, tradeid=new_id(now), quantity=qty, price=price,
                        realized_pnl=result.realized, charges=fee, filled_at=now))
    log.info("paper order %s of user %s filled: %s %s %s:%s at %s", order.orderid, order.user_id, action, qty,
             order.exchange.value, order.symbol, price)


def _open_orders(user_id: int) -> list[Order]:
    return list(db.session.scalars(
        select(Order).where(Order.user_id == user_id, Order.mode == Mode.ANALYZE, Order.status.in_(OPEN_STATUSES))
        .order_by(Order.id)))


def match_locked(user_id: int, funds: Funds, now: dt.datetime, open_orders: list[Order] | None = None) -> int:
    """Match the user's open paper orders against current quotes (inside a unit holding the funds lock).
    Returns how many changed state."""
    orders = _open_orders(user_id) if open_orders is None else open_orders
    orders = [o for o in orders if o.status in OPEN_STATUSES]
    if not orders:
        return 0
    pairs = {(o.symbol, o.exchange.value) for o in orders}
    book = quotes_for(pairs)
    positions = Positions(user_id, [(o.symbol, o.exchange.value, o.product.value) for o in orders])
    changed = 0
    for order in orders:
        quote = book.get((order.symbol, order.exchange.value))
        if quote is None:
            continue
        before = order.status
        execute(order, quote, funds, positions, now)
        changed += order.status != before
    return changed


def _due_positions(user_id: int | None, now: dt.datetime) -> list[Position]:
    q = select(Position).where(Position.mode == Mode.ANALYZE, Position.product == Product.MIS, Position.quantity != 0,
                               _due_clause(Position.exchange, Position.updated_at, now))
    if user_id is not None:
        q = q.where(Position.user_id == user_id)
    return list(db.session.scalars(q.order_by(Position.user_id, Position.id)))


def _due_orders(user_id: int | None, now: dt.datetime) -> list[Order]:
    q = select(Order).where(Order.mode == Mode.ANALYZE, Order.product == Product.MIS, Order.status.in_(OPEN_STATUSES),
                            _due_clause(Order.exchange, Order.placed_at, now))
    if user_id is not None:
        q = q.where(Order.user_id == user_id)
    return list(db.session.scalars(q))


def square_off_locked(user_id: int, funds: Funds, now: dt.datetime, open_orders: list[Order] | None = None) -> int:
    """Close the user's MIS positions that lived through a square-off moment, at market; cancel MIS
    orders still open from before it; snapshot the account (reason "squareoff"). Returns positions closed.
    `open_orders`: the user's open orders when the caller has them already."""
    if open_orders is None:
        due_orders = _due_orders(user_id, now)
    else:
        due_orders = [o for o in open_orders
                      if o.product == Product.MIS and _is_due(o.exchange.value, o.placed_at, now)]
    for order in due_orders:
        order.status = OrderStatus.CANCELLED
        order.status_message = "Cancelled at the intraday square-off time"
        order.updated_at = now
    rows = _due_positions(user_id, now)
    if not rows:
        return 0
    positions = Positions(user_id)
    for row in rows:
        positions.rows[(row.symbol, row.exchange.value, row.product.value)] = row
    book = quotes_for({(r.symbol, r.exchange.value) for r in rows})
    closed = 0
    for row in rows:
        quote = book.get((row.symbol, row.exchange.value))
        if quote is None:
            log.warning("no quote for %s:%s: MIS position of user %s not squared off", row.exchange.value,
                        row.symbol, user_id)
            continue
        order = Order(user_id=user_id, orderid=new_id(now), broker=BROKER, mode=Mode.ANALYZE,
                      strategy=SQUAREOFF_STRATEGY, symbol=row.symbol, exchange=row.exchange,
                      action=Action.SELL if row.quantity > 0 else Action.BUY, pricetype=PriceType.MARKET,
                      product=Product.MIS,
                      quantity=abs(row.quantity), price=Decimal(0), trigger_price=Decimal(0),
                      disclosed_quantity=Decimal(0), status=OrderStatus.OPEN, placed_at=now, updated_at=now)
        db.session.add(order)
        execute(order, quote, funds, positions, now, squaring_off=True)
        closed += order.status == OrderStatus.COMPLETE
    snapshot(user_id, funds, SnapshotReason.SQUAREOFF, now)
    log.info("squared off %d MIS positions of user %s", closed, user_id)
    return closed


def snapshot(user_id: int, funds: Funds, reason: SnapshotReason, now: dt.datetime) -> PortfolioSnapshot:
    """Record the account's equity (opening + realized + unrealized) now."""
    open_rows = list(db.session.scalars(select(Position).where(
        Position.user_id == user_id, Position.mode == Mode.ANALYZE, Position.quantity != 0)))
    book = quotes_for({(r.symbol, r.exchange.value) for r in open_rows})
    unrealized = sum((position_state(r).unrealized(book[(r.symbol, r.exchange.value)].ltp) for r in open_rows
                      if (r.symbol, r.exchange.value) in book), Decimal(0))
    funds.unrealized_pnl = unrealized
    snap = PortfolioSnapshot(user_id=user_id, mode=Mode.ANALYZE, taken_at=now,
                             equity=funds.opening_balance + funds.realized_pnl + unrealized,
                             cash=funds.available_cash, realized_pnl=funds.realized_pnl, unrealized_pnl=unrealized,
                             reason=reason)
    db.session.add(snap)
    return snap


def housekeeping_locked(user_id: int, funds: Funds, now: dt.datetime) -> None:
    """Inside a unit holding the funds lock: square off what is due, then match open orders."""
    open_orders = _open_orders(user_id)
    square_off_locked(user_id, funds, now, open_orders)
    match_locked(user_id, funds, now, open_orders)


# -- the cached account ------------------------------------------------------------------------------
# What only changes when the user's paper account is written: the Funds figures, the positions of the
# position book, the trading day's orders and trades (in the shapes of docs/api.md; the day begins at
# SESSION_EXPIRY_TIME, services.trading.shapes.day_start), and whether there are open orders or
# open MIS positions (and since when). One entry per user in CACHE_NS, JSON-friendly (Decimals as
# strings), dropped in every process after any commit that wrote one of the user's Order, Fill,
# Position or Funds rows (the session hooks below), whichever code path wrote it. Prices that move
# with quotes (ltp, unrealized P&L) are not cached: readers compute them per call.
CACHE_NS = "paper_account_v2"  # v2: positions and trades carry charges (entries of v1 may linger in Redis)
cache.shard_by_key(CACHE_NS)  # without Redis: a generation row per user, not one row every order queues on
_FUNDS_FIELDS = ("opening_balance", "realized_pnl", "used_margin", "collateral")
_POSITION_FIELDS = ("quantity", "average_price", "realized_pnl", "buy_quantity", "buy_value", "sell_quantity",
                    "sell_value", "charges")

_uid = bindparam("uid")
_day = bindparam("day")
_Q_FUNDS = select(Funds).where(Funds.user_id == _uid, Funds.mode == Mode.ANALYZE)
_Q_POSITIONS = (select(Position).where(Position.user_id == _uid, Position.mode == Mode.ANALYZE,
                                       or_(Position.quantity != 0, Position.updated_at >= _day))
                .order_by(Position.id))
_Q_ORDERS = (select(Order).where(Order.user_id == _uid, Order.mode == Mode.ANALYZE,
                                 or_(Order.placed_at >= _day, Order.status.in_(OPEN_STATUSES)))
             .order_by(Order.id.desc()))
_Q_TRADES = (select(Fill, Order).join(Order, Order.id == Fill.order_id)
             .where(Order.user_id == _uid, Order.mode == Mode.ANALYZE, Fill.filled_at >= _day)
             .order_by(Fill.id.desc()))


def _load_account(user_id: int, day: dt.datetime) -> dict:
    """The account as of the trading day that began at `day` (shapes.day_start()): positions open or
    traded since, orders placed since or still open, fills since."""
    params = {"uid": user_id, "day": day}
    row = db.session.scalars(_Q_FUNDS, params).first()
    funds = None
    if row is not None:
        funds = {f: str(getattr(row, f)) for f in _FUNDS_FIELDS}
        funds["updated_at"] = row.updated_at.isoformat() if row.updated_at else None
    positions = []
    for p in db.session.scalars(_Q_POSITIONS, params):
        item = {f: str(getattr(p, f)) for f in _POSITION_FIELDS}
        item.update(symbol=p.symbol, exchange=p.exchange.value, product=p.product.value,
                    updated_at=p.updated_at.isoformat())
        positions.append(item)
    orders = [shapes.order_data(o) for o in db.session.scalars(_Q_ORDERS, params)]
    trades = [trade_data(o.action.value, o.symbol, o.exchange.value, o.orderid, o.product.value, f.quantity, f.price,
                         f.realized_pnl, f.charges, f.filled_at)
              for f, o in db.session.execute(_Q_TRADES, params)]
    return {"day": day.isoformat(), "funds": funds, "positions": positions, "orders": orders, "trades": trades,
            "open_orders": any(o["order_status"] in OPEN_STATUSES for o in orders),
            "mis_oldest": _mis_oldest(positions)}


def trade_data(action: str, symbol: str, exchange: str, orderid: str, product: str, quantity: Decimal,
               price: Decimal, realized: Decimal, fee: Decimal, at: dt.datetime) -> dict:
    """A trade book row (docs/api.md): OpenAlgo's fields, and the P&L the fill realized, gross, its
    charges and the net."""
    return {"action": action, "symbol": symbol, "exchange": exchange, "orderid": orderid, "product": product,
            "quantity": int(quantity), "average_price": shapes.num(price), "timestamp": shapes.fmt_time(at),
            "trade_value": shapes.num(quantity * price), "realized_pnl": shapes.num(realized),
            "charges": shapes.num(fee), "net_pnl": shapes.num(realized - fee)}


def _mis_oldest(positions: list[dict]) -> str | None:
    """When the oldest open MIS position was last traded (ISO), or None."""
    times = [dt.datetime.fromisoformat(p["updated_at"]) for p in positions
             if p["product"] == Product.MIS and Decimal(p["quantity"]) != 0]
    return min(times).isoformat() if times else None


def account(user_id: int) -> dict:
    """The user's cached paper account (see above). Read-only: callers must not change it."""

    day = shapes.day_start()  # the trading day: it begins at SESSION_EXPIRY_TIME, not at midnight
    snap = cache.get_or_load(CACHE_NS, str(user_id), lambda: _load_account(user_id, day))
    if snap["day"] != day.isoformat():  # cached in another trading day: the day's books moved on
        snap = _load_account(user_id, day)
        cache.set(CACHE_NS, str(user_id), snap)
    return snap


def account_funds_state(snap: dict) -> engine.FundsState:
    f = snap["funds"]
    if f is None:
        return default_funds_state()
    return engine.FundsState(opening_balance=Decimal(f["opening_balance"]), realized_pnl=Decimal(f["realized_pnl"]),
                             used_margin=Decimal(f["used_margin"]))


def account_position_state(item: dict) -> engine.PositionState:
    return engine.PositionState(**{f: Decimal(item[f]) for f in _POSITION_FIELDS})


def changed(user_id: int, session: Session | None = None) -> None:
    """Mark the user's cached account stale: dropped (in every process) when `session` commits."""
    _stale(session if session is not None else db.session(), CACHE_NS, str(user_id))


def _stale(session: Session, namespace: str, key: str | None) -> None:
    try:
        two_level = cache.current()
    except RuntimeError:  # no application, no cache
        return
    two_level.invalidate(namespace, key, session=session)


def _owner(session: Session, obj: object) -> int | None:
    if isinstance(obj, (Order, Position, Funds)):
        return obj.user_id
    if isinstance(obj, Fill):
        order = session.identity_map.get(Session.identity_key(Order, obj.order_id))
        if order is not None:
            return order.user_id
        found = session.get(Order, obj.order_id) if obj.order_id is not None else None
        return found.user_id if found is not None else None
    return None


@event.listens_for(Session, "do_orm_execute")
def _collect_quote_writes(state) -> None:
    stmt = state.statement
    if not getattr(stmt, "is_dml", False) or getattr(stmt, "table", None) is not _QUOTES:
        return
    symbol = None
    if state.is_insert:
        try:
            symbol = stmt.compile().params.get("symbol")
        except Exception:  # noqa: BLE001 - unknown shape: drop every symbol
            symbol = None
    _stale(state.session, QUOTES_NS, symbol)


@event.listens_for(Session, "after_flush")
def _collect_changed_users(session: Session, _ctx) -> None:
    users: set[int] = set()
    for group, modified_only in ((session.new, False), (session.dirty, True), (session.deleted, False)):
        for obj in group:
            if isinstance(obj, QuoteRow):
                _stale(session, QUOTES_NS, obj.symbol)
                continue
            if not isinstance(obj, (Order, Position, Funds, Fill)):
                continue
            if modified_only and not session.is_modified(obj, include_collections=False):
                continue
            uid = _owner(session, obj)
            if uid is not None:
                users.add(uid)
    for uid in users:
        _stale(session, CACHE_NS, str(uid))


# -- the fast path: a fill on a quiet account, in a few Core statements --------------------------------
# Most orders are a MARKET (or crossing LIMIT) order on an account with no open orders and no MIS
# position due for square-off. For those, one statement locks the Funds row and reads what the fill
# needs (the position of the instrument, and whether housekeeping has work: then the ORM path runs
# instead, in the same transaction); the order, its fill, the position and the funds are written with
# Core statements, and the generation of the cached accounts is bumped in the same transaction
# (database.cache). After the commit, this process's cached account is brought forward in place (not
# dropped), when it is exactly the state the fill started from (same Funds.updated_at).
_F, _P, _O, _FILLS = Funds.__table__, Position.__table__, Order.__table__, Fill.__table__
_F_SNAP = _F.alias("funds_snapshot")
# The square-off cutoff of a position's own exchange (parameters cutoff_<exchange>: hours.cutoffs()).
_CUTOFF = case(*[(_P.c.exchange == e, bindparam(f"cutoff_{e}", type_=_P.c.updated_at.type))
                 for e in TRADABLE_EXCHANGES], else_=bindparam("cutoff_none", type_=_P.c.updated_at.type))
_Q_READ = (
    select(_F.c.id, _F.c.opening_balance, _F.c.realized_pnl, _F.c.used_margin, _F.c.updated_at,
           # Funds.updated_at as of the statement's snapshot; after a wait for the lock, the locked
           # row itself is read as of now (see place_fast)
           select(_F_SNAP.c.updated_at).where(_F_SNAP.c.id == _F.c.id).scalar_subquery().label("seen_at"),
           select(_O.c.id).where(_O.c.user_id == _uid, _O.c.mode == Mode.ANALYZE,
                                 _O.c.status.in_(OPEN_STATUSES)).exists().label("has_open"),
           select(_P.c.id).where(_P.c.user_id == _uid, _P.c.mode == Mode.ANALYZE, _P.c.product == Product.MIS,
                                 _P.c.quantity != 0, _P.c.updated_at < _CUTOFF).exists().label("has_due"),
           _P.c.id.label("pos_id"), *[_P.c[f].label(f"pos_{f}") for f in _POSITION_FIELDS])
    .select_from(_F.outerjoin(_P, and_(_P.c.user_id == _F.c.user_id, _P.c.mode == _F.c.mode,
                                       _P.c.symbol == bindparam("symbol"), _P.c.exchange == bindparam("exchange"),
                                       _P.c.product == bindparam("product"))))
    .where(_F.c.user_id == _uid, _F.c.mode == Mode.ANALYZE)
)
_Q_LOCK = _Q_READ.with_for_update(of=_F)
def _pos_key(prefix: str):
    """The position of (user, analyze mode, symbol, exchange, product) from the parameters `prefix`uid etc."""
    return and_(_P.c.user_id == bindparam(f"{prefix}uid"), _P.c.mode == Mode.ANALYZE,
                _P.c.symbol == bindparam(f"{prefix}symbol"), _P.c.exchange == bindparam(f"{prefix}exchange"),
                _P.c.product == bindparam(f"{prefix}product"))


_POS_KEY = _pos_key("k_")
_I_ORDERS = insert(_O).returning(_O.c.id, sort_by_parameter_order=True)
_I_FILL = insert(_FILLS)
_I_POSITION = insert(_P)
_U_POSITION = update(_P).where(_POS_KEY)
_U_FUNDS = update(_F).where(_F.c.id == bindparam("funds_id"))


_ORDER_COLS = ("user_id", "signal_id", "parent_id", "orderid", "broker", "mode", "strategy", "symbol", "exchange",
               "action", "pricetype", "product", "quantity", "filled_quantity", "price", "trigger_price",
               "disclosed_quantity", "average_price", "status", "status_message", "placed_at", "updated_at")
_FILL_COLS = ("tradeid", "quantity", "price", "realized_pnl", "charges", "filled_at")
_POS_COLS = (*_POSITION_FIELDS, "margin_blocked", "updated_at")
_FUNDS_COLS = ("realized_pnl", "used_margin", "available_cash", "updated_at")


def _params(table, prefix: str, columns: Iterable[str]) -> dict:
    return {c: bindparam(f"{prefix}{c}", type_=table.c[c].type) for c in columns}


def _pg_order_ctes():
    """PostgreSQL: CTEs inserting an order (parameters o_*) and its fill (f_*)."""
    o = insert(_O).values(_params(_O, "o_", _ORDER_COLS)).returning(_O.c.id).cte("o")
    f = insert(_FILLS).from_select(["order_id", *_FILL_COLS],
                                   select(o.c.id, *_params(_FILLS, "f_", _FILL_COLS).values())).cte("f")
    return o, f


@functools.cache
def _pg_order_and_fill():
    """PostgreSQL: one order and its fill in one statement (of one shape: psycopg prepares it)."""
    o, f = _pg_order_ctes()
    return select(o.c.id).add_cte(f)


@functools.cache
def _pg_writes(positions: tuple[bool, ...], bump: bool, with_order: bool):
    """PostgreSQL, in one statement (data-modifying CTEs), returning the generation (or NULL): the
    positions (parameters p{j}_* and k{j}_*; `positions`: whether each exists), the funds (u_*,
    funds_id), with `bump` the cache generation (gen_row, gen_at), with `with_order` also an order
    and its fill (o_*, f_*)."""
    ctes = list(_pg_order_ctes()) if with_order else []
    for j, exists in enumerate(positions):
        if exists:
            ctes.append(update(_P).where(_pos_key(f"k{j}_")).values(_params(_P, f"p{j}_", _POS_COLS)).cte(f"p{j}"))
        else:
            columns = (*_POS_COLS, "user_id", "mode", "symbol", "exchange", "product")
            ctes.append(insert(_P).values(_params(_P, f"p{j}_", columns)).cte(f"p{j}"))
    ctes.append(update(_F).where(_F.c.id == bindparam("funds_id")).values(_params(_F, "u_", _FUNDS_COLS)).cte("u"))
    if not bump:
        return select(literal(None).label("generation")).add_cte(*ctes)
    gens = CacheGeneration.__table__
    upsert = postgresql.insert(gens).values(namespace=bindparam("gen_row"), generation=1,
                                    updated_at=bindparam("gen_at", type_=gens.c.updated_at.type))
    g = upsert.on_conflict_do_update(
        index_elements=[gens.c.namespace],
        set_={"generation": gens.c.generation + 1, "updated_at": upsert.excluded.updated_at},
    ).returning(gens.c.generation).cte("g")
    return select(g.c.generation).add_cte(*ctes)


@dataclass(slots=True)
class _Writes:
    """The rows a planned fast fill writes (write_fast())."""

    key: PosKey
    order: dict
    fill: dict
    position: dict
    position_key: dict
    position_exists: bool
    funds: dict


@dataclass(slots=True)
class FastFill:
    """A fill planned by _plan_fast() and written by write_fast(); call `committed()` after the unit
    commits."""

    user_id: int
    generation: int | None
    before: str | None  # Funds.updated_at the fill started from (ISO)
    funds_state: engine.FundsState  # after the fill
    known: _Known  # the account after the fill, for the next fast fill of this process
    funds: dict
    position: dict
    order: dict
    trade: dict
    writes: _Writes

    def committed(self) -> None:
        _KNOWN[self.user_id] = self.known
        two_level = cache.current()
        two_level.committed(CACHE_NS, str(self.user_id), self.generation, drop=False)
        two_level.update_local(CACHE_NS, str(self.user_id), self._forward)

    def _forward(self, snap: dict | None) -> dict | None:
        """The cached account with this fill, or None (drop) when it is not the state before it."""
        if snap is None or snap["funds"] is None or snap["funds"].get("updated_at") != self.before:
            return None
        key = (self.position["symbol"], self.position["exchange"], self.position["product"])
        positions = [p for p in snap["positions"] if (p["symbol"], p["exchange"], p["product"]) != key]
        at = next((i for i, p in enumerate(snap["positions"])
                   if (p["symbol"], p["exchange"], p["product"]) == key), len(positions))
        positions.insert(at, self.position)
        funds = {**self.funds, "collateral": snap["funds"]["collateral"]}
        return {**snap, "funds": funds, "positions": positions, "orders": [self.order, *snap["orders"]],
                "trades": [self.trade, *snap["trades"]], "mis_oldest": _mis_oldest(positions)}


@dataclass(frozen=True, slots=True)
class _Known:
    """What this process's last fast fill of a user left behind, at Funds.updated_at `version`: no open
    order, no MIS position due at `cutoff`, and these positions."""

    version: dt.datetime
    cutoffs: dict[str, dt.datetime]  # hours.cutoffs() it was planned under
    positions: dict[PosKey, engine.PositionState]


_KNOWN: dict[int, _Known] = {}  # user id -> _Known (this process's fast fills)


def _cached_position(user_id: int, version: dt.datetime, key: PosKey,
                     cutoffs: dict[str, dt.datetime]) -> engine.PositionState | None:
    """The position `key` as of `version` (Funds.updated_at) on an account with no open order nor MIS
    position due at `cutoff`, from what this process knows of that version (its last fast fill of
    the user, or its cached account), or None."""
    known = _KNOWN.get(user_id)
    if known is not None and known.version == version and known.cutoffs == cutoffs and key in known.positions:
        return known.positions[key]
    snap = cache.current().get(CACHE_NS, str(user_id))
    funds = snap and snap["funds"]
    if not funds or funds.get("updated_at") is None or dt.datetime.fromisoformat(funds["updated_at"]) != version:
        return None
    if snap["open_orders"] or _snapshot_has_due(snap, cutoffs):
        return None
    for item in snap["positions"]:
        if (item["symbol"], item["exchange"], item["product"]) == key:
            return account_position_state(item)
    return None


def _read_locked(conn, user_id: int, values: dict, cutoffs: dict[str, dt.datetime], key: PosKey):
    """Lock the Funds row and read what a fast fill needs: (funds id, Funds.updated_at, funds state,
    position state, whether the position row exists), or None when the account needs the full path."""
    params = {"uid": user_id, "symbol": values["symbol"], "exchange": values["exchange"],
              "product": values["product"], "cutoff_none": hours.NEVER}
    params.update({f"cutoff_{e}": at for e, at in cutoffs.items()})
    row = conn.execute(_Q_LOCK, params).first()
    if row is None:
        return None
    pos: engine.PositionState | None = None
    if row.seen_at != row.updated_at:
        # The lock was released to us by a unit that committed after this statement began: the
        # position and the open orders above predate it. The account as this process cached it is
        # exact when it is of the version now locked (every writer moves Funds.updated_at); else read
        # them again (the lock is held now, so a new statement sees that unit's writes).
        pos = _cached_position(user_id, row.updated_at, key, cutoffs)
        if pos is None:
            row = conn.execute(_Q_READ, params).first()
    if pos is not None:
        exists = True
    elif row.has_open or row.has_due:
        return None
    else:
        exists = row.pos_id is not None
        pos = engine.PositionState() if not exists else engine.PositionState(
            **{f: getattr(row, f"pos_{f}") for f in _POSITION_FIELDS})
    funds = engine.FundsState(opening_balance=row.opening_balance, realized_pnl=row.realized_pnl,
                              used_margin=row.used_margin)
    return row.id, row.updated_at, funds, pos, exists


def place_fast(user_id: int, values: dict, quote: engine.Quote, now: dt.datetime) -> FastFill | None:
    """Inside a write unit (write_unit() called): fill the order `values` (the `orders` columns) at once,
    or return None, having written nothing, when it needs the full path (no Funds row yet, open orders
    or a square-off due, an order that would not fill or would be rejected); the lock is held either way."""
    fill = _plan_fast(user_id, values, quote, now)
    if fill is not None:
        write_fast([fill])
    return fill


def place_fast_batch(user_id: int, items: list[tuple[dict, engine.Quote, dt.datetime]]) -> list[FastFill | None]:
    """place_fast() for several orders of one user in one write unit, in order, each on the state the
    one before left; the rows are written together (write_fast()): one insert of the orders, one of the
    fills, one write per position and one of the funds, instead of a set per order."""
    out: list[FastFill | None] = []
    pending: list[FastFill] = []
    for values, quote, now in items:
        prior = pending[-1] if pending else None
        if prior is not None and not _continues(prior, values, now):
            write_fast(pending)  # the next plan reads the database: it must hold what came before
            pending, prior = [], None
        fill = _plan_fast(user_id, values, quote, now, prior)
        out.append(fill)
        if fill is not None:
            pending.append(fill)
    write_fast(pending)
    return out


def _continues(prior: FastFill, values: dict, now: dt.datetime) -> bool:
    """Can the next order be planned from `prior` alone (same square-off cutoff, position known)?"""
    key = (values["symbol"], values["exchange"].value, values["product"].value)
    return prior.known.cutoffs == hours.cutoffs(now) and key in prior.known.positions


def _plan_fast(user_id: int, values: dict, quote: engine.Quote, now: dt.datetime,
               prior: FastFill | None = None) -> FastFill | None:
    """place_fast() without the writes: the fill and the rows it writes, or None. `prior`: the fill
    planned last in this unit for the same user, not written yet, whose state this one starts from
    without a query (only when _continues(prior, ...): the database does not hold it)."""

    action, product, qty = values["action"].value, values["product"].value, values["quantity"]
    decision = engine.decide(action, values["pricetype"].value, values["price"], values["trigger_price"], quote)
    if decision.status != OrderStatus.COMPLETE:
        return None
    conn = db.session.connection()
    cutoffs = hours.cutoffs(now)
    key = (values["symbol"], values["exchange"].value, product)
    if prior is not None:
        # Still under the lock the prior fill's statement took, with nothing else written since.
        funds_id, version, funds = prior.writes.funds["funds_id"], prior.known.version, prior.funds_state
        pos, exists = prior.known.positions[key], True
    else:
        found = _read_locked(conn, user_id, values, cutoffs, key)
        if found is None:
            return None
        funds_id, version, funds, pos, exists = found
    lev = leverage()
    price = decision.price
    fee = fill_charges(values["symbol"], values["exchange"].value, product, action, qty, price, now)
    try:
        result = engine.fill(pos, funds, product, action, qty, price, lev, fee)
    except (engine.InsufficientFunds, engine.CannotSell):
        return None  # the full path journals the rejection, with its alert
    now = next_version(version, now)  # Funds.updated_at is the cached account's version: it must move
    if prior is not None:
        carried = prior.known.positions
    else:
        known = _KNOWN.get(user_id)
        carried = known.positions if known is not None and known.version == version and \
            known.cutoffs == cutoffs else {}
    after, new = result.position, result.funds
    order_row = {**values, "status": OrderStatus.COMPLETE, "filled_quantity": qty, "average_price": price,
                 "placed_at": now, "updated_at": now}
    fill_row = {"tradeid": new_id(now), "quantity": qty, "price": price, "realized_pnl": result.realized,
                "charges": fee, "filled_at": now}
    pos_row = {f: getattr(after, f) for f in _POSITION_FIELDS}
    pos_row.update(margin_blocked=after.margin(product, lev), updated_at=now)
    if not exists:
        pos_row.update(user_id=user_id, mode=Mode.ANALYZE, symbol=values["symbol"], exchange=values["exchange"],
                       product=values["product"])
    pos_key = {"k_uid": user_id, "k_symbol": values["symbol"], "k_exchange": values["exchange"],
               "k_product": values["product"]}
    funds_row = {"realized_pnl": new.realized_pnl, "used_margin": new.used_margin, "available_cash": new.available,
                 "updated_at": now}
    return FastFill(
        user_id=user_id, generation=None,
        writes=_Writes(key=key, order=order_row, fill=fill_row, position=pos_row, position_key=pos_key,
                       position_exists=exists, funds={**funds_row, "funds_id": funds_id}),
        known=_Known(version=now, cutoffs=cutoffs, positions={**carried, key: result.position}),
        before=version.isoformat() if version is not None else None,
        funds_state=new,
        funds={"opening_balance": str(new.opening_balance), "realized_pnl": str(new.realized_pnl),
               "used_margin": str(new.used_margin), "updated_at": now.isoformat()},
        position={**{f: str(getattr(after, f)) for f in _POSITION_FIELDS}, "symbol": values["symbol"],
                  "exchange": values["exchange"].value, "product": product, "updated_at": now.isoformat()},
        order={"action": action, "symbol": values["symbol"], "exchange": values["exchange"].value,
               "orderid": values["orderid"], "product": product, "quantity": int(qty),
               "price": shapes.num(values["price"]), "pricetype": values["pricetype"].value,
               "order_status": OrderStatus.COMPLETE.value, "trigger_price": shapes.num(values["trigger_price"]),
               "timestamp": shapes.fmt_time(now)},
        trade=trade_data(action, values["symbol"], values["exchange"].value, values["orderid"], product, qty, price,
                         result.realized, fee, now),
    )


def write_fast(fills: list[FastFill]) -> None:
    """Write planned fast fills of one user (in plan order) on the unit's connection, and bump the
    generation of the cached accounts once (database.cache); sets each fill's `generation`."""
    if not fills:
        return
    if log.isEnabledFor(logging.INFO):
        for f in fills:
            o = f.writes.order
            log.info("paper order %s of user %s filled: %s %s %s:%s at %s", o["orderid"], f.user_id,
                     o["action"].value, o["quantity"], o["exchange"].value, o["symbol"], o["average_price"])
    conn = db.session.connection()
    two_level = cache.current()
    user_id, last = fills[0].user_id, fills[-1].writes
    positions: dict[PosKey, tuple[bool, dict, dict]] = {}  # key -> (exists, row, key params): the last state
    for f in fills:
        w = f.writes
        first = positions.get(w.key)
        if first is None:
            positions[w.key] = (w.position_exists, w.position, w.position_key)
        else:  # a new position is inserted with its last state (the first row has its identity)
            positions[w.key] = (first[0], {**first[1], **w.position}, w.position_key)
    if conn.dialect.name == "postgresql":
        # One statement for everything when there is one order; else the orders with their fills
        # (one prepared shape, sent as one executemany), then one statement for the rest.
        bump = not two_level.uses_redis
        params = {f"u_{k}": v for k, v in last.funds.items() if k != "funds_id"}
        params.update(funds_id=last.funds["funds_id"], gen_row=cache.generation_row(CACHE_NS, str(user_id)),
                      gen_at=last.funds["updated_at"])
        for j, (_exists, row, key) in enumerate(positions.values()):
            params.update({f"p{j}_{k}": v for k, v in row.items()})
            params.update({f"k{j}_{k[2:]}": v for k, v in key.items()})  # k_uid -> k0_uid
        orders = [{**{f"o_{k}": v for k, v in f.writes.order.items()},
                   **{f"f_{k}": v for k, v in f.writes.fill.items()}} for f in fills]
        if len(orders) == 1:
            params.update(orders[0])
        else:
            conn.execute(_pg_order_and_fill(), orders)
        stmt = _pg_writes(tuple(e for e, _, _ in positions.values()), bump, with_order=len(orders) == 1)
        generation = conn.execute(stmt, params).one().generation
        for f in fills:
            f.generation = int(generation) if bump else None
        return
    ids = list(conn.execute(_I_ORDERS, [f.writes.order for f in fills]).scalars())
    conn.execute(_I_FILL, [{**f.writes.fill, "order_id": order_id} for f, order_id in zip(fills, ids, strict=True)])
    for exists, row, key in positions.values():
        if exists:
            conn.execute(_U_POSITION, {**row, **key})
        else:
            conn.execute(_I_POSITION, row)
    conn.execute(_U_FUNDS, last.funds)
    generation = two_level.bump_in_transaction(conn, CACHE_NS, str(user_id))
    for f in fills:
        f.generation = generation


# -- entry points (units of their own) ---------------------------------------------------------------
def _has_work(user_id: int, now: dt.datetime) -> bool:
    """Cheap check, without the write lock: open orders, or MIS positions due for square-off? Answered
    from the cached account (no query when it is cached)."""
    snap = account(user_id)
    return snap["open_orders"] or _snapshot_has_due(snap, hours.cutoffs(now))


def refresh(user_id: int, now: dt.datetime | None = None) -> None:
    """Bring the user's paper account up to date before a read: square-off, then open orders. A unit
    of its own, only when there is something to do."""
    now = now or utcnow()
    if not _has_work(user_id, now):
        return
    with unit_of_work(write=True):
        funds = lock_funds(user_id)
        housekeeping_locked(user_id, funds, now)


def match_open_orders(user_id: int, now: dt.datetime | None = None) -> int:
    """Match the user's open paper orders against current quotes; one unit. Returns orders that changed."""
    now = now or utcnow()
    with unit_of_work(write=True):
        funds = lock_funds(user_id)
        return match_locked(user_id, funds, now)


def square_off_due(user_id: int | None = None, now: dt.datetime | None = None) -> int:
    """Square off MIS positions past their exchange's square-off time, for one user or (a scheduler) all;
    one unit per account. Returns the number of positions closed."""
    now = now or utcnow()
    if user_id is None:
        with unit_of_work():  # a read: ends the read transaction before the accounts' units
            users = sorted({p.user_id for p in _due_positions(None, now)}
                           | {o.user_id for o in _due_orders(None, now)})
    else:
        users = [user_id]
    closed = 0
    for uid in users:
        with unit_of_work(write=True):
            funds = lock_funds(uid)
            closed += square_off_locked(uid, funds, now)
    return closed
