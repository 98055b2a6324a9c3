"""Strategies and their webhooks."""
