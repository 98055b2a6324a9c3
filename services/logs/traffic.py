"""The traffic log: one `traffic_logs` row per HTTP request, queued on the background writer.

This module builds and queues the row from plain values; blueprints.traffic takes them from the
request (timing, client address, user). database.writer inserts the rows in batches on its own
connection, and a failure to log never fails the request.

The path is recorded without secrets: query parameters whose name looks like a credential (apikey,
token, password, secret, code, signature, ...) keep their name and lose their value, and so do URL
segments bound to such a variable (`/strategy/webhook/<webhook_id>` is a credential: anyone holding
it can place orders).
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
_PATH_MAX = TrafficLog.__table__.c.path.type.length
_AGENT_MAX = TrafficLog.__table__.c.user_agent.type.length


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


def log_request(*, method: str, path: str, query_string: bytes | str | None, view_args: dict[str, Any] | None,
                status_code: int, duration_ms: float, client_ip: str | None, user_agent: str | None,
                user_id: int | None) -> None:
    """Queue the `traffic_logs` row of one request. Never raises: a failure to log is logged."""
    try:
        writer.enqueue(TrafficLog, {
            "created_at": utcnow(),
            "client_ip": (client_ip or "")[:45] or None,
            "method": method[:8],
            "path": safe_path(path, query_string, view_args) if query_string or view_args else path[:_PATH_MAX],
            "status_code": status_code,
            "duration_ms": round(duration_ms, 3),
            "user_id": user_id,
            "user_agent": user_agent[:_AGENT_MAX] if user_agent else None,
        })
    except Exception:  # noqa: BLE001 - logging must never fail the request
        log.exception("could not queue the traffic row of %s", path)
