"""One engine and one metadata for every domain module; engine options from the environment."""

from __future__ import annotations

import importlib

from sqlalchemy import text

from database import DOMAIN_MODULES, Base, db


def test_every_model_shares_one_metadata_and_engine(app):
    tables = set(Base.metadata.tables)
    engines = set()
    found = 0
    for name in DOMAIN_MODULES:
        module = importlib.import_module(f"database.{name}")
        for obj in vars(module).values():
            if isinstance(obj, type) and issubclass(obj, Base) and obj is not Base and hasattr(obj, "__table__"):
                found += 1
                assert obj.metadata is db.metadata is Base.metadata
                assert obj.__table__.name in tables
                engines.add(id(db.session.get_bind(mapper=obj.__mapper__)))
    assert found >= 25
    assert engines == {id(db.engine)}


def test_every_constraint_is_named():
    for table in Base.metadata.tables.values():
        for constraint in table.constraints:
            assert constraint.name, f"unnamed constraint on {table.name}"
        for index in table.indexes:
            assert index.name, f"unnamed index on {table.name}"


def test_engine_options(app, backend):
    engine = db.engine
    assert engine.pool._pre_ping is True
    if backend == "postgresql":
        assert engine.pool.size() == app.config["DB_POOL_SIZE"] == 5
        assert engine.pool._max_overflow == app.config["DB_MAX_OVERFLOW"] == 10
        assert engine.pool._timeout == app.config["DB_POOL_TIMEOUT"] == 30
        assert engine.pool._recycle == app.config["DB_POOL_RECYCLE"] == 1800
    else:
        with engine.connect() as conn:
            assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
            assert conn.execute(text("PRAGMA synchronous")).scalar() == 1  # NORMAL
            assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1
            assert conn.execute(text("PRAGMA busy_timeout")).scalar() == app.config["DB_BUSY_TIMEOUT"] * 1000


def test_pool_settings_from_the_environment(tmp_path, pg_url, monkeypatch):
    from app import create_app
    from tests.conftest import shutdown_app
    from tests.helpers.databases import TEST_SECRETS

    for k, v in {"DB_POOL_SIZE": "7", "DB_MAX_OVERFLOW": "3", "DB_POOL_TIMEOUT": "11",
                 "DB_POOL_RECYCLE": "600", "DATABASE_URL": pg_url, **TEST_SECRETS}.items():
        monkeypatch.setenv(k, v)
    application = create_app({"INSTANCE_PATH": str(tmp_path), "SETUP_ENVIRONMENT": False})
    try:
        with application.app_context():
            pool = db.engine.pool
            assert (pool.size(), pool._max_overflow, pool._timeout, pool._recycle) == (7, 3, 11, 600)
    finally:
        shutdown_app(application)


def test_sqlite_savepoints_roll_back_inside_an_outer_transaction(app):
    from database.user_db import User

    db.session.add(User(username="outer", password_hash="x"))
    db.session.flush()
    nested = db.session.begin_nested()
    db.session.add(User(username="inner", password_hash="x"))
    db.session.flush()
    nested.rollback()
    db.session.commit()
    names = {u.username for u in db.session.scalars(db.select(User))}
    assert names == {"outer"}


def test_read_then_write_after_another_connection_committed(app):
    """The log writer commits all the time; a unit that read before it must still be able to write
    (on SQLite this used to fail at once with 'database is locked': a stale WAL snapshot)."""
    from database.apilog_db import ApiLog
    from database.user_db import User

    db.session.add(User(username="first", password_hash="x"))
    db.session.commit()
    assert db.session.scalar(db.select(User.username)) == "first"  # a read in the unit of work
    with db.engine.begin() as other:  # another connection commits meanwhile
        other.execute(ApiLog.__table__.insert().values(api_type="ping", status_code=200))
    db.session.add(User(username="second", password_hash="x"))
    db.session.commit()
    assert db.session.scalar(db.select(db.func.count()).select_from(User)) == 2


def test_write_unit_holds_the_write_lock_from_the_first_read(app, backend):
    from database import write_unit
    from database.user_db import User

    db.session.scalar(db.select(db.func.count()).select_from(User))  # an earlier read of the unit
    write_unit()
    db.session.scalar(db.select(db.func.count()).select_from(User))
    if backend == "sqlite":
        assert db.session.connection().connection.driver_connection.in_transaction
    db.session.add(User(username="u", password_hash="x"))
    db.session.commit()
