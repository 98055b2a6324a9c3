"""CLI commands, one click group per domain (`flask secrets ...`, `flask symbols ...`), added to the
application by app.register_cli; `ready()` for the commands that need the database at head."""

from __future__ import annotations

from flask import Flask, current_app

from services.runtime.bootstrap import setup_environment


def ready(app: Flask | None = None) -> None:
    """Run setup_environment() for a command that needs the database at head."""
    setup_environment(app or current_app._get_current_object())  # type: ignore[attr-defined]
