"""The books on the web: `/orderbook`, `/tradebook`, `/positions`, `/holdings` for the signed-in user's
current mode, `/roundtrips` (analyze mode's closed trades and their statistics, over a period), their
CSV exports (`/orderbook.csv`, ...), the order book's and positions' content as JSON for the pages'
live refresh (`/orderbook/live`, `/positions/live`), and the actions on them: cancel or modify an
open order, cancel all orders, close a position, close all positions.

Reads and actions go through services.trading.books and services.trading.orders, so they follow the same rules as the
REST API: a user only ever sees and acts on their own books (another user's order id answers 404).
Actions are POST forms (CSRF-checked by the application's CSRFProtect), confirmed in the browser
(static/js/confirm.js), and refused to viewers (403).
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import logging
from collections.abc import Callable, Iterable

from flask import Blueprint, Response, abort, flash, jsonify, redirect, render_template, request, url_for
from flask_login import current_user, login_required
from flask_wtf import FlaskForm
from wtforms import DecimalField, HiddenField, IntegerField, SelectField
from wtforms.validators import DataRequired, InputRequired, NumberRange

import vocabulary
from blueprints.access import role_required
from database.enums import Action, Exchange, Mode, PriceType, Product
from database.types import utcnow
from services.trading import books, orders, portfolio, round_trips, shapes, venues
from services.trading.errors import OrderError
from services.trading.journal import WEB_STRATEGY, OrderInput, status_messages

log = logging.getLogger("algobridge.orders")

orders_bp = Blueprint("orders", __name__)

TRADERS = ("admin", "trader")
OPEN_STATUSES = vocabulary.OPEN_STATUSES

# (header, key) of each book's columns, in the order the pages and the CSV files show them.
ORDER_COLUMNS = [("Order ID", "orderid"), ("Time", "timestamp"), ("Symbol", "symbol"), ("Exchange", "exchange"),
                 ("Action", "action"), ("Product", "product"), ("Type", "pricetype"), ("Qty", "quantity"),
                 ("Price", "price"), ("Trigger", "trigger_price"), ("Status", "order_status")]
TRADE_COLUMNS = [("Order ID", "orderid"), ("Time", "timestamp"), ("Symbol", "symbol"), ("Exchange", "exchange"),
                 ("Action", "action"), ("Product", "product"), ("Qty", "quantity"), ("Avg price", "average_price"),
                 ("Value", "trade_value")]
POSITION_COLUMNS = [("Symbol", "symbol"), ("Exchange", "exchange"), ("Product", "product"), ("Qty", "quantity"),
                    ("Avg price", "average_price"), ("LTP", "ltp"), ("P&L", "pnl")]
ROUND_TRIP_COLUMNS = [("Symbol", "symbol"), ("Exchange", "exchange"), ("Product", "product"), ("Side", "side"),
                      ("Qty", "quantity"), ("Entry time", "entry_time"), ("Entry price", "entry_price"),
                      ("Exit time", "exit_time"), ("Exit price", "exit_price"), ("Gross P&L", "gross_pnl"),
                      ("Charges", "charges"), ("Net P&L", "net_pnl"), ("Holding", "holding"),
                      ("Exit reason", "exit_reason")]
ROUND_TRIP_DAYS = (1, 7, 30, 90)
# Analyze mode's books carry the charges of its fills (services.trading.paper.charges): gross, charges, net.
TRADE_COLUMNS_ANALYZE = [*TRADE_COLUMNS, ("Realized", "realized_pnl"), ("Charges", "charges"), ("Net P&L", "net_pnl")]
POSITION_COLUMNS_ANALYZE = [*POSITION_COLUMNS[:-1], ("Gross P&L", "gross_pnl"), ("Charges", "charges"),
                            ("Net P&L", "pnl")]
HOLDING_COLUMNS = [("Symbol", "symbol"), ("Exchange", "exchange"), ("Product", "product"), ("Qty", "quantity"),
                   ("P&L", "pnl"), ("P&L %", "pnlpercent")]


# -- forms ----------------------------------------------------------------------------------------------
class ActionForm(FlaskForm):
    """The CSRF token of the action buttons."""


class ClosePositionForm(FlaskForm):
    symbol = HiddenField(validators=[DataRequired()])
    exchange = SelectField(choices=Exchange.values(), validators=[DataRequired()])
    product = SelectField(choices=Product.values(), validators=[DataRequired()])


class ModifyForm(FlaskForm):
    quantity = IntegerField("Quantity", validators=[InputRequired(), NumberRange(min=1, max=10_000_000)])
    price = DecimalField("Price", places=None, validators=[InputRequired(), NumberRange(min=0)])
    trigger_price = DecimalField("Trigger price", places=None, validators=[InputRequired(), NumberRange(min=0)])


# -- helpers --------------------------------------------------------------------------------------------
def _mode() -> str:
    mode = portfolio.book_mode(current_user.id)
    return mode.value if mode is not None else Mode.LIVE.value


def _columns(live: list[tuple[str, str]], analyze: list[tuple[str, str]], mode: str) -> list[tuple[str, str]]:
    return analyze if mode == Mode.ANALYZE.value else live


def _venue(orderid: str | None = None) -> venues.Venue:
    """The venue of this request's call (services.trading.venues.venue_for)."""
    return venues.venue_for(current_user.id, orderid=orderid)


