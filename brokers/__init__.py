"""Broker adapters behind one interface (filled by the broker-login work)."""
