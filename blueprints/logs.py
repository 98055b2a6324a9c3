"""`/logs/...`: API log, traffic, latency, system log, alerts (acknowledge) and the audit trail.

Admins see every user's rows; traders and viewers their own. The system log is for admins only.
Every table pages newest first with a keyset cursor (`?before=<id>`), see services.logs.reading.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any
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


def _cursor() -> int | None:
    return log_service.parse_cursor(request.args.get("before"))


def _arg(name: str, limit: int = 100) -> str:
    return (request.args.get(name) or "").strip()[:limit]


def _days() -> tuple[dt.datetime | None, dt.datetime | None]:
    zone = settings_service.user_timezone(current_user.id)
    return log_service.day_range(log_service.parse_day(_arg("from")), log_service.parse_day(_arg("to")), zone)


def _render(template: str, **context: Any):
    context.setdefault("is_admin", _is_admin())
    context.setdefault("zone", settings_service.user_timezone(current_user.id))
    context.setdefault("args", {k: v for k, v in request.args.items() if k != "before" and v})
    return render_template(template, **context)


def _api_types() -> list[str]:
    prefix = "/api/v1/"
    names = {r.rule[len(prefix):].strip("/") for r in current_app.url_map.iter_rules() if r.rule.startswith(prefix)}
    return sorted(n for n in names if n and "<" not in n)


@logs_bp.get("/", strict_slashes=False)
def index():
    return redirect(url_for("logs.api"))


@logs_bp.get("/api")
def api():
    lo, hi = _days()
    page = log_service.api_logs(_scope(), before=_cursor(), api_type=_arg("type", 32) or None,
                                status=_arg("status", 8) or None, lo=lo, hi=hi, q=_arg("q") or None)
    return _render("logs/api.html", page=page, api_types=_api_types())


@logs_bp.get("/traffic")
def traffic():
    lo, hi = _days()
    for_user = log_service.parse_cursor(_arg("user")) if _is_admin() else None
    page = log_service.traffic(_scope(), before=_cursor(), status=_arg("status", 8) or None,
                               method=_arg("method", 8) or None, path=_arg("path", 200) or None,
                               ip=(_arg("ip", 45) or None) if _is_admin() else None, for_user=for_user,
                               lo=lo, hi=hi)
    return _render("logs/traffic.html", page=page, methods=METHODS)


@logs_bp.get("/latency")
def latency():
    lo, hi = _days()
    broker, endpoint = _arg("broker", 32) or None, _arg("endpoint", 32) or None
    stats = log_service.latency_stats(_scope(), broker=broker, endpoint=endpoint, lo=lo, hi=hi)
    page = log_service.latency_rows(_scope(), before=_cursor(), broker=broker, endpoint=endpoint)
    chart = {
        "histogram": stats["histogram"],
        "timeline": {"labels": [usertime(p["at"], "%m-%d %H:%M:%S") for p in stats["timeline"]],
                     "values": [round(p["ms"], 3) for p in stats["timeline"]]},
    }
    return _render("logs/latency.html", stats=stats, page=page, chart=chart,
                   percentiles=log_service.PERCENTILES)


@logs_bp.get("/system")
def system():
    if not _is_admin():
        abort(403)
    page = log_service.system_logs(before=_cursor(), level=_arg("level", 10) or None, q=_arg("q") or None)
    return _render("logs/system.html", page=page, levels=LEVELS)


@logs_bp.get("/alerts")
def alerts():
    state = _arg("state", 16) or "open"
    page = log_service.alerts(_scope(), before=_cursor(), state=state)
    return _render("logs/alerts.html", page=page, state=state, ack_form=AckForm(),
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
    page = log_service.audit(_scope(), before=_cursor(), action=_arg("action", 64) or None)
    return _render("logs/audit.html", page=page)
