"""Portfolio snapshots: each user's equity over time, in the mode they trade in, for the equity curve.

A snapshot records equity (cash + margin in use + unrealized P&L, which in analyze mode is opening
balance + realized + unrealized P&L), cash, realized and unrealized P&L.

When (the scheduler calls `snapshot_due(since, until)` on every run, right after the MIS square-off):
- scheduled: once per SNAPSHOT_INTERVAL minutes per user, in fixed slots (a snapshot is due when the
  user has none of reason "scheduled" since the start of the current slot), so the curve's points are
  evenly spaced whatever the number of workers or their timing;
- at the MIS square-off: when the run's window (`since`, `until`] holds a square-off moment, every
  analyze-mode account gets a "squareoff" snapshot, unless services.trading.paper.account took one already (it does for
  the accounts whose positions it closed).

Which users: active users whose book exists, that is an analyze account (a `funds` row) when they are
in analyze mode, a live broker session when they are in live mode. A
live account whose broker does not answer is skipped until the next run.

Idempotent across workers and hosts: each snapshot is written in a unit that first takes the user's
lock (the analyze Funds row FOR UPDATE, or a PostgreSQL advisory lock for live accounts; SQLite's
BEGIN IMMEDIATE serialises writers anyway) and then checks again that it is still due.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from dataclasses import dataclass
from decimal import Decimal

from cachetools import TTLCache
from flask import current_app
from sqlalchemy import select, text

from database import cache, db
from database.enums import Mode, SnapshotReason
from database.portfolio_db import Funds, PortfolioSnapshot
from database.types import utcnow
from database.unit import unit_of_work
from database.user_db import User
from services.trading import books, venues
from services.trading.errors import OrderError
from services.trading.paper import account as paper

log = logging.getLogger("algobridge.portfolio")

CURVE_DAYS = 30
CURVE_MAX_POINTS = 5000


@dataclass(frozen=True)
class Figures:
    """A user's account now, in their current mode."""

    mode: Mode
    cash: Decimal
    used_margin: Decimal
    realized_pnl: Decimal
    unrealized_pnl: Decimal

    @property
    def equity(self) -> Decimal:
        return self.cash + self.used_margin + self.unrealized_pnl


# -- mode and figures --------------------------------------------------------------------------------
def book_venue(user_id: int) -> venues.Venue | None:
    """The venue whose books the user sees now, or None (live mode without a live broker session)."""
    try:
        return venues.venue_for(user_id)
    except OrderError:
        return None


def book_mode(user_id: int) -> Mode | None:
    """The mode whose books the user sees now: analyze, live, or None (live mode without a live broker
    session: no books)."""
    venue = book_venue(user_id)
    return venue.mode if venue is not None else None


def figures(user_id: int) -> Figures | None:
    """The user's funds and P&L now (services.trading.books.funds), or None when they cannot be had."""
    venue = book_venue(user_id)
    if venue is None:
        return None
    try:
        f = books.funds(venue)
    except OrderError as exc:
        log.info("no figures for user %s: %s", user_id, exc.message)
        return None
    return Figures(mode=venue.mode, cash=Decimal(f["availablecash"]), used_margin=Decimal(f["utiliseddebits"]),
                   realized_pnl=Decimal(f["m2mrealized"]), unrealized_pnl=Decimal(f["m2munrealized"]))


# -- the equity curve --------------------------------------------------------------------------------
def equity_curve(user_id: int, mode: Mode, *, days: int = CURVE_DAYS,
                 now: dt.datetime | None = None) -> list[PortfolioSnapshot]:
    """The user's snapshots in `mode` over the last `days` days, oldest first (index-backed)."""
    start = (now or utcnow()) - dt.timedelta(days=days)
    q = (select(PortfolioSnapshot)
         .where(PortfolioSnapshot.user_id == user_id, PortfolioSnapshot.mode == mode,
                PortfolioSnapshot.taken_at >= start)
         .order_by(PortfolioSnapshot.taken_at.desc()).limit(CURVE_MAX_POINTS))
    return list(reversed(db.session.scalars(q).all()))


# The dashboard's points of a user's curve, cached in this process per (user, mode, latest snapshot):
# a new snapshot changes the key, so no invalidation is needed; entries expire after CURVE_CACHE_TTL
# seconds so the window's start moves on even when no snapshot is taken.
CURVE_CACHE_TTL = 60
# A clear of the application's cache (database.cache: a missed invalidation, a test's end) clears it too.
CURVES_NS = "portfolio_curves"
_curves: TTLCache = TTLCache(maxsize=64, ttl=CURVE_CACHE_TTL)
_curves_lock = threading.Lock()
_curves_subscribed: set[int] = set()


def _clear_curves(_key: str | None = None) -> None:
    with _curves_lock:
        _curves.clear()


def _subscribe_curves() -> None:
    shared = cache.current()
    if id(shared) not in _curves_subscribed:
        shared.subscribe(CURVES_NS, _clear_curves)
        _curves_subscribed.add(id(shared))


