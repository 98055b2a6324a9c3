"""The dashboard (/dashboard, and / for a signed-in user) for admin, trader and viewer; and the portfolio
snapshots behind its equity curve (services.trading.portfolio): scheduled, at square-off, once per slot
whatever the number of workers."""

from __future__ import annotations

import datetime as dt
import json
import re
import threading
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from database import db
from database.enums import Mode, Role, SnapshotReason
from database.portfolio_db import PortfolioSnapshot
from database.types import utcnow
from services.runtime import scheduler
from services.trading import portfolio, venues
from services.trading.paper import account as paper
from tests.helpers import trading
from tests.helpers.accounts import isolated_client, login, make_user, use_test_hasher
from tests.helpers.clock import clock, local  # noqa: F401 - fixtures
from tests.helpers.orders import contract, order, set_quote  # noqa: F401 - fixtures


@pytest.fixture
def signed_in(app, contract, monkeypatch):  # noqa: F811
    use_test_hasher(monkeypatch)

    def make(role: str):
        user = make_user(f"{role}1", Role(role))
        client = isolated_client(app)
        login(client, user.username)
        return user.id, client

    return make


def equity_points(html: str) -> list[dict]:
    match = re.search(r'<script type="application/json" id="equity-data">(.*?)</script>', html, re.S)
    assert match
    return json.loads(match.group(1))


def snapshots(user_id: int | None = None, reason: SnapshotReason | None = None) -> list[PortfolioSnapshot]:
    db.session.rollback()
    q = select(PortfolioSnapshot).order_by(PortfolioSnapshot.taken_at, PortfolioSnapshot.id)
    if user_id is not None:
        q = q.where(PortfolioSnapshot.user_id == user_id)
    if reason is not None:
        q = q.where(PortfolioSnapshot.reason == reason)
    return list(db.session.scalars(q))


# -- the page -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("role", ["admin", "trader", "viewer"])
def test_the_dashboard_shows_mode_broker_funds_pnl_and_positions(signed_in, role):
    uid, client = signed_in(role)
    set_quote("INFY", "1500")
    trading.place_order(uid, order(quantity=10))
    set_quote("INFY", "1510")
    home = client.get("/")
    assert home.status_code == 302
    assert home.location.endswith("/dashboard")
    resp = client.get("/dashboard")
    assert resp.status_code == 200
    html = resp.get_data(as_text=True)
    assert "<title>Dashboard" in html
    assert f"{role}1" in html
    assert re.search(r'id="dash-mode">\s*<span class="badge badge-analyze"', html)
    assert "Analyze mode needs no broker" in html  # no broker, and none needed: not an error
    assert 'class="status off"' not in html
    assert re.search(r'id="dash-equity">₹1,00,00,100.00<', html)  # 10,000,000 + 10 x (1510 - 1500)
    assert re.search(r'id="dash-day-pnl"><span class="pnl pnl-up">₹100.00<', html)
    positions = re.search(r'<table class="data" id="dash-positions">(.*?)</table>', html, re.S).group(1)
    assert "INFY" in positions
    assert ">10<" in positions
    # no snapshot yet: only the "now" point, no chart
    assert [p["reason"] for p in equity_points(html)] == ["now"]
    assert 'id="equity-empty"' in html
    assert 'id="equity-curve"' not in html
    assert "/static/vendor/chart.umd.min.js" in html
    assert "/static/js/dashboard.js" in html
    assert not re.search(r'(src|href)="(https?:)?//', html)  # nothing loaded from elsewhere


def test_the_equity_curve_draws_the_users_snapshots_in_their_mode(signed_in):
    uid, client = signed_in("trader")
    other, _ = signed_in("admin")
    now = utcnow()
    for minutes, equity, who, mode in ((60, "100", uid, Mode.ANALYZE), (30, "110", uid, Mode.ANALYZE),
                                       (20, "999", other, Mode.ANALYZE), (10, "555", uid, Mode.LIVE),
                                       (60 * 24 * 40, "1", uid, Mode.ANALYZE)):  # older than the curve's 30 days
        db.session.add(PortfolioSnapshot(user_id=who, mode=mode, taken_at=now - dt.timedelta(minutes=minutes),
                                         equity=Decimal(equity), cash=Decimal(equity)))
    db.session.commit()
    html = client.get("/dashboard").get_data(as_text=True)
    points = equity_points(html)
    assert [p["equity"] for p in points] == [100.0, 110.0, 10_000_000.0]
    assert [p["reason"] for p in points] == ["scheduled", "scheduled", "now"]
    assert points == sorted(points, key=lambda p: p["t"])
    assert '<canvas id="equity-curve"' in html


