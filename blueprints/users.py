"""`/users`: user management for admins: list, add, disable/enable, reset a password, change a role."""

from __future__ import annotations

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_login import current_user
from flask_wtf import FlaskForm
from werkzeug.exceptions import HTTPException
from wtforms import PasswordField, SelectChoice, SelectField, StringField
from wtforms.validators import DataRequired, EqualTo, Length

from blueprints import access
from blueprints.auth import PASSWORD_LENGTH, current_session_token, render_error, start_session
from database.enums import Role
from database.repository import ValidationError
from extensions import client_address
from services.accounts import users as accounts
from services.accounts.users import AccountError, Actor, UserNotFoundError

users_bp = Blueprint("users", __name__, url_prefix="/users")

ROLE_CHOICES = [SelectChoice(r.value, r.value.capitalize()) for r in Role]


@users_bp.before_request
def _admins_only():
    return access.check_role({Role.ADMIN})


@users_bp.errorhandler(403)
def _forbidden(_exc: HTTPException):
    return render_error(403, "Not allowed", "Only an administrator can manage users.")


@users_bp.errorhandler(404)
def _not_found(_exc: HTTPException):
    return render_error(404, "Not found", "There is no such user.")


def _actor() -> Actor:
    return Actor(current_user.username, current_user.id, client_address())


# -- forms ------------------------------------------------------------------------------------------------
class NewUserForm(FlaskForm):
    username = StringField("Username", validators=[DataRequired(), Length(max=64)])
    role = SelectField("Role", choices=ROLE_CHOICES, default=Role.TRADER.value)
    password = PasswordField("Password", validators=[
        DataRequired(), PASSWORD_LENGTH])
    confirm = PasswordField("Repeat the password", validators=[
        DataRequired(), EqualTo("password", message="The passwords do not match.")])


class PasswordForm(FlaskForm):
    password = PasswordField("New password", validators=[
        DataRequired(), PASSWORD_LENGTH])
    confirm = PasswordField("Repeat the password", validators=[
        DataRequired(), EqualTo("password", message="The passwords do not match.")])


class RoleForm(FlaskForm):
    role = SelectField("Role", choices=ROLE_CHOICES)


class ActionForm(FlaskForm):
    """A button that posts: only the CSRF token."""


# -- views ---------------------------------------------------------------------------------------------------
@users_bp.get("/")
def index():
    try:
        page = accounts.list_users(after=request.args.get("after"))
    except ValidationError:
        return redirect(url_for("users.index"))
    return render_template("users/index.html", page=page, action_form=ActionForm(), role_form=RoleForm())


@users_bp.route("/new", methods=["GET", "POST"])
def create():
    form = NewUserForm()
    if form.validate_on_submit():
        try:
            user = accounts.create_user(form.username.data, form.password.data, form.role.data, actor=_actor())
        except AccountError as exc:
            flash(str(exc), "error")
        else:
            flash(f"User {user.username} created ({user.role}).", "success")
            return redirect(url_for("users.index"))
    return render_template("users/new.html", form=form)


def _get_or_404(user_id: int):
    try:
        return accounts.get_user(user_id)
    except UserNotFoundError:
        abort(404)


@users_bp.post("/<int:user_id>/disable")
def disable(user_id: int):
    return _set_active(user_id, False)


@users_bp.post("/<int:user_id>/enable")
def enable(user_id: int):
    return _set_active(user_id, True)


def _set_active(user_id: int, active: bool):
    _get_or_404(user_id)
    try:
        user = accounts.set_active(user_id, active, actor=_actor())
    except AccountError as exc:
        flash(str(exc), "error")
    else:
        flash(f"User {user.username} {'enabled' if active else 'disabled'}.", "success")
    return redirect(url_for("users.index"))


@users_bp.post("/<int:user_id>/role")
def change_role(user_id: int):
    _get_or_404(user_id)
    form = RoleForm()
    if not form.validate_on_submit():
        flash("Choose a valid role.", "error")
        return redirect(url_for("users.index"))
    try:
        user = accounts.change_role(user_id, form.role.data, actor=_actor())
    except AccountError as exc:
        flash(str(exc), "error")
    else:
        flash(f"User {user.username} is now {user.role}.", "success")
    return redirect(url_for("users.index"))


@users_bp.route("/<int:user_id>/password", methods=["GET", "POST"])
def reset_password(user_id: int):
    user = _get_or_404(user_id)
    form = PasswordForm()
    if form.validate_on_submit():
        try:
            own = user_id == current_user.id  # your own new password: your other sessions end, not this one
            user = accounts.reset_password(user_id, form.password.data, actor=_actor(),
                                           keep_session=current_session_token() if own else None)
        except AccountError as exc:
            flash(str(exc), "error")
        else:
            if user.id == current_user.id:
                start_session(user, keep_login_time=True)  # a new password ends every session but this one
            flash(f"Password of {user.username} reset; their open sessions have ended.", "success")
            return redirect(url_for("users.index"))
    return render_template("users/password.html", form=form, user=user)
