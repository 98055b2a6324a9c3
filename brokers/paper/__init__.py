"""The paper connection: a broker login that needs no credentials and reaches no broker.

It lets a user connect "a broker" before (or instead of) a live account, and labels the session like a
live broker's (a random token that lapses at 06:00 exchange time). It is not a live broker session:
analyze-mode trading needs no broker at all (services.trading.paper, the analyze-mode exchange), and in
live mode the paper connection places nothing (services.trading.venues answers 403). It has no API
client: `session()` says so.
"""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import Mapping
from typing import NoReturn

from brokers.base import Broker, BrokerError, ErrorKind, LoginResult, next_daily_expiry, time_zone
from vocabulary import Mode

__all__ = ["BROKER_CLASS", "PaperBroker"]


class PaperBroker(Broker):
    name = "paper"
    display_name = "Paper trading"
    login_kind = "none"
    # The session lapses at 06:00 in the exchange's zone: the EXCHANGE_TIMEZONE setting.
    config_keys = {"exchange_tz": "EXCHANGE_TIMEZONE"}

    def __init__(self, *, user_id: str = "PAPER", user_name: str = "Paper trader",
                 exchange_tz: str | dt.tzinfo | None = None):
        self.user_id = user_id
        self.user_name = user_name
        if exchange_tz is not None:
            self.exchange_tz = time_zone(exchange_tz)

    def complete_login(self, callback_args: Mapping[str, str] | None = None) -> LoginResult:
        """Connect at once. `callback_args` may carry `user_id`/`user_name` to label the session."""
        args = callback_args or {}
        user_id = args.get("user_id") or self.user_id
        return LoginResult(
            access_token=secrets.token_urlsafe(32),
            broker_user_id=user_id,
            user_name=args.get("user_name") or self.user_name,
            expires_at=next_daily_expiry(dt.datetime.now(dt.UTC), tz=self.exchange_tz),
            extra={"mode": Mode.ANALYZE.value},
        )

    def logout(self, access_token: str) -> None:
        # Nothing is held anywhere but in the service's session row.
        return None

    def session(self, access_token: str) -> NoReturn:
        raise BrokerError("The paper connection has no broker API: analyze mode trades without a broker",
                          kind=ErrorKind.UNSUPPORTED)


BROKER_CLASS = PaperBroker
