"""Dhan, through the DhanHQ v2 REST API (see `brokers.dhan.adapter`)."""

from brokers.dhan.adapter import BROKER_CLASS, DhanBroker, DhanClient

__all__ = ["BROKER_CLASS", "DhanBroker", "DhanClient"]
