"""`/dashboard`: the signed-in user's broker connection and mode, funds, day P&L, open positions and
equity curve (from portfolio snapshots, drawn by static/js/dashboard.js with the vendored Chart.js)."""

from __future__ import annotations

from decimal import Decimal

from flask import Blueprint, render_template
from flask_login import current_user, login_required

from database.enums import Mode
from database.types import utcnow
from services.accounts import broker_login
from services.trading import books, portfolio, venues
from services.trading.errors import NO_SESSION, OrderError

dashboard_bp = Blueprint("dashboard", __name__)


@dashboard_bp.get("/dashboard")
@login_required
def index():
    uid = current_user.id
    analyze = venues.is_analyze(uid)
    active = broker_login.active_session(uid)
    venue = portfolio.book_venue(uid)
    mode = venue.mode if venue is not None else None
    funds, positions, problem = None, [], None
    if venue is None:
        problem = NO_SESSION
    else:
        try:
            funds = books.funds(venue)
            positions = books.positionbook(venue)
        except OrderError as exc:
            problem, funds, positions = exc.message, None, []
    equity = None
    if funds is not None:
        equity = Decimal(funds["availablecash"]) + Decimal(funds["utiliseddebits"]) + Decimal(funds["m2munrealized"])
    points = []
    if mode is not None:
        points = list(portfolio.curve_points(uid, mode))  # a copy: the cached list stays as it is
        if equity is not None:
            points.append({"t": int(utcnow().timestamp() * 1000), "equity": float(equity), "reason": "now"})
    return render_template(
        "dashboard/index.html", analyze=analyze, active=active, mode=mode, funds=funds, equity=equity,
        open_positions=[p for p in positions if p["quantity"] != 0],
        day_pnl=sum((Decimal(str(p["pnl"])) for p in positions), Decimal(0)),
        problem=problem, points=points, curve_days=portfolio.CURVE_DAYS, paper_mode=Mode.ANALYZE,
    )
