"""`/calendar`: the market calendar, for admins: a year's holidays and special sessions (shipped with the
code, or edited here), today's sessions, a form to add a holiday, a special session or an `open` day
(cancelling a shipped holiday), and a button to remove an edit. Edits go through services.market.calendar,
audited with the admin's name; every process picks them up when they commit.
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_login import current_user
from flask_wtf import FlaskForm
from werkzeug.exceptions import HTTPException
from wtforms import DateField, SelectChoice, SelectField, SelectMultipleField, StringField, widgets
from wtforms.validators import DataRequired, Length, Optional

from blueprints import access
from blueprints.auth import render_error
from database.enums import Role
from database.types import utcnow
from extensions import client_address
from services.market import calendar

calendar_bp = Blueprint("calendar", __name__, url_prefix="/calendar")

KINDS = [SelectChoice("holiday", "Holiday: closed all day"),
         SelectChoice("special_session", "Special session: these hours only"),
         SelectChoice("open", "Open: regular session (cancels a shipped holiday)")]


@calendar_bp.before_request
def _admins_only():
    return access.check_role({Role.ADMIN})


@calendar_bp.errorhandler(403)
def _forbidden(_exc: HTTPException):
    return render_error(403, "Not allowed", "Only an administrator can see and edit the market calendar.")


class EntryForm(FlaskForm):
    day = DateField("Date", validators=[DataRequired(message="Give the date.")])
    kind = SelectField("Kind", choices=KINDS, default="holiday")
    exchanges = SelectMultipleField("Exchanges", option_widget=widgets.CheckboxInput(),
                                    widget=widgets.ListWidget(prefix_label=False))
    start = StringField("Start (HH:MM)", validators=[Optional(), Length(max=5)])
    end = StringField("End (HH:MM)", validators=[Optional(), Length(max=5)])
    description = StringField("Description", validators=[DataRequired(message="Say what the day is."),
                                                         Length(max=calendar.DESCRIPTION_MAX)])

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.exchanges.choices = list(calendar.exchanges())


class ActionForm(FlaskForm):
    """A button that posts: only the CSRF token."""


def _year() -> int:
    raw = request.args.get("year", "")
    years = calendar.shipped_years()
    if raw.isdigit() and int(raw) in years:
        return int(raw)
    current = calendar.current_year()
    return current if current in years or not years else years[-1]


def _today() -> tuple[dt.date, list[dict], str | None]:
    """Today's session of each exchange, in exchange time ("HH:MM"), or why it is not known."""
    zone = ZoneInfo(calendar.timezone_name())
    today = calendar.local_date(utcnow())

    def local(moment: dt.datetime | None) -> str | None:
        return moment.astimezone(zone).strftime("%H:%M") if moment else None

    rows = []
    try:
        for name in calendar.exchanges():
            s = calendar.session(name, today)
            rows.append({"exchange": name, "open": local(s.open) if s else None, "close": local(s.close) if s else None,
                         "squareoff": local(s.squareoff) if s else None, "special": bool(s and s.special),
                         "description": s.description if s else ""})
    except calendar.CalendarError as exc:
        return today, [], str(exc)
    return today, rows, None


def _page(form: EntryForm, year: int, status: int = 200):
    today, today_rows, today_error = _today()
    return render_template(
        "calendar/index.html", form=form, action_form=ActionForm(), year=year, years=calendar.shipped_years(),
        days=calendar.calendar_days(year), edits=calendar.entries(year), today=today, today_rows=today_rows,
        today_error=today_error, zone=calendar.timezone_name(),
    ), status


@calendar_bp.get("/", strict_slashes=False)
def index():
    return _page(EntryForm(formdata=None), _year())


@calendar_bp.post("/entries")
def add():
    form = EntryForm()
    year = _year()
    if not form.validate_on_submit():
        return _page(form, year, 400)
    try:
        start = calendar.parse_time(form.start.data, "start") if form.start.data else None
        end = calendar.parse_time(form.end.data, "end") if form.end.data else None
        entry = calendar.add_entry(form.day.data, form.kind.data, form.exchanges.data or [], form.description.data,
                                   start=start, end=end, created_by=current_user.id, actor=current_user.username,
                                   ip=client_address())
    except calendar.CalendarError as exc:
        flash(str(exc), "error")
        return _page(form, year, 400)
    flash(f"Added: {entry['day']:%a %d %b %Y} {entry['kind'].replace('_', ' ')} for {', '.join(entry['exchanges'])}.",
          "success")
    return redirect(url_for("calendar.index", year=entry["day"].year))


@calendar_bp.post("/entries/<int:entry_id>/remove")
def remove(entry_id: int):
    if not ActionForm().validate_on_submit():
        abort(400)
    try:
        entry = calendar.remove_entry(entry_id, user_id=current_user.id, actor=current_user.username,
                                      ip=client_address())
    except calendar.EntryNotFound:
        abort(404)
    flash(f"Removed the edit of {entry['day']:%a %d %b %Y}: the shipped calendar applies to it again.", "success")
    return redirect(url_for("calendar.index", year=entry["day"].year))
