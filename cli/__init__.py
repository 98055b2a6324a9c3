"""CLI commands, one click group per domain (`flask secrets ...`, `flask symbols ...`)."""

from __future__ import annotations

from flask import Flask


def register(app: Flask) -> None:
    from cli.backup import backup_cli
    from cli.logs import logs_cli
    from cli.secrets import secrets_cli
    from cli.symbols import symbols_cli
    from cli.users import users_cli

    for group in (secrets_cli, users_cli, symbols_cli, logs_cli, backup_cli):
        app.cli.add_command(group)


def ready(app: Flask | None = None) -> None:
    """Run setup_environment() for a command that needs the database at head."""
    from flask import current_app

    from app import setup_environment

    setup_environment(app or current_app._get_current_object())
