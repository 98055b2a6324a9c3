"""`/dashboard`: the signed-in user's broker connection and mode, funds, day P&L, open positions and
equity curve (from portfolio snapshots, drawn by static/js/dashboard.js with the vendored Chart.js);
`/dashboard/live`: its funds and positions regions as JSON, for static/js/live.js."""

from __future__ import annotations

from decimal import Decimal

from flask import Blueprint, jsonify, render_template
from flask_login import current_user, login_required

from database.enums import Mode
from database.types import utcnow
from services.accounts import broker_login
from services.trading import books, portfolio, shapes, venues
from services.trading.errors import NO_SESSION, OrderError

dashboard_bp = Blueprint("dashboard", __name__)


@dashboard_bp.get("/dashboard")
@login_required
def index():
    return render_template("dashboard/index.html", **_figures(with_curve=True))


@dashboard_bp.get("/dashboard/live")
@login_required
def live():
    """The funds and open positions regions, re-rendered for static/js/live.js (after an order update, or
    every few seconds when the page has no feed)."""
    figures = _figures(with_curve=False)
    return jsonify(status="success", regions={
        "dash-funds-region": render_template("dashboard/_funds.html", **figures),
        "dash-positions-region": render_template("dashboard/_positions.html", **figures)})


def _figures(*, with_curve: bool) -> dict:
    """The dashboard's figures. They come from one read of the venue's books, over one trading day
    (services.trading.shapes.day_start: it begins at SESSION_EXPIRY_TIME, exchange time, not at
    midnight, like the analyze-mode order, trade and position books; in live mode the books, and so
    these figures, are the broker's):

    - analyze mode: Realized is the day's, from its fills: the sum of the trade book's `net_pnl` (the P&L
      each fill of the trading day realized, less its charges); Unrealized the funds' `m2munrealized`
      (the open positions at current quotes); Day P&L = Realized + Unrealized, always, on every page.
    - live mode (the broker's figures): Day P&L is `day_pnl()`, the sum of the position book's `pnl`
      over the day's positions; Realized and Unrealized the funds' `m2mrealized` and `m2munrealized`."""
    uid = current_user.id
    analyze = venues.is_analyze(uid)
    active = broker_login.active_session(uid)
    venue = portfolio.book_venue(uid)
    mode = venue.mode if venue is not None else None
    funds, positions, problem, realized = None, [], None, None
    if venue is None:
        problem = NO_SESSION
    else:
        try:
            funds = books.funds(venue)
            positions = books.positionbook(venue)
            if mode == Mode.ANALYZE.value:
                realized = sum((Decimal(str(t["net_pnl"])) for t in books.tradebook(venue)), Decimal(0))
        except OrderError as exc:
            problem, funds, positions = exc.message, None, []
    equity = None
    if funds is not None and realized is None:
        realized = Decimal(funds["m2mrealized"])
    figure = day_pnl(positions)
    if mode == Mode.ANALYZE.value and funds is not None:
        figure = realized + Decimal(funds["m2munrealized"])
    if funds is not None:
        equity = Decimal(funds["availablecash"]) + Decimal(funds["utiliseddebits"]) + Decimal(funds["m2munrealized"])
    points = []
    if mode is not None and with_curve:
        points = list(portfolio.curve_points(uid, mode))  # a copy: the cached list stays as it is
        if equity is not None:
            points.append({"t": int(utcnow().timestamp() * 1000), "equity": float(equity), "reason": "now"})
    return dict(
        analyze=analyze, active=active, mode=mode, funds=funds, equity=equity,
        open_positions=[p for p in positions if p["quantity"] != 0],
        day_pnl=figure, realized=realized, trading_day=shapes.trading_day(),
        problem=problem, points=points, curve_days=portfolio.CURVE_DAYS, paper_mode=Mode.ANALYZE,
    )


def day_pnl(positions: list[dict]) -> Decimal:
    """The day's P&L: the sum of the position book's `pnl` (each realized + unrealized at its ltp), the
    book being the trading day's (positions open now or traded since shapes.day_start())."""
    return sum((Decimal(str(p["pnl"])) for p in positions), Decimal(0))
