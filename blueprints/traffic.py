"""The HTTP side of the traffic log: every request but static files becomes a `traffic_logs` row
(services.logs.traffic builds and queues it; this module reads the request).

`init_app(app)` connects to Flask's request signals, so the timing does not depend on the order of
anyone's hooks:
  - `request_started` (sent before every before-request function): the start time;
  - `request_finished` (sent with the response once every after-request function has run): the row,
    so the duration and the status are the ones the client sees.

What is recorded:
  - requests for static files (`/static/...`) are skipped: a page load pulls several, they say
    nothing about use, and they would outnumber every other row;
  - the user: the signed-in user when the request loaded one (the user loader of blueprints.auth
    reports it through `note_signed_in`; a sign-in during the request names its user and a sign-out
    clears it). It is never loaded here, which would cost a lookup for requests that need none. For
    `/api/` calls, the owner of the API key, which blueprints.api_v1 names with `set_user(user_id)`
    once the key is verified; other code may name the user the same way;
  - the client address is `request.remote_addr`: the peer, or the client named by the proxy when
    TRUST_PROXY_HEADERS is on (ProxyFix is then installed in front of the app).

`init_app` also masks webhook ids in the log lines of the application and of the web server
(services.logs.traffic.install_log_masking): a webhook URL places orders, whoever reads the log.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from flask import Flask, Response, g, request, request_finished, request_started
from flask_login import user_logged_in, user_logged_out

from services.logs import traffic

log = logging.getLogger("algobridge.traffic")

_STATIC_PREFIX = "algobridge.traffic_static_prefix"  # app.extensions key


def set_user(user_id: int | None) -> None:
    """Name the user the current request acts for (an API key's owner, ...): it takes precedence over
    the signed-in user."""
    g.traffic_user_id = user_id


def note_signed_in(user_id: int | None) -> None:
    """The web session's user, as loaded for this request (None: nobody is signed in any more)."""
    g.traffic_web_user_id = user_id


def init_app(app: Flask) -> None:
    app.extensions[_STATIC_PREFIX] = (app.static_url_path or "/static").rstrip("/") + "/"
    request_started.connect(_started, app)
    request_finished.connect(_finished, app)
    user_logged_in.connect(_signed_in, app)
    user_logged_out.connect(_signed_out, app)
    traffic.install_log_masking()


def _started(_app: Flask, **_extra: Any) -> None:
    g.traffic_started = time.perf_counter()


def _signed_in(_app: Flask, user: Any = None, **_extra: Any) -> None:
    try:
        note_signed_in(int(user.id))
    except (AttributeError, TypeError, ValueError):
        note_signed_in(None)


def _signed_out(_app: Flask, **_extra: Any) -> None:
    note_signed_in(None)


def _user_id() -> int | None:
    explicit = g.get("traffic_user_id")  # set_user(): e.g. blueprints.api_v1, once the API key is verified
    if explicit is not None:
        return explicit
    return g.get("traffic_web_user_id")


def _finished(app: Flask, response: Response, **_extra: Any) -> None:
    path = request.path
    if path.startswith(app.extensions[_STATIC_PREFIX]):
        return
    try:
        started = g.get("traffic_started")
        environ = request.environ  # plain dict reads: this runs on every request
        traffic.log_request(
            method=request.method, path=path, query_string=environ.get("QUERY_STRING"),
            view_args=request.view_args, status_code=response.status_code,
            duration_ms=(time.perf_counter() - started) * 1000 if started is not None else 0.0,
            client_ip=request.remote_addr, user_agent=environ.get("HTTP_USER_AGENT"), user_id=_user_id(),
        )
    except Exception:  # noqa: BLE001 - logging must never fail the request
        log.exception("could not log the request to %s", traffic.mask_webhook_ids(path))
