"""Risk limits, the daily loss/target/trailing block, and the kill switch (issue #19).

Limits are set per account and per strategy (by the name orders carry), in both modes:
- on the day's net P&L (realised and unrealised, of the trading day's trades: services.trading.shapes.day_start):
  a maximum loss, a target, and a trailing profit lock (armed once the P&L reached `trail_trigger`, it
  fires when the P&L falls `trail_gap` below its peak). Reaching one squares off the positions the limit
  covers (the account's, or the strategy's net of the day), cancels their open orders, and blocks new
  entries of that scope until the next trading day; exits stay allowed. They are evaluated on every fill
  (after an order), on price ticks (the feed calls `on_ticks`), and by the scheduler (`evaluate_due`).
- per order, checked before it goes to the venue (`check_order`): maximum orders per minute and per day
  (counted in the journal, so every process sees the same count), maximum open positions, maximum
  quantity and value of one order. They apply to entries; an order that only reduces a position passes.
The kill switch (`kill`, `unkill`) does for the whole account, in both modes, what a breach does, at once,
and stays on until switched back. Every breach and switch is an alert and an audit row.

The hot path stays cheap: the user's limits come from the two-level cache (namespace "risk", one entry
per user, invalidated when the unit that changed them commits); a user without limits costs one cache
read per order and no query.
"""

from __future__ import annotations

import contextlib
import contextvars
import datetime as dt
import json
import logging
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

from sqlalchemy import func, or_, select

from database import cache, db, upsert
from database.alert_db import Alert
from database.audit_db import AuditEvent
from database.enums import Mode, OrderStatus
from database.order_db import Fill, Order, Signal
from database.portfolio_db import Position
from database.risk_db import ACCOUNT, APIKEY, QUEUED, STRATEGY, Approval, RiskDay, RiskLimit
from database.types import utcnow
from database.unit import unit_of_work
from services.market.symbol_index import SymbolInfo
from services.trading import live, shapes, venues
from services.trading.errors import OrderError
from services.trading.journal import OrderInput
from services.trading.paper import account as paper_account
from services.trading.paper import engine
from services.trading.paper import exchange as paper_exchange
from services.trading.venues import PAPER, Venue
from vocabulary import OPEN_STATUSES, Action, Exchange, Product, needs_price

log = logging.getLogger("algobridge.risk")

CACHE_NS = "risk"
RISK_STRATEGY = "Risk"  # the strategy of the account's square-off orders
KILL_SWITCH = "kill_switch"
REASONS = {"max_loss": "maximum loss", "target": "target", "trailing_lock": "trailing profit lock",
           KILL_SWITCH: "kill switch"}

CENT = Decimal("0.01")
MONEY_FIELDS = ("max_loss", "target", "trail_trigger", "trail_gap", "max_order_value")
COUNT_FIELDS = ("max_orders_per_minute", "max_orders_per_day", "max_open_positions", "max_order_quantity")


class RiskError(ValueError):
    """A limit that cannot be stored (a negative amount, an unknown scope)."""


# -- limits ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Limits:
    max_loss: Decimal | None = None
    target: Decimal | None = None
    trail_trigger: Decimal | None = None
    trail_gap: Decimal | None = None
    max_orders_per_minute: int | None = None
    max_orders_per_day: int | None = None
    max_open_positions: int | None = None
    max_order_quantity: int | None = None
    max_order_value: Decimal | None = None
    require_approval: bool = False
    approval_ttl_seconds: int = 300

    @property
    def watches_pnl(self) -> bool:
        return self.max_loss is not None or self.target is not None or self.trail_gap is not None

    @property
    def checks_orders(self) -> bool:
        return any(getattr(self, name) is not None for name in COUNT_FIELDS + ("max_order_value",))

    def as_dict(self) -> dict[str, Any]:
        return {f.name: (str(v) if isinstance(v := getattr(self, f.name), Decimal) else v) for f in fields(self)}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Limits:
        values: dict[str, Any] = {}
        for f in fields(cls):
            v = d.get(f.name)
            if f.name in MONEY_FIELDS:
                values[f.name] = None if v is None else Decimal(str(v))
            elif f.name in COUNT_FIELDS:
                values[f.name] = None if v is None else int(v)
            elif v is not None:
                values[f.name] = v
        return cls(**values)


def breach(limits: Limits, pnl: Decimal, peak: Decimal) -> str | None:
    """Which P&L limit `pnl` (with the day's `peak`) reaches, or None. Pure."""
    if limits.max_loss is not None and pnl <= -limits.max_loss:
        return "max_loss"
    if limits.target is not None and pnl >= limits.target:
        return "target"
    if limits.trail_gap is not None:
        armed_at = limits.trail_trigger if limits.trail_trigger is not None else Decimal(0)
        if peak > 0 and peak >= armed_at and pnl <= peak - limits.trail_gap:
            return "trailing_lock"
    return None


def _key(kind: str, scope: str) -> str:
    return f"{kind}:{scope}"


def _load(user_id: int) -> dict:
    rows = db.session.scalars(select(RiskLimit).where(RiskLimit.user_id == user_id)).all()
    out: dict[str, Any] = {"killed": False, "scopes": {}}
    for r in rows:
        if r.scope_kind == ACCOUNT and r.killed_at is not None:
            out["killed"] = True
        out["scopes"][_key(r.scope_kind, r.scope)] = Limits.from_dict(
            {f.name: getattr(r, f.name) for f in fields(Limits)}).as_dict()
    return out


