"""Webhooks: `POST /strategy/webhook/<webhook_id>` (TradingView, Amibroker, Python) and
`POST /chartink/webhook/<webhook_id>` (Chartink scans). HTTP only; services.webhooks does the work.

Machine to machine: no session, no CSRF (the unguessable webhook id is the credential). Rate limited
per webhook id and client address (`WEBHOOK_RATE_LIMIT`). Every answer is JSON, errors included.
"""

from __future__ import annotations

import logging
import time

from flask import Blueprint, current_app, jsonify, request
from werkzeug.exceptions import HTTPException

from database import db
from extensions import client_address, csrf, limiter
from services import webhooks

log = logging.getLogger("algobridge.webhooks")

webhook_bp = Blueprint("webhook", __name__)
csrf.exempt(webhook_bp)

#: Largest body accepted (a Chartink alert with a hundred stocks is a few kilobytes).
MAX_BODY = 64 * 1024


def _rate_key() -> str:
    webhook_id = (request.view_args or {}).get("webhook_id", "")
    return f"webhook:{webhook_id}:{client_address()}"


def _rate_limit() -> str:
    return current_app.config["WEBHOOK_RATE_LIMIT"]


def _payload():
    """The JSON body, whatever its content type (TradingView sends JSON as text/plain); the raw text
    when it is not JSON (recorded on the signal, refused with a message)."""
    if request.content_length is not None and request.content_length > MAX_BODY:
        return None
    data = request.get_data(cache=True, as_text=False)[: MAX_BODY + 1]
    if len(data) > MAX_BODY:
        return None
    payload = request.get_json(force=True, silent=True)
    if payload is None:
        return data.decode("utf-8", errors="replace")[:2000]
    return payload


@webhook_bp.post("/strategy/webhook/<webhook_id>")
@limiter.limit(_rate_limit, key_func=_rate_key)
def strategy_webhook(webhook_id: str):
    reply = webhooks.strategy_alert(webhook_id, _payload())
    return jsonify(reply.body), reply.status


@webhook_bp.post("/chartink/webhook/<webhook_id>")
@limiter.limit(_rate_limit, key_func=_rate_key)
def chartink_webhook(webhook_id: str):
    reply = webhooks.chartink_alert(webhook_id, _payload())
    return jsonify(reply.body), reply.status


@webhook_bp.errorhandler(429)
def _too_many(exc: HTTPException):
    current = limiter.current_limit
    reset_at = current.reset_at if current is not None else int(time.time()) + 60
    retry_after = max(1, int(reset_at - time.time()))
    log.warning("webhook rate limit hit on %s from %s", request.path, client_address())
    body = {"status": "error", "message": f"Rate limit exceeded ({exc.description}): retry in {retry_after} s.",
            "retry_after": retry_after}
    return jsonify(body), 429, {"Retry-After": str(retry_after)}


@webhook_bp.errorhandler(HTTPException)
def _http_error(exc: HTTPException):
    return jsonify(status="error", message=exc.description or exc.name), exc.code


@webhook_bp.errorhandler(Exception)
def _internal_error(exc: Exception):
    db.session.rollback()
    log.exception("webhook %s failed", request.path)
    return jsonify(status="error", message="internal error"), 500
