"""Readying the database of an application: the schema at head, then every domain's init_db().

`setup_environment(app)` is called by create_app() (a server, `python app.py`) and by the CLI commands
that need the database (cli.ready). It lives here, not in app.py, so that both can call it without
importing each other.

Flask-Migrate is registered (`init_migrations`) only where migrations run: the `flask` CLI (`flask db
...`), tools and tests that build the app without readying it, and a start-up migration. Importing
flask_migrate imports alembic (~0.3 s, ~10 MB), which a start on a current schema never needs:
database.schema reads the head revision from the scripts.
"""

from __future__ import annotations

import fcntl
import importlib
import os
from typing import IO

from flask import Flask, current_app
from sqlalchemy import text

from database import DOMAIN_MODULES, cache, db, schema, writer
from services.runtime.startup import on_start, run_isolated

# pg_advisory_lock key of migrations (services.accounts.users' account lock is 72150002).
MIGRATION_LOCK_KEY = 72150001


def init_migrations(app: Flask) -> None:
    """Register Flask-Migrate on `app` (once): the `flask db` commands, and what flask_migrate's
    functions and migrations/env.py read (app.extensions["migrate"])."""
    if "migrate" in app.extensions:
        return
    from flask_migrate import Migrate  # deliberately late: it imports alembic (see the module docstring)

    Migrate(app, db, directory=os.path.join(app.root_path, "migrations"), render_as_batch=True, compare_type=True)


def setup_environment(app: Flask) -> None:
    """Bring the schema to head (when AUTO_MIGRATE is on), then run every module's init_db()."""
    with app.app_context():
        if app.config["AUTO_MIGRATE"]:
            upgrade_to_head(app)
        for name in DOMAIN_MODULES:
            importlib.import_module(f"database.{name}").init_db()
        cache.current().start()
        writer.current().start()
        on_start(app)


def _migration_lock(app: Flask) -> IO[str]:
    """Serialise migrations between processes starting at once (gunicorn workers, two hosts)."""
    path = os.path.join(app.instance_path, ".migrate.lock")
    fh = open(path, "w")  # noqa: SIM115 - held until release
    fcntl.flock(fh, fcntl.LOCK_EX)
    return fh


def _flask_migrate_upgrade() -> None:
    from flask_migrate import upgrade  # deliberately late: alembic, only when a migration runs

    init_migrations(current_app._get_current_object())  # type: ignore[attr-defined]
    upgrade()


def upgrade_to_head(app: Flask) -> None:
    def upgrade() -> None:
        # In a child process when this one has no threads yet (a server's master): alembic's ~12 MB
        # leave with the child instead of staying in every worker.
        run_isolated(app, _flask_migrate_upgrade)

    lock = _migration_lock(app)
    try:
        engine = db.engine
        if engine.dialect.name == "postgresql":
            # Hosts that share a PostgreSQL server do not share a lock file.
            with engine.connect() as conn:
                conn.execute(text("SELECT pg_advisory_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
                try:
                    if schema.current_revision(engine) != schema.head_revision():
                        upgrade()
                finally:
                    conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": MIGRATION_LOCK_KEY})
                    conn.commit()
        elif schema.current_revision(engine) != schema.head_revision():
            upgrade()
        schema.forget(engine)
    finally:
        lock.close()
