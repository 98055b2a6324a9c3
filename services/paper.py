"""Analyze mode's book-keeping: the paper engine (brokers.paper.engine) run against the database.

The engine decides; this module loads the rows it needs (the user's Funds row, locked, and the
Position rows), hands the engine plain values, and writes back the Order, Fill, Position and Funds
rows. Every function here runs inside the caller's unit of work and only adds and flushes, except
the public entry points `match_open_orders`, `square_off_due` and `refresh`, which are units of
their own and commit once.

Concurrency: all analyze-mode writes of a user take the user's Funds row first (SELECT ... FOR
UPDATE on PostgreSQL; on SQLite write_unit()'s BEGIN IMMEDIATE already serialises writers), so two
orders of the same user never book against stale funds or positions, in any process.

Open orders (LIMIT not crossed, SL/SL-M waiting for their trigger) are matched against current
quotes whenever the user's books are read or a new order is placed. MIS positions still open at
MIS_SQUAREOFF_TIME (exchange time) are closed at market at the first read or order after it (or by
a scheduler calling `square_off_due()`): a position is due when it was last traded before the most
recent square-off moment.
"""

from __future__ import annotations

import datetime as dt
import logging
import secrets
from collections.abc import Iterable
from decimal import Decimal
from zoneinfo import ZoneInfo

from flask import current_app
from sqlalchemy import select

import config as config_module
from brokers.paper import engine
from database import db, token_db, write_unit
from database.alert_db import Alert
from database.enums import Action, Mode, OrderStatus, PriceType, Product, SnapshotReason
from database.order_db import Fill, Order
from database.portfolio_db import Funds, PortfolioSnapshot, Position
from database.symbol import Quote as QuoteRow
from database.types import utcnow
from services import quotes

log = logging.getLogger("algobridge.orders")

BROKER = "paper"
LIVE_STATUSES = (OrderStatus.OPEN, OrderStatus.TRIGGER_PENDING)
SQUAREOFF_STRATEGY = "Auto Square-off"

PosKey = tuple[str, str, str]  # (symbol, exchange, product)


# -- settings ----------------------------------------------------------------------------------------
def leverage() -> engine.Leverage:
    cfg = current_app.config
    return engine.Leverage(mis=Decimal(cfg["MIS_LEVERAGE"]), nrml=Decimal(cfg["NRML_LEVERAGE"]))


def starting_funds() -> Decimal:
    return Decimal(current_app.config["ANALYZE_STARTING_FUNDS"])


def exchange_tz() -> ZoneInfo:
    return ZoneInfo(current_app.config["EXCHANGE_TIMEZONE"])


def squareoff_cutoff(now: dt.datetime) -> dt.datetime:
    """The latest MIS square-off moment at or before `now`, in UTC."""
    tz = exchange_tz()
    at = config_module.parse_hhmm("MIS_SQUAREOFF_TIME", current_app.config["MIS_SQUAREOFF_TIME"])
    local = now.astimezone(tz)
    moment = dt.datetime.combine(local.date(), at, tzinfo=tz)
    if moment > local:
        moment = dt.datetime.combine(local.date() - dt.timedelta(days=1), at, tzinfo=tz)
    return moment.astimezone(dt.UTC)


def new_id(now: dt.datetime | None = None) -> str:
    """A numeric id unique across processes: exchange date, microsecond of the day, 4 random digits."""
    local = (now or utcnow()).astimezone(exchange_tz())
    micros = ((local.hour * 60 + local.minute) * 60 + local.second) * 1_000_000 + local.microsecond
    return f"{local:%y%m%d}{micros:011d}{secrets.randbelow(10_000):04d}"


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
        if db.session.get_bind().dialect.name == "postgresql":
            from sqlalchemy.dialects.postgresql import insert
        else:
            from sqlalchemy.dialects.sqlite import insert
        db.session.execute(insert(Funds.__table__).values(**values)
                           .on_conflict_do_nothing(index_elements=["user_id", "mode"]))
        row = db.session.scalars(stmt).one()
    return row


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
                                buy_value=row.buy_value, sell_quantity=row.sell_quantity, sell_value=row.sell_value)


