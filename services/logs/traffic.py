"""The traffic log: one `traffic_logs` row per HTTP request, queued on the background writer.

This module builds and queues the row from plain values; blueprints.traffic takes them from the
request (timing, client address, user). database.writer inserts the rows in batches on its own
connection, and a failure to log never fails the request.

The path is recorded without secrets: query parameters whose name looks like a credential (apikey,
token, password, secret, code, signature, ...) keep their name and lose their value, and so do URL
segments bound to such a variable (`/strategy/webhook/<webhook_id>` is a credential: anyone holding
it can place orders).

Webhook ids are masked wherever they appear, not only where a route bound them: a path segment after
`/webhook/` becomes *** in every traffic row (a GET answered 405, or an extra segment answered 404,
binds no variable) and in every log line the application controls (`install_log_masking`: its console
and system-log handlers, and the access lines of werkzeug's development server and of gunicorn).
"""

from __future__ import annotations

import logging
import re
from typing import Any
from urllib.parse import parse_qsl, urlencode

from database import writer
from database.traffic_db import TrafficLog
from database.types import utcnow

log = logging.getLogger("algobridge.traffic")

_SECRET_NAME = re.compile(r"key|token|pass|secret|code|sig|auth|session|webhook", re.IGNORECASE)
REDACTED = "***"
# The segment after "/webhook/" (an encoded slash too, as a raw request line may spell it), in any case:
# routes are case-sensitive, but a mistyped URL still carries a working id.
_WEBHOOK_SEGMENT = re.compile(r"(/webhook(?:/|%2f)+)[^/?#\s\"'<>]+", re.IGNORECASE)
_PATH_MAX = TrafficLog.__table__.c.path.type.length
_AGENT_MAX = TrafficLog.__table__.c.user_agent.type.length


def mask_webhook_ids(text: str) -> str:
    """`text` (a path, a URL, a log message) with the segment after every `/webhook/` replaced by ***."""
    if "webhook" not in text.lower():  # every request's path comes here: the regular expression costs 10x more
        return text
    return _WEBHOOK_SEGMENT.sub(r"\1" + REDACTED, text)


class WebhookIdMask(logging.Filter):
    """A filter for log handlers and loggers: a record whose message holds a webhook URL gets it masked
    (its message formatted once, and its arguments dropped). Never refuses a record."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a malformed record is the handler's to report
            return True
        masked = mask_webhook_ids(message)
        if masked != message:
            record.msg, record.args = masked, None
        return True


_MASK = WebhookIdMask()
# Loggers whose lines carry request paths: werkzeug's development server, gunicorn's access log (off by
# default: gunicorn.conf.py) and its error log.
_SERVER_LOGGERS = ("werkzeug", "gunicorn.access", "gunicorn.error")


def install_log_masking(app_logger: str = "algobridge") -> None:
    """Mask webhook ids in the handlers of the application's logger (every `algobridge.*` record passes
    them: the console and the system log) and in the server loggers. Idempotent; call it once the
    handlers exist."""
    for handler in logging.getLogger(app_logger).handlers:
        handler.addFilter(_MASK)  # addFilter ignores a filter already there
    for name in _SERVER_LOGGERS:
        logging.getLogger(name).addFilter(_MASK)


def safe_path(path: str, query_string: bytes | str, view_args: dict[str, Any] | None) -> str:
    """`path` with credential-like URL variables, webhook ids and query values replaced by ***, cut to fit."""
    for name, value in (view_args or {}).items():
        if isinstance(value, str) and value and _SECRET_NAME.search(name):
            path = path.replace(value, REDACTED)
    path = mask_webhook_ids(path)
    if query_string:
        qs = query_string.decode("latin-1") if isinstance(query_string, bytes) else query_string
        pairs = parse_qsl(qs, keep_blank_values=True)
        if pairs:
            redacted = [(k, REDACTED if _SECRET_NAME.search(k) else v) for k, v in pairs]
            path = f"{path}?{urlencode(redacted, safe='*/,:')}"
    return path[:_PATH_MAX]


def log_request(*, method: str, path: str, query_string: bytes | str | None, view_args: dict[str, Any] | None,
                status_code: int, duration_ms: float, client_ip: str | None, user_agent: str | None,
                user_id: int | None) -> None:
    """Queue the `traffic_logs` row of one request. Never raises: a failure to log is logged."""
    try:
        writer.enqueue(TrafficLog, {
            "created_at": utcnow(),
            "client_ip": (client_ip or "")[:45] or None,
            "method": method[:8],
            "path": safe_path(path, query_string, view_args),
            "status_code": status_code,
            "duration_ms": round(duration_ms, 3),
            "user_id": user_id,
            "user_agent": user_agent[:_AGENT_MAX] if user_agent else None,
        })
    except Exception:  # noqa: BLE001 - logging must never fail the request
        log.exception("could not queue the traffic row of %s", mask_webhook_ids(path))