def _read(loader: Callable[[venues.Venue], object], empty: object) -> tuple[object, str | None]:
    """The book, or `empty` and the reason it cannot be read (no broker session, a broker error)."""
    try:
        return loader(_venue()), None
    except OrderError as exc:
        return empty, exc.message


def _action_result(fn: Callable[[], str], endpoint: str):
    """Run an action; flash its outcome and go back to the book. Another user's order is a 404."""
    try:
        message = fn()
    except OrderError as exc:
        if exc.status == 404:
            abort(404, exc.message)
        flash(exc.message, "error")
    else:
        flash(message, "success")
    return redirect(url_for(endpoint), code=303)


@orders_bp.app_template_filter("money")
def money(value: object) -> str:
    """A price or amount as the pages show it ("1,234.50"; "–" for none): the `money` macro of
    templates/orders/_macros.html, as a filter (far cheaper than a macro call in a table's rows)."""
    if value is None:
        return "–"
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        number = 0.0  # as Jinja's |float
    return f"{number:,.2f}"


def _live_region(region: str, template: str, context: dict) -> Response:
    resp = jsonify(status="success", regions={region: render_template(template, **context)})
    resp.headers["Cache-Control"] = "no-store"
    return resp


def _require_form(form: FlaskForm) -> None:
    if not form.validate_on_submit():
        abort(400, "The form was incomplete or invalid.")