def _store_position(row: Position, state: engine.PositionState, margin: Decimal, now: dt.datetime) -> None:
    row.quantity = state.quantity
    row.average_price = state.average_price
    row.realized_pnl = state.realized_pnl
    row.buy_quantity, row.buy_value = state.buy_quantity, state.buy_value
    row.sell_quantity, row.sell_value = state.sell_quantity, state.sell_value
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
                           realized_pnl=z, margin_blocked=z)
            db.session.add(row)
            self.rows[key] = row
        return row


# -- quotes ------------------------------------------------------------------------------------------
def quote_for(symbol: str, exchange: str) -> engine.Quote:
    q = quotes.get_quote(symbol, exchange)
    return engine.Quote(ltp=q.ltp, bid=q.bid, ask=q.ask)


def quotes_for(pairs: Iterable[tuple[str, str]]) -> dict[tuple[str, str], engine.Quote]:
    """Quotes of many instruments with one query: a fresh stored broker quote, else the simulator's
    (services.quotes.get_quote's rule, in bulk)."""
    wanted = set(pairs)
    if not wanted:
        return {}
    now = utcnow()
    stored: dict[tuple[str, str], QuoteRow] = {}
    rows = db.session.scalars(select(QuoteRow).where(QuoteRow.symbol.in_({s for s, _ in wanted})))
    for row in rows:
        key = (row.symbol, row.exchange.value)
        if key in wanted and row.source != "simulator" and \
                (now - row.updated_at).total_seconds() <= quotes.STORED_FRESH_SECONDS:
            stored[key] = row
    out: dict[tuple[str, str], engine.Quote] = {}
    sim = quotes.simulator()
    infos = token_db.get_symbol_info_bulk(wanted - stored.keys())
    for key in wanted:
        row = stored.get(key)
        if row is not None:
            out[key] = engine.Quote(ltp=row.ltp, bid=row.bid, ask=row.ask)
        elif infos.get(key) is not None:
            q = sim.quote(infos[key])
            out[key] = engine.Quote(ltp=q.ltp, bid=q.bid, ask=q.ask)
    return out


# -- execution ---------------------------------------------------------------------------------------
def reject(order: Order, message: str) -> None:
    order.status = OrderStatus.REJECTED
    order.status_message = message
    db.session.add(order)
    db.session.add(Alert(user_id=order.user_id, severity="warning", kind="order_rejected",
                         title=f"Order rejected: {order.action.value} {order.quantity} {order.symbol}",
                         message=f"Order {order.orderid} ({order.exchange.value}:{order.symbol}) was rejected: "
                                 f"{message}"))
    log.info("paper order %s of user %s rejected: %s", order.orderid, order.user_id, message)


def execute(order: Order, quote: engine.Quote, funds: Funds, positions: Positions, now: dt.datetime, *,
            placing: bool = False) -> None:
    """Try to fill `order` against `quote`: fill (Position, Funds, Fill), leave it waiting, or reject it.

    When `placing`, an order that does not fill at once is still checked against the funds (at its limit
    price, or the ltp for SL-M), so an order that could never be paid for is refused at the door.
    """
    key = (order.symbol, order.exchange.value, order.product.value)
    action, product, qty = order.action.value, order.product.value, order.quantity
    triggered = order.pricetype.value in ("SL", "SL-M") and order.status == OrderStatus.OPEN and not placing
    decision = engine.decide(action, order.pricetype.value, order.price, order.trigger_price, quote,
                             triggered=triggered)
    pos_row = positions.get(key)
    pos = position_state(pos_row)
    lev = leverage()
    if decision.status != engine.COMPLETE:
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
    try:
        result = engine.fill(pos, funds_state(funds), product, action, qty, price, lev)
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
    db.session.add(Fill(order_id=order.id, tradeid=new_id(now), quantity=qty, price=price, filled_at=now))
    log.info("paper order %s of user %s filled: %s %s %s:%s at %s", order.orderid, order.user_id, action, qty,
             order.exchange.value, order.symbol, price)


def _open_orders(user_id: int) -> list[Order]:
    return list(db.session.scalars(
        select(Order).where(Order.user_id == user_id, Order.mode == Mode.ANALYZE, Order.status.in_(LIVE_STATUSES))
        .order_by(Order.id)))


