"""DhanHQ v2 failures as BrokerErrors.

Dhan answers a trading-API error with an HTTP status and `{"errorType", "errorCode", "errorMessage"}`,
`errorCode` one of the annexure's DH-9xx codes (DH-901 invalid or expired token, DH-904 rate limit,
DH-905 input, DH-906 order, ...). Its data APIs (market quote, historical data) report theirs as a
numeric code (806 data APIs not subscribed, 807 token expired, 805 too many requests, ...), either in
the same three fields or as `{"data": {"807": "message"}, "status": "failed"}`. Failures on the way
(refused connection, timeout) come from requests; their messages carry the URL and are never echoed.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from decimal import InvalidOperation
from typing import Any

from brokers.base import BrokerError, ErrorKind
from brokers.common import network_errors, short_message

log = logging.getLogger("algobridge.broker")


# Trading API errors (annexure).
TRADING_KINDS: dict[str, ErrorKind] = {
    "DH-901": ErrorKind.TOKEN,  # invalid authentication: client id or access token invalid or expired
    "DH-902": ErrorKind.PERMISSION,  # invalid access: no data-API subscription or trading-API access
    "DH-903": ErrorKind.PERMISSION,  # user account: segment not activated, requirements not met
    "DH-904": ErrorKind.RATE_LIMIT,  # rate limit
    "DH-905": ErrorKind.INPUT,  # input exception: missing or bad fields
    "DH-906": ErrorKind.ORDER,  # order error: the order was refused
    "DH-907": ErrorKind.INPUT,  # data error: wrong parameters, or no data for them
    "DH-908": ErrorKind.BROKER,  # internal server error
    "DH-909": ErrorKind.NETWORK,  # network error: the API could not reach its back end
    "DH-910": ErrorKind.BROKER,  # others
}
# Data API errors (annexure).
DATA_KINDS: dict[str, ErrorKind] = {
    "800": ErrorKind.BROKER,  # internal server error
    "804": ErrorKind.INPUT,  # more instruments than allowed
    "805": ErrorKind.RATE_LIMIT,  # too many requests
    "806": ErrorKind.PERMISSION,  # data APIs not subscribed
    "807": ErrorKind.TOKEN,  # access token expired
    "808": ErrorKind.TOKEN,  # authentication failed: client id or token invalid
    "809": ErrorKind.TOKEN,  # access token invalid
    "810": ErrorKind.TOKEN,  # client id invalid
    "811": ErrorKind.INPUT,  # invalid expiry date
    "812": ErrorKind.INPUT,  # invalid date format
    "813": ErrorKind.INPUT,  # invalid security id
    "814": ErrorKind.INPUT,  # invalid request
}
# Dhan answers the holdings of an account that holds nothing with this error, not an empty list.
NO_HOLDINGS = "DH-1111"

_CODE = re.compile(r"^(DH-\d{3,4}|\d{3})$")


def parse_body(body: Any) -> tuple[str, str]:
    """(code, message) of an error body in either of Dhan's shapes; ("", "") if it has neither."""
    if not isinstance(body, Mapping):
        return "", ""
    code = str(body.get("errorCode") or body.get("internalErrorCode") or "").strip()
    message = str(body.get("errorMessage") or body.get("internalErrorMessage") or "").strip()
    if not code:
        data = body.get("data")
        if isinstance(data, Mapping):
            for key, value in data.items():
                if _CODE.match(str(key)):
                    return str(key), str(value)
    return code, message


def kind_for(code: str, status: int | None, *, order_call: bool = False) -> ErrorKind:
    kind = TRADING_KINDS.get(code) or DATA_KINDS.get(code)
    if kind is None:
        if status == 401:
            kind = ErrorKind.TOKEN
        elif status == 429:
            kind = ErrorKind.RATE_LIMIT
        elif status == 403:
            kind = ErrorKind.PERMISSION
        elif order_call and status is not None and 400 <= status < 500:
            # An unclassified 4xx on an order call is the broker refusing that order.
            kind = ErrorKind.ORDER
        elif status is not None and 400 <= status < 500:
            kind = ErrorKind.INPUT
        else:
            kind = ErrorKind.BROKER
    return kind


def error_from_dhan(body: Any, status: int | None, operation: str, *, order_call: bool = False) -> BrokerError:
    code, message = parse_body(body)
    kind = kind_for(code, status, order_call=order_call)
    level = logging.WARNING if kind in (ErrorKind.NETWORK, ErrorKind.BROKER) else logging.INFO
    log.log(level, "Dhan %s failed: %s (HTTP %s): %s", operation, code or "-", status, short_message(message))
    text = short_message(message) or f"Dhan {operation} failed (HTTP {status})"
    if code and code not in text:
        text = f"{text} ({code})"
    return BrokerError(text, status=status, kind=kind)


@contextmanager
def dhan_errors(operation: str) -> Iterator[None]:
    """Translate what the HTTP layer raises, or an answer without the documented shape, inside the block."""
    try:
        with network_errors("Dhan", operation):
            yield
    except BrokerError:
        raise
    except (KeyError, IndexError, TypeError, ValueError, InvalidOperation, ZeroDivisionError) as exc:
        log.warning("Dhan %s returned an unexpected answer (%r)", operation, exc, exc_info=True)
        raise BrokerError(f"Unexpected answer from Dhan to {operation}", status=502, kind=ErrorKind.BROKER) from exc
