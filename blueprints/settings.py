"""`/settings`: analyze mode (per user), display time zone, session expiry (read-only), whether
two-factor sign-in is on (a link to its own pages, blueprints.two_factor) and, for admins, log
retention. Every change writes the setting, a config_versions snapshot and the audit trail in one unit
(services.accounts.settings)."""

from __future__ import annotations

from flask import Blueprint, abort, flash, redirect, render_template, url_for
from flask_login import current_user
from flask_wtf import FlaskForm
from wtforms import IntegerField, RadioField, SelectChoice, SelectField
from wtforms.validators import InputRequired, NumberRange

from blueprints.access import check_role
from database.enums import Mode, Role
from database.types import utcnow
from extensions import client_address
from services.accounts import settings as settings_service
from services.accounts import two_factor
from services.accounts import users as accounts
from services.accounts.settings import SettingsError
from services.logs import retention as log_retention
from services.trading import venues

settings_bp = Blueprint("settings", __name__, url_prefix="/settings")

TRADE_ROLES = (Role.ADMIN, Role.TRADER)


class ModeForm(FlaskForm):
    mode = RadioField("Mode", choices=[SelectChoice(Mode.ANALYZE.value, "Analyze (paper trading)"),
                                      SelectChoice(Mode.LIVE.value, "Live (the broker)")],
                      validators=[InputRequired()])


class TimezoneForm(FlaskForm):
    timezone = SelectField("Show times in", validators=[InputRequired()])


class RetentionForm(FlaskForm):
    days = IntegerField("Keep logs for (days, 0 = forever)",
                        validators=[InputRequired(), NumberRange(0, settings_service.MAX_RETENTION_DAYS)])


@settings_bp.before_request
def _signed_in():
    return check_role({Role.ADMIN, Role.TRADER, Role.VIEWER})


def _forms(zone: str) -> tuple[ModeForm, TimezoneForm, RetentionForm]:
    mode = ModeForm(prefix="mode", data={"mode": Mode.ANALYZE if venues.is_analyze(current_user.id) else Mode.LIVE})
    tz = TimezoneForm(prefix="tz", data={"timezone": zone})
    tz.timezone.choices = list(settings_service.timezones())
    retention = RetentionForm(prefix="ret", data={"days": log_retention.retention_days()})
    return mode, tz, retention


def _page(status: int = 200, **forms):
    display_zone = settings_service.user_timezone(current_user.id)
    mode, tz, retention = _forms(display_zone)
    mode, tz, retention = forms.get("mode", mode), forms.get("tz", tz), forms.get("retention", retention)
    expiry_time, zone = accounts.expiry_settings()
    next_expiry = accounts.next_expiry(utcnow(), expiry_time, zone)
    versions = settings_service.recent_versions(10) if current_user.role == Role.ADMIN else []
    return render_template(
        "settings/index.html", mode_form=mode, tz_form=tz, retention_form=retention,
        can_trade=current_user.role in TRADE_ROLES, is_admin=current_user.role == Role.ADMIN,
        analyze=venues.is_analyze(current_user.id), expiry_time=expiry_time.strftime("%H:%M"), expiry_zone=str(zone),
        next_expiry=next_expiry, versions=versions, zone=display_zone,
        two_factor_on=two_factor.is_enrolled(current_user.id),
    ), status


@settings_bp.get("/", strict_slashes=False)
def index():
    return _page()


@settings_bp.post("/mode")
def mode():
    if current_user.role not in TRADE_ROLES:
        abort(403)
    form = ModeForm(prefix="mode")
    if not form.validate_on_submit():
        return _page(400, mode=form)
    analyze = form.mode.data == Mode.ANALYZE
    if settings_service.set_analyze_mode(current_user, analyze, ip=client_address()):
        flash("Analyze mode on: orders go to the paper broker." if analyze
              else "Live mode on: orders go to your broker.", "success")
    return redirect(url_for("settings.index"))


@settings_bp.post("/timezone")
def timezone():
    form = TimezoneForm(prefix="tz")
    form.timezone.choices = list(settings_service.timezones())
    if not form.validate_on_submit():
        return _page(400, tz=form)
    try:
        if settings_service.set_timezone(current_user, form.timezone.data, ip=client_address()):
            flash(f"Times are now shown in {form.timezone.data}.", "success")
    except SettingsError as exc:
        flash(str(exc), "error")
        return _page(400, tz=form)
    return redirect(url_for("settings.index"))


@settings_bp.post("/retention")
def retention():
    if current_user.role != Role.ADMIN:
        abort(403)
    form = RetentionForm(prefix="ret")
    if not form.validate_on_submit():
        return _page(400, retention=form)
    days = form.days.data
    if settings_service.set_retention_days(current_user, days, ip=client_address()):
        flash("Logs are kept forever." if days == 0 else f"Logs older than {days} days are purged daily.", "success")
    return redirect(url_for("settings.index"))
