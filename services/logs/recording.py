"""Observability of the REST API: one `api_logs` row per call, one `order_latency` row per order call.

Both go through the background writer (database.writer): never on the request's own transaction, and
a failure to log never fails the call being logged. Secrets are removed before anything is queued:
any key named apikey, api_key, password, token, access_token or secret, at any depth.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
from collections.abc import Mapping
from typing import Any

from database import writer
from database.apilog_db import ApiLog
from database.latency_db import OrderLatency
from database.types import utcnow
from vocabulary import MODES, Mode

log = logging.getLogger("algobridge.api")

_INT64 = 2**63
SECRET_KEYS = frozenset({"apikey", "api_key", "password", "token", "access_token", "secret"})


def redact(value: Any) -> Any:
    """A copy of `value` without secret keys (case-insensitive), recursively through dicts and lists,
    holding only what a JSON column can store (Decimals and dates become strings)."""
    if isinstance(value, Mapping):
        return {k: redact(v) for k, v in value.items() if not (isinstance(k, str) and k.lower() in SECRET_KEYS)}
    if isinstance(value, list | tuple):
        return [redact(v) for v in value]
    if value is None or isinstance(value, str | bool):
        return value
    if isinstance(value, int):
        return value if -_INT64 <= value < _INT64 else str(value)  # a client can send any integer
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, dt.date | dt.datetime):
        return value.isoformat()
    return str(value)  # Decimal and anything else a JSON column cannot hold


def _mode(mode: Any) -> str | None:
    if mode is None:
        return None
    mode = str(getattr(mode, "value", mode))
    return mode if mode in MODES else None


def log_api_call(api_type: str, user_id: int | None, mode: Any, request_body: Any, response_body: Any,
                 status_code: int, duration_ms: float | None, client_ip: str | None, *,
                 redact_response: bool = True) -> None:
    """Queue the `api_logs` row of one API call. The request is always redacted here. The response is
    too, unless the caller vouches that it holds no secret and only JSON values (`redact_response=False`:
    the read API's answers, e.g. an order book, whose walk would cost more than building it); it is then
    stored as it is, and must not be changed after this call."""
    try:
        writer.enqueue(ApiLog, {
            "created_at": utcnow(),
            "user_id": user_id,
            "api_type": (api_type or "")[:32],
            "mode": _mode(mode),
            "request": redact(request_body) if request_body is not None else None,
            "response": (redact(response_body) if redact_response else response_body)
            if response_body is not None else None,
            "status_code": int(status_code),
            "duration_ms": round(duration_ms, 3) if duration_ms is not None else None,
            "client_ip": (client_ip or "")[:45] or None,
        })
    except Exception:  # noqa: BLE001 - logging must never fail the call
        log.exception("could not queue the API log row of %s", api_type)


def log_order_latency(*, user_id: int | None, endpoint: str, mode: Any, broker: str | None, orderid: str | None,
                      symbol: str | None, validation_ms: float, broker_ms: float, response_ms: float,
                      total_ms: float, is_success: bool, error: str | None = None) -> None:
    """Queue the `order_latency` row of one order call; overhead is everything but the broker's time."""
    try:
        writer.enqueue(OrderLatency, {
            "created_at": utcnow(),
            "user_id": user_id,
            "orderid": str(orderid)[:64] if orderid else None,
            "broker": (broker or "unknown")[:32],
            "endpoint": endpoint[:32],
            "mode": _mode(mode) or Mode.LIVE.value,
            "symbol": str(symbol)[:64] if symbol else None,
            "validation_ms": round(validation_ms, 4),
            "broker_ms": round(broker_ms, 4),
            "response_ms": round(response_ms, 4),
            "overhead_ms": round(max(total_ms - broker_ms, 0.0), 4),
            "total_ms": round(total_ms, 4),
            "is_success": bool(is_success),
            "error": error[:255] if error else None,
        })
    except Exception:  # noqa: BLE001 - logging must never fail the call
        log.exception("could not queue the latency row of %s", endpoint)