def test_a_new_snapshot_reaches_the_cached_curve_at_once(signed_in):
    uid, client = signed_in("trader")
    now = utcnow()
    db.session.add(PortfolioSnapshot(user_id=uid, mode=Mode.ANALYZE, taken_at=now - dt.timedelta(minutes=30),
                                     equity=Decimal("100"), cash=Decimal("100")))
    db.session.commit()
    first = equity_points(client.get("/dashboard").get_data(as_text=True))
    assert [p["equity"] for p in first] == [100.0, 10_000_000.0]
    assert [p["equity"] for p in equity_points(client.get("/dashboard").get_data(as_text=True))] == [
        100.0, 10_000_000.0]  # served from the cache: the "now" point is not added to it twice
    db.session.add(PortfolioSnapshot(user_id=uid, mode=Mode.ANALYZE, taken_at=now - dt.timedelta(minutes=5),
                                     equity=Decimal("120"), cash=Decimal("120")))
    db.session.commit()
    points = equity_points(client.get("/dashboard").get_data(as_text=True))
    assert [p["equity"] for p in points] == [100.0, 120.0, 10_000_000.0]


def test_live_mode_without_a_broker_session_is_explained(signed_in):
    uid, client = signed_in("trader")
    venues.set_analyze(uid, False)
    resp = client.get("/dashboard")
    assert resp.status_code == 200
    html = resp.get_data(as_text=True)
    assert 'class="badge badge-live"' in html
    assert "No live broker session" in html
    assert 'id="dash-equity"' not in html
    assert equity_points(html) == []


def test_anonymous_visitors_are_sent_to_sign_in(app, signed_in):
    signed_in("admin")
    resp = isolated_client(app).get("/dashboard")
    assert resp.status_code == 302
    assert "/auth/login" in resp.location


# -- snapshots ------------------------------------------------------------------------------------------
@pytest.fixture
def traders(app, contract, monkeypatch):  # noqa: F811
    monkeypatch.setitem(app.config, "SNAPSHOT_INTERVAL", 15)
    set_quote("INFY", "1500")
    alice, bob, idle = make_user("alice"), make_user("bob"), make_user("idle")
    trading.place_order(alice.id, order(quantity=10))
    trading.place_order(bob.id, order(quantity=2, product="CNC"))
    set_quote("INFY", "1490")
    return alice.id, bob.id, idle.id


def test_a_scheduled_snapshot_per_account_once_per_slot(app, traders):
    alice, bob, idle = traders
    slot = portfolio.slot_start(utcnow())
    at = slot + dt.timedelta(minutes=1)
    assert portfolio.snapshot_due(since=None, until=at) == 2
    assert portfolio.snapshot_due(since=at, until=at + dt.timedelta(minutes=5)) == 0  # same slot
    rows = snapshots()
    assert {r.user_id for r in rows} == {alice, bob}  # idle never traded: no account, no snapshot
    mine = next(r for r in rows if r.user_id == alice)
    assert (mine.mode, mine.reason, mine.taken_at) == (Mode.ANALYZE, SnapshotReason.SCHEDULED, at)
    assert mine.unrealized_pnl == Decimal(-100)
    assert mine.equity == Decimal(10_000_000 - 100)
    assert mine.cash == Decimal(10_000_000) - Decimal(15000) / 5  # MIS margin at 5x leverage is blocked
    assert portfolio.snapshot_due(since=at, until=slot + dt.timedelta(minutes=15)) == 2  # the next slot
    assert len(snapshots(alice)) == 2


def test_the_scheduler_runs_the_snapshot_job(app, traders):
    scheduler.run_once(app, since=utcnow() - dt.timedelta(seconds=30))
    assert len(snapshots(reason=SnapshotReason.SCHEDULED)) == 2


