"""`/strategy`: the signed-in user's webhook strategies and their symbol mappings.

Everyone signed in sees their own strategies; admins and traders change them (viewers only look).
A strategy of another user answers 404, like one that does not exist. services.strategies.strategy does the
work (and the audit trail); this module is HTTP only.

The webhook URL is shown once, like an API key: on the page the creation of the strategy and the rotation
of its URL redirect to (POST/redirect/GET: blueprints.reveal carries it to that one GET; the database keeps
only its hash). Afterwards the page shows its first characters only. Webhook URLs start with PUBLIC_URL (the
address TradingView reaches), else with the address the page was opened at, with a warning when that is a
loopback address no alert service can reach.

"Send a test alert" posts the strategy's sample alert through the webhook's own path, in analyze mode, and
shows the outcome (services.strategies.webhooks.send_test_alert).
"""

from __future__ import annotations

import ipaddress
import json
from urllib.parse import urlsplit

from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user, login_required
from flask_wtf import FlaskForm
from werkzeug.exceptions import HTTPException
from wtforms import BooleanField, IntegerField, SelectChoice, SelectField, StringField, TimeField
from wtforms.validators import DataRequired, InputRequired, Length, NumberRange, Optional

from blueprints import reveal
from blueprints.access import role_required
from blueprints.auth import render_error
from database.enums import Platform, Product, StrategyMode
from database.strategy_db import Strategy
from extensions import client_address
from services.accounts.users import TRADE_ROLES, Actor
from services.market import symbol_index
from services.strategies import strategy as strategies
from services.strategies import webhooks
from services.strategies.strategy import StrategyError, StrategyInput, StrategyNotFoundError
from vocabulary import TRADABLE_EXCHANGES

strategy_bp = Blueprint("strategy", __name__, url_prefix="/strategy")

PLATFORM_LABELS = {"tradingview": "TradingView", "chartink": "Chartink", "amibroker": "Amibroker",
                   "python": "Python"}
MODE_LABELS = {"LONG": "LONG (buy to enter, sell to exit)", "SHORT": "SHORT (sell to enter, buy to exit)",
               "BOTH": "BOTH (long and short)"}
editors = role_required(*TRADE_ROLES)


@strategy_bp.errorhandler(403)
def _forbidden(_exc: HTTPException):
    return render_error(403, "Not allowed", "Viewers can look at strategies but not change them.")


@strategy_bp.errorhandler(404)
def _not_found(_exc: HTTPException):
    return render_error(404, "Not found", "There is no such strategy.")


# -- forms --------------------------------------------------------------------------------------------------------
class StrategyForm(FlaskForm):
    name = StringField("Name", validators=[DataRequired(), Length(min=3, max=100)])
    platform = SelectField("Platform", choices=[SelectChoice(p.value, PLATFORM_LABELS[p.value]) for p in Platform],
                           default=Platform.TRADINGVIEW.value)
    mode = SelectField("Mode", choices=[SelectChoice(m.value, MODE_LABELS[m.value]) for m in StrategyMode],
                       default=StrategyMode.LONG.value)
    is_intraday = BooleanField("Intraday (trade only between the times below, exchange time)", default=True)
    start_time = TimeField("Start", format="%H:%M", validators=[Optional()], default=strategies.DEFAULT_START)
    end_time = TimeField("End (no new entries after)", format="%H:%M", validators=[Optional()],
                         default=strategies.DEFAULT_END)
    squareoff_time = TimeField("Square-off (no orders after)", format="%H:%M", validators=[Optional()],
                               default=strategies.DEFAULT_SQUAREOFF)

    def to_input(self) -> StrategyInput:
        return StrategyInput(name=self.name.data or "", platform=self.platform.data, mode=self.mode.data,
                             is_intraday=bool(self.is_intraday.data), start_time=self.start_time.data,
                             end_time=self.end_time.data, squareoff_time=self.squareoff_time.data)