# -- CSV -------------------------------------------------------------------------------------------------
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value: object) -> object:
    """A cell safe to open in a spreadsheet: text that could start a formula gets a leading quote
    (numbers we computed are written as numbers: a spreadsheet does not evaluate them)."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def csv_response(name: str, columns: list[tuple[str, str]], rows: Iterable[dict]) -> Response:
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow([header for header, _ in columns])
    for row in rows:
        writer.writerow([csv_cell(row.get(key, "")) for _, key in columns])
    filename = f"{name}-{_mode()}-{utcnow():%Y%m%d-%H%M%S}.csv"
    return Response(buf.getvalue(), mimetype="text/csv",
                    headers={"Content-Disposition": f'attachment; filename="{filename}"', "Cache-Control": "no-store"})


def _csv_book(loader: Callable[[venues.Venue], object]):
    try:
        return loader(_venue())
    except OrderError as exc:
        abort(exc.status if exc.status in (400, 403, 404, 409) else 400, exc.message)


# -- pages -----------------------------------------------------------------------------------------------
def _orderbook_page() -> dict:
    book, problem = _read(books.orderbook, {"orders": [], "statistics": {}})
    rejected = [o["orderid"] for o in book["orders"] if o["order_status"] == "rejected"]
    return dict(orders=book["orders"], stats=book["statistics"], columns=ORDER_COLUMNS, open_statuses=OPEN_STATUSES,
                reasons=status_messages(current_user.id, rejected),
                mode=_mode(), problem=problem, can_act=current_user.can_trade, form=ActionForm())


@orders_bp.get("/orderbook")
@login_required
def orderbook():
    return render_template("orders/orderbook.html", **_orderbook_page())


@orders_bp.get("/orderbook/live")
@login_required
def orderbook_live():
    """The page's content as JSON, for static/js/live.js: after an order update, or every few seconds
    when the page has no feed."""
    return _live_region("orderbook-region", "orders/_orderbook.html", _orderbook_page())


@orders_bp.get("/tradebook")
@login_required
def tradebook():
    trades, problem = _read(books.tradebook, [])
    mode = _mode()
    return render_template("orders/tradebook.html", trades=trades, mode=mode, problem=problem,
                           columns=_columns(TRADE_COLUMNS, TRADE_COLUMNS_ANALYZE, mode))


def _positions_page() -> dict:
    rows, problem = _read(books.positionbook, [])
    mode = _mode()
    return dict(positions=rows, mode=mode, columns=_columns(POSITION_COLUMNS, POSITION_COLUMNS_ANALYZE, mode),
                problem=problem, can_act=current_user.can_trade, form=ActionForm(),
                open_count=sum(1 for p in rows if p["quantity"] != 0))


@orders_bp.get("/positions")
@login_required
def positions():
    return render_template("orders/positions.html", **_positions_page())


@orders_bp.get("/positions/live")
@login_required
def positions_live():
    """As orderbook_live, for the positions page."""
    return _live_region("positions-region", "orders/_positions.html", _positions_page())


@orders_bp.get("/holdings")
@login_required
def holdings():
    book, problem = _read(books.holdings, {"holdings": [], "statistics": {}})
    return render_template("orders/holdings.html", holdings=book["holdings"], stats=book["statistics"],
                           columns=HOLDING_COLUMNS, mode=_mode(), problem=problem)


def _holding_text(delta: dt.timedelta) -> str:
    """A holding time as "2d 03:04:05" (days only when there are some)."""
    seconds = max(int(delta.total_seconds()), 0)
    days, seconds = divmod(seconds, 86400)
    text = f"{seconds // 3600:02d}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"
    return f"{days}d {text}" if days else text


def _round_trip_rows(days: int | None) -> list[dict]:
    """The signed-in user's analyze-mode round trips of the period, newest exit first, as rows."""
    since = shapes.day_start(utcnow() - dt.timedelta(days=(days or 1) - 1))
    return [{"symbol": t.symbol, "exchange": t.exchange, "product": t.product, "side": t.side,
             "quantity": int(t.quantity), "entry_time": shapes.fmt_time(t.entry_time),
             "entry_price": shapes.num(t.entry_price), "exit_time": shapes.fmt_time(t.exit_time),
             "exit_price": shapes.num(t.exit_price), "gross_pnl": shapes.num(t.gross_pnl),
             "charges": shapes.num(t.charges), "net_pnl": shapes.num(t.net_pnl),
             "holding": _holding_text(t.holding), "exit_reason": t.exit_reason, "trip": t}
            for t in round_trips.round_trips(current_user.id, since)]


def _days_arg() -> int | None:
    """?days=1|7|30|90; None (the current trading day) when absent or anything else."""
    days = request.args.get("days", type=int)
    return days if days in ROUND_TRIP_DAYS else None


@orders_bp.get("/roundtrips")
@login_required
def roundtrips():
    days = _days_arg()
    analyze = venues.is_analyze(current_user.id)
    rows = _round_trip_rows(days) if analyze else []
    stats = round_trips.statistics([r["trip"] for r in rows])
    return render_template("orders/roundtrips.html", trips=rows, stats=stats, columns=ROUND_TRIP_COLUMNS,
                           days=days, day_choices=ROUND_TRIP_DAYS, analyze=analyze,
                           mode=Mode.ANALYZE.value if analyze else Mode.LIVE.value)


# -- CSV exports -----------------------------------------------------------------------------------------
@orders_bp.get("/orderbook.csv")
@login_required
def orderbook_csv():
    return csv_response("orderbook", ORDER_COLUMNS, _csv_book(books.orderbook)["orders"])


@orders_bp.get("/tradebook.csv")
@login_required
def tradebook_csv():
    return csv_response("tradebook", _columns(TRADE_COLUMNS, TRADE_COLUMNS_ANALYZE, _mode()),
                        _csv_book(books.tradebook))


@orders_bp.get("/positions.csv")
@login_required
def positions_csv():
    return csv_response("positions", _columns(POSITION_COLUMNS, POSITION_COLUMNS_ANALYZE, _mode()),
                        _csv_book(books.positionbook))


