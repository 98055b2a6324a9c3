"""Accounts: users, API keys, broker login and settings."""
