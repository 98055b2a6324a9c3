"""`/apikey`: create (shown once, on the page the creation redirects to: blueprints.reveal), list and revoke the
current user's API keys."""

from __future__ import annotations

import datetime as dt

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_login import current_user, login_required
from flask_wtf import FlaskForm
from wtforms import IntegerField, SelectMultipleField, StringField, widgets
from wtforms.validators import DataRequired, Length, NumberRange, Optional

from blueprints import reveal
from database.repository import NotFoundError, ValidationError
from database.types import utcnow
from extensions import client_address
from services.accounts import api_keys

apikey_bp = Blueprint("apikey", __name__)


class CreateKeyForm(FlaskForm):
    name = StringField("Name", validators=[DataRequired(), Length(max=64)])
    scopes = SelectMultipleField(
        "Scopes", choices=list(api_keys.SCOPES), default=list(api_keys.SCOPES),
        option_widget=widgets.CheckboxInput(), widget=widgets.ListWidget(prefix_label=False),
    )
    expires_in_days = IntegerField("Expires after (days, empty = never)", validators=[Optional(),
                                                                                      NumberRange(1, 3650)])


class RevokeForm(FlaskForm):
    pass


@apikey_bp.route("/apikey", methods=["GET", "POST"])
@login_required
def index():
    """GET: the keys, and a key just created (once). POST: create a key, then redirect (POST/redirect/GET), so a
    reload of the page shows the list again instead of creating a second key; a refused form answers 400 and
    creates nothing."""
    form = CreateKeyForm()
    status = 200
    if form.validate_on_submit():
        expires_at = utcnow() + dt.timedelta(days=form.expires_in_days.data) if form.expires_in_days.data else None
        try:
            row, new_key = api_keys.create_key(current_user, form.name.data, form.scopes.data, expires_at,
                                               ip=client_address())
        except ValidationError as exc:
            flash(str(exc), "error")
            status = 400
        else:
            reveal.keep("apikey", new_key, name=row.name)
            flash(f"API key “{row.name}” created. Copy it now: it is not shown again.", "success")
            return redirect(url_for("apikey.index"))
    elif request.method == "POST":
        status = 400
    kept = reveal.take("apikey") if request.method == "GET" else None
    new_key, shown = kept if kept else (None, {})
    response = render_template("apikey/index.html", form=form, revoke_form=RevokeForm(),
                               new_key=new_key, new_key_name=shown.get("name"),
                               keys=api_keys.list_keys(current_user.id), now=utcnow(), scopes=api_keys.SCOPES)
    # The page may hold a key shown once: keep it out of every cache.
    return response, status, {"Cache-Control": "no-store"}


@apikey_bp.post("/apikey/<int:key_id>/revoke")
@login_required
def revoke(key_id: int):
    if not RevokeForm().validate_on_submit():
        abort(400)
    try:
        row = api_keys.revoke_key(current_user, key_id, ip=client_address())
    except NotFoundError:
        abort(404)
    flash(f"API key “{row.name}” revoked. Calls with it are refused from now on.", "success")
    return redirect(url_for("apikey.index"))