@dataclass(frozen=True)
class UserRisk:
    killed: bool
    scopes: dict[str, Limits]

    def get(self, kind: str, scope: str = "") -> Limits | None:
        return self.scopes.get(_key(kind, scope))

    @property
    def empty(self) -> bool:
        return not self.killed and not self.scopes


_parsed: dict[int, tuple[dict, UserRisk]] = {}  # user -> (the cached dict, parsed): no parsing per order


def user_risk(user_id: int) -> UserRisk:
    raw = cache.get_or_load(CACHE_NS, str(user_id), lambda: _load(user_id))
    hit = _parsed.get(user_id)
    if hit is not None and hit[0] is raw:
        return hit[1]
    parsed = UserRisk(bool(raw.get("killed")), {k: Limits.from_dict(v) for k, v in raw.get("scopes", {}).items()})
    _parsed[user_id] = (raw, parsed)
    return parsed


def _changed(user_id: int) -> None:
    cache.invalidate(CACHE_NS, str(user_id), session=db.session)
    cache.invalidate(CACHE_NS, "watched", session=db.session)


def watched_users() -> list[int]:
    """The users with a P&L limit or the kill switch on (what ticks and the scheduler evaluate)."""
    def load() -> list[int]:
        rows = db.session.execute(select(RiskLimit.user_id).where(
            (RiskLimit.max_loss.is_not(None)) | (RiskLimit.target.is_not(None)) | (RiskLimit.trail_gap.is_not(None))
        ).distinct()).scalars().all()
        return sorted(set(rows))
    return cache.get_or_load(CACHE_NS, "watched", load)


