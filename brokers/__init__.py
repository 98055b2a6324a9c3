"""Broker adapters behind one interface (`brokers.base`: the interface and its data types), found by
`brokers.registry`.

Adapters never touch the database; services hand them settings and tokens and persist what they
return.
"""

from brokers.base import Broker, BrokerError
from brokers.registry import available_brokers, get_broker, get_broker_class, reload_brokers

__all__ = ["Broker", "BrokerError", "available_brokers", "get_broker", "get_broker_class", "reload_brokers"]
