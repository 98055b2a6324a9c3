"""`/risk`: the signed-in account's risk limits (the account, each strategy, each API key), today's state per
mode and scope, the kill switch, and the orders waiting for approval (approve, reject). Traders and admins
change things; viewers read. Every change goes through services.trading.risk / approvals (audited)."""

from __future__ import annotations

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_login import current_user

from blueprints.access import check_role, role_required
from database.enums import Role
from database.risk_db import ACCOUNT, APIKEY, STRATEGY
from extensions import client_address
from services.accounts import api_keys
from services.strategies import strategy as strategies
from services.trading import approvals, risk
from services.trading.risk import COUNT_FIELDS, MONEY_FIELDS, RiskError

risk_bp = Blueprint("risk", __name__, url_prefix="/risk")

FIELDS = MONEY_FIELDS + COUNT_FIELDS
LABELS = {"max_loss": "Max loss for the day", "target": "Target for the day", "trail_trigger": "Trailing lock arms at",
          "trail_gap": "Trailing lock gap", "max_order_value": "Max value per order",
          "max_orders_per_minute": "Max orders per minute", "max_orders_per_day": "Max orders per day",
          "max_open_positions": "Max open positions", "max_order_quantity": "Max quantity per order"}


@risk_bp.before_request
def _signed_in():
    return check_role({Role.ADMIN, Role.TRADER, Role.VIEWER})


def _actor() -> str:
    return current_user.username


def _page(status: int = 200):
    uid = current_user.id
    rows = risk.limit_rows(uid)
    strategy_names = sorted(s.name for s in strategies.list_strategies(uid))
    keys = [(k.id, k.name) for k in api_keys.list_keys(uid) if k.revoked_at is None]
    return render_template("risk/index.html", rows=rows, state=risk.state(uid), fields=FIELDS, labels=LABELS,
                           pending=approvals.pending(uid), recent=approvals.recent(uid, 20),
                           can_trade=current_user.can_trade, strategy_names=strategy_names,
                           keys=keys, ACCOUNT=ACCOUNT, STRATEGY=STRATEGY, APIKEY=APIKEY), status


@risk_bp.get("/", strict_slashes=False)
def index():
    return _page()


@risk_bp.post("/limits")
@role_required("admin", "trader")
def limits():
    form = request.form
    kind = form.get("scope_kind", ACCOUNT)
    scope = form.get("scope", "")
    values = {name: form.get(name) for name in FIELDS}
    values["require_approval"] = form.get("require_approval") in ("on", "1", "true")
    values["approval_ttl_seconds"] = form.get("approval_ttl_seconds")
    try:
        risk.set_limits(current_user.id, kind, scope, values, actor=_actor(), ip=client_address())
    except RiskError as exc:
        flash(str(exc), "error")
        return _page(400)
    flash("Limits saved.", "success")
    return redirect(url_for("risk.index"))


@risk_bp.post("/limits/delete")
@role_required("admin", "trader")
def delete_limits():
    if risk.delete_limits(current_user.id, request.form.get("scope_kind", ""), request.form.get("scope", ""),
                          actor=_actor()):
        flash("Limits removed.", "success")
    else:
        flash("No such limits (or the kill switch is on).", "error")
    return redirect(url_for("risk.index"))


@risk_bp.post("/kill")
@role_required("admin", "trader")
def kill():
    if risk.kill(current_user.id, actor=_actor(), ip=client_address()):
        flash("Kill switch on: open orders cancelled, positions closed, new entries blocked.", "success")
    else:
        flash("Kill switch was already on; open orders cancelled and positions closed again.", "success")
    return redirect(url_for("risk.index"))


@risk_bp.post("/unkill")
@role_required("admin", "trader")
def unkill():
    if risk.unkill(current_user.id, actor=_actor(), ip=client_address()):
        flash("Kill switch off.", "success")
    return redirect(url_for("risk.index"))


def _known_id(approval_id: int) -> None:
    if not 0 < approval_id <= approvals.MAX_ID:  # beyond the column's range: no such approval
        abort(404)


@risk_bp.post("/approvals/<int:approval_id>/approve")
@role_required("admin", "trader")
def approve(approval_id: int):
    _known_id(approval_id)
    try:
        row = approvals.approve(current_user.id, approval_id, _actor())
    except approvals.ApprovalError as exc:
        flash(exc.message, "error")
        return redirect(url_for("risk.index")), 303
    if row.status == "failed":
        flash(f"Approved, but the order was refused: {row.reason}", "error")
    else:
        flash(f"Approved: order {row.orderid or '(nothing to do)'}.", "success")
    return redirect(url_for("risk.index"))


@risk_bp.post("/approvals/<int:approval_id>/reject")
@role_required("admin", "trader")
def reject(approval_id: int):
    _known_id(approval_id)
    try:
        approvals.reject(current_user.id, approval_id, _actor(), request.form.get("reason"))
    except approvals.ApprovalError as exc:
        flash(exc.message, "error")
        return redirect(url_for("risk.index")), 303
    flash("Rejected.", "success")
    return redirect(url_for("risk.index"))