class MappingForm(FlaskForm):
    symbol = StringField("Symbol", validators=[DataRequired(), Length(max=64)])
    exchange = SelectField("Exchange", choices=[SelectChoice(e, e) for e in TRADABLE_EXCHANGES],
                           default="NSE")
    quantity = IntegerField("Quantity", validators=[InputRequired(), NumberRange(1, strategies.MAX_QUANTITY)],
                            default=1)
    product = SelectField("Product", choices=[SelectChoice(p.value, p.value) for p in Product],
                          default=Product.MIS.value)


class ActionForm(FlaskForm):
    """CSRF only: activate, deactivate, delete, remove a mapping, rotate the webhook."""


# -- helpers ---------------------------------------------------------------------------------------------------------
def _actor() -> Actor:
    return Actor(current_user.username, current_user.id, client_address())


def _own(strategy_id: int) -> Strategy:
    try:
        return strategies.get_strategy(current_user.id, strategy_id)
    except StrategyNotFoundError:
        abort(404)


def _form_error(form: FlaskForm, exc: StrategyError) -> None:
    target = getattr(form, exc.field, None) if exc.field else None
    if target is not None:
        target.errors = [*target.errors, exc.message] if isinstance(target.errors, list) else [exc.message]
    else:
        flash(exc.message, "error")


def _check_action_form() -> None:
    if not ActionForm().validate_on_submit():
        abort(400)


def public_base() -> str:
    """Where alert services reach this server: PUBLIC_URL, else the address this page was opened at."""
    return current_app.config.get("PUBLIC_URL") or request.host_url.rstrip("/")


LOOPBACK_NAMES = ("localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback")


def loopback_host(base: str) -> str | None:
    """The host of `base` when it is a loopback address (127.0.0.1, ::1, localhost), which no alert service
    on the internet can reach; else None."""
    host = urlsplit(base).hostname or ""
    if host in LOOPBACK_NAMES or host.endswith(".localhost"):
        return host
    try:
        return host if ipaddress.ip_address(host).is_loopback else None
    except ValueError:
        return None


def webhook_url(strategy: Strategy, webhook_id: str | None = None) -> str:
    """The strategy's webhook URL (on PUBLIC_URL): whole with `webhook_id` (just created or rotated), else
    masked to the id's first characters (all that is known of it)."""
    endpoint = "webhook.chartink_webhook" if strategy.platform == Platform.CHARTINK else "webhook.strategy_webhook"
    if webhook_id:
        return public_base() + url_for(endpoint, webhook_id=webhook_id)
    return public_base() + url_for(endpoint, webhook_id=strategy.webhook_prefix) + "…"


def alert_json(strategy: Strategy) -> str:
    """The alert message to paste into TradingView (or send from Amibroker or a script)."""
    body = {"symbol": "{{ticker}}", "action": "{{strategy.order.action}}"}
    if strategy.mode == StrategyMode.BOTH:
        body["position_size"] = "{{strategy.position_size}}"
    return json.dumps(body, indent=2)


def _chartink_example(strategy: Strategy, webhook_id: str | None) -> str:
    return json.dumps({"stocks": "RELIANCE,SBIN", "trigger_prices": "2950.5,812.3", "triggered_at": "10:15 am",
                       "scan_name": "Breakout scan", "scan_url": "breakout-scan", "alert_name": "Breakout BUY",
                       "webhook_url": webhook_url(strategy, webhook_id)}, indent=2, ensure_ascii=False)


def _view_page(strategy: Strategy, *, mapping_form: MappingForm | None = None, status: int = 200,
               new_webhook_id: str | None = None):
    """The strategy's page; with `new_webhook_id` (creation, rotation) it shows the whole URL, this once."""
    sample = webhooks.sample_alert(strategy)
    return render_template(
        "strategy/view.html", strategy=strategy, mappings=strategies.mappings(strategy.id),
        signals=strategies.recent_signals(strategy.id), mapping_form=mapping_form or MappingForm(formdata=None),
        action_form=ActionForm(), webhook_url=webhook_url(strategy, new_webhook_id), new_webhook_id=new_webhook_id,
        alert_json=alert_json(strategy),
        chartink_example=_chartink_example(strategy, new_webhook_id) if strategy.platform == Platform.CHARTINK
        else None,
        can_edit=current_user.can_trade, platform_labels=PLATFORM_LABELS, symbols_loaded=symbol_index.count() > 0,
        host_url=public_base(), loopback=loopback_host(public_base()), public_url_set=bool(
            current_app.config.get("PUBLIC_URL")),
        test_alert=json.dumps(sample, indent=2, ensure_ascii=False) if sample else None,
    ), status, {"Cache-Control": "no-store"}  # the webhook id is a credential


