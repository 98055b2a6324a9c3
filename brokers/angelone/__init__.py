"""Angel One, through SmartAPI (see `brokers.angelone.adapter`)."""

from brokers.angelone.adapter import BROKER_CLASS, AngelOneBroker, AngelOneClient

__all__ = ["BROKER_CLASS", "AngelOneBroker", "AngelOneClient"]