def match_locked(user_id: int, funds: Funds, now: dt.datetime, open_orders: list[Order] | None = None) -> int:
    """Match the user's open paper orders against current quotes (inside a unit holding the funds lock).
    Returns how many changed state."""
    orders = _open_orders(user_id) if open_orders is None else open_orders
    orders = [o for o in orders if o.status in LIVE_STATUSES]
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


def _due_positions(user_id: int | None, cutoff: dt.datetime) -> list[Position]:
    q = select(Position).where(Position.mode == Mode.ANALYZE, Position.product == "MIS", Position.quantity != 0,
                               Position.updated_at < cutoff)
    if user_id is not None:
        q = q.where(Position.user_id == user_id)
    return list(db.session.scalars(q.order_by(Position.user_id, Position.id)))


def _due_orders(user_id: int | None, cutoff: dt.datetime) -> list[Order]:
    q = select(Order).where(Order.mode == Mode.ANALYZE, Order.product == "MIS", Order.status.in_(LIVE_STATUSES),
                            Order.placed_at < cutoff)
    if user_id is not None:
        q = q.where(Order.user_id == user_id)
    return list(db.session.scalars(q))


def square_off_locked(user_id: int, funds: Funds, now: dt.datetime, open_orders: list[Order] | None = None) -> int:
    """Close the user's MIS positions that lived through a square-off moment, at market; cancel MIS
    orders still open from before it; snapshot the account (reason "squareoff"). Returns positions closed.
    `open_orders`: the user's open orders when the caller has them already."""
    cutoff = squareoff_cutoff(now)
    if open_orders is None:
        due_orders = _due_orders(user_id, cutoff)
    else:
        due_orders = [o for o in open_orders if o.product == Product.MIS and o.placed_at < cutoff]
    for order in due_orders:
        order.status = OrderStatus.CANCELLED
        order.status_message = "Cancelled at the intraday square-off time"
        order.updated_at = now
    rows = _due_positions(user_id, cutoff)
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
        execute(order, quote, funds, positions, now)
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


# -- entry points (units of their own) ---------------------------------------------------------------
def _has_work(user_id: int, now: dt.datetime) -> bool:
    """Cheap check, without the write lock: open orders, or MIS positions due for square-off?"""
    open_order = db.session.scalar(
        select(Order.id).where(Order.user_id == user_id, Order.mode == Mode.ANALYZE,
                               Order.status.in_(LIVE_STATUSES)).limit(1))
    if open_order is not None:
        return True
    due = db.session.scalar(
        select(Position.id).where(Position.user_id == user_id, Position.mode == Mode.ANALYZE,
                                  Position.product == "MIS", Position.quantity != 0,
                                  Position.updated_at < squareoff_cutoff(now)).limit(1))
    return due is not None


def refresh(user_id: int, now: dt.datetime | None = None) -> None:
    """Bring the user's paper account up to date before a read: square-off, then open orders. Commits
    only when there was something to do."""
    now = now or utcnow()
    if not _has_work(user_id, now):
        return
    write_unit()
    try:
        funds = lock_funds(user_id)
        housekeeping_locked(user_id, funds, now)
        db.session.commit()
    except Exception:
        db.session.rollback()
        raise


def match_open_orders(user_id: int, now: dt.datetime | None = None) -> int:
    """Match the user's open paper orders against current quotes; commits. Returns orders that changed."""
    now = now or utcnow()
    write_unit()
    try:
        funds = lock_funds(user_id)
        changed = match_locked(user_id, funds, now)
        db.session.commit()
    except Exception:
        db.session.rollback()
        raise
    return changed


def square_off_due(user_id: int | None = None, now: dt.datetime | None = None) -> int:
    """Square off MIS positions past MIS_SQUAREOFF_TIME, for one user or (a scheduler) all; commits.
    Returns the number of positions closed."""
    now = now or utcnow()
    cutoff = squareoff_cutoff(now)
    if user_id is None:
        users = sorted({p.user_id for p in _due_positions(None, cutoff)}
                       | {o.user_id for o in _due_orders(None, cutoff)})
        db.session.rollback()
    else:
        users = [user_id]
    closed = 0
    for uid in users:
        write_unit()
        try:
            funds = lock_funds(uid)
            closed += square_off_locked(uid, funds, now)
            db.session.commit()
        except Exception:
            db.session.rollback()
            raise
    return closed
