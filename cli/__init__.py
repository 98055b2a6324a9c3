"""CLI commands, one click group per domain (`flask secrets ...`, `flask symbols ...`), added to the
application by app.register_cli; `ready()` for the commands that need the database at head."""

from __future__ import annotations

import click
from flask import Flask, current_app

from database.schema import SchemaError
from services.runtime.bootstrap import setup_environment


def ready(app: Flask | None = None) -> None:
    """Run setup_environment() for a command that needs the database at head; a database behind the code is
    one line ("Error: ... run `flask db upgrade`"), not a traceback."""
    try:
        setup_environment(app or current_app._get_current_object())  # type: ignore[attr-defined]
    except SchemaError as exc:
        raise click.ClickException(str(exc)) from None