# -- pages -------------------------------------------------------------------------------------------------------------
@strategy_bp.get("/")
@strategy_bp.get("")
@login_required
def index():
    return render_template("strategy/index.html", strategies=strategies.list_strategies(current_user.id),
                           can_edit=current_user.can_trade, platform_labels=PLATFORM_LABELS)


@strategy_bp.route("/new", methods=["GET", "POST"])
@editors
def create():
    form = StrategyForm()
    # The trading hours default to the session of the exchange the strategy trades (?hours=MCX).
    hours_of = request.args.get("hours", "NSE")
    hours_of = hours_of if hours_of in TRADABLE_EXCHANGES else "NSE"
    if request.method == "GET":
        form.start_time.data, form.end_time.data, form.squareoff_time.data = strategies.session_hours(hours_of)
    status = 200
    if form.validate_on_submit():
        try:
            strategy, webhook_id = strategies.create_strategy(_actor(), form.to_input())
        except StrategyError as exc:
            _form_error(form, exc)
            status = 400
        else:
            reveal.keep("webhook", webhook_id, strategy_id=strategy.id)
            flash(f"Strategy “{strategy.name}” created. Copy its webhook URL now: it is not shown again. "
                  "Then map the symbols it trades below.", "success")
            return redirect(url_for("strategy.view", strategy_id=strategy.id))
    elif request.method == "POST":
        status = 400
    return render_template("strategy/form.html", form=form, strategy=None, hours_of=hours_of,
                           hours_choices=TRADABLE_EXCHANGES), status


@strategy_bp.get("/<int:strategy_id>")
@login_required
def view(strategy_id: int):
    strategy = _own(strategy_id)
    shown = reveal.take("webhook", strategy_id=strategy.id)
    return _view_page(strategy, new_webhook_id=shown[0] if shown else None)


@strategy_bp.route("/<int:strategy_id>/edit", methods=["GET", "POST"])
@editors
def edit(strategy_id: int):
    strategy = _own(strategy_id)
    form = StrategyForm(obj=strategy if request.method == "GET" else None)
    if request.method == "GET":
        form.platform.data, form.mode.data = str(strategy.platform), str(strategy.mode)
        if not strategy.is_intraday:
            form.start_time.data = strategies.DEFAULT_START
            form.end_time.data = strategies.DEFAULT_END
            form.squareoff_time.data = strategies.DEFAULT_SQUAREOFF
    status = 200
    if form.validate_on_submit():
        try:
            strategies.update_strategy(_actor(), strategy_id, form.to_input())
        except StrategyNotFoundError:
            abort(404)
        except StrategyError as exc:
            _form_error(form, exc)
            status = 400
        else:
            flash("Strategy saved.", "success")
            return redirect(url_for("strategy.view", strategy_id=strategy_id))
    elif request.method == "POST":
        status = 400
    return render_template("strategy/form.html", form=form, strategy=strategy), status


@strategy_bp.post("/<int:strategy_id>/activate")
@editors
def activate(strategy_id: int):
    return _set_active(strategy_id, True)


@strategy_bp.post("/<int:strategy_id>/deactivate")
@editors
def deactivate(strategy_id: int):
    return _set_active(strategy_id, False)


def _set_active(strategy_id: int, active: bool):
    _check_action_form()
    try:
        strategy = strategies.set_active(_actor(), strategy_id, active)
    except StrategyNotFoundError:
        abort(404)
    flash(f"Strategy “{strategy.name}” {'activated' if active else 'deactivated'}.", "success")
    return redirect(url_for("strategy.view", strategy_id=strategy_id))


