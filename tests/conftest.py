"""Fixtures: the same suite runs on SQLite and on PostgreSQL.

`app` is parametrised over both backends. Each backend gets one application per run (PostgreSQL: a
fresh database, dropped at the end); every table is emptied after each test. PostgreSQL is never
skipped: if it is unreachable the tests that need it fail.
"""

from __future__ import annotations

import os

import pytest
from flask.testing import FlaskClient
from sqlalchemy import text

from database import Base, db, import_models
from tests.helpers.databases import app_overrides, create_pg_database, drop_pg_database, sqlite_url

BACKENDS = ["sqlite", "postgresql"]

import_models()
# Servers the tests start (gunicorn, python app.py) serve the web only: the feed's tests start the feed themselves,
# and a feed per server would fight over its port.
os.environ.setdefault("WEBSOCKET_WITH_WEB", "false")


@pytest.fixture(scope="session")
def pg_url():
    url = create_pg_database()
    yield url
    drop_pg_database(url)


@pytest.fixture(scope="session", params=BACKENDS)
def backend(request):
    return request.param


class IsolatedClient(FlaskClient):
    """Each request runs in an application context of its own, as it does in production.

    Without this, requests made while a test holds the app context reuse that context: `g` (where
    the CSRF token is cached) and the database session would leak from one request to the next.
    """

    def open(self, *args, **kwargs):
        with self.application.app_context():
            return super().open(*args, **kwargs)


@pytest.fixture(scope="session")
def _app_instance(backend, request, tmp_path_factory):
    from app import create_app

    instance = tmp_path_factory.mktemp(f"instance-{backend}")
    url = sqlite_url(str(instance)) if backend == "sqlite" else request.getfixturevalue("pg_url")
    application = create_app(app_overrides(url, str(instance)))
    application.test_client_class = IsolatedClient
    yield application
    shutdown_app(application)


def shutdown_app(application) -> None:
    application.extensions["algobridge.writer"].shutdown(timeout=5)
    application.extensions["algobridge.cache"].stop()
    with application.app_context():
        db.engine.dispose()


def empty_all_tables(application) -> None:
    with application.app_context():
        # cache_generations stays: other processes' pollers compare against it, and a counter
        # that went backwards would make them ignore later invalidations.
        tables = [t.name for t in reversed(Base.metadata.sorted_tables) if t.name != "cache_generations"]
        with db.engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                conn.execute(text(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE"))
            else:
                for name in tables:
                    conn.execute(text(f"DELETE FROM {name}"))  # noqa: S608 - our own table names


@pytest.fixture
def app(_app_instance):
    """The application of the current backend, inside an app context; emptied after the test."""
    from extensions import limiter

    with _app_instance.app_context():
        limiter.reset()  # rate-limit counters are per test, like the tables
        yield _app_instance
        db.session.remove()
    log_writer = _app_instance.extensions["algobridge.writer"]
    assert log_writer.flush(timeout=30), f"the log writer is stuck: {log_writer.stats()}"
    empty_all_tables(_app_instance)
    _app_instance.extensions["algobridge.cache"].clear()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def runner(app):
    return app.test_cli_runner()