def curve_points(user_id: int, mode: Mode, *, days: int = CURVE_DAYS) -> list[dict]:
    """The user's equity curve in `mode` as the dashboard draws it: [{"t": ms, "equity", "reason"}],
    oldest first. One index-backed look at the latest snapshot per call; the points themselves are
    read (columns only, no ORM objects) only when a snapshot was taken since. Callers must not change
    the list."""
    latest = db.session.execute(
        select(PortfolioSnapshot.id, PortfolioSnapshot.taken_at)
        .where(PortfolioSnapshot.user_id == user_id, PortfolioSnapshot.mode == mode)
        .order_by(PortfolioSnapshot.taken_at.desc()).limit(1)).first()
    if latest is None:
        return []
    _subscribe_curves()
    key = (user_id, str(mode), days, latest.id, latest.taken_at.isoformat())
    with _curves_lock:
        points = _curves.get(key)
    if points is not None:
        return points
    start = utcnow() - dt.timedelta(days=days)
    rows = db.session.execute(
        select(PortfolioSnapshot.taken_at, PortfolioSnapshot.equity, PortfolioSnapshot.reason)
        .where(PortfolioSnapshot.user_id == user_id, PortfolioSnapshot.mode == mode,
               PortfolioSnapshot.taken_at >= start)
        .order_by(PortfolioSnapshot.taken_at.desc()).limit(CURVE_MAX_POINTS)).all()
    points = [{"t": int(r.taken_at.timestamp() * 1000), "equity": float(r.equity), "reason": r.reason.value}
              for r in reversed(rows)]
    with _curves_lock:
        _curves[key] = points
    return points


# -- taking snapshots --------------------------------------------------------------------------------
def interval() -> dt.timedelta:
    return dt.timedelta(minutes=current_app.config["SNAPSHOT_INTERVAL"])


def slot_start(now: dt.datetime) -> dt.datetime:
    """The start of the SNAPSHOT_INTERVAL slot holding `now` (slots counted from the Unix epoch, UTC)."""
    step = int(interval().total_seconds())
    seconds = int(now.timestamp())
    return dt.datetime.fromtimestamp(seconds - seconds % step, tz=dt.UTC)


def _has_snapshot(user_id: int, mode: Mode, reason: SnapshotReason, since: dt.datetime) -> bool:
    return db.session.scalar(select(PortfolioSnapshot.id).where(
        PortfolioSnapshot.user_id == user_id, PortfolioSnapshot.mode == mode, PortfolioSnapshot.reason == reason,
        PortfolioSnapshot.taken_at >= since).limit(1)) is not None


def _analyze_accounts() -> set[int]:
    return set(db.session.scalars(select(Funds.user_id).where(Funds.mode == Mode.ANALYZE)))


def take_analyze(user_id: int, reason: SnapshotReason, now: dt.datetime, not_since: dt.datetime) -> bool:
    """Snapshot the user's analyze account (brought up to date first), unless it has a snapshot of
    `reason` taken at or after `not_since`. A unit of its own. Returns whether one was taken."""
    with unit_of_work(write=True):
        funds = paper.lock_funds(user_id)
        if _has_snapshot(user_id, Mode.ANALYZE, reason, not_since):
            return False
        paper.housekeeping_locked(user_id, funds, now)
        paper.snapshot(user_id, funds, reason, now)
    return True


def take_live(user_id: int, reason: SnapshotReason, now: dt.datetime, not_since: dt.datetime) -> bool:
    """Snapshot the user's live account from the broker's figures (see take_analyze)."""
    found = figures(user_id)
    db.session.rollback()  # end the reads of figures(); the unit below starts clean
    if found is None or found.mode != Mode.LIVE:
        return False
    with unit_of_work(write=True):
        if db.session.get_bind().dialect.name == "postgresql":
            db.session.execute(text("SELECT pg_advisory_xact_lock(hashtext(:k))"),
                               {"k": f"algobridge:snapshot:{user_id}"})
        if _has_snapshot(user_id, Mode.LIVE, reason, not_since):
            return False
        db.session.add(PortfolioSnapshot(user_id=user_id, mode=Mode.LIVE, taken_at=now, equity=found.equity,
                                         cash=found.cash, realized_pnl=found.realized_pnl,
                                         unrealized_pnl=found.unrealized_pnl, reason=reason))
    return True


def snapshot_due(since: dt.datetime | None, until: dt.datetime | None = None) -> int:
    """The scheduler's job for the window (`since`, `until`]: the scheduled snapshots that are due,
    and the square-off snapshots when a MIS square-off moment fell in the window. Returns how many
    snapshots were taken. One user's failure does not stop the others."""
    until = until or utcnow()
    slot = slot_start(until)
    cutoff = paper.squareoff_cutoff(until)
    at_squareoff = since is not None and since < cutoff <= until
    users = list(db.session.scalars(select(User.id).where(User.is_active.is_(True)).order_by(User.id)))
    accounts = _analyze_accounts()
    db.session.rollback()
    taken = 0
    for uid in users:
        try:
            if at_squareoff and uid in accounts:
                taken += take_analyze(uid, SnapshotReason.SQUAREOFF, until, cutoff)
            mode = book_mode(uid)
            # A cheap look first (index-backed, no lock); the unit below looks again under the lock.
            if mode is None or _has_snapshot(uid, mode, SnapshotReason.SCHEDULED, slot):
                db.session.rollback()
                continue
            if mode == Mode.ANALYZE:
                if uid in accounts:
                    taken += take_analyze(uid, SnapshotReason.SCHEDULED, until, slot)
            else:
                taken += take_live(uid, SnapshotReason.SCHEDULED, until, slot)
        except Exception:
            db.session.rollback()
            log.exception("portfolio snapshot of user %s failed; it is tried again next run", uid)
    return taken
