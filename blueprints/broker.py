"""`/broker`: choose and connect a broker, the broker's login callback, and disconnect."""

from __future__ import annotations

import hmac
import logging

from flask import Blueprint, abort, flash, redirect, render_template, request, session, url_for
from flask_login import current_user, login_required
from flask_wtf import FlaskForm

from blueprints.access import role_required
from brokers import BrokerError
from extensions import client_address
from services.accounts import broker_login
from services.accounts.broker_login import BrokerLoginError

log = logging.getLogger("algobridge.broker")

broker_bp = Blueprint("broker", __name__)

STATE_KEY = "broker_login_state"


class ActionForm(FlaskForm):
    pass


@broker_bp.get("/broker")
@login_required
def index():
    broker_login.expire_due(current_user.id)  # ended sessions become visible, with an alert
    return render_template("broker/index.html", choices=broker_login.broker_choices(),
                           active=broker_login.active_session(current_user.id), form=ActionForm())


@broker_bp.post("/broker/connect/<name>")
@role_required("admin", "trader")
def connect(name: str):
    if not ActionForm().validate_on_submit():
        abort(400)
    if name not in {c["name"] for c in broker_login.broker_choices()}:
        abort(404)
    try:
        url, state = broker_login.start_login(current_user, name)
    except BrokerError as exc:
        return _failed(name, broker_login.login_advice(name, exc))
    if url is not None:
        session[STATE_KEY] = {"broker": name, "state": state}
        return redirect(url)
    try:  # a form login (client code, PIN, TOTP...): the submitted fields, never logged
        fields = broker_login.form_values(name, request.form)
    except BrokerLoginError as exc:
        return _failed(name, str(exc))
    return _complete(name, fields)


@broker_bp.get("/<name>/callback")
@role_required("admin", "trader")
def callback(name: str):
    """Where the broker sends the user back. The state must be the one this browser started."""
    expected = session.pop(STATE_KEY, None)
    given = request.args.get("state", "")
    if not expected or expected.get("broker") != name or not hmac.compare_digest(expected["state"], given):
        return _failed(name, "This login link does not belong to a login started here (or it was already used). "
                             "Start again from the Broker page.")
    if request.args.get("status", "success") != "success":
        return _failed(name, f"{name} reports the login did not succeed. Start again from the Broker page.")
    return _complete(name, request.args.to_dict())


def _complete(name: str, args: dict[str, str]):
    try:
        broker_login.complete_login(current_user, name, args, ip=client_address())
    except BrokerLoginError as exc:
        return _failed(name, str(exc))
    flash(f"Connected to {name}.", "success")
    # A redirect, so the one-time request token leaves the address bar and the history.
    return redirect(url_for("broker.index"))


def _failed(name: str, advice: str):
    return render_template("broker/error.html", broker=name, advice=advice), 400


@broker_bp.post("/broker/disconnect")
@role_required("admin", "trader")
def disconnect():
    if not ActionForm().validate_on_submit():
        abort(400)
    n = broker_login.disconnect(current_user, ip=client_address())
    flash("Broker disconnected." if n else "No broker was connected.", "success")
    return redirect(url_for("broker.index"))
