"""The unit of work: one use case, one transaction, committed once or rolled back.

Every use case that changes state runs its writes inside `unit_of_work()`:

    with unit_of_work():
        ...  # add, change, flush
    # committed here; any exception inside rolled everything back and propagates

A unit opened inside another joins it as a SAVEPOINT: its failure rolls back only its own part (the
outer unit may catch the error and go on), and only the outermost unit commits. This is the one
place outside the log writer (its own connection) that commits; services, blueprints and the rest
of `database/` only add and flush.

A failure that must be recorded (a rejected order, an alert) is written by the use case in a unit of
its own, on purpose, not as a side effect of an error path.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from sqlalchemy.orm import Session

from database import db, write_unit

_DEPTH = "algobridge.unit_depth"


def in_unit(session: Session | None = None) -> bool:
    """Whether a unit of work is open on the session (the current request's by default)."""
    return bool((session or db.session()).info.get(_DEPTH))


@contextlib.contextmanager
def unit_of_work(*, write: bool = False, session: Session | None = None) -> Iterator[Session]:
    """Commit once when the block ends, roll back when it raises. `write=True` declares up front that
    the unit will write what it reads (database.write_unit: SQLite's write lock is taken now)."""
    session = session or db.session()
    depth = session.info.get(_DEPTH, 0)
    if depth:
        with _nested(session, depth, write):
            yield session
        return
    session.info[_DEPTH] = 1
    try:
        if write:
            write_unit(session)
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.info.pop(_DEPTH, None)


@contextlib.contextmanager
def _nested(session: Session, depth: int, write: bool) -> Iterator[None]:
    session.info[_DEPTH] = depth + 1
    try:
        if write:
            write_unit(session)
        savepoint = session.begin_nested()
        try:
            yield
        except BaseException:
            if savepoint.is_active:
                savepoint.rollback()
            raise
        if savepoint.is_active:
            savepoint.commit()
    finally:
        session.info[_DEPTH] = depth
