"""The browser's side of the feed: `/feed/token` hands a signed-in page a short-lived session token to
authenticate its WebSocket with (static/js/live.js), and where to connect; `/feed/notices` lists the
user's unacknowledged rejected orders, and `/feed/notices/<id>/ack` acknowledges one (the alerts table,
as Logs -> Alerts does). `live_notices()`, for base.html, puts those notices on every page of their owner.

Every answer is JSON, a signed-out caller included (401), so the script can tell a lapsed session from a
network error.
"""

from __future__ import annotations

from flask import Blueprint, current_app, jsonify
from flask_login import current_user
from flask_wtf.csrf import CSRFError

from services.accounts import feed_tokens
from services.logs import reading

feed_bp = Blueprint("feed", __name__, url_prefix="/feed")

REJECTED_KIND = "order_rejected"
MAX_NOTICES = 20  # the newest; older ones stay under Logs -> Alerts


def _json(http_status: int = 200, **body):
    resp = jsonify(body)
    resp.status_code = http_status
    resp.headers["Cache-Control"] = "no-store"
    return resp


def _error(http_status: int, message: str):
    return _json(http_status, status="error", message=message)


@feed_bp.before_request
def _signed_in():
    if not current_user.is_authenticated:
        return _error(401, "Sign in to follow the live feed.")
    return None


@feed_bp.errorhandler(CSRFError)
def _csrf(_exc: CSRFError):
    return _error(400, "The page's security token expired: reload the page.")


def notices(user_id: int) -> list[dict]:
    """The user's unacknowledged rejected orders, newest first."""
    page = reading.alerts(user_id, state="open", kind=REJECTED_KIND, limit=MAX_NOTICES)
    return [{"id": a.id, "title": a.title, "message": a.message or "",
             "created_at": a.created_at.isoformat() if a.created_at else None}
            for a in page.rows]


@feed_bp.app_context_processor
def _template_helpers() -> dict:
    # A callable, so that only the pages that show the notice area pay for the query. Viewers place no
    # orders and may not acknowledge alerts (as under Logs -> Alerts): no notices for them.
    def live_notices() -> list[dict]:
        return notices(current_user.id) if current_user.is_authenticated and current_user.can_trade else []

    return {"live_notices": live_notices}


@feed_bp.get("/token")
def token():
    config = current_app.config
    return _json(status="success", token=feed_tokens.issue(current_user.id, config["SECRET_KEY"]),
                 url=config.get("WEBSOCKET_URL") or None, port=config.get("WEBSOCKET_PORT", 8765))


@feed_bp.get("/notices")
def notice_list():
    return _json(status="success", notices=notices(current_user.id) if current_user.can_trade else [])


@feed_bp.post("/notices/<int:alert_id>/ack")
def acknowledge(alert_id: int):
    if not current_user.can_trade:
        return _error(403, "Viewers cannot acknowledge alerts.")
    # The owner's own only: an admin acknowledges other users' alerts under Logs -> Alerts.
    alert = reading.acknowledge_alert(alert_id, current_user.id, admin=False)
    if alert is None:
        return _error(404, f"No alert {alert_id} of yours.")
    return _json(status="success", id=alert_id, notices=notices(current_user.id))
