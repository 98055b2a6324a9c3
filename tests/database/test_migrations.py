"""The schema belongs to the migrations: upgrade from empty, no drift, downgrade and back, and the
start-up path (AUTO_MIGRATE, init_db idempotent, a database behind head refused)."""

from __future__ import annotations

import pytest
from flask_migrate import downgrade, upgrade
from sqlalchemy import inspect, text

from app import create_app, setup_environment
from database import Base, db, schema
from tests.conftest import shutdown_app
from tests.helpers.databases import app_overrides, create_pg_database, drop_pg_database, sqlite_url


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_app(request, tmp_path):
    """An application on an empty database, not migrated."""
    url = sqlite_url(str(tmp_path)) if request.param == "sqlite" else create_pg_database("algobridge_mig")
    application = create_app(app_overrides(url, str(tmp_path), AUTO_MIGRATE=False, SETUP_ENVIRONMENT=False))
    yield application
    shutdown_app(application)
    if request.param == "postgresql":
        drop_pg_database(url)


def _tables(application) -> set[str]:
    with application.app_context():
        return set(inspect(db.engine).get_table_names()) - {"alembic_version"}


def _no_drift(application) -> bool:
    """`flask db check`: exit 0 when the database matches the models, an error on drift."""
    result = application.test_cli_runner().invoke(args=["db", "check"])
    return result.exit_code == 0 and result.exception is None


def test_upgrade_check_downgrade_round_trip(empty_app):
    assert _tables(empty_app) == set()
    with empty_app.app_context():
        upgrade()
    assert _tables(empty_app) == set(Base.metadata.tables)
    assert _no_drift(empty_app)

    with empty_app.app_context():
        downgrade(revision="base")
    assert _tables(empty_app) == set()
    with empty_app.app_context():
        upgrade()
        assert schema.current_revision(db.engine) == schema.head_revision()
    assert _tables(empty_app) == set(Base.metadata.tables)
    assert _no_drift(empty_app)

    # The check can fail: drop an index behind the migrations' back and it reports the drift.
    with empty_app.app_context(), db.engine.begin() as conn:
        conn.execute(text("DROP INDEX ix_api_logs_created_at"))
    assert not _no_drift(empty_app)


def test_auto_migrate_then_init_db_is_idempotent(empty_app):
    empty_app.config["AUTO_MIGRATE"] = True
    setup_environment(empty_app)
    assert _tables(empty_app) == set(Base.metadata.tables)
    with empty_app.app_context():
        before = _snapshot()
    setup_environment(empty_app)  # a second start changes nothing
    with empty_app.app_context():
        assert _snapshot() == before


def _snapshot() -> dict[str, int]:
    with db.engine.connect() as conn:
        return {t: conn.execute(text(f"SELECT count(*) FROM {t}")).scalar() for t in Base.metadata.tables}  # noqa: S608


def test_a_database_behind_head_is_refused_with_the_fix_named(empty_app):
    with pytest.raises(schema.SchemaError, match="flask db upgrade"):
        setup_environment(empty_app)


def test_head_revision_read_from_the_scripts_matches_alembic():
    assert schema.head_revision() == schema._alembic_heads()[0]