def test_square_off_snapshots_every_account_once(app, traders, monkeypatch):
    monkeypatch.setitem(app.config, "MIS_SQUAREOFF_TIME", "15:15")  # one square-off moment a day, every exchange
    alice, bob, _idle = traders
    now = utcnow()
    next_squareoff = paper.squareoff_cutoff(now) + dt.timedelta(days=1)  # the first one after now
    before, after = next_squareoff - dt.timedelta(minutes=1), next_squareoff + dt.timedelta(minutes=1)
    scheduler.run_once(app, since=now, until=before)
    assert snapshots(reason=SnapshotReason.SQUAREOFF) == []
    scheduler.run_once(app, since=before, until=after)  # square-off (paper.py snapshots alice) then our job
    scheduler.run_once(app, since=before, until=after)  # a second worker over the same window
    squareoff = snapshots(reason=SnapshotReason.SQUAREOFF)
    assert sorted(r.user_id for r in squareoff) == [alice, bob]
    closed = next(r for r in squareoff if r.user_id == alice)
    assert closed.unrealized_pnl == 0
    assert closed.realized_pnl == Decimal(-100)
    assert trading.open_position(alice, "INFY", "NSE", "MIS") == 0


def test_live_accounts_without_a_session_are_skipped(app, traders):
    alice, bob, _idle = traders
    venues.set_analyze(bob, False)
    assert portfolio.snapshot_due(since=None) == 1
    assert [r.user_id for r in snapshots()] == [alice]


def test_workers_running_at_once_take_one_snapshot_per_account(app, traders):
    until = portfolio.slot_start(utcnow()) + dt.timedelta(minutes=2)
    barrier = threading.Barrier(3, timeout=30)
    errors: list[BaseException] = []

    def worker():
        with app.app_context():
            try:
                barrier.wait()
                portfolio.snapshot_due(since=None, until=until)
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(exc)
            finally:
                db.session.remove()

    threads = [threading.Thread(target=worker) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    db.session.rollback()
    counts = db.session.execute(select(PortfolioSnapshot.user_id, func.count()).group_by(PortfolioSnapshot.user_id))
    assert sorted(n for _, n in counts) == [1, 1]


# -- the day's P&L over the trading day ---------------------------------------------------------------------------
def stat(html: str, label: str) -> str:
    """The figure of a stat on the page ("Day P&L", "Realized", "Unrealized"), as shown."""
    match = re.search(rf'{re.escape(label)}</span><span class="stat-value"[^>]*>\s*<span class="pnl[^"]*">([^<]*)<',
                      html)
    assert match, label
    return match.group(1).replace(",", "")


def test_day_pnl_and_realized_agree_after_midnight_until_the_session_expiry(app, signed_in, clock):  # noqa: F811
    """An evening session that runs past midnight: its closed trade stays in the day's positions until
    SESSION_EXPIRY_TIME (03:00), so Day P&L = Realized + Unrealized on the page, at 01:30 as at 21:30."""
    uid, client = signed_in("trader")
    clock.now = local(app, 2026, 12, 6, 21, 0)
    set_quote("INFY", "1500")
    trading.place_order(uid, order(quantity=13))
    clock.now = local(app, 2026, 12, 6, 21, 30)
    set_quote("INFY", "1496.55")
    trading.place_order(uid, order(action="SELL", quantity=13))
    html = client.get("/dashboard").get_data(as_text=True)
    assert stat(html, "Day P&amp;L") == stat(html, "Realized") == "-₹44.85"

    clock.now = local(app, 2026, 12, 6, 23, 50)
    set_quote("SBIN", "800")
    trading.place_order(uid, order(symbol="SBIN", quantity=1))

    clock.now = local(app, 2026, 12, 7, 1, 30)  # after midnight, before 03:00: the same trading day
    set_quote("SBIN", "801")
    html = client.get("/dashboard").get_data(as_text=True)
    assert stat(html, "Realized") == "-₹44.85"
    assert stat(html, "Unrealized") == "₹1.00"
    assert stat(html, "Day P&amp;L") == "-₹43.85"  # = Realized + Unrealized
    assert "trading day of 06 Dec 2026" in html

    clock.now = local(app, 2026, 12, 7, 3, 0)  # the next trading day: only the open position is the day's
    set_quote("SBIN", "801")
    html = client.get("/dashboard").get_data(as_text=True)
    assert stat(html, "Day P&amp;L") == "₹1.00"
    assert stat(html, "Realized") == "₹0.00"  # the day's fills: the INFY trade was the day before's
    assert "trading day of 07 Dec 2026" in html