@orders_bp.get("/holdings.csv")
@login_required
def holdings_csv():
    return csv_response("holdings", HOLDING_COLUMNS, _csv_book(books.holdings)["holdings"])


@orders_bp.get("/roundtrips.csv")
@login_required
def roundtrips_csv():
    rows = _round_trip_rows(_days_arg()) if venues.is_analyze(current_user.id) else []
    return csv_response("roundtrips", ROUND_TRIP_COLUMNS, rows)


# -- actions ---------------------------------------------------------------------------------------------
@orders_bp.post("/orderbook/<orderid>/cancel")
@role_required(*TRADERS)
def cancel(orderid: str):
    _require_form(ActionForm())

    def act() -> str:
        done = orders.cancel_order(_venue(orderid), orderid)
        log.info("user %s cancelled order %s from the web", current_user.id, done)
        return f"Order {done} cancelled."

    return _action_result(act, "orders.orderbook")


@orders_bp.post("/orderbook/cancel-all")
@role_required(*TRADERS)
def cancel_all():
    _require_form(ActionForm())

    def act() -> str:
        cancelled, failed = orders.cancel_all_orders(_venue())
        if failed:
            flash(f"{len(failed)} orders could not be cancelled: {', '.join(failed)}", "error")
        return f"Cancelled {len(cancelled)} open orders." if cancelled else "There were no open orders to cancel."

    return _action_result(act, "orders.orderbook")


@orders_bp.route("/orderbook/<orderid>/modify", methods=["GET", "POST"])
@role_required(*TRADERS)
def modify(orderid: str):
    try:
        order = orders.order_status(_venue(orderid), orderid)
    except OrderError as exc:
        if exc.status == 404:
            abort(404, exc.message)
        flash(exc.message, "error")
        return redirect(url_for("orders.orderbook"), code=303)
    if order["order_status"] not in OPEN_STATUSES:
        flash(f"Order {orderid} cannot be modified: it is {order['order_status']}.", "error")
        return redirect(url_for("orders.orderbook"), code=303)
    form = ModifyForm(data={"quantity": order["quantity"], "price": order["price"],
                            "trigger_price": order["trigger_price"]})
    status = 200
    if form.validate_on_submit():
        inp = OrderInput(strategy=WEB_STRATEGY, exchange=order["exchange"], symbol=order["symbol"],
                         action=order["action"], quantity=form.quantity.data, pricetype=order["pricetype"],
                         product=order["product"], price=form.price.data, trigger_price=form.trigger_price.data)
        try:
            placed = orders.modify_order(_venue(orderid), orderid, inp)
        except OrderError as exc:
            if exc.status == 404:
                abort(404, exc.message)
            flash(exc.message, "error")
            status = 400
        else:
            flash(f"Order {placed.orderid} modified: it is {placed.status}.", "success")
            return redirect(url_for("orders.orderbook"), code=303)
    elif form.is_submitted():
        status = 400
    return render_template("orders/modify.html", order=order, form=form), status


@orders_bp.post("/positions/close")
@role_required(*TRADERS)
def close_position():
    form = ClosePositionForm()
    _require_form(form)
    symbol, exchange, product = form.symbol.data, form.exchange.data, form.product.data

    def act() -> str:
        # A smart order to a position of 0: at most one closing order, however many clicks or tabs.
        inp = OrderInput(strategy=WEB_STRATEGY, exchange=exchange, symbol=symbol, action=Action.SELL.value,
                         quantity=0, pricetype=PriceType.MARKET.value, product=product)
        placed = orders.place_smart_order(_venue(), inp, 0)
        if placed is None:
            return f"{exchange}:{symbol} ({product}) was already flat."
        return f"Closing {exchange}:{symbol} ({product}): order {placed.orderid} is {placed.status}."

    return _action_result(act, "orders.positions")


@orders_bp.post("/positions/close-all")
@role_required(*TRADERS)
def close_all():
    _require_form(ActionForm())

    def act() -> str:
        count = orders.close_all_positions(_venue(), strategy=WEB_STRATEGY)
        return f"Placed {count} orders to close every open position." if count else "There were no open positions."

    return _action_result(act, "orders.positions")
