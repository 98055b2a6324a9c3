"""`flask secrets ...`: encryption keys of the token vault.

`flask secrets generate-key` needs no setting at all: it is the command that makes the missing one (app.create_app
answers it before the configuration is checked when the configuration is incomplete).
"""

from __future__ import annotations

import click
from flask.cli import AppGroup

from database import Base, crypto, db, schema
from database.unit import unit_of_work

secrets_cli = AppGroup("secrets", help="Manage the keys that encrypt broker tokens at rest.")


@secrets_cli.command("generate-key")
def generate_key() -> None:
    """Print a new Fernet key for TOKEN_ENCRYPTION_KEYS (no other setting needed)."""
    click.echo(crypto.generate_key())


@secrets_cli.command("rotate")
def rotate() -> None:
    """Re-encrypt every encrypted column with the first key of TOKEN_ENCRYPTION_KEYS.

    Put a new key first (keeping the old ones after it), run this, then remove the old keys.
    """
    try:
        schema.require_current(db.engine)
    except schema.SchemaError as exc:
        raise click.ClickException(str(exc)) from None
    try:
        # One unit: every value is rotated or none is. It writes what it reads: SQLite's lock first.
        with unit_of_work(write=True) as session:
            counts = crypto.rotate_all(session.connection(), list(Base.metadata.sorted_tables))
    except crypto.TokenDecryptionError as exc:
        raise click.ClickException(str(exc)) from None
    total = sum(counts.values())
    for table, n in counts.items():
        click.echo(f"{table}: {n} rows re-encrypted")
    click.echo(f"done: {total} rows re-encrypted with the first key; older keys can now be removed")
