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
import functools
import importlib
import logging
import os
import threading
import time
from typing import IO, Any

import click
from flask import Flask, current_app
from flask.cli import with_appcontext
from sqlalchemy import text

from database import DOMAIN_MODULES, cache, db, schema, writer
from services.runtime.startup import on_start, run_isolated

# pg_advisory_lock key of migrations (services.accounts.users' account lock is 72150002).
MIGRATION_LOCK_KEY = 72150001

log = logging.getLogger("algobridge")

# A server started on a database that is not at head (AUTO_MIGRATE off): app.extensions[UNMIGRATED] holds the
# state of the wait; every request answers 503 SCHEMA_NOT_MIGRATED until `flask db upgrade` has run.
UNMIGRATED = "algobridge.unmigrated"
SCHEMA_NOT_MIGRATED = "schema not migrated: run flask db upgrade"
RECHECK_SECONDS = 2.0  # how often a request looks again whether the schema has been migrated


def init_migrations(app: Flask) -> None:
    """Register Flask-Migrate on `app` (once): the `flask db` commands, and what flask_migrate's
    functions and migrations/env.py read (app.extensions["migrate"])."""
    if "migrate" in app.extensions:
        return
    from flask_migrate import Migrate  # deliberately late: it imports alembic (see the module docstring)

    Migrate(app, db, directory=os.path.join(app.root_path, "migrations"), render_as_batch=True, compare_type=True)
    _report_upgrades(app)


def _report_upgrades(app: Flask) -> None:
    """`flask db upgrade` says what it did: from which revision to which, or that the database was at head
    already (Flask-Migrate's command prints nothing either way). Its command is Flask-Migrate's one object:
    wrapped once per process."""
    group = app.cli.commands.get("db")
    command = getattr(group, "commands", {}).get("upgrade")
    if command is None or getattr(command.callback, "_reports", False):
        return
    original = command.callback

    def upgrade(*args: Any, **kwargs: Any) -> Any:
        if kwargs.get("sql"):  # offline: the SQL goes to stdout, nothing is applied
            return original(*args, **kwargs)
        engine = db.engine
        where = engine.url.render_as_string(hide_password=True)
        before = schema.current_revision(engine)
        result = original(*args, **kwargs)
        after, head = schema.current_revision(engine), schema.head_revision()
        schema.forget(engine)
        at_head = " (head)" if after == head else ""
        if before == after:
            click.echo(f"{where}: already at head ({after})" if at_head else f"{where}: nothing to do, at {after}")
        else:
            click.echo(f"{where}: upgraded from {before or 'an empty database'} to {after}{at_head}")
        return result

    wrapped = with_appcontext(functools.update_wrapper(upgrade, original))
    wrapped._reports = True  # type: ignore[attr-defined]
    command.callback = wrapped


def setup_environment(app: Flask, *, serving: bool = False) -> None:
    """Bring the schema to head (when AUTO_MIGRATE is on), then run every module's init_db().

    A command (`serving` false) on a database behind the code raises schema.SchemaError. A server (`serving`)
    on one says so once in the log and waits: requests answer 503 (SCHEMA_NOT_MIGRATED) until the schema is
    at head (`retry_setup`, at most every RECHECK_SECONDS), then the rest of the setup runs, no restart needed."""
    with app.app_context():
        if app.config["AUTO_MIGRATE"]:
            upgrade_to_head(app)
        elif serving:
            current, head = schema.current_revision(db.engine), schema.head_revision()
            if current != head:
                log.error("%s: the database %s is at %s, the code expects %s; every page answers 503 until then",
                          SCHEMA_NOT_MIGRATED, db.engine.url.render_as_string(hide_password=True),
                          current or "no schema", head)
                app.extensions[UNMIGRATED] = {"lock": threading.Lock(), "checked": time.monotonic()}
                return
        _ready(app)


def retry_setup(app: Flask) -> bool:
    """True when `app` is ready (its schema at head and set up); else looks again (at most every
    RECHECK_SECONDS) whether the schema has been migrated meanwhile, and finishes the setup when it has.
    Call it inside an application context."""
    state = app.extensions.get(UNMIGRATED)
    if state is None:
        return True
    if time.monotonic() - state["checked"] < RECHECK_SECONDS:
        return False
    with state["lock"]:
        if UNMIGRATED not in app.extensions:
            return True
        if time.monotonic() - state["checked"] < RECHECK_SECONDS:
            return False
        state["checked"] = time.monotonic()
        if schema.current_revision(db.engine) != schema.head_revision():
            return False
        schema.forget(db.engine)
        _ready(app)
        del app.extensions[UNMIGRATED]
    log.info("the schema is at head now: serving")
    return True


def _ready(app: Flask) -> None:
    """The setup once the schema is at head: every module's init_db(), the cache listener, the log writer,
    the start-up work."""
    with app.app_context():
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