@strategy_bp.post("/<int:strategy_id>/rotate")
@editors
def rotate(strategy_id: int):
    _check_action_form()
    try:
        strategy, webhook_id = strategies.rotate_webhook(_actor(), strategy_id)
    except StrategyNotFoundError:
        abort(404)
    reveal.keep("webhook", webhook_id, strategy_id=strategy.id)
    flash("New webhook URL generated: the old one no longer works. Copy this one now (it is not shown again) "
          "and update your alerts.", "warning")
    return redirect(url_for("strategy.view", strategy_id=strategy_id))


@strategy_bp.route("/<int:strategy_id>/delete", methods=["GET", "POST"])
@editors
def delete(strategy_id: int):
    strategy = _own(strategy_id)
    if request.method == "GET":
        return render_template("strategy/delete.html", strategy=strategy, action_form=ActionForm(),
                               mapping_count=len(strategies.mappings(strategy.id)))
    _check_action_form()
    try:
        name = strategies.delete_strategy(_actor(), strategy_id)
    except StrategyNotFoundError:
        abort(404)
    flash(f"Strategy “{name}” deleted. Its webhook URL no longer works.", "success")
    return redirect(url_for("strategy.index"))


@strategy_bp.post("/<int:strategy_id>/mappings")
@editors
def add_mapping(strategy_id: int):
    _own(strategy_id)
    form = MappingForm()
    if form.validate_on_submit():
        try:
            mapping = strategies.add_mapping(_actor(), strategy_id, form.symbol.data, form.exchange.data,
                                             form.quantity.data, form.product.data)
        except StrategyNotFoundError:
            abort(404)
        except StrategyError as exc:
            _form_error(form, exc)
        else:
            flash(f"{mapping.exchange}:{mapping.symbol} added.", "success")
            return redirect(url_for("strategy.view", strategy_id=strategy_id))
    strategy = _own(strategy_id)  # the failed unit of work rolled back: load it again
    return _view_page(strategy, mapping_form=form, status=400)


@strategy_bp.post("/<int:strategy_id>/mappings/<int:mapping_id>/delete")
@editors
def remove_mapping(strategy_id: int, mapping_id: int):
    _check_action_form()
    try:
        removed = strategies.remove_mapping(_actor(), strategy_id, mapping_id)
    except StrategyNotFoundError:
        abort(404)
    flash(f"{removed['exchange']}:{removed['symbol']} removed.", "success")
    return redirect(url_for("strategy.view", strategy_id=strategy_id))


HOURS_HINT = (" A test alert keeps the strategy's hours like a real one: send it during them, or make the strategy "
              "positional (not intraday) while you test.")


@strategy_bp.post("/<int:strategy_id>/test-alert")
@editors
def send_test_alert(strategy_id: int):
    """Send the strategy's sample alert through its webhook's path, in analyze mode; the outcome is flashed on
    the strategy's page (accepted, or the refusal's message)."""
    _check_action_form()
    try:
        sent, reply = webhooks.send_test_alert(current_user.id, strategy_id)
    except StrategyNotFoundError:
        abort(404)
    message = str(reply.body.get("message") or "")
    what = f"{sent.get('action') or sent.get('alert_name')} {sent.get('symbol') or sent.get('stocks')}" if sent else ""
    if reply.status < 400 and reply.body.get("status") == "success":
        orderid = reply.body.get("orderid")
        flash(f"Test alert ({what}, analyze mode) accepted: {message}" + (f" Order {orderid}." if orderid else ""),
              "success")
    else:
        hint = HOURS_HINT if message.startswith("Outside trading hours") else ""
        flash(f"Test alert{f' ({what}, analyze mode)' if what else ''} refused ({reply.status}): {message}{hint}",
              "error")
    return redirect(url_for("strategy.view", strategy_id=strategy_id, _anchor="test-alert"))
