"""What the application does once its database is ready (called by setup_environment)."""

from __future__ import annotations

from flask import Flask


def on_start(app: Flask) -> None:
    """On a fresh install, load the offline sample contract so that symbol search and
    analyze-mode orders work before any broker is connected (SAMPLE_CONTRACT); start the
    scheduler of on-time housekeeping (square-offs, session expiry)."""
    if app.config["SAMPLE_CONTRACT"]:
        from services.master_contract import ensure_sample_contract

        ensure_sample_contract()
    from services import scheduler

    scheduler.start(app)
