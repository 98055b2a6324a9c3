"""Two-factor sign-in pages: a blueprint nested in blueprints.auth's (endpoints `auth.two_factor.*`).

- `/auth/two-factor`: the code asked for after the password, when the account has two-factor sign-in.
  The password step (blueprints.auth `login`) hands over to `password_accepted`, which either asks for
  the code (the account's id and session stamp wait in the session, PENDING_TTL at most; nobody is
  signed in until the code is good) or signs in at once.
- `/auth/two-factor/setup`: enrolment (a QR code as inline SVG, drawn here by segno: nothing is loaded
  from elsewhere), the recovery codes shown once, and, once on, the form that turns it off (password
  and code).
- REQUIRE_2FA_FOR_ADMINS: a signed-in admin without two-factor sign-in is sent to enrolment by every
  page until it is done (`_admins_enrol_first`); a session that passed the check remembers it
  (TFA_OK), so the database is read once per session, not per page.

services.accounts.two_factor does the work (codes, lockout, audit); this module is HTTP only. It signs
users in through blueprints.auth's functions, which auth hands over with `pages(SignIn(...))` when it
nests this blueprint: auth imports this module, never the reverse (no import cycle).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import segno
from flask import Blueprint, current_app, flash, redirect, render_template, request, session, url_for
from flask_login import current_user, login_required
from flask_wtf import FlaskForm
from markupsafe import Markup
from wtforms import HiddenField, PasswordField, StringField
from wtforms.validators import DataRequired, Length

from database.types import utcnow
from services.accounts import login_guard, two_factor
from services.accounts import users as accounts
from services.accounts.two_factor import TwoFactorError

two_factor_bp = Blueprint("two_factor", __name__, url_prefix="/auth/two-factor")

PENDING = "tfa_pending"  # session key: {"uid", "stamp", "at", "next"} between the password and the code
TFA_OK = "tfa_ok"  # session key: this session passed the two-factor requirement
# Pages an admin who must enrol can still reach.
_OPEN_ENDPOINTS = {"static", "auth.logout", "auth.login", "auth.two_factor.setup", "auth.two_factor.code"}
_NO_STORE = {"Cache-Control": "no-store"}


class CodeForm(FlaskForm):
    code = StringField("Code from your authenticator app, or a recovery code",
                       validators=[DataRequired(), Length(max=64)])


class EnrolForm(FlaskForm):
    token = HiddenField(validators=[DataRequired(), Length(max=2000)])
    code = StringField("The 6-digit code the app shows", validators=[DataRequired(), Length(max=16)])


class DisableForm(FlaskForm):
    password = PasswordField("Password", validators=[DataRequired(), Length(max=accounts.MAX_PASSWORD_LENGTH)])
    code = StringField("Code from your authenticator app, or a recovery code",
                       validators=[DataRequired(), Length(max=64)])


@dataclass(frozen=True)
class SignIn:
    """blueprints.auth's ways to sign a user in, which these pages use."""

    start_session: Callable[[Any], None]  # a fresh signed-in session for a user
    resume_broker_session: Callable[[Any], None]
    client_address: Callable[[], str]  # the address sign-in limits and records go by


_sign_in: SignIn | None = None


def pages(sign_in: SignIn) -> Blueprint:
    """This module's blueprint, for blueprints.auth to nest, with its sign-in functions."""
    global _sign_in
    _sign_in = sign_in
    return two_factor_bp


def _hooks() -> SignIn:
    if _sign_in is None:
        raise RuntimeError("blueprints.two_factor is used before blueprints.auth nested it (pages())")
    return _sign_in


# -- the hand-over from the password step ------------------------------------------------------------------
def password_accepted(user, next_url: str | None):
    """The answer to a sign-in whose password was accepted: the code's page when the account has
    two-factor sign-in, else the signed-in session."""
    if not two_factor.is_enrolled(user):
        return _signed_in(user, next_url, verified=False)
    session.clear()  # nothing from before carries over; nobody is signed in yet
    session[PENDING] = {"uid": user.id, "stamp": accounts.session_stamp(user),
                        "at": two_factor.utcnow().isoformat(), "next": next_url}
    return redirect(url_for("auth.two_factor.code"))


def _signed_in(user, next_url: str | None, *, verified: bool):
    hooks = _hooks()
    hooks.start_session(user)
    if verified:
        session[TFA_OK] = True
    hooks.resume_broker_session(user)
    if _must_enrol(user.role, verified=verified):
        flash("Administrators sign in with a second factor here: set up two-factor sign-in to continue.", "warning")
        return redirect(url_for("auth.two_factor.setup"))
    return redirect(next_url or url_for("auth.home"))


def _must_enrol(role, *, verified: bool) -> bool:
    return bool(current_app.config.get("REQUIRE_2FA_FOR_ADMINS")) and role == "admin" and not verified


@two_factor_bp.before_app_request
def _admins_enrol_first():
    if not current_app.config.get("REQUIRE_2FA_FOR_ADMINS") or "_user_id" not in session or session.get(TFA_OK):
        return None
    if request.endpoint in _OPEN_ENDPOINTS or not current_user.is_authenticated or not current_user.is_admin:
        return None
    if two_factor.is_enrolled(current_user.id):
        session[TFA_OK] = True
        return None
    flash("Administrators sign in with a second factor here: set up two-factor sign-in to continue.", "warning")
    return redirect(url_for("auth.two_factor.setup"))


