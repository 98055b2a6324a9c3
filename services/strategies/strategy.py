"""Webhook strategies: create, edit, activate, delete, and their symbol mappings.

Every use case is one unit of work that commits once and writes an `audit_events` row. A strategy
belongs to one user: every function that takes a strategy id takes the acting user too, and a
strategy of someone else is "not found" (the same answer as an id that does not exist, so ids of
other users cannot be probed).

Trading hours are exchange time (`EXCHANGE_TIMEZONE`): entries are allowed from `start_time` until
`end_time`, exits until `squareoff_time`.

A strategy places orders only while it exists, is active and its owner's account is enabled
(`order_refusal`, read from the database before every order, never cached).

The webhook id is a credential, kept like an API key: 32 random hex characters, of which only the HMAC
under API_KEY_PEPPER (and a 6-character prefix, to recognise it) is stored. `create_strategy` and
`rotate_webhook` return the id with the strategy: it is shown then, once, and never again.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import secrets
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from database import db
from database.audit_db import AuditEvent
from database.enums import Exchange, Platform, Product, StrategyMode
from database.order_db import Signal
from database.repository import DuplicateError, translate_error
from database.strategy_db import Strategy, StrategySymbolMapping
from database.unit import unit_of_work
from database.user_db import User
from services.accounts import api_keys
from services.accounts.users import Actor
from services.market import calendar, symbol_index
from vocabulary import CASH_EXCHANGES, TRADABLE_EXCHANGES

log = logging.getLogger("algobridge.strategies")

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 _.-]{2,99}$")
MAX_QUANTITY = 1_000_000
WEBHOOK_PREFIX_LENGTH = 6
WEBHOOK_ID_MAX = 64  # ids are 32 characters; anything much longer is not worth hashing

DEFAULT_START = dt.time(9, 15)
DEFAULT_END = dt.time(15, 0)
DEFAULT_SQUAREOFF = dt.time(15, 15)
ENTRY_LEAD = dt.timedelta(minutes=15)  # a session's default end of entries: this long before its square-off


def session_hours(exchange: str) -> tuple[dt.time, dt.time, dt.time]:
    """The default (start, end, square-off) of an intraday strategy trading on `exchange`: its regular
    session's open, a quarter of an hour before its MIS square-off, and the square-off (the market
    calendar: NSE 09:15, 15:00, 15:15; MCX 09:00, 23:15, 23:30; CDS 09:00, 16:30, 16:45)."""
    start, close, squareoff = calendar.regular_hours(exchange)
    squareoff = squareoff or close
    end = (dt.datetime.combine(dt.date.min, squareoff) - ENTRY_LEAD).time()
    return start, max(end, start), squareoff


def products_for(exchange: str) -> tuple[str, ...]:
    """Products allowed on `exchange`: CNC for cash equity, NRML for derivatives, MIS everywhere."""
    if exchange in CASH_EXCHANGES:
        return (Product.MIS.value, Product.CNC.value)
    return (Product.MIS.value, Product.NRML.value)


# -- errors ---------------------------------------------------------------------------------------------------
class StrategyError(Exception):
    """A use case was refused; the message is safe to show. `field` names the form field at fault."""

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.message = message
        self.field = field


class StrategyNotFoundError(StrategyError):
    def __init__(self, message: str = "There is no such strategy."):
        super().__init__(message)


# -- input ----------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class StrategyInput:
    name: str
    platform: str
    mode: str = StrategyMode.BOTH.value
    is_intraday: bool = True
    start_time: dt.time | None = DEFAULT_START
    end_time: dt.time | None = DEFAULT_END
    squareoff_time: dt.time | None = DEFAULT_SQUAREOFF


def _clean(data: StrategyInput) -> StrategyInput:
    name = " ".join((data.name or "").split())
    if not NAME_RE.match(name):
        raise StrategyError("A name has 3 to 100 characters: letters, digits, spaces, '_', '-' or '.', "
                            "starting with a letter or digit.", "name")
    try:
        platform = Platform(str(data.platform).lower()).value
    except ValueError:
        raise StrategyError(f"Unknown platform {data.platform!r}: use one of {', '.join(Platform.values())}.",
                            "platform") from None
    try:
        mode = StrategyMode(str(data.mode).upper()).value
    except ValueError:
        raise StrategyError(f"Unknown mode {data.mode!r}: use one of {', '.join(StrategyMode.values())}.",
                            "mode") from None
    if not data.is_intraday:
        return StrategyInput(name, platform, mode, False, None, None, None)
    start, end, squareoff = data.start_time, data.end_time, data.squareoff_time
    for value, field in ((start, "start_time"), (end, "end_time"), (squareoff, "squareoff_time")):
        if value is None:
            raise StrategyError("An intraday strategy needs a start, an end and a square-off time.", field)
    if not start < end:
        raise StrategyError("The start time must be before the end time.", "start_time")
    if squareoff < end:
        raise StrategyError("The square-off time must be at or after the end time.", "squareoff_time")
    return StrategyInput(name, platform, mode, True, start.replace(second=0, microsecond=0),
                         end.replace(second=0, microsecond=0), squareoff.replace(second=0, microsecond=0))


# -- reads ------------------------------------------------------------------------------------------------------
def list_strategies(user_id: int) -> list[Strategy]:
    return list(db.session.scalars(select(Strategy).where(Strategy.user_id == user_id).order_by(Strategy.name)))


def get_strategy(user_id: int, strategy_id: int) -> Strategy:
    """The user's strategy `strategy_id`; StrategyNotFoundError for an unknown id or another user's."""
    strategy = db.session.get(Strategy, strategy_id)
    if strategy is None or strategy.user_id != user_id:
        raise StrategyNotFoundError()
    return strategy


def hash_webhook_id(webhook_id: str) -> str:
    """The stored form of a webhook id: its HMAC-SHA256 under API_KEY_PEPPER, as for API keys (the
    migration e3c9a5d7b1f2 computed the same for the ids that existed before)."""
    return api_keys.hash_key(webhook_id)


def get_by_webhook(webhook_id: str) -> Strategy | None:
    """The strategy whose webhook id this is: one lookup by the unique index on its hash."""
    if not isinstance(webhook_id, str) or not 1 <= len(webhook_id) <= WEBHOOK_ID_MAX:
        return None
    digest = hash_webhook_id(webhook_id)
    return db.session.scalars(select(Strategy).where(Strategy.webhook_hash == digest)).one_or_none()


def _new_webhook(strategy: Strategy) -> str:
    """Give `strategy` a fresh webhook id; returns it (the row keeps its hash and prefix only)."""
    webhook_id = secrets.token_hex(16)
    strategy.webhook_hash = hash_webhook_id(webhook_id)
    strategy.webhook_prefix = webhook_id[:WEBHOOK_PREFIX_LENGTH]
    return webhook_id


OWNER_DISABLED = "The owner of this strategy is disabled: it places no orders."


def order_refusal(strategy_id: int) -> tuple[int, str] | None:
    """None when strategy `strategy_id` may place orders now, else (HTTP status, why not): deleted (404),
    its owner disabled (403) or inactive (400). One indexed read of the database on every call, never
    a cache: an account disabled, or a strategy deactivated or deleted, in any process holds at the
    next order everywhere."""
    row = db.session.execute(
        select(Strategy.name, Strategy.is_active, User.is_active.label("owner_active"))
        .join(User, User.id == Strategy.user_id).where(Strategy.id == strategy_id)
    ).first()
    if row is None:
        return 404, "The strategy was deleted."
    if not row.owner_active:
        return 403, OWNER_DISABLED
    if not row.is_active:
        return 400, f"Strategy {row.name!r} is inactive."
    return None


def mappings(strategy_id: int) -> list[StrategySymbolMapping]:
    return list(db.session.scalars(
        select(StrategySymbolMapping).where(StrategySymbolMapping.strategy_id == strategy_id)
        .order_by(StrategySymbolMapping.symbol, StrategySymbolMapping.exchange)
    ))


def recent_signals(strategy_id: int, limit: int = 20) -> list[Signal]:
    return list(db.session.scalars(
        select(Signal).where(Signal.strategy_id == strategy_id).order_by(Signal.id.desc()).limit(limit)
    ))


def snapshot(strategy: Strategy) -> dict[str, Any]:
    """What the audit trail keeps of a strategy."""
    def hhmm(value: dt.time | None) -> str | None:
        return value.strftime("%H:%M") if value else None

    return {
        "name": strategy.name, "platform": str(strategy.platform), "mode": str(strategy.mode),
        "is_active": bool(strategy.is_active), "is_intraday": bool(strategy.is_intraday),
        "start_time": hhmm(strategy.start_time), "end_time": hhmm(strategy.end_time),
        "squareoff_time": hhmm(strategy.squareoff_time),
    }


def _mapping_snapshot(m: StrategySymbolMapping) -> dict[str, Any]:
    return {"symbol": m.symbol, "exchange": str(m.exchange), "quantity": m.quantity, "product": str(m.product)}


# -- the unit of work -----------------------------------------------------------------------------------------------
def _audit(actor: Actor, action: str, strategy_id: int, before: dict | None, after: dict | None) -> None:
    db.session.add(AuditEvent(user_id=actor.user_id, actor=actor.name[:64], action=action, target_type="strategy",
                              target_id=str(strategy_id), ip=actor.ip and actor.ip[:45], before=before, after=after))


def _owned(actor: Actor, strategy_id: int) -> Strategy:
    if actor.user_id is None:
        raise StrategyNotFoundError()
    return get_strategy(actor.user_id, strategy_id)


def _flush_unique_name(name: str) -> None:
    try:
        db.session.flush()
    except IntegrityError as exc:
        if isinstance(translate_error(exc), DuplicateError):
            raise StrategyError(f"You already have a strategy named {name!r}.", "name") from None
        raise


# -- use cases -------------------------------------------------------------------------------------------------------
def create_strategy(actor: Actor, data: StrategyInput) -> tuple[Strategy, str]:
    """Create a strategy; returns it with its webhook id, which is not stored and cannot be shown again."""
    if actor.user_id is None:
        raise StrategyError("Only a signed-in user can own a strategy.")
    data = _clean(data)
    with unit_of_work(write=True):
        strategy = Strategy(
            user_id=actor.user_id, name=data.name, platform=Platform(data.platform),
            mode=StrategyMode(data.mode), is_active=True, is_intraday=data.is_intraday, start_time=data.start_time,
            end_time=data.end_time, squareoff_time=data.squareoff_time,
        )
        webhook_id = _new_webhook(strategy)
        db.session.add(strategy)
        _flush_unique_name(data.name)
        _audit(actor, "strategy.create", strategy.id, None, snapshot(strategy))
    log.info("%s created strategy %s (%s)", actor.name, strategy.name, strategy.id)
    return strategy, webhook_id


def update_strategy(actor: Actor, strategy_id: int, data: StrategyInput) -> Strategy:
    data = _clean(data)
    with unit_of_work(write=True):
        strategy = _owned(actor, strategy_id)
        before = snapshot(strategy)
        strategy.name = data.name
        strategy.platform = Platform(data.platform)
        strategy.mode = StrategyMode(data.mode)
        strategy.is_intraday = data.is_intraday
        strategy.start_time, strategy.end_time = data.start_time, data.end_time
        strategy.squareoff_time = data.squareoff_time
        after = snapshot(strategy)
        changed = after != before
        if changed:
            _flush_unique_name(data.name)
            _audit(actor, "strategy.update", strategy.id, before, after)
    if changed:
        log.info("%s updated strategy %s", actor.name, strategy.id)
    return strategy


def set_active(actor: Actor, strategy_id: int, active: bool) -> Strategy:
    with unit_of_work(write=True):
        strategy = _owned(actor, strategy_id)
        changed = bool(strategy.is_active) != active
        if changed:
            before = snapshot(strategy)
            strategy.is_active = active
            db.session.flush()
            _audit(actor, "strategy.activate" if active else "strategy.deactivate", strategy.id, before,
                   snapshot(strategy))
    if changed:
        log.info("%s %s strategy %s", actor.name, "activated" if active else "deactivated", strategy.id)
    return strategy


def rotate_webhook(actor: Actor, strategy_id: int) -> tuple[Strategy, str]:
    """Give the strategy a new webhook id (returned, shown once): the old URL stops working at once
    (e.g. after it leaked, or was lost: it cannot be shown again)."""
    with unit_of_work(write=True):
        strategy = _owned(actor, strategy_id)
        webhook_id = _new_webhook(strategy)
        db.session.flush()
        _audit(actor, "strategy.rotate_webhook", strategy.id, None, {"webhook_rotated": True})
    log.info("%s rotated the webhook of strategy %s", actor.name, strategy.id)
    return strategy, webhook_id


def delete_strategy(actor: Actor, strategy_id: int) -> str:
    """Delete a strategy and its mappings (its signals stay, unlinked). Returns its name."""
    with unit_of_work(write=True):
        strategy = _owned(actor, strategy_id)
        before = {**snapshot(strategy), "mappings": [_mapping_snapshot(m) for m in mappings(strategy.id)]}
        name = strategy.name
        for m in mappings(strategy.id):
            db.session.delete(m)
        # The mappings first: no relationship() orders the two deletes, and the database's ON DELETE
        # CASCADE would otherwise remove them under the flush (a stale-delete warning).
        db.session.flush()
        db.session.delete(strategy)
        db.session.flush()
        _audit(actor, "strategy.delete", strategy_id, before, None)
    log.info("%s deleted strategy %s (%s)", actor.name, name, strategy_id)
    return name


def add_mapping(actor: Actor, strategy_id: int, symbol: str, exchange: str, quantity: int,
                product: str) -> StrategySymbolMapping:
    """Map a symbol of the master contract to the strategy, with the quantity and product it trades."""
    symbol = (symbol or "").strip().upper()
    exchange = (exchange or "").strip().upper()
    product = (product or "").strip().upper()
    if not symbol:
        raise StrategyError("Enter a symbol.", "symbol")
    if exchange not in TRADABLE_EXCHANGES:
        raise StrategyError(f"Unknown exchange {exchange!r}: use one of {', '.join(TRADABLE_EXCHANGES)}.",
                            "exchange")
    if product not in products_for(exchange):
        raise StrategyError(f"Product {product or '(none)'} is not available on {exchange}: use "
                            f"{' or '.join(products_for(exchange))}.", "product")
    if not isinstance(quantity, int) or isinstance(quantity, bool) or not 1 <= quantity <= MAX_QUANTITY:
        raise StrategyError(f"The quantity is a whole number from 1 to {MAX_QUANTITY:,}.", "quantity")
    info = symbol_index.get_symbol_info(symbol, exchange)
    if info is None:
        raise StrategyError(f"Symbol {symbol} not found in exchange {exchange}. Check the spelling (OpenAlgo "
                            "format, e.g. RELIANCE or NIFTY24APR24FUT) and that the symbol master is loaded.",
                            "symbol")
    if info.lotsize > 1 and quantity % info.lotsize:
        raise StrategyError(f"The quantity of {symbol} must be a multiple of its lot size ({info.lotsize}).",
                            "quantity")
    with unit_of_work(write=True):
        strategy = _owned(actor, strategy_id)
        mapping = StrategySymbolMapping(strategy_id=strategy.id, symbol=info.symbol, exchange=Exchange(exchange),
                                        quantity=quantity, product=Product(product))
        db.session.add(mapping)
        try:
            db.session.flush()
        except IntegrityError as exc:
            if isinstance(translate_error(exc), DuplicateError):
                raise StrategyError(f"{info.symbol} on {exchange} is already mapped in this strategy.",
                                    "symbol") from None
            raise
        _audit(actor, "strategy.mapping_add", strategy.id, None, _mapping_snapshot(mapping))
    log.info("%s mapped %s:%s to strategy %s", actor.name, exchange, info.symbol, strategy_id)
    return mapping


def remove_mapping(actor: Actor, strategy_id: int, mapping_id: int) -> dict[str, Any]:
    """Remove a symbol mapping; returns what it was (symbol, exchange, quantity, product)."""
    with unit_of_work(write=True):
        strategy = _owned(actor, strategy_id)
        mapping = db.session.get(StrategySymbolMapping, mapping_id)
        if mapping is None or mapping.strategy_id != strategy.id:
            raise StrategyNotFoundError("There is no such symbol mapping.")
        before = _mapping_snapshot(mapping)
        db.session.delete(mapping)
        db.session.flush()
        _audit(actor, "strategy.mapping_remove", strategy.id, before, None)
    log.info("%s removed %s:%s from strategy %s", actor.name, before["exchange"], before["symbol"], strategy_id)
    return before


# -- trading hours ---------------------------------------------------------------------------------------------------
def hours_refusal(strategy: Strategy, local_time: dt.time, *, is_exit: bool) -> str | None:
    """None when `strategy` may trade at `local_time` (exchange time), else why not.

    Entries: from the start time until (not including) the end time. Exits: from the start time
    until the square-off time, so an open position can still be closed after the entry window.
    Strategies that are not intraday trade at any time.
    """
    if not strategy.is_intraday:
        return None
    start, end = strategy.start_time, strategy.end_time
    last = (strategy.squareoff_time or end) if is_exit else end
    t = local_time.replace(tzinfo=None)
    kind = "Exit" if is_exit else "Entry"
    if start is not None and t < start:
        return f"Outside trading hours: {kind.lower()} orders are allowed from {start:%H:%M} (exchange time)."
    if last is not None and t >= last:
        word = "square-off" if is_exit else "end"
        return (f"Outside trading hours: {kind.lower()} orders are not allowed after the {word} time "
                f"{last:%H:%M} (exchange time).")
    return None
