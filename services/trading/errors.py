"""The trading domain's one error: a call that cannot be done, with the HTTP status to answer."""

from __future__ import annotations

NO_SESSION = "No live broker session: connect your broker or switch to analyze mode"
SESSION_EXPIRED = "The broker session has expired: connect your broker again or switch to analyze mode"


class OrderError(Exception):
    """A trading call that cannot be done; `message` in words, `status` the HTTP status to answer."""

    def __init__(self, message: str, status: int = 400):
        super().__init__(message)
        self.message = message
        self.status = status


def not_found(orderid: str) -> OrderError:
    return OrderError(f"Order {orderid} not found", 404)
