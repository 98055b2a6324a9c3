"""Kite Connect failures as BrokerErrors.

Kite answers an error with an HTTP status and `{"status": "error", "error_type": ..., "message": ...}`;
the kiteconnect client raises the exception class named by `error_type` (or GeneralException for a
name it does not know, e.g. MarginException). Failures on the way (refused connection, timeout) come
from requests. Neither kind of message may carry a token into a log line: requests' messages include
the URL, and logging out sends the access token as a query parameter, so those are never echoed.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import InvalidOperation

from brokers.base import BrokerError, ErrorKind
from brokers.common import network_errors, short_message

log = logging.getLogger("algobridge.broker")


# error_type (Kite's exception name) -> our kind. MarginException and HoldingException are documented
# but unknown to the client library, which raises GeneralException for them; see `kind_for`.
_KINDS = {
    "TokenException": ErrorKind.TOKEN,
    "PermissionException": ErrorKind.PERMISSION,
    "UserException": ErrorKind.PERMISSION,
    "InputException": ErrorKind.INPUT,
    "OrderException": ErrorKind.ORDER,
    "MarginException": ErrorKind.ORDER,
    "HoldingException": ErrorKind.ORDER,
    "NetworkException": ErrorKind.NETWORK,
    "DataException": ErrorKind.BROKER,
    "GeneralException": ErrorKind.BROKER,
}


def kind_for(error_type: str, status: int | None, *, order_call: bool = False) -> ErrorKind:
    if status == 429:
        return ErrorKind.RATE_LIMIT
    kind = _KINDS.get(error_type, ErrorKind.BROKER)
    if kind is ErrorKind.BROKER and order_call and status is not None and 400 <= status < 500:
        # An unclassified 4xx on an order call is the broker refusing that order.
        kind = ErrorKind.ORDER
    return kind


def error_from_kite(
    error_type: str, message: str, status: int | None, operation: str, *, order_call: bool = False
) -> BrokerError:
    kind = kind_for(error_type, status, order_call=order_call)
    level = logging.WARNING if kind in (ErrorKind.NETWORK, ErrorKind.BROKER) else logging.INFO
    log.log(level, "Zerodha %s failed: %s (HTTP %s): %s", operation, error_type, status, short_message(message))
    return BrokerError(short_message(message) or f"Zerodha {operation} failed", status=status, kind=kind)


def _kite_exception() -> type[BaseException] | tuple[()]:
    # Kite's exception base, if the client library is loaded; if it is not, nothing in the block
    # can have raised one (and `except ()` matches nothing). Keeps kiteconnect out of imports.
    module = sys.modules.get("kiteconnect.exceptions")
    return module.KiteException if module is not None else ()


@contextmanager
def kite_errors(operation: str, *, order_call: bool = False) -> Iterator[None]:
    """Translate whatever the Kite client raises inside the block into a BrokerError."""
    try:
        with network_errors("Zerodha", operation):
            yield
    except BrokerError:
        raise
    except _kite_exception() as exc:
        raise error_from_kite(
            type(exc).__name__, str(exc), getattr(exc, "code", None), operation, order_call=order_call
        ) from exc
    except (KeyError, IndexError, TypeError, ValueError, InvalidOperation) as exc:
        # An answer without the documented shape: the broker's problem, not a crash of ours.
        log.warning("Zerodha %s returned an unexpected answer (%r)", operation, exc, exc_info=True)
        raise BrokerError(f"Unexpected answer from Zerodha to {operation}", status=502, kind=ErrorKind.BROKER) from exc
