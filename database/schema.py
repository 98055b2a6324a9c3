"""Checks that the database schema is the one the code expects (the migrations' head).

Every domain module's `init_db()` calls `require_current()`: the app refuses to run against a
database that is behind (or ahead of) the code, with a message naming the command that fixes it.
"""

from __future__ import annotations

import ast
import os
import re
import threading

from sqlalchemy import inspect, text
from sqlalchemy.engine import Engine

MIGRATIONS_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "migrations")

_checked: set[int] = set()
_lock = threading.Lock()


class SchemaError(RuntimeError):
    """The database is not at the revision this code expects."""


VERSIONS_DIR = os.path.join(MIGRATIONS_DIR, "versions")
# `revision = "abc"` / `down_revision: str | None = ("a", "b")` at the start of a line of a script.
_ASSIGN = re.compile(r"^(revision|down_revision)\s*(?::[^=\n]*)?=\s*(.+?)\s*(?:#.*)?$", re.MULTILINE)
_heads_cache: tuple[tuple, list[str]] | None = None


def _scan_heads() -> list[str]:
    """The head revisions, read from the scripts' text: no alembic import (~0.3 s, ~10 MB) just to
    learn that the database is current. Falls back to alembic for a script it cannot read."""
    revisions: set[str] = set()
    parents: set[str] = set()
    for entry in os.scandir(VERSIONS_DIR):
        if not entry.name.endswith(".py") or not entry.is_file():
            continue
        with open(entry.path, encoding="utf-8") as fh:
            found = dict((m.group(1), m.group(2)) for m in _ASSIGN.finditer(fh.read()))
        try:
            revision = ast.literal_eval(found["revision"])
            down = ast.literal_eval(found.get("down_revision", "None"))
        except (KeyError, ValueError, SyntaxError):
            return _alembic_heads()
        if not isinstance(revision, str):
            return _alembic_heads()
        revisions.add(revision)
        if isinstance(down, str):
            parents.add(down)
        elif isinstance(down, (tuple, list)):
            parents.update(down)
        elif down is not None:
            return _alembic_heads()
    return sorted(revisions - parents)


def _alembic_heads() -> list[str]:
    from alembic.script import ScriptDirectory  # alembic (~12 MB) stays out of a server that needs no migration

    return list(ScriptDirectory(MIGRATIONS_DIR).get_heads())


def _versions_stamp() -> tuple:
    return tuple(sorted((e.name, e.stat().st_mtime_ns, e.stat().st_size) for e in os.scandir(VERSIONS_DIR)
                        if e.name.endswith(".py")))


def head_revision() -> str:
    global _heads_cache
    stamp = _versions_stamp()
    cached = _heads_cache
    if cached is not None and cached[0] == stamp:
        heads = cached[1]
    else:
        heads = _scan_heads()
        _heads_cache = (stamp, heads)
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
