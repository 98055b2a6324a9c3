"""SmartAPI failures as BrokerErrors.

SmartAPI answers a refused call with `{"status": false, "message": ..., "errorcode": "AB1009", "data":
null}` (its API gateway spells the token refusals `{"success": false, "message": "Invalid Token",
"errorCode": "AG8001", "data": ""}`), often with HTTP 200. The error codes are those of SmartAPI's
documentation ("Error codes") and forum: AG8001-AG8003 and AB8050/AB8051 are token refusals, AB1050 a
wrong TOTP, AB1000 a wrong client code or PIN. Messages are logged shortened; a token never is, and
requests' own messages (which carry the URL) are not echoed.
"""

from __future__ import annotations

import logging
import re

from brokers.base import BrokerError, ErrorKind
from brokers.common import short_message

log = logging.getLogger("algobridge.broker")


CODES: dict[str, ErrorKind] = {
    # the session
    "AG8001": ErrorKind.TOKEN,  # Invalid Token
    "AG8002": ErrorKind.TOKEN,  # Token Expired
    "AG8003": ErrorKind.TOKEN,  # Token missing
    "AB8050": ErrorKind.TOKEN,  # Invalid Refresh Token
    "AB8051": ErrorKind.TOKEN,  # Refresh Token Expired
    "AB1010": ErrorKind.TOKEN,  # AMX Session Expired
    "AB1011": ErrorKind.TOKEN,  # Client not login
    # the login itself (there is no session yet: the user typed something wrong)
    "AB1000": ErrorKind.INPUT,  # Invalid Email Or Password (client code or PIN)
    "AB1001": ErrorKind.INPUT,  # Invalid Email
    "AB1002": ErrorKind.INPUT,  # Invalid Password Length
    "AB1050": ErrorKind.INPUT,  # Invalid totp
    "AB1005": ErrorKind.PERMISSION,  # User Type Must Be USER
    "AB1006": ErrorKind.PERMISSION,  # Client Is Block For Trading
    "AB2002": ErrorKind.PERMISSION,  # ROBO order is block
    # parameters
    "AB1008": ErrorKind.INPUT,  # Invalid Order Variety
    "AB1009": ErrorKind.INPUT,  # Symbol Not Found
    "AB1012": ErrorKind.INPUT,  # Invalid Product Type
    "AB1013": ErrorKind.INPUT,  # Order not found
    "AB1018": ErrorKind.INPUT,  # Failed to get symbol details
    "AB4008": ErrorKind.INPUT,  # ordertag length should be less than 20 characters
    # the broker
    "AB1004": ErrorKind.BROKER,  # Something Went Wrong, Please Try After Sometime
    "AB1007": ErrorKind.BROKER,  # AMX Error
    "AB2000": ErrorKind.BROKER,  # Error not specified
    "AB2001": ErrorKind.BROKER,  # Internal Error, Please try after sometime
}
# "Access denied because of exceeding rate limit" (HTTP 403, SmartAPI documentation: Rate Limit)
_RATE_TEXT = re.compile(r"exceeding\s+(access\s+)?rate", re.IGNORECASE)


def kind_for(code: str, status: int | None, message: str = "", *, order_call: bool = False) -> ErrorKind:
    if status == 429 or _RATE_TEXT.search(message):
        return ErrorKind.RATE_LIMIT
    kind = CODES.get(code.strip().upper())
    if kind is None:
        if code.upper().startswith("AG8") or status == 401:  # the gateway's token family
            return ErrorKind.TOKEN
        if status == 403:
            return ErrorKind.PERMISSION
        if status is not None and status >= 500:
            return ErrorKind.NETWORK if status in (502, 503, 504) else ErrorKind.BROKER
        kind = ErrorKind.BROKER
    if kind is ErrorKind.BROKER and order_call and (status is None or status < 500):
        # A refusal of an order call that says no more ("Error not specified", RMS rejections) is the
        # broker refusing that order.
        return ErrorKind.ORDER
    return kind


def _status_for(kind: ErrorKind, code: str, http_status: int | None) -> int:
    if http_status is not None and http_status >= 400:
        return http_status
    # SmartAPI reports most refusals with HTTP 200: give the service a status that says what happened.
    if code.upper() == "AB1013":
        return 404
    return {
        ErrorKind.TOKEN: 403,
        ErrorKind.INPUT: 400,
        ErrorKind.ORDER: 400,
        ErrorKind.PERMISSION: 403,
        ErrorKind.RATE_LIMIT: 429,
        ErrorKind.NETWORK: 503,
    }.get(kind, 502)


def error_from_angel(
    code: str, message: str, http_status: int | None, operation: str, *, order_call: bool = False
) -> BrokerError:
    code = str(code or "").strip()
    text = short_message(message)
    kind = kind_for(code, http_status, text, order_call=order_call)
    level = logging.WARNING if kind in (ErrorKind.NETWORK, ErrorKind.BROKER) else logging.INFO
    log.log(level, "Angel One %s failed: %s (HTTP %s): %s", operation, code or "-", http_status, text)
    return BrokerError(text or f"Angel One {operation} failed", status=_status_for(kind, code, http_status), kind=kind)
