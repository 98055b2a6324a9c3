"""The paper broker: analyze mode's counterpart of a live broker, always available.

It connects without credentials, so a user can trade on paper before (or instead of) connecting a
live account. Its session is shaped like a live broker's (a random token that lapses at 06:00 IST)
so services treat both alike.

The order simulator is `services.trading.paper.engine`: pure arithmetic (fill rules, margin by product,
positions and P&L, funds) that services.trading.paper.account drives, since the paper account lives in the database
and brokers never touch it. This client's order and book calls therefore raise
BrokerError(kind="unsupported"): analyze-mode orders go through services.trading.orders, not through here.
"""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import Iterable, Iterator, Mapping
from typing import NoReturn

from brokers.base import (
    Broker,
    BrokerClient,
    BrokerError,
    BrokerFunds,
    BrokerHolding,
    BrokerOrder,
    BrokerPosition,
    BrokerProfile,
    BrokerQuote,
    BrokerTrade,
    ErrorKind,
    LoginResult,
    OrderRequest,
    OrderResult,
    next_daily_expiry,
)

__all__ = ["BROKER_CLASS", "PaperBroker", "PaperClient"]


def _not_yet(what: str) -> NoReturn:
    raise BrokerError(f"Paper trading: {what} is not available yet", kind=ErrorKind.UNSUPPORTED)


class PaperClient(BrokerClient):
    name = "paper"

    def __init__(self, broker: PaperBroker, access_token: str):
        if not access_token:
            raise BrokerError("Paper session has no token", status=403, kind=ErrorKind.TOKEN)
        self._broker = broker

    def profile(self) -> BrokerProfile:
        return BrokerProfile(
            broker_user_id=self._broker.user_id,
            user_name=self._broker.user_name,
            extra={"mode": "analyze"},
        )

    def place_order(self, order: OrderRequest) -> OrderResult:
        _not_yet("placing orders")

    def modify_order(self, orderid: str, order: OrderRequest) -> OrderResult:
        _not_yet("modifying orders")

    def cancel_order(self, orderid: str) -> OrderResult:
        _not_yet("cancelling orders")

    def order_status(self, orderid: str) -> BrokerOrder:
        _not_yet("order status")

    def orderbook(self) -> list[BrokerOrder]:
        _not_yet("the order book")

    def tradebook(self) -> list[BrokerTrade]:
        _not_yet("the trade book")

    def positions(self) -> list[BrokerPosition]:
        _not_yet("positions")

    def holdings(self) -> list[BrokerHolding]:
        _not_yet("holdings")

    def funds(self) -> BrokerFunds:
        _not_yet("funds")

    def quotes(self, instruments: Iterable[tuple[str, str]]) -> dict[tuple[str, str], BrokerQuote]:
        _not_yet("quotes")

    def instruments(self) -> Iterator[dict[str, str]]:
        _not_yet("a master contract")


class PaperBroker(Broker):
    name = "paper"
    display_name = "Paper trading"
    login_kind = "none"
    config_keys = {}

    def __init__(self, *, user_id: str = "PAPER", user_name: str = "Paper trader"):
        self.user_id = user_id
        self.user_name = user_name

    def complete_login(self, callback_args: Mapping[str, str] | None = None) -> LoginResult:
        """Connect at once. `callback_args` may carry `user_id`/`user_name` to label the session."""
        args = callback_args or {}
        user_id = args.get("user_id") or self.user_id
        return LoginResult(
            access_token=secrets.token_urlsafe(32),
            broker_user_id=user_id,
            user_name=args.get("user_name") or self.user_name,
            expires_at=next_daily_expiry(dt.datetime.now(dt.UTC)),
            extra={"mode": "analyze"},
        )

    def logout(self, access_token: str) -> None:
        # Nothing is held anywhere but in the service's session row.
        return None

    def session(self, access_token: str) -> PaperClient:
        return PaperClient(self, access_token)


BROKER_CLASS = PaperBroker
