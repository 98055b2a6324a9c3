"""CLI commands, one click group per domain (`flask secrets ...`, `flask symbols ...`)."""

from __future__ import annotations

from flask import Flask

GROUPS = (("cli.secrets", "secrets_cli"), ("cli.users", "users_cli"), ("cli.symbols", "symbols_cli"))


def register(app: Flask) -> None:
    import importlib

    for module_name, attr in GROUPS:
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name != module_name:
                raise
            continue  # a feature not built yet
        app.cli.add_command(getattr(module, attr))


def ready(app: Flask | None = None) -> None:
    """Run setup_environment() for a command that needs the database at head."""
    from flask import current_app

    from app import setup_environment

    setup_environment(app or current_app._get_current_object())
