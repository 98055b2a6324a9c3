"""The traffic log: one `traffic_logs` row per HTTP request, queued on the background writer.

`init_app(app)` installs two hooks:
  - first of the before-request functions: note the start time (no database work here);
  - last of the after-request functions: queue the row (method, path, status, duration, client
    address, user agent, user id) on database.writer, which inserts it in a batch on its own
    connection. A failure to log never fails the request.

What is recorded, and what is not:
  - requests for static files (`/static/...`) are skipped: a page load pulls several, they say
    nothing about use, and they would outnumber every other row;
  - the path is recorded without secrets: query parameters whose name looks like a credential
    (apikey, token, password, secret, code, signature, ...) keep their name and lose their value,
    and so do URL segments bound to such a variable (`/strategy/webhook/<webhook_id>` is a
    credential: anyone holding it can place orders);
  - the user: the signed-in user when the view loaded one (Flask-Login caches it on `g`; it is
    never loaded here, which would cost a query for anonymous requests), and for `/api/` calls
    the owner of the API key, which blueprints.api_v1 keeps on `g._api_call` once the key is
    verified. Other code may name the user with `set_user(user_id)`.
  - the client address is `request.remote_addr`: the peer, or the client named by the proxy
    when TRUST_PROXY_HEADERS is on (ProxyFix is then installed in front of the app).
"""

from __future__ import annotations

import logging
import re
import time
from typing import Any
from urllib.parse import parse_qsl, urlencode

from flask import Flask, Response, g, request

from database import writer
from database.traffic_db import TrafficLog
from database.types import utcnow

log = logging.getLogger("algobridge.traffic")

_SECRET_NAME = re.compile(r"key|token|pass|secret|code|sig|auth|session|webhook", re.IGNORECASE)
REDACTED = "***"
_PATH_MAX = TrafficLog.__table__.c.path.type.length
_AGENT_MAX = TrafficLog.__table__.c.user_agent.type.length


def set_user(user_id: int | None) -> None:
    """Name the user the current request acts for (when neither a session nor an API key does)."""
    g._traffic_user_id = user_id


def safe_path(path: str, query_string: bytes | str, view_args: dict[str, Any] | None) -> str:
    """`path` with credential-like URL variables and query values replaced by ***, cut to fit."""
    for name, value in (view_args or {}).items():
        if isinstance(value, str) and value and _SECRET_NAME.search(name):
            path = path.replace(value, REDACTED)
    if query_string:
        qs = query_string.decode("latin-1") if isinstance(query_string, bytes) else query_string
        pairs = parse_qsl(qs, keep_blank_values=True)
        if pairs:
            redacted = [(k, REDACTED if _SECRET_NAME.search(k) else v) for k, v in pairs]
            path = f"{path}?{urlencode(redacted, safe='*/,:')}"
    return path[:_PATH_MAX]


def _user_id() -> int | None:
    explicit = g.get("_traffic_user_id")
    if explicit is not None:
        return explicit
    call = g.get("_api_call")  # blueprints.api_v1: set once the API key is verified
    if call is not None and getattr(call, "user_id", None) is not None:
        return call.user_id
    user = g.get("_login_user")  # Flask-Login's cache: present only when the view loaded the user
    if user is not None and getattr(user, "is_authenticated", False):
        try:
            return int(user.id)
        except (TypeError, ValueError):
            return None
    return None


def init_app(app: Flask) -> None:
    static_prefix = (app.static_url_path or "/static").rstrip("/") + "/"

    def start() -> None:
        g._traffic_started = time.perf_counter()

    def record(response: Response) -> Response:
        path = request.path
        if path.startswith(static_prefix):
            return response
        try:
            started = g.get("_traffic_started")
            duration = (time.perf_counter() - started) * 1000 if started is not None else 0.0
            environ = request.environ  # plain dict reads: this runs on every request
            agent = environ.get("HTTP_USER_AGENT")
            query, view_args = environ.get("QUERY_STRING"), request.view_args
            writer.enqueue(TrafficLog, {
                "created_at": utcnow(),
                "client_ip": (request.remote_addr or "")[:45] or None,
                "method": request.method[:8],
                "path": safe_path(path, query, view_args) if query or view_args else path[:_PATH_MAX],
                "status_code": response.status_code,
                "duration_ms": round(duration, 3),
                "user_id": _user_id(),
                "user_agent": agent[:_AGENT_MAX] if agent else None,
            })
        except Exception:  # noqa: BLE001 - logging must never fail the request
            log.exception("could not queue the traffic row of %s", path)
        return response

    # First before-request function and last after-request function (Flask runs those in reverse
    # order of registration), so the duration and the status are the ones the client sees.
    app.before_request_funcs.setdefault(None, []).insert(0, start)
    app.after_request_funcs.setdefault(None, []).insert(0, record)