def _over_address_limit():
    """The 429 page when the client's address is over LOGIN_RATE_LIMIT: a code or a password given here
    is a sign-in attempt like any other (counted with them, by services.accounts.login_guard)."""
    retry_at = login_guard.admit_address(_hooks().client_address(), current_app.config["LOGIN_RATE_LIMIT"])
    if retry_at is None:
        return None
    retry_in = max(1, math.ceil((retry_at - utcnow()).total_seconds()))
    page = render_template("auth/error.html", code=429, title="Too many sign-in attempts",
                           message=f"There were too many sign-in attempts from your address. Try again in {retry_in} "
                                   "seconds.")
    return page, 429, {"Retry-After": str(retry_in)}


# -- the code at sign-in ---------------------------------------------------------------------------------------
def _pending_user():
    """The account waiting for its code, or None (nothing pending, expired, or changed since)."""
    pending = session.get(PENDING)
    if not isinstance(pending, dict) or two_factor.pending_expired(pending.get("at")):
        return None
    try:
        user = accounts.get_user(int(pending["uid"]))
    except (accounts.UserNotFoundError, KeyError, TypeError, ValueError):
        return None
    if not user.is_active or pending.get("stamp") != accounts.session_stamp(user):
        return None  # disabled, or given a new password, since the password step
    return user


@two_factor_bp.route("", methods=["GET", "POST"])
def code():
    user = _pending_user()
    if user is None:
        had_pending = session.pop(PENDING, None) is not None
        if had_pending:
            flash("The sign-in waited too long for its code: sign in again.", "info")
        return redirect(url_for("auth.login"))
    form = CodeForm()
    status = 200
    if request.method == "POST" and (refused := _over_address_limit()) is not None:
        return refused
    if form.validate_on_submit():
        next_url = session[PENDING].get("next")  # checked by the password step (auth._safe_next)
        try:
            verified = two_factor.verify(user.id, form.code.data, ip=_hooks().client_address(),
                                         user_agent=request.user_agent.string)
        except TwoFactorError as exc:
            flash(str(exc), "error")
            status = 400
        else:
            answer = _signed_in(verified.user, next_url, verified=True)  # a new session: flash after it
            if verified.recovery_left is not None:
                flash(f"Recovery code used: {verified.recovery_left} left. Turn two-factor sign-in off and on again "
                      "for a new set.", "warning")
            return answer
    elif request.method == "POST":
        status = 400
    form.code.data = ""
    return render_template("auth/two_factor.html", form=form), status, _NO_STORE


# -- enrolment and turning it off ------------------------------------------------------------------------------
def _qr_svg(uri: str) -> Markup:
    # segno draws paths from the URI's bits: no text of the URI reaches the markup.
    return Markup(segno.make(uri, error="m").svg_inline(scale=5, dark="#000", light="#fff",  # noqa: S704
                                                         title="QR code for your authenticator app"))


@two_factor_bp.route("/setup", methods=["GET", "POST"])
@login_required
def setup():
    user = accounts.get_user(current_user.id)
    if two_factor.is_enrolled(user):
        return render_template("auth/two_factor_setup.html", enrolled=True, form=DisableForm(),
                               codes_left=two_factor.recovery_codes_left(user)), 200, _NO_STORE
    form = EnrolForm()
    status, enrolment = 200, None
    if form.validate_on_submit():
        try:
            codes = two_factor.confirm_enrolment(user, form.token.data, form.code.data, ip=_hooks().client_address())
        except TwoFactorError as exc:
            flash(str(exc), "error")
            status = 400
            try:
                enrolment = two_factor.resume_enrolment(user, form.token.data)
            except TwoFactorError:
                enrolment = None  # expired or altered: a new secret below
        else:
            session[TFA_OK] = True
            return render_template("auth/two_factor_codes.html", codes=codes), 200, _NO_STORE
    elif request.method == "POST":
        status = 400
    enrolment = enrolment or two_factor.start_enrolment(user)
    form.token.data, form.code.data = enrolment.token, ""
    return render_template("auth/two_factor_setup.html", enrolled=False, form=form, enrolment=enrolment,
                           qr=_qr_svg(enrolment.uri)), status, _NO_STORE


@two_factor_bp.post("/disable")
@login_required
def disable():
    if (refused := _over_address_limit()) is not None:  # it checks a password
        return refused
    form = DisableForm()
    if not form.validate_on_submit():
        flash("Enter your password and a code.", "error")
        return redirect(url_for("auth.two_factor.setup"))
    try:
        two_factor.disable(current_user.id, form.password.data, form.code.data, ip=_hooks().client_address(),
                           user_agent=request.user_agent.string)
    except TwoFactorError as exc:
        flash(str(exc), "error")
    else:
        session.pop(TFA_OK, None)
        flash("Two-factor sign-in is off: the password alone signs you in.", "success")
    return redirect(url_for("auth.two_factor.setup"))
