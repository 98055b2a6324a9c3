"""The background writer: nothing lost under concurrency, back-pressure, database errors and
shutdown; errors never reach the caller."""

from __future__ import annotations

import datetime as dt
import glob
import os
import threading

import pytest
from flask_migrate import upgrade
from sqlalchemy import create_engine, func, select

from app import create_app
from database import Base, db
from database.apilog_db import ApiLog
from database.types import utcnow
from database.writer import WRITTEN_TABLES, LogWriter
from tests.conftest import shutdown_app
from tests.helpers.databases import app_overrides, create_pg_database, drop_pg_database, sqlite_url

TABLES = {name: Base.metadata.tables[name] for name in WRITTEN_TABLES}


def _count(engine=None) -> int:
    with (engine or db.engine).connect() as conn:
        return conn.execute(select(func.count()).select_from(ApiLog.__table__)).scalar()


def _row(i: int, **extra) -> dict:
    return {"api_type": "placeorder", "status_code": 200, "request": {"n": i}, "created_at": utcnow(), **extra}


def _enqueue_from_threads(writer: LogWriter, threads: int, per_thread: int) -> list[BaseException]:
    errors: list[BaseException] = []

    def work(t: int) -> None:
        try:
            for i in range(per_thread):
                writer.enqueue(ApiLog, _row(t * per_thread + i))
        except BaseException as exc:  # noqa: BLE001 - collected and asserted on
            errors.append(exc)

    pool = [threading.Thread(target=work, args=(t,)) for t in range(threads)]
    for th in pool:
        th.start()
    for th in pool:
        th.join()
    return errors


def test_eight_threads_twenty_thousand_rows_all_land(app):
    writer = LogWriter(db.engine, TABLES, batch_size=500)
    errors = _enqueue_from_threads(writer, 8, 2500)
    writer.shutdown()
    assert errors == []
    assert _count() == 20000
    assert writer.written == 20000 and writer.spooled == 0


def test_a_small_queue_pushes_back_instead_of_dropping(app):
    writer = LogWriter(db.engine, TABLES, queue_size=10, batch_size=7)
    errors = _enqueue_from_threads(writer, 4, 500)
    writer.shutdown()
    assert errors == [] and _count() == 2000


@pytest.fixture(params=["sqlite", "postgresql"])
def unmigrated(request, tmp_path):
    url = sqlite_url(str(tmp_path), "late.db") if request.param == "sqlite" else create_pg_database("algobridge_w")
    application = create_app(app_overrides(url, str(tmp_path), AUTO_MIGRATE=False, SETUP_ENVIRONMENT=False))
    yield application
    shutdown_app(application)
    if request.param == "postgresql":
        drop_pg_database(url)


def test_database_errors_are_retried_never_raised(unmigrated):
    with unmigrated.app_context():
        engine = db.engine
        writer = LogWriter(engine, TABLES, batch_size=50)
        for i in range(300):
            writer.enqueue(ApiLog, _row(i))  # the table does not exist yet: inserts fail
        assert not writer.flush(timeout=0.5)
        assert writer.retries > 0 and writer.written == 0
        upgrade()  # the database comes right: the writer catches up by itself
        assert writer.flush(timeout=30)
        writer.shutdown()
        assert _count(engine) == 300


def test_a_refused_row_is_set_aside_and_the_rest_are_written(app, tmp_path):
    writer = LogWriter(db.engine, TABLES, batch_size=100, spool_dir=str(tmp_path))
    for i in range(50):
        writer.enqueue(ApiLog, _row(i, status_code=None if i == 25 else 200))  # NOT NULL violation
    writer.shutdown()
    assert _count() == 49
    assert writer.dead_lettered == 1
    (dead,) = glob.glob(os.path.join(tmp_path, "deadletter-*.jsonl"))
    with open(dead, encoding="utf-8") as fh:
        assert '"n": 25' in fh.read()


def test_shutdown_with_the_database_away_spools_and_the_next_start_replays(app, tmp_path):
    spool = tmp_path / "spool"
    away = create_engine(f"sqlite:///{tmp_path}/missing-dir/x.db")  # cannot be opened
    writer = LogWriter(away, TABLES, spool_dir=str(spool), shutdown_timeout=0.5)
    for i in range(120):
        writer.enqueue(ApiLog, _row(i))
    writer.shutdown()
    assert writer.spooled == 120 and writer.written == 0
    assert glob.glob(str(spool / "writer-*.jsonl"))

    again = LogWriter(db.engine, TABLES, spool_dir=str(spool))
    again.start()  # replays the spool
    assert again.flush(timeout=30)
    again.shutdown()
    assert _count() == 120
    assert glob.glob(str(spool / "*")) == []


def test_a_row_that_cannot_be_converted_is_set_aside_not_retried_forever(app, tmp_path):
    writer = LogWriter(db.engine, TABLES, spool_dir=str(tmp_path))
    writer.enqueue(ApiLog, _row(1))
    writer.enqueue(ApiLog, _row(2, request={"quantity": 10**40}))  # beyond 64 bits: still JSON
    writer.enqueue(ApiLog, _row(3, created_at=dt.datetime(2026, 1, 1)))  # naive: refused by UTCDateTime  # noqa: DTZ001
    writer.enqueue(ApiLog, _row(4))
    assert writer.flush(timeout=10)
    writer.shutdown()
    assert _count() == 3 and writer.dead_lettered == 1 and writer.retries == 0
