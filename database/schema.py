"""Checks that the database schema is the one the code expects (the migrations' head).

Every domain module's `init_db()` calls `require_current()`: the app refuses to run against a
database that is behind (or ahead of) the code, with a message naming the command that fixes it.
"""

from __future__ import annotations

import os
import threading

from alembic.script import ScriptDirectory
from sqlalchemy import inspect, text
from sqlalchemy.engine import Engine

MIGRATIONS_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "migrations")

_checked: set[int] = set()
_lock = threading.Lock()


class SchemaError(RuntimeError):
    """The database is not at the revision this code expects."""


def head_revision() -> str:
    script = ScriptDirectory(MIGRATIONS_DIR)
    heads = script.get_heads()
    if len(heads) != 1:
        raise SchemaError(f"migrations have {len(heads)} heads ({', '.join(heads)}); merge them first")
    return heads[0]


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        if not inspect(conn).has_table("alembic_version"):
            return None
        return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()


def require_current(engine: Engine, tables: list[str] | tuple[str, ...] = ()) -> None:
    """Raise SchemaError unless the database is at head and holds `tables`."""
    with _lock:
        if id(engine) not in _checked:
            head = head_revision()
            current = current_revision(engine)
            if current != head:
                found = current or "no schema"
                raise SchemaError(
                    f"database {engine.url.render_as_string(hide_password=True)} is at {found}, "
                    f"the code expects {head}: run `flask db upgrade`"
                )
            _checked.add(id(engine))
    if tables:
        with engine.connect() as conn:
            insp = inspect(conn)
            missing = [t for t in tables if not insp.has_table(t)]
        if missing:
            raise SchemaError(f"tables missing: {', '.join(missing)}: run `flask db upgrade`")


def forget(engine: Engine) -> None:
    """Forget that `engine` was checked (after a migration ran in this process)."""
    with _lock:
        _checked.discard(id(engine))