def _clean(values: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in MONEY_FIELDS:
        v = values.get(name)
        if v is None or (isinstance(v, str) and not v.strip()):
            out[name] = None
            continue
        try:
            amount = Decimal(str(v).strip())
        except InvalidOperation:
            raise RiskError(f"{name} must be an amount") from None
        if not amount.is_finite() or amount >= Decimal("1e13"):
            raise RiskError(f"{name} must be a positive amount (at least 0.01)")
        amount = amount.quantize(CENT, rounding=ROUND_HALF_UP)
        if amount < CENT:
            raise RiskError(f"{name} must be a positive amount (at least 0.01)")
        out[name] = amount
    for name in COUNT_FIELDS:
        v = values.get(name)
        if v is None or (isinstance(v, str) and not v.strip()):
            out[name] = None
            continue
        try:
            n = int(str(v).strip())
        except ValueError:
            raise RiskError(f"{name} must be a whole number") from None
        if n < 1 or n > 10_000_000:
            raise RiskError(f"{name} must be a whole number from 1")
        out[name] = n
    out["require_approval"] = bool(values.get("require_approval"))
    ttl = values.get("approval_ttl_seconds")
    try:
        ttl = 300 if ttl is None or (isinstance(ttl, str) and not ttl.strip()) else int(str(ttl).strip())
    except ValueError:
        raise RiskError("approval_ttl_seconds must be a whole number") from None
    if not 10 <= ttl <= 86_400:
        raise RiskError("approval_ttl_seconds must be from 10 to 86400")
    out["approval_ttl_seconds"] = ttl
    return out


def set_limits(user_id: int, kind: str, scope: str, values: Mapping[str, Any], *, actor: str,
               ip: str | None = None) -> RiskLimit:
    """Store the limits of one scope (every field: an empty one is no limit); audited."""
    if kind not in (ACCOUNT, STRATEGY, APIKEY):
        raise RiskError(f"unknown scope {kind}")
    scope = "" if kind == ACCOUNT else str(scope).strip()[:100]
    if kind != ACCOUNT and not scope:
        raise RiskError(f"a {kind} scope needs a name")
    clean = _clean(values)
    if kind == APIKEY and any(clean[name] is not None for name in MONEY_FIELDS + COUNT_FIELDS):
        raise RiskError("an API key scope takes no P&L or order limits: only 'orders wait for approval' applies "
                        "there (set those limits on the account or a strategy)")
    with unit_of_work():
        row = _limit_row(user_id, kind, scope)
        before = {k: _plain(getattr(row, k)) for k in clean} if row.id else None
        for k, v in clean.items():
            setattr(row, k, v)
        db.session.add(row)
        db.session.flush()
        db.session.add(AuditEvent(user_id=user_id, actor=actor, action="risk.limits", target_type=kind,
                                  target_id=scope or str(user_id), ip=ip, before=before,
                                  after={k: _plain(v) for k, v in clean.items()}))
        _changed(user_id)
    return row


def _plain(v: Any) -> Any:
    return str(v) if isinstance(v, Decimal) else v


def _find_limit(user_id: int, kind: str, scope: str) -> RiskLimit | None:
    """The user's row of limits for one scope (`kind`, `scope`), or None."""
    return db.session.scalars(select(RiskLimit).where(RiskLimit.user_id == user_id, RiskLimit.scope_kind == kind,
                                                      RiskLimit.scope == scope)).first()


def _limit_row(user_id: int, kind: str, scope: str) -> RiskLimit:
    row = _find_limit(user_id, kind, scope)
    if row is None:
        row = RiskLimit(user_id=user_id, scope_kind=kind, scope=scope, require_approval=False,
                        approval_ttl_seconds=300)
    return row


def limit_rows(user_id: int) -> list[RiskLimit]:
    return list(db.session.scalars(select(RiskLimit).where(RiskLimit.user_id == user_id)
                                   .order_by(RiskLimit.scope_kind, RiskLimit.scope)))


def delete_limits(user_id: int, kind: str, scope: str, *, actor: str) -> bool:
    with unit_of_work():
        row = _find_limit(user_id, kind, scope)
        if row is None or (kind == ACCOUNT and row.killed_at is not None):
            return False
        db.session.delete(row)
        db.session.add(AuditEvent(user_id=user_id, actor=actor, action="risk.limits_delete", target_type=kind,
                                  target_id=scope or str(user_id)))
        _changed(user_id)
    return True


# -- who placed the order (per API key approvals) ----------------------------------------------------
_exempt: contextvars.ContextVar[bool] = contextvars.ContextVar("risk_exempt", default=False)


_api_key: contextvars.ContextVar[int | None] = contextvars.ContextVar("risk_api_key", default=None)


def note_api_key(key_id: int | None) -> None:
    """The API key the current call acts with (blueprints.api_v1.parse), None once the request ended."""
    _api_key.set(key_id)


def current_origin() -> dict:
    """The order's origin: the API key of the call (see `note_api_key`), when it has one."""
    key_id = _api_key.get()
    return {"api_key_id": key_id} if key_id is not None else {}


@contextlib.contextmanager
def approved():
    """Around placing an order a person approved: no second approval."""
    token = _exempt.set(True)
    try:
        yield
    finally:
        _exempt.reset(token)


# -- the day's state ---------------------------------------------------------------------------------
def _mode(venue: Venue) -> str:
    return venue.mode.value


def _blocked(user_id: int, mode: str, kind: str, scope: str, day: dt.date) -> str | None:
    return db.session.scalar(select(RiskDay.blocked_reason).where(
        RiskDay.user_id == user_id, RiskDay.mode == mode, RiskDay.scope_kind == kind, RiskDay.scope == scope,
        RiskDay.trading_day == day))


def day_rows(user_id: int, now: dt.datetime | None = None) -> list[RiskDay]:
    day = shapes.trading_day(now or utcnow())
    return list(db.session.scalars(select(RiskDay).where(RiskDay.user_id == user_id, RiskDay.trading_day == day)
                                   .order_by(RiskDay.mode, RiskDay.scope_kind, RiskDay.scope)))


def _day_row_locked(user_id: int, mode: str, kind: str, scope: str, day: dt.date, now: dt.datetime) -> RiskDay:
    dialect = db.session.get_bind().dialect.name
    db.session.execute(upsert(RiskDay.__table__, dialect).values(
        user_id=user_id, mode=mode, scope_kind=kind, scope=scope, trading_day=day, peak_pnl=Decimal(0),
        last_pnl=Decimal(0), updated_at=now).on_conflict_do_nothing(
        index_elements=["user_id", "mode", "scope_kind", "scope", "trading_day"]))
    return db.session.scalars(select(RiskDay).where(
        RiskDay.user_id == user_id, RiskDay.mode == mode, RiskDay.scope_kind == kind, RiskDay.scope == scope,
        RiskDay.trading_day == day).with_for_update().execution_options(populate_existing=True)).one()


# -- the day's book of a scope -------------------------------------------------------------------------
Key = tuple[str, str, str]  # symbol, exchange, product


@dataclass
class Book:
    net: dict[Key, int]
    cash: Decimal  # sells minus buys, at their average prices
    charges: Decimal

    def pnl(self, prices: Mapping[tuple[str, str], Decimal]) -> Decimal:
        value = sum((Decimal(q) * prices.get((k[0], k[1]), Decimal(0)) for k, q in self.net.items() if q),
                    Decimal(0))
        return self.cash + value - self.charges

    @property
    def open(self) -> dict[Key, int]:
        return {k: q for k, q in self.net.items() if q}


def day_book(user_id: int, mode: str, strategy: str | None, since: dt.datetime) -> Book:
    """The trading day's filled orders of the account (strategy None) or one strategy, netted."""
    where = [Order.user_id == user_id, Order.mode == Mode(mode), Order.placed_at >= since, Order.filled_quantity > 0]
    if strategy is not None:
        where.append(Order.strategy == strategy)
    net: dict[Key, int] = defaultdict(int)
    cash = Decimal(0)
    for sym, ex, prod, action, qty, avg in db.session.execute(select(
            Order.symbol, Order.exchange, Order.product, Order.action, Order.filled_quantity, Order.average_price)
            .where(*where)):
        sign = 1 if action == Action.BUY else -1
        net[(sym, ex.value, prod.value)] += sign * int(qty)
        cash -= sign * Decimal(qty) * Decimal(avg)
    charges = Decimal(0)
    if mode == Mode.ANALYZE.value and net:
        charges = db.session.scalar(select(func.coalesce(func.sum(Fill.charges), 0)).join(
            Order, Fill.order_id == Order.id).where(*where)) or Decimal(0)
    return Book(dict(net), cash, Decimal(charges))


def _actual_positions(user_id: int, mode: str, since: dt.datetime) -> dict[Key, int]:
    """The account's open net quantity per instrument: its positions in analyze mode, the day's journal (synced
    with the broker's fills) in live mode."""
    if mode == Mode.ANALYZE.value:
        rows = db.session.execute(select(Position.symbol, Position.exchange, Position.product, Position.quantity)
                                  .where(Position.user_id == user_id, Position.mode == Mode.ANALYZE,
                                         Position.quantity != 0))
        return {(s, e.value, p.value): int(q) for s, e, p, q in rows}
    return day_book(user_id, mode, None, since).open


def _closing_price(user_id: int, mode: str, strategy: str, key: Key, action: Action,
                   since: dt.datetime) -> Decimal | None:
    """The average price of the day's `action` fills of `key` under other names than `strategy` (what closed
    the strategy's position elsewhere: the account's square-off, close all, the MIS cut-off), or None."""
    sym, ex, prod = key
    qty, value = db.session.execute(select(
        func.sum(Order.filled_quantity), func.sum(Order.filled_quantity * Order.average_price)).where(
        Order.user_id == user_id, Order.mode == Mode(mode), Order.placed_at >= since, Order.filled_quantity > 0,
        Order.symbol == sym, Order.exchange == Exchange(ex), Order.product == Product(prod), Order.action == action,
        or_(Order.strategy.is_(None), Order.strategy != strategy))).one()
    if not qty:
        return None
    return Decimal(value) / Decimal(qty)


def strategy_book(user_id: int, mode: str, strategy: str, since: dt.datetime) -> Book:
    """`day_book` of a strategy, its open quantity per instrument capped by the account's actual position
    (same sign, never more): a part closed under another name counts as closed at that close's price."""
    book = day_book(user_id, mode, strategy, since)
    if not book.open:
        return book
    actual = _actual_positions(user_id, mode, since)
    net, cash = dict(book.net), book.cash
    for k, q in book.open.items():
        held = actual.get(k, 0)
        if q > 0:
            keep = min(q, held) if held > 0 else 0
        else:
            keep = max(q, held) if held < 0 else 0
        if keep == q:
            continue
        price = _closing_price(user_id, mode, strategy, k, Action.SELL if q > 0 else Action.BUY, since)
        if price is None:  # not closed by an order of the day (a carried position differs): counted as it was
            continue
        net[k] = keep
        cash += Decimal(q - keep) * price
    return Book(net, cash, book.charges)


def _prices(pairs: Iterable[tuple[str, str]], ticks: Mapping[tuple[str, str], Any] | None,
            venue: Venue | None = None, *, mode: str = Mode.ANALYZE.value) -> dict:
    """Last prices: the ticks', else the venue's quote source (the live broker's quotes for a live venue, the
    analyze-mode quotes otherwise). In live mode (`mode`, or a live `venue`) the simulator never prices
    anything: a pair the ticks and the broker did not price is missing from the answer."""
    live_mode = mode == Mode.LIVE.value or (venue is not None and not venue.is_analyze)
    pairs = set(pairs)
    out: dict[tuple[str, str], Decimal] = {}
    for p in pairs:
        q = (ticks or {}).get(p)
        if q is not None:
            out[p] = Decimal(q.ltp if isinstance(q, engine.Quote) else q)
    missing = pairs - out.keys()
    if missing and venue is not None and not venue.is_analyze:
        from services.market import symbol_index  # noqa: PLC0415

        infos = [i for i in symbol_index.get_symbol_info_bulk(missing).values() if i is not None]
        try:
            for p, q in live.quotes_many(venue, infos).items():
                out[p] = Decimal(q.ltp)
        except OrderError as exc:
            log.warning("risk: live quotes of user %s unavailable: %s", venue.user_id, exc.message)
        missing = pairs - out.keys()
    if missing and not live_mode:
        for p, q in paper_account.quotes_for(missing).items():
            out[p] = q.ltp
    return out


# -- evaluation: on fills, ticks and the scheduler -------------------------------------------------------
@dataclass(frozen=True)
class Breach:
    user_id: int
    mode: str
    kind: str
    scope: str
    reason: str
    pnl: Decimal


LIVE_SYNC_SECONDS = 10.0
_live_synced: dict[int, dt.datetime] = {}  # user -> when this process last read their broker order book


def _sync_live(user_id: int, since: dt.datetime, now: dt.datetime, *, force: bool = False) -> None:
    """Bring the day's live journal rows up to the broker's fills (its order book), at most every
    LIVE_SYNC_SECONDS per user and process unless `force`; only for a user with live orders today."""
    last = _live_synced.get(user_id)
    if not force and last is not None and abs((now - last).total_seconds()) < LIVE_SYNC_SECONDS:
        return
    _live_synced[user_id] = now
    if not db.session.scalar(select(Order.id).where(Order.user_id == user_id, Order.mode == Mode.LIVE,
                                                    Order.placed_at >= since).limit(1)):
        return
    venue = _venue(user_id, Mode.LIVE.value)
    if venue is None:
        return
    try:
        live.orderbook(venue)
    except OrderError as exc:
        log.warning("risk: the live order book of user %s could not be read: %s", user_id, exc.message)


_seen: dict[tuple, tuple[UserRisk, Decimal, Decimal, bool]] = {}  # scope's day -> (limits, last P&L, peak, blocked)


def _unchanged(key: tuple, risk: UserRisk, lim: Limits, pnl: Decimal) -> bool:
    """Did this process last write this P&L for the scope's day, under the same limits, with nothing reached?"""
    seen = _seen.get(key)
    if seen is None or seen[0] is not risk or seen[1] != pnl:
        return False
    return seen[3] or (pnl <= seen[2] and breach(lim, pnl, seen[2]) is None)


def evaluate(user_id: int, mode: str, *, ticks: Mapping[tuple[str, str], Any] | None = None,
             now: dt.datetime | None = None, force_sync: bool = False,
             only: Iterable[tuple[str, str]] | None = None) -> list[Breach]:
    """Evaluate the P&L limits of one account in one mode (the scopes `only` names, else all); act on what is
    reached. Returns the breaches. A scope's day row is written only when its P&L moved (or a limit changed)."""
    risk = user_risk(user_id)  # the same object while the user's limits are unchanged: `_seen` keys on it
    wanted = set(only) if only is not None else None
    scopes = [(k.split(":", 1)[0], k.split(":", 1)[1], lim) for k, lim in risk.scopes.items()
              if lim.watches_pnl and not k.startswith(APIKEY)]
    if wanted is not None:
        scopes = [(k, s, lim) for k, s, lim in scopes if (k, s) in wanted]
    if not scopes:
        return []
    now = now or utcnow()
    since, day = shapes.day_start(now), shapes.trading_day(now)
    if mode == Mode.LIVE.value:
        _sync_live(user_id, since, now, force=force_sync)
    found: list[Breach] = []
    venue: Venue | None = None
    for kind, scope, lim in scopes:
        book = strategy_book(user_id, mode, scope, since) if kind == STRATEGY else \
            day_book(user_id, mode, None, since)
        if not book.net:
            continue
        open_pairs = {(k[0], k[1]) for k in book.open}
        if venue is None and mode == Mode.LIVE.value and open_pairs - set(ticks or {}):
            venue = _venue(user_id, mode)
        prices = _prices(open_pairs, ticks, venue, mode=mode)
        unpriced = open_pairs - prices.keys()
        if unpriced:  # never a P&L (nor a square-off) on a made-up price: the last P&L stands
            log.warning("risk: no %s price for %s of user %s: evaluation of %s skipped", mode,
                        ", ".join(f"{s}:{e}" for s, e in sorted(unpriced)), user_id, scope or "the account")
            continue
        pnl = book.pnl(prices)
        seen_key = (user_id, mode, kind, scope, day)
        if _unchanged(seen_key, risk, lim, pnl):
            continue
        if len(_seen) > 50_000:  # past days' entries: forgotten now and then
            _seen.clear()
        with unit_of_work(write=True):
            row = _day_row_locked(user_id, mode, kind, scope, day, now)
            row.last_pnl = pnl
            if row.blocked_reason is not None:
                _seen[seen_key] = (risk, pnl, row.peak_pnl, True)
                continue
            row.peak_pnl = max(row.peak_pnl, pnl)
            reason = breach(lim, pnl, row.peak_pnl)
            _seen[seen_key] = (risk, pnl, row.peak_pnl, reason is not None)
            if reason is None:
                continue
            row.blocked_reason, row.blocked_at = reason, now
            _record(user_id, kind, scope, mode, reason, pnl, lim)
        found.append(Breach(user_id, mode, kind, scope, reason, pnl))
    for b in found:  # after the block committed: only the process that set it squares off
        square_off(b.user_id, b.mode, b.kind, b.scope)
    return found


def _record(user_id: int, kind: str, scope: str, mode: str, reason: str, pnl: Decimal, lim: Limits) -> None:
    what = "the account" if kind == ACCOUNT else f"strategy {scope}"
    title = f"Risk limit reached: {REASONS[reason]} of {what} ({mode})"
    message = (f"Day P&L {pnl:.2f}. Positions squared off, open orders cancelled; new entries are blocked until "
               f"the next trading day (exits stay allowed).")
    db.session.add(Alert(user_id=user_id, severity="critical", kind="risk_breach", title=title[:200], message=message))
    db.session.add(AuditEvent(user_id=user_id, actor="system", action="risk.breach", target_type=kind,
                              target_id=scope or str(user_id), after={"reason": reason, "mode": mode, "pnl": str(pnl),
                                                                       "limits": lim.as_dict()}))


def _venue(user_id: int, mode: str) -> Venue | None:
    """The venue of `mode` whatever the user's current mode (a live account is squared off from analyze mode
    too); None without a live broker session."""
    if mode == Mode.ANALYZE.value:
        return Venue(user_id=user_id, mode=Mode.ANALYZE, broker=PAPER)
    try:
        return venues.live_venue(user_id)
    except OrderError as exc:  # no live session, an expired or refused one, another broker's contract
        log.warning("risk square-off of user %s: no live venue (%s)", user_id, exc.message)
        return None


def _side(venue: Venue):
    return paper_exchange if venue.is_analyze else live


def square_off(user_id: int, mode: str, kind: str, scope: str) -> None:
    """Cancel the open orders and close the positions a scope covers, at `mode`'s venue; logged, never raised."""
    venue = _venue(user_id, mode)
    if venue is None:
        log.info("risk square-off of user %s (%s): no %s broker session, nothing to close there", user_id,
                 scope or "account", mode)
        return
    side = _side(venue)
    try:
        if kind == ACCOUNT:
            side.cancel_all(venue)
            side.close_all(venue, RISK_STRATEGY)
            return
        rows = list(db.session.scalars(select(Order).where(
            Order.user_id == user_id, Order.mode == Mode(mode), Order.strategy == scope,
            Order.status.in_(OPEN_STATUSES))))
        for row in rows:
            with contextlib.suppress(OrderError):
                side.cancel(venue, row.orderid, row)
        book = day_book(user_id, mode, scope, shapes.day_start(utcnow()))
        from services.market import symbol_index  # noqa: PLC0415 - only a strategy's square-off needs it
        for (sym, ex, prod), qty in book.open.items():
            info = symbol_index.get_symbol_info(sym, ex)
            if info is None:
                continue
            # Never more than the account holds that way: another square-off (the account's, the MIS cut-off)
            # may have closed it under a strategy name of its own.
            held = _position(venue, info, prod)
            qty = (min(qty, held) if held > 0 else 0) if qty > 0 else (max(qty, held) if held < 0 else 0)
            if not qty:
                continue
            inp = OrderInput(strategy=scope, exchange=ex, symbol=sym, action=Action.SELL.value if qty > 0 else
                             Action.BUY.value, quantity=abs(qty), product=prod)
            side.place(venue, inp, info)
    except OrderError as exc:
        log.warning("risk square-off of user %s (%s, %s) failed: %s", user_id, scope or "account", mode, exc.message)


def after_order(venue: Venue, strategy: str | Iterable[str] | None = None, now: dt.datetime | None = None) -> None:
    """After an order of `venue`'s user (under `strategy`; after a basket, under each of its strategies): evaluate
    the P&L limits the fills may have reached, the account's and those strategies' only. A live order book is
    read at most every LIVE_SYNC_SECONDS (not forced here: the scheduler's pass and the next evaluation catch up)."""
    risk = user_risk(venue.user_id)
    if risk.empty or not any(lim.watches_pnl for lim in risk.scopes.values()):
        return
    names = [strategy] if isinstance(strategy, str) else list(strategy or ())
    only = [(ACCOUNT, "")] + [(STRATEGY, name) for name in dict.fromkeys(names) if name]
    try:
        evaluate(venue.user_id, _mode(venue), now=now, only=only)
    except Exception:  # the order stands; the scheduler evaluates again
        log.exception("risk evaluation after an order of user %s failed", venue.user_id)


BOTH_MODES = (Mode.ANALYZE.value, Mode.LIVE.value)


def on_ticks(ticks: Mapping[tuple[str, str], Any], now: dt.datetime, modes: Iterable[str] = BOTH_MODES) -> int:
    """The quote source's ticks: evaluate the watched accounts in `modes` (the simulator's ticks price the
    analyze-mode accounts only). Returns breaches found."""
    users = watched_users()
    count = 0
    for user_id in users:
        for mode in modes:
            try:
                count += len(evaluate(user_id, mode, ticks=ticks, now=now))
            except Exception:
                log.exception("risk evaluation on ticks failed for user %s", user_id)
    return count


def evaluate_due(now: dt.datetime | None = None) -> int:
    """The scheduler's pass over every watched account."""
    return on_ticks({}, now or utcnow())


# -- before an order -----------------------------------------------------------------------------------
def _position(venue: Venue, info: SymbolInfo, product: str) -> int:
    if venue.is_analyze:
        q = db.session.scalar(select(Position.quantity).where(
            Position.user_id == venue.user_id, Position.mode == Mode.ANALYZE, Position.symbol == info.symbol,
            Position.exchange == info.exchange, Position.product == product))
        return int(q or 0)
    return live.position_quantity(venue, info, product)


position = _position  # the signed net quantity of an instrument and product at the venue


def is_exit(action: str, quantity: int, current: int) -> bool:
    """Does an order of `action` and `quantity` only reduce the position `current`? Pure."""
    if current == 0 or quantity > abs(current):
        return False
    return (current > 0 and action == Action.SELL.value) or (current < 0 and action == Action.BUY.value)


def _count(user_id: int, mode: str, strategy: str | None, since: dt.datetime) -> int:
    where = [Order.user_id == user_id, Order.placed_at >= since, Order.mode == Mode(mode),
             Order.status != OrderStatus.REJECTED]
    if strategy is not None:
        where.append(Order.strategy == strategy)
    return db.session.scalar(select(func.count()).select_from(Order).where(*where)) or 0


REFUSAL_ALERT_EVERY = dt.timedelta(minutes=1)
_refusals_noted: dict[tuple[int, str], dt.datetime] = {}  # (user, what) -> last alert, in this process


class RiskRefusal(OrderError):
    """An order a risk limit refused; `rule` names the limit."""

    def __init__(self, message: str, status: int, rule: str, scope: str):
        super().__init__(message, status)
        self.rule, self.scope = rule, scope


def check_order(venue: Venue, inp: OrderInput, info: SymbolInfo, *, current: int | None = None,
                now: dt.datetime | None = None, modify: bool = False) -> None:
    """Refuse (RiskRefusal, an OrderError) an order the kill switch, a day's block or a per-order limit forbids.
    `modify`: the order is an open order as modified: the order counts and open positions do not apply.
    Each refusal is an audit row, and an alert (at most one a minute per user and limit); both are written in a
    unit of their own (joining the caller's unit, when one is open, which commits them with its refusal)."""
    if user_risk(venue.user_id).empty:
        return
    now = now or utcnow()
    try:
        _check_order(venue, inp, info, current, now, modify)
    except RiskRefusal as exc:
        _note_refusal(venue, inp, exc, now)
        raise


def _note_refusal(venue: Venue, inp: OrderInput, exc: RiskRefusal, now: dt.datetime) -> None:
    key = (venue.user_id, f"{exc.rule}:{exc.scope}")
    last = _refusals_noted.get(key)
    alert = last is None or not (dt.timedelta(0) <= now - last < REFUSAL_ALERT_EVERY)
    if alert:
        _refusals_noted[key] = now
    with unit_of_work():
        db.session.add(AuditEvent(user_id=venue.user_id, actor="system", action="risk.refuse",
                                  target_type=STRATEGY if exc.scope else ACCOUNT, target_id=exc.scope or
                                  str(venue.user_id), after={"rule": exc.rule, "mode": venue.label,
                                                             "order": _order_json(inp), "message": exc.message}))
        if alert:
            db.session.add(Alert(user_id=venue.user_id, severity="warning", kind="risk_refusal",
                                 title=f"Order refused by a risk limit: {inp.action} {inp.quantity} {inp.symbol}"[:200],
                                 message=exc.message))


def _check_order(venue: Venue, inp: OrderInput, info: SymbolInfo, current: int | None, now: dt.datetime,
                 modify: bool = False) -> None:
    """`modify`: `inp` is an open order as modified (not a new order: the order counts do not apply)."""
    risk = user_risk(venue.user_id)
    scoped = [(ACCOUNT, "", risk.get(ACCOUNT))]
    if inp.strategy:
        scoped.append((STRATEGY, inp.strategy, risk.get(STRATEGY, inp.strategy)))
    scoped = [(k, s, lim) for k, s, lim in scoped if lim is not None]
    if not risk.killed and not any(lim.watches_pnl or lim.checks_orders for _, _, lim in scoped):
        return
    if current is None:
        current = _position(venue, info, inp.product)
    if is_exit(inp.action, inp.quantity, current):
        return
    if risk.killed:
        raise RiskRefusal("The kill switch of this account is on: new entries are blocked (exits stay allowed)", 403,
                          KILL_SWITCH, "")
    mode = _mode(venue)
    day = None
    for kind, scope, lim in scoped:
        what = "the account" if kind == ACCOUNT else f"strategy {scope}"
        if lim.watches_pnl:
            day = day or shapes.trading_day(now)
            reason = _blocked(venue.user_id, mode, kind, scope, day)
            if reason is not None:
                raise RiskRefusal(f"The {REASONS.get(reason, reason)} of {what} was reached today: new entries are "
                                  "blocked until the next trading day (exits stay allowed)", 403, "blocked", scope)
        if lim.max_order_quantity is not None and inp.quantity > lim.max_order_quantity:
            raise RiskRefusal(f"quantity {inp.quantity} is above the maximum of {lim.max_order_quantity} per order "
                              f"for {what}", 400, "max_order_quantity", scope)
        if lim.max_order_value is not None:
            pair = (info.symbol, info.exchange)
            price = Decimal(inp.price) if needs_price(inp.pricetype) else _prices([pair], None, venue).get(pair)
            if price is None:
                raise RiskRefusal(f"no {venue.label} price for {info.symbol} on {info.exchange}: the order's value "
                                  f"cannot be checked against the maximum of {lim.max_order_value:.2f} per order for "
                                  f"{what}; place a LIMIT order or retry", 400, "max_order_value", scope)
            value = Decimal(inp.quantity) * price
            if value > lim.max_order_value:
                raise RiskRefusal(f"order value {value:.2f} is above the maximum of {lim.max_order_value:.2f} per "
                                  f"order for {what}", 400, "max_order_value", scope)
        strategy = scope if kind == STRATEGY else None
        if modify:
            continue
        if lim.max_orders_per_minute is not None and \
                _count(venue.user_id, mode, strategy, now - dt.timedelta(minutes=1)) >= lim.max_orders_per_minute:
            raise RiskRefusal(f"{what} has placed {lim.max_orders_per_minute} orders in the last minute, its "
                              "maximum", 429, "max_orders_per_minute", scope)
        if lim.max_orders_per_day is not None and \
                _count(venue.user_id, mode, strategy, shapes.day_start(now)) >= lim.max_orders_per_day:
            raise RiskRefusal(f"{what} has placed {lim.max_orders_per_day} orders today, its maximum", 429,
                              "max_orders_per_day", scope)
        if lim.max_open_positions is not None and current == 0:
            open_now = _open_positions(venue, strategy, now)
            if (info.symbol, info.exchange, inp.product) not in open_now and len(open_now) >= lim.max_open_positions:
                raise RiskRefusal(f"{what} has {len(open_now)} open positions, its maximum", 400,
                                  "max_open_positions", scope)


def _open_positions(venue: Venue, strategy: str | None, now: dt.datetime) -> set[Key]:
    if strategy is None and venue.is_analyze:
        rows = db.session.execute(select(Position.symbol, Position.exchange, Position.product).where(
            Position.user_id == venue.user_id, Position.mode == Mode.ANALYZE, Position.quantity != 0))
        return {(s, e.value, p.value) for s, e, p in rows}
    since = shapes.day_start(now)
    if strategy is None:
        return set(day_book(venue.user_id, _mode(venue), None, since).open)
    return set(strategy_book(venue.user_id, _mode(venue), strategy, since).open)


def counts_orders(user_id: int, strategy: str | None) -> bool:
    """Does an orders-per-minute or per-day limit apply to an order of `strategy` (no query: the cache)?"""
    risk = user_risk(user_id)
    if risk.empty:
        return False
    return any(lim is not None and (lim.max_orders_per_minute is not None or lim.max_orders_per_day is not None)
               for lim in (risk.get(ACCOUNT), risk.get(STRATEGY, strategy) if strategy else None))


def needs_approval(user_id: int, strategy: str | None) -> Limits | None:
    """The limits that ask for this order's approval (account, strategy or the calling API key), or None."""
    if _exempt.get():
        return None
    risk = user_risk(user_id)
    if risk.empty:
        return None
    key_id = current_origin().get("api_key_id")
    for lim in (risk.get(ACCOUNT), risk.get(STRATEGY, strategy) if strategy else None,
                risk.get(APIKEY, str(key_id)) if key_id is not None else None):
        if lim is not None and lim.require_approval:
            return lim
    return None


# -- the kill switch ---------------------------------------------------------------------------------------
def kill(user_id: int, *, actor: str, ip: str | None = None, now: dt.datetime | None = None) -> bool:
    """Switch the account's kill switch on: block entries (both modes), cancel open orders and close positions
    at once. Returns False when it was already on: its open orders are cancelled and positions closed again
    (what was placed or left since), audited so."""
    now = now or utcnow()
    with unit_of_work(write=True):
        row = _limit_row(user_id, ACCOUNT, "")
        again = row.killed_at is not None
        if again:
            db.session.add(AuditEvent(user_id=user_id, actor=actor, action="risk.kill", target_type="user",
                                      target_id=str(user_id), ip=ip,
                                      after={"killed_at": row.killed_at.isoformat(), "already_on": True,
                                             "squared_off_again_at": now.isoformat()}))
        else:
            row.killed_at, row.killed_by = now, actor[:64]
            db.session.add(row)
            db.session.add(Alert(user_id=user_id, severity="critical", kind="kill_switch",
                                 title="Kill switch on: positions squared off, new entries blocked",
                                 message=f"Switched on by {actor}. Open orders were cancelled and positions closed "
                                         "in both modes; switch it off to trade again."))
            db.session.add(AuditEvent(user_id=user_id, actor=actor, action="risk.kill", target_type="user",
                                      target_id=str(user_id), ip=ip, after={"killed_at": now.isoformat()}))
            _changed(user_id)
    for mode in (Mode.ANALYZE.value, Mode.LIVE.value):
        square_off(user_id, mode, ACCOUNT, "")
    return not again


def unkill(user_id: int, *, actor: str, ip: str | None = None) -> bool:
    """Switch the kill switch off. Returns False when it was off."""
    with unit_of_work(write=True):
        row = _find_limit(user_id, ACCOUNT, "")
        if row is None or row.killed_at is None:
            return False
        before = {"killed_at": row.killed_at.isoformat(), "killed_by": row.killed_by}
        row.killed_at, row.killed_by = None, None
        db.session.add(Alert(user_id=user_id, severity="info", kind="kill_switch", title="Kill switch off",
                             message=f"Switched off by {actor}."))
        db.session.add(AuditEvent(user_id=user_id, actor=actor, action="risk.unkill", target_type="user",
                                  target_id=str(user_id), ip=ip, before=before))
        _changed(user_id)
    return True


def state(user_id: int, now: dt.datetime | None = None) -> dict:
    """The account's risk state: kill switch, today's rows per mode and scope."""
    killed = _find_limit(user_id, ACCOUNT, "")
    return {
        "kill_switch": bool(killed and killed.killed_at),
        "killed_at": killed.killed_at.isoformat() if killed and killed.killed_at else None,
        "killed_by": killed.killed_by if killed else None,
        "trading_day": shapes.trading_day(now or utcnow()).isoformat(),
        "days": [{"mode": r.mode, "scope_kind": r.scope_kind, "scope": r.scope, "peak_pnl": str(r.peak_pnl),
                  "last_pnl": str(r.last_pnl), "blocked": r.blocked_reason is not None,
                  "blocked_reason": r.blocked_reason} for r in day_rows(user_id, now)],
    }


# -- holding an order for approval (services.trading.approvals decides) ------------------------------------
QUEUED_MESSAGE = "Order queued for approval in the action center"


class Queued(OrderError):
    """The order waits for approval: not an error to the caller (the API answers success)."""

    def __init__(self, approval_id: int):
        super().__init__(f"{QUEUED_MESSAGE} (approval {approval_id})", 202)
        self.approval_id = approval_id


def _order_json(inp: OrderInput) -> dict[str, Any]:
    return {k: (str(v) if isinstance(v, Decimal) else v) for k, v in inp.__dict__.items()}


def _alert_text(signal_id: int | None) -> str | None:
    """The alert an order came from, as the approval shows it: the signal's payload (a plain-text alert as its
    text), else the API key of the call."""
    origin = current_origin()
    if signal_id is not None:
        payload = db.session.scalar(select(Signal.payload).where(Signal.id == signal_id))
        if isinstance(payload, dict) and payload.keys() == {"body"} and isinstance(payload["body"], str):
            return payload["body"][:4000]  # a plain-text alert (services.strategies.webhooks keeps it so)
        if payload is not None:
            return json.dumps(payload, default=str)[:4000]
    if origin.get("api_key_id") is not None:
        return f"API call (key #{origin['api_key_id']})"
    return None


def queue(user_id: int, inp: OrderInput, limits: Limits, *, kind: str = "place",
          position_size: int | None = None, signal_id: int | None = None, venue: Venue | None = None,
          now: dt.datetime | None = None) -> Approval:
    """Hold an order for approval, with the mode and broker of `venue` (where it was to go); committed here (or
    with the caller's unit). Raise `Queued(approval.id)` to answer the caller."""
    now = now or utcnow()
    order = _order_json(inp)
    if position_size is not None:
        order["position_size"] = position_size
    with unit_of_work():
        row = Approval(user_id=user_id, kind=kind, order=order, strategy=inp.strategy or None,
                       api_key_id=current_origin().get("api_key_id"), signal_id=signal_id,
                       mode=venue.mode.value if venue is not None else None,
                       broker=venue.broker if venue is not None else None,
                       alert=_alert_text(signal_id), status=QUEUED, created_at=now,
                       expires_at=now + dt.timedelta(seconds=limits.approval_ttl_seconds))
        db.session.add(row)
        db.session.flush()
        db.session.add(Alert(user_id=user_id, severity="info", kind="approval_queued",
                             title=f"Order waits for approval: {inp.action} {inp.quantity} {inp.symbol}"[:200],
                             message=f"Approval #{row.id}, strategy {inp.strategy or '-'}; expires "
                                     f"{row.expires_at.isoformat(timespec='seconds')}."))
        db.session.add(AuditEvent(user_id=user_id, actor="system", action="approval.queue", target_type="approval",
                                  target_id=str(row.id), after=order))
    return row
