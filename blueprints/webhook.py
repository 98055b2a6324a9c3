"""Webhooks: `POST /strategy/webhook/<webhook_id>` (TradingView, Amibroker, Python) and
`POST /chartink/webhook/<webhook_id>` (Chartink scans). HTTP only; services.strategies.webhooks does the work.

Machine to machine: no session, no CSRF (the unguessable webhook id is the credential, stored only as
a hash). Rate limited per webhook id and client address (`WEBHOOK_RATE_LIMIT`), counted under a prefix
of the id's hash: the limiter's storage (Redis) and its log lines never hold the id. Log lines name
the path with the id masked. Every answer is JSON, errors included: a
body that is not a JSON object (too deep, too large, not UTF-8, ...) is a 400 with a message. Every
call, answered or refused, is logged once by an after-request hook (services.strategies.webhooks.record_call).
"""

from __future__ import annotations

import logging
import time

from flask import Blueprint, Response, current_app, g, jsonify, request
from werkzeug.exceptions import HTTPException

from extensions import client_address, csrf, limiter
from services.logs.traffic import mask_webhook_ids
from services.strategies import strategy as strategies
from services.strategies import webhooks

log = logging.getLogger("algobridge.webhooks")

webhook_bp = Blueprint("webhook", __name__)
csrf.exempt(webhook_bp)

#: Largest body accepted (a Chartink alert with a hundred stocks is a few kilobytes).
MAX_BODY = 64 * 1024


def _rate_key() -> str:
    webhook_id = (request.view_args or {}).get("webhook_id", "")
    return f"webhook:{strategies.hash_webhook_id(webhook_id)[:16]}:{client_address()}"


def _rate_limit() -> str:
    return current_app.config["WEBHOOK_RATE_LIMIT"]


class _TooLarge(Exception):  # noqa: N818 - a refusal answered by its handler
    pass


def _payload():
    """The JSON body, whatever its content type (TradingView sends JSON as text/plain); the raw text
    when it is not JSON (recorded on the signal, refused with a message). _TooLarge beyond MAX_BODY
    (bodies beyond the app's MAX_CONTENT_LENGTH are a 413 before this reads them)."""
    if "_webhook_payload" in g:
        return g._webhook_payload
    if request.content_length is not None and request.content_length > MAX_BODY:
        raise _TooLarge
    data = request.get_data(cache=True, as_text=False)
    if len(data) > MAX_BODY:
        raise _TooLarge
    # The app's request class makes a too-deep document "not JSON" (None) like any other bad JSON.
    payload = request.get_json(force=True, silent=True)
    if payload is None:
        payload = data.decode("utf-8", errors="replace")[:2000]
    g._webhook_payload = payload
    return payload


def _answer(reply: webhooks.Reply) -> Response:
    g._webhook_reply = reply
    started = time.perf_counter()
    resp = jsonify(reply.body)
    g._webhook_response_ms = (time.perf_counter() - started) * 1000
    resp.status_code = reply.status
    return resp


@webhook_bp.before_request
def _start_timer() -> None:
    g._webhook_started = time.perf_counter()


@webhook_bp.post("/strategy/webhook/<webhook_id>")
@limiter.limit(_rate_limit, key_func=_rate_key)
def strategy_webhook(webhook_id: str):
    return _answer(webhooks.strategy_alert(webhook_id, _payload()))


@webhook_bp.post("/chartink/webhook/<webhook_id>")
@limiter.limit(_rate_limit, key_func=_rate_key)
def chartink_webhook(webhook_id: str):
    return _answer(webhooks.chartink_alert(webhook_id, _payload()))


@webhook_bp.after_request
def _log_call(response: Response) -> Response:
    """One api_logs row per call (and order_latency rows per order), through the background writer."""
    ended = time.perf_counter()
    kind = "chartink" if request.path.startswith("/chartink/") else "strategy"
    try:
        payload = _payload()
    except _TooLarge:
        payload = f"(a body of {request.content_length or len(request.get_data())} bytes, not kept)"
    except Exception:  # noqa: BLE001 - the body is a log detail here; the answer is already made
        payload = None
    webhooks.record_call(
        kind, (request.view_args or {}).get("webhook_id", ""), payload, g.get("_webhook_reply"),
        status=response.status_code, response_body=response.get_json(silent=True) if response.is_json else None,
        started=g.get("_webhook_started", ended), ended=ended, response_ms=g.get("_webhook_response_ms", 0.0),
        client_ip=client_address())
    return response


@webhook_bp.errorhandler(_TooLarge)
def _too_large(_exc: _TooLarge):
    return jsonify(status="error", message=f"The body is larger than {MAX_BODY // 1024} KB."), 400


@webhook_bp.errorhandler(429)
def _too_many(exc: HTTPException):
    current = limiter.current_limit
    reset_at = current.reset_at if current is not None else int(time.time()) + 60
    retry_after = max(1, int(reset_at - time.time()))
    log.warning("webhook rate limit hit on %s from %s", mask_webhook_ids(request.path), client_address())
    body = {"status": "error", "message": f"Rate limit exceeded ({exc.description}): retry in {retry_after} s.",
            "retry_after": retry_after}
    return jsonify(body), 429, {"Retry-After": str(retry_after)}


@webhook_bp.errorhandler(HTTPException)
def _http_error(exc: HTTPException):
    return jsonify(status="error", message=exc.description or exc.name), exc.code


@webhook_bp.errorhandler(Exception)
def _internal_error(exc: Exception):
    log.exception("webhook %s failed", mask_webhook_ids(request.path))
    return jsonify(status="error", message="internal error"), 500
