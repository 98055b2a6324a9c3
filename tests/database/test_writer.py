"""The background writer: nothing lost under concurrency, back-pressure, database errors and
shutdown; errors never reach the caller."""

from __future__ import annotations

import datetime as dt
import glob
import os
import threading
from decimal import Decimal

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
    assert writer.written == 20000
    assert writer.spooled == 0


def test_a_small_queue_pushes_back_instead_of_dropping(app):
    writer = LogWriter(db.engine, TABLES, queue_size=10, batch_size=7)
    errors = _enqueue_from_threads(writer, 4, 500)
    writer.shutdown()
    assert errors == []
    assert _count() == 2000


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
        assert writer.retries > 0
        assert writer.written == 0
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


def test_a_row_logged_after_shutdown_is_spooled_not_a_new_writer_thread(app, tmp_path):
    spool = tmp_path / "spool"
    writer = LogWriter(db.engine, TABLES, spool_dir=str(spool))
    writer.enqueue(ApiLog, _row(1))
    writer.shutdown()
    assert writer.written == 1
    writer.enqueue(ApiLog, _row(2))  # e.g. a warning logged while the process ends
    assert writer._thread is not None
    assert not writer._thread.is_alive()
    assert writer.spooled == 1
    assert len(glob.glob(str(spool / "writer-*.jsonl"))) == 1
    again = LogWriter(db.engine, TABLES, spool_dir=str(spool))
    again.start()  # the late row is replayed like any spooled one
    assert again.flush(timeout=30)
    again.shutdown()
    assert _count() == 2


def test_shutdown_with_the_database_away_spools_and_the_next_start_replays(app, tmp_path):
    spool = tmp_path / "spool"
    away = create_engine(f"sqlite:///{tmp_path}/missing-dir/x.db")  # cannot be opened
    writer = LogWriter(away, TABLES, spool_dir=str(spool), shutdown_timeout=0.5)
    for i in range(120):
        writer.enqueue(ApiLog, _row(i))
    writer.shutdown()
    assert writer.spooled == 120
    assert writer.written == 0
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
    assert _count() == 3
    assert writer.dead_lettered == 1
    assert writer.retries == 0


def test_nul_characters_are_stored_not_dead_lettered(app, tmp_path):
    """PostgreSQL refuses NUL in text; the writer replaces it (with NUL_MARK there), in text columns
    and inside JSON values, on both the single-row INSERT and the COPY of a batch."""
    from database.writer import NUL_MARK

    # a Decimal too: the cleaned value is encoded by the engine's serializer (Decimals as strings),
    # not the stdlib's, which refuses them
    nul_request = {"symbol": "IN\x00FY", "nested": [{"k\x00": "v\x00"}], "clean": "x", "price": Decimal("101.55")}
    writer = LogWriter(db.engine, TABLES, spool_dir=str(tmp_path))
    writer.enqueue(ApiLog, _row(1, api_type="place\x00order", request=nul_request))  # alone: INSERT
    assert writer.flush(timeout=10)
    for i in range(2, 5):  # a batch: COPY on PostgreSQL
        writer.enqueue(ApiLog, _row(i, client_ip="1.2.3.\x00", request={**nul_request, "n": i}))
    writer.shutdown()
    assert writer.dead_lettered == 0
    assert glob.glob(os.path.join(tmp_path, "*")) == []
    assert _count() == 4
    rows = db.session.scalars(select(ApiLog).order_by(ApiLog.id)).all()
    mark = NUL_MARK if db.engine.dialect.name == "postgresql" else "\x00"
    assert rows[0].api_type == f"place{mark}order"
    assert rows[0].request == {"symbol": f"IN{mark}FY", "nested": [{f"k{mark}": f"v{mark}"}], "clean": "x",
                               "price": "101.55"}
    assert [r.client_ip for r in rows[1:]] == [f"1.2.3.{mark}"] * 3
    assert [r.request["n"] for r in rows[1:]] == [2, 3, 4]


def test_an_api_call_with_nul_in_its_body_and_path_is_logged_not_dead_lettered(app, client):
    """Through the app: /api/v1 refuses the body (an unknown field, validated nowhere) but its log row
    keeps what was sent; a NUL in the path (api_type, a text column) is stored too."""
    from database.writer import NUL_MARK

    writer = app.extensions["algobridge.writer"]
    before = writer.dead_lettered
    body = {"apikey": "k" * 64, "note": "a\x00b", "x\x00": [1, "\x00"]}
    assert client.post("/api/v1/ping", json=body).status_code in (400, 403)
    assert client.post("/api/v1/pi%00ng", json={"note": "\x00"}).status_code == 404
    assert writer.flush(timeout=30)
    assert writer.dead_lettered == before
    db.session.rollback()
    rows = db.session.scalars(select(ApiLog).order_by(ApiLog.id)).all()
    mark = NUL_MARK if db.engine.dialect.name == "postgresql" else "\x00"
    assert [r.api_type for r in rows] == ["ping", f"pi{mark}ng"]
    assert rows[0].request == {"note": f"a{mark}b", f"x{mark}": [1, mark]}  # apikey removed
    assert rows[1].request == {"note": mark}
