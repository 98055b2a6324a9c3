"""Broker adapters behind one interface (`brokers.base`), found by `brokers.registry`.

Adapters never touch the database; services hand them settings and tokens and persist what they
return.
"""

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
    LoginField,
    LoginResult,
    OrderRequest,
    OrderResult,
)
from brokers.registry import available_brokers, get_broker, get_broker_class, reload_brokers

__all__ = [
    "Broker",
    "BrokerClient",
    "BrokerError",
    "BrokerFunds",
    "BrokerHolding",
    "BrokerOrder",
    "BrokerPosition",
    "BrokerProfile",
    "BrokerQuote",
    "BrokerTrade",
    "ErrorKind",
    "LoginField",
    "LoginResult",
    "OrderRequest",
    "OrderResult",
    "available_brokers",
    "get_broker",
    "get_broker_class",
    "reload_brokers",
]
