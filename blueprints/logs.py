"""`/logs/...`: API log, traffic, latency, system log, alerts (acknowledge) and the audit trail.

Admins see every user's rows; traders and viewers their own. The system log is for admins only.
Every table pages newest first with a keyset cursor (`?before=<id>`), see services.logs.reading.

Filters are read from the query string strictly, and the rule for a bad value is one for every page:
the page answers 400, the error page naming the filter and what it expects ("The filter “status” must
be ...") — never a 500, and never a filter silently dropped. Bad means: given more than once, longer
than the filter's limit, holding a control character (NUL included), or not of the filter's form:
- `before` (every page), `user` (traffic): a row id, ASCII digits from 1 to 2**31 - 1 (the id columns);
- `from`, `to`: a day as YYYY-MM-DD, any year 0001 to 9999 (a bound beyond the calendar is no bound);
- `status`: ok, error, 1xx..5xx or a code 100..599; `type`, `method`, `level`, `state`: one of the
  choices the page's form offers (any letter case);
- `q`, `path`, `ip`, `broker`, `endpoint`, `action`: free text up to the limit in `_read`'s calls.
An empty (or blank) value is no filter; a parameter the page does not read is ignored (a trader's
`user` and `ip` included), and is not carried into the pager's links.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import unicodedata
from collections.abc import Callable, Iterable
from typing import Any, NoReturn
from urllib.parse import urlencode
from zoneinfo import ZoneInfo

from flask import Blueprint, abort, current_app, flash, g, redirect, render_template, request, url_for
from flask_login import current_user
from flask_wtf import FlaskForm

from blueprints.access import check_role
from database.enums import Role
from services.accounts import settings as settings_service
from services.logs import reading as log_service
from services.logs.recording import redact

logs_bp = Blueprint("logs", __name__, url_prefix="/logs")

LEVELS = ("WARNING", "ERROR", "CRITICAL")
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")
ALERT_STATES = ("open", "acknowledged", "all")


class AckForm(FlaskForm):
    pass


@logs_bp.before_request
def _signed_in():
    return check_role({Role.ADMIN, Role.TRADER, Role.VIEWER})


@logs_bp.app_template_filter("usertime")
def usertime(value: dt.datetime | None, fmt: str = "%Y-%m-%d %H:%M:%S") -> str:
    """An aware datetime in the signed-in user's display time zone."""
    if value is None:
        return ""
    zone = g.get("_usertime_zone")
    if zone is None:  # once per request: the filter runs for every row of a page
        uid = current_user.id if current_user.is_authenticated else None
        zone = g._usertime_zone = ZoneInfo(settings_service.user_timezone(uid))
    return value.astimezone(zone).strftime(fmt)


@logs_bp.app_template_global("pretty_json")
def pretty_json(value: Any) -> str:
    """A logged request/response for display: secrets removed again (they are stored redacted)."""
    if value is None:
        return ""
    return json.dumps(redact(value), indent=2, ensure_ascii=False, default=str)


def _is_admin() -> bool:
    return current_user.role == Role.ADMIN


def _scope() -> int | None:
    """None (everyone's rows) for admins, else the user's own id."""
    return None if _is_admin() else current_user.id


# -- the query string (the rule is in the module's docstring) -----------------------------------------
DAYS = {"from": 10, "to": 10}  # the date filters and their length limit


def _bad(name: str, expected: str) -> NoReturn:
    abort(400, f"The filter “{name}” {expected}. Change or clear it and try again.")


def _read(**limits: int) -> dict[str, str]:
    """The page's filters `name=length limit` that have a value, stripped; 400 for one given more than
    once, longer than its limit or holding a control character."""
    found = {}
    for name, limit in limits.items():
        values = request.args.getlist(name)
        if len(values) > 1:
            _bad(name, "is given more than once")
        value = values[0].strip() if values else ""
        if len(value) > limit:
            _bad(name, f"must be at most {limit} characters long")
        if any(unicodedata.category(ch) == "Cc" for ch in value):
            _bad(name, "must not contain control characters")
        if value:
            found[name] = value
    return found


def _parsed(args: dict[str, str], name: str, parse: Callable[[str | None], Any]) -> Any:
    """`parse` (services.logs.reading.parse_*) of the filter; its ValueError is a 400."""
    try:
        return parse(args.get(name))
    except ValueError as exc:
        _bad(name, str(exc))


def _choice(args: dict[str, str], name: str, choices: Iterable[str]) -> str | None:
    """One of `choices` whatever the letter case (stored in `args` as the choice is spelled), or None."""
    if name not in args:
        return None
    spelled = {c.lower(): c for c in choices}
    if args[name].lower() not in spelled:
        _bad(name, "must be one of: " + ", ".join(spelled.values()))
    args[name] = spelled[args[name].lower()]
    return args[name]


def _status(args: dict[str, str]) -> str | None:
    status = _parsed(args, "status", log_service.parse_status)
    if status:
        args["status"] = status  # as the form's options spell it
    return status


