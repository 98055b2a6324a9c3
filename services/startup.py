"""What the application does once its database is ready (called by setup_environment)."""

from __future__ import annotations

from flask import Flask


def on_start(app: Flask) -> None:
    """Nothing yet beyond the data layer's own init_db(); later features hook in here."""
    return None
