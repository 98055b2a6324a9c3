"""Zerodha, through Kite Connect v3 (see `brokers.zerodha.adapter`)."""

from brokers.zerodha.adapter import BROKER_CLASS, KiteClient, ZerodhaBroker

__all__ = ["BROKER_CLASS", "KiteClient", "ZerodhaBroker"]
