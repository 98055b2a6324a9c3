"""REST API v1: the kill switch and the risk state (issue #19), on the API blueprint of blueprints.api_v1; and
the answer to an order held for approval.

`POST /api/v1/killswitch` {apikey, action: "on" | "off"} (the `orders` scope): on cancels the account's open
orders, closes its positions (both modes) and blocks new entries until switched off. `POST /api/v1/riskstate`
{apikey} (the `read` scope): the kill switch and today's P&L rows. An order that waits for approval answers
200 {"status": "success", "message": ..., "mode": "semi_auto", "pending_order_id": N}, as OpenAlgo's action
center does.
"""

from __future__ import annotations

from typing import Literal

from flask import Response

from blueprints.api_v1 import Keyed, api_limit, api_v1_bp, current_call, order_limit, parse, respond, success
from extensions import client_address
from services.trading import approvals, risk


class KillSwitch(Keyed):
    action: Literal["on", "off"]


@api_v1_bp.post("/killswitch", strict_slashes=False)
@order_limit
def killswitch():
    data, uid = parse(KillSwitch, "orders")
    actor = f"api:{uid}"
    if data.action == "on":
        changed = risk.kill(uid, actor=actor, ip=client_address())
    else:
        changed = risk.unkill(uid, actor=actor, ip=client_address())
    state = "on" if data.action == "on" else "off"
    message = f"Kill switch {state}" if changed else f"Kill switch was already {state}"
    if not changed and data.action == "on":
        message += "; open orders cancelled and positions closed again"
    return success({"message": message, "kill_switch": data.action == "on"})


@api_v1_bp.post("/riskstate", strict_slashes=False)
@api_limit
def riskstate():
    _data, uid = parse(Keyed, "read")
    return success({"data": risk.state(uid)})


@api_v1_bp.teardown_app_request
def _forget_api_key(_exc: BaseException | None) -> None:
    risk.note_api_key(None)  # a worker thread's next request (a page, a webhook) acts with no API key


@api_v1_bp.errorhandler(approvals.Queued)
def _queued(exc: approvals.Queued) -> Response:
    current_call().orderid = None
    return respond({"status": "success", "message": approvals.QUEUED_MESSAGE, "mode": "semi_auto",
                    "pending_order_id": exc.approval_id})