def _cursor() -> int | None:
    return _parsed(_read(before=20), "before", log_service.parse_cursor)


def _days(args: dict[str, str]) -> tuple[dt.datetime | None, dt.datetime | None]:
    zone = settings_service.user_timezone(current_user.id)
    start, end = (_parsed(args, name, log_service.parse_day) for name in DAYS)
    return log_service.day_range(start, end, zone)


def _page_url(args: dict[str, str], before: int | None = None) -> str:
    """This page with its filters, and a cursor for an older page. Not url_for(endpoint, **args): the
    latency page's `endpoint` filter would be taken for url_for's own first argument."""
    query = urlencode({"before": before, **args} if before else args, safe="/")
    return url_for(request.endpoint) + (f"?{query}" if query else "")


def _render(template: str, args: dict[str, str], **context: Any):
    """`args`: the page's filters that have a value, for the form and the pager's links."""
    context.setdefault("is_admin", _is_admin())
    context.setdefault("zone", settings_service.user_timezone(current_user.id))
    return render_template(template, args=args, page_url=functools.partial(_page_url, args), **context)


def _api_types() -> list[str]:
    prefix = "/api/v1/"
    names = {r.rule[len(prefix):].strip("/") for r in current_app.url_map.iter_rules() if r.rule.startswith(prefix)}
    return sorted(n for n in names if n and "<" not in n)


@logs_bp.get("/", strict_slashes=False)
def index():
    return redirect(url_for("logs.api"))


@logs_bp.get("/api")
def api():
    args = _read(type=32, status=8, q=100, **DAYS)
    api_types = _api_types()
    api_type = _choice(args, "type", api_types)
    status = _status(args)
    lo, hi = _days(args)
    page = log_service.api_logs(_scope(), before=_cursor(), api_type=api_type, status=status, lo=lo, hi=hi,
                                q=args.get("q"))
    return _render("logs/api.html", args, page=page, api_types=api_types)


@logs_bp.get("/traffic")
def traffic():
    admin = _is_admin()
    args = _read(status=8, method=8, path=200, **DAYS, **({"ip": 45, "user": 20} if admin else {}))
    method = _choice(args, "method", METHODS)
    status = _status(args)
    for_user = _parsed(args, "user", log_service.parse_cursor)
    lo, hi = _days(args)
    page = log_service.traffic(_scope(), before=_cursor(), status=status, method=method, path=args.get("path"),
                               ip=args.get("ip"), for_user=for_user, lo=lo, hi=hi)
    return _render("logs/traffic.html", args, page=page, methods=METHODS)


@logs_bp.get("/latency")
def latency():
    args = _read(broker=32, endpoint=32, **DAYS)
    broker, endpoint = args.get("broker"), args.get("endpoint")
    lo, hi = _days(args)
    stats = log_service.latency_stats(_scope(), broker=broker, endpoint=endpoint, lo=lo, hi=hi)
    page = log_service.latency_rows(_scope(), before=_cursor(), broker=broker, endpoint=endpoint)
    chart = {
        "histogram": stats["histogram"],
        "timeline": {"labels": [usertime(p["at"], "%m-%d %H:%M:%S") for p in stats["timeline"]],
                     "values": [round(p["ms"], 3) for p in stats["timeline"]]},
    }
    return _render("logs/latency.html", args, stats=stats, page=page, chart=chart,
                   percentiles=log_service.PERCENTILES)


@logs_bp.get("/system")
def system():
    if not _is_admin():
        abort(403)
    args = _read(level=10, q=100)
    level = _choice(args, "level", LEVELS)
    page = log_service.system_logs(before=_cursor(), level=level, q=args.get("q"))
    return _render("logs/system.html", args, page=page, levels=LEVELS)


@logs_bp.get("/alerts")
def alerts():
    args = _read(state=16)
    state = _choice(args, "state", ALERT_STATES) or "open"
    page = log_service.alerts(_scope(), before=_cursor(), state=state)
    return _render("logs/alerts.html", args, page=page, state=state, ack_form=AckForm(),
                   can_ack=current_user.role in (Role.ADMIN, Role.TRADER))


@logs_bp.post("/alerts/<int:alert_id>/ack")
def acknowledge(alert_id: int):
    if current_user.role not in (Role.ADMIN, Role.TRADER):
        abort(403)
    if not AckForm().validate_on_submit():
        abort(400)
    alert = log_service.acknowledge_alert(alert_id, current_user.id, admin=_is_admin())
    if alert is None:
        abort(404)
    flash(f"Alert “{alert.title}” acknowledged.", "success")
    return redirect(url_for("logs.alerts"))


@logs_bp.get("/audit")
def audit():
    args = _read(action=64)
    page = log_service.audit(_scope(), before=_cursor(), action=args.get("action"))
    return _render("logs/audit.html", args, page=page)
