"""`/health`, and what every request gets while the database is unreachable: a clear 503 (JSON for
the API and machine clients, a page for people), never a 500, a traceback or a hang.

The unreachable database is a real one: a PostgreSQL URL on a loopback port where nothing listens
(connections are refused at once), not a mock. So is the read-only database (the connections of the
request are switched to read-only) and the busy one (another connection holds the lock). A full disk
is simulated (os.write fails with ENOSPC); a read-only folder is real, except as root, where chmod
stops nothing.
"""

from __future__ import annotations

import contextlib
import errno
import os
import socket
import threading
import time

import pytest
from sqlalchemy import event

from blueprints import health
from database import db
from tests.helpers.databases import app_overrides

DB_UNAVAILABLE = {"status": "error", "message": "database unavailable, retry shortly"}


def test_health_reports_the_writer_and_the_process(client):
    resp = client.get("/health")
    assert resp.status_code == 200
    body = resp.get_json()
    assert body["status"] == "ok"
    assert body["pid"] == os.getpid()
    writer = body["checks"]["writer"]
    assert writer["ok"]
    assert writer["alive"] in (True, False)
    assert {"queued", "capacity", "written", "retries", "spooled", "dead_lettered", "dead_letter_files"} <= set(writer)
    assert writer["dead_letter_files"] == 0
    assert writer["capacity"] > 0


def test_health_counts_dead_letter_files(app, client):
    spool = os.path.join(app.instance_path, "spool")
    os.makedirs(spool, exist_ok=True)
    path = os.path.join(spool, "deadletter-1-1.jsonl")
    with open(path, "w", encoding="utf-8") as fh:
        fh.write('{"table": "api_logs", "row": {}}\n')
    try:
        writer = client.get("/health").get_json()["checks"]["writer"]
        assert writer["dead_letter_files"] == 1
    finally:
        os.remove(path)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed again on return: connections to it are refused


@pytest.fixture
def app_without_database(tmp_path):
    from app import create_app
    from database import db

    url = f"postgresql+psycopg://postgres@127.0.0.1:{_closed_port()}/algobridge"
    application = create_app(app_overrides(url, str(tmp_path / "instance"), SETUP_ENVIRONMENT=False))
    yield application
    application.extensions["algobridge.writer"].shutdown(timeout=1)  # rows it holds go to the spool
    with application.app_context():
        db.engine.dispose()


def test_health_is_503_json_when_the_database_is_down(app_without_database):
    resp = app_without_database.test_client().get("/health")
    assert resp.status_code == 503
    assert resp.mimetype == "application/json"
    body = resp.get_json()
    assert body["status"] == "error"
    assert body["message"] == DB_UNAVAILABLE["message"]
    assert body["checks"]["database"] == {"ok": False, "error": "OperationalError"}
    assert body["checks"]["migrations"]["ok"] is False


def test_api_calls_get_503_json_when_the_database_is_down(app_without_database):
    client = app_without_database.test_client()
    resp = client.post("/api/v1/placeorder", json={
        "apikey": "k" * 64, "strategy": "s", "symbol": "INFY", "exchange": "NSE", "action": "BUY",
        "quantity": 1, "pricetype": "MARKET", "product": "MIS"})
    assert resp.status_code == 503, resp.get_data(as_text=True)
    assert resp.get_json() == DB_UNAVAILABLE
    assert "Retry-After" in resp.headers
    funds = client.post("/api/v1/funds", json={"apikey": "k" * 64})
    assert funds.status_code == 503
    assert funds.get_json() == DB_UNAVAILABLE


def test_pages_get_a_503_page_when_the_database_is_down(app_without_database):
    client = app_without_database.test_client()
    page = client.get("/setup")  # asks the database whether an admin exists
    assert page.status_code == 503
    assert page.mimetype == "text/html"
    text = page.get_data(as_text=True)
    assert "503" in text
    assert "database is unavailable" in text
    assert "Traceback" not in text
    machine = client.get("/setup", headers={"Accept": "application/json"})
    assert machine.status_code == 503
    assert machine.get_json() == DB_UNAVAILABLE


# -- the write checks -----------------------------------------------------------------------------


@pytest.fixture
def fresh(app):
    """The write checks run afresh in this test, and no result of it outlives it."""
    app.extensions.pop("algobridge.health", None)
    yield app
    app.extensions.pop("algobridge.health", None)


@contextlib.contextmanager
def read_only_connections(engine):
    """Connections this thread checks out (the test client serves requests in it) are read-only:
    PRAGMA query_only on SQLite, default_transaction_read_only on PostgreSQL; undone at check-in."""
    me = threading.get_ident()
    sqlite_ = engine.dialect.name == "sqlite"

    def run(dbapi_conn, sql):
        dbapi_conn.execute(sql)
        if not sqlite_:
            dbapi_conn.commit()  # the setting outlives this transaction; new ones start read-only

    def checkout(dbapi_conn, record, _proxy):
        if threading.get_ident() == me:
            run(dbapi_conn, "PRAGMA query_only = ON" if sqlite_ else "SET default_transaction_read_only = on")
            record.info["read_only"] = True

    def checkin(dbapi_conn, record):
        if record.info.pop("read_only", False):
            run(dbapi_conn, "PRAGMA query_only = OFF" if sqlite_ else "RESET default_transaction_read_only")

    event.listen(engine, "checkout", checkout)
    event.listen(engine, "checkin", checkin)
    try:
        yield
    finally:
        event.remove(engine, "checkout", checkout)
        event.remove(engine, "checkin", checkin)


def test_health_checks_that_the_database_and_the_instance_folder_take_writes(fresh):
    resp = fresh.test_client().get("/health")
    assert resp.status_code == 200
    checks = resp.get_json()["checks"]
    assert checks["database_write"] == {"ok": True}
    assert checks["instance_write"] == {"ok": True}
    assert not [name for name in os.listdir(fresh.instance_path) if name.startswith(".health-")]


def test_health_is_503_when_the_database_is_read_only(fresh):
    with read_only_connections(db.engine):
        resp = fresh.test_client().get("/health")
    assert resp.status_code == 503
    body = resp.get_json()
    assert body["message"] == "failing: database_write"
    check = body["checks"]["database_write"]
    assert check["ok"] is False
    if db.engine.dialect.name == "sqlite":
        assert check == {"ok": False, "error": "OperationalError", "reason": "attempt to write a readonly database"}
    else:
        assert check == {"ok": False, "error": "ReadOnlySqlTransaction",
                         "reason": "cannot execute INSERT in a read-only transaction"}
    assert body["checks"]["database"]["ok"] is True  # reads still work
    # The pooled connections are writable again, and the next check (after the cache) passes.
    fresh.extensions.pop("algobridge.health")
    assert fresh.test_client().get("/health").status_code == 200


def test_health_waits_briefly_for_a_busy_database_and_says_so(fresh):
    with db.engine.connect() as holder:
        if holder.dialect.name == "sqlite":
            holder.exec_driver_sql("BEGIN IMMEDIATE")  # the write lock, as a long writer holds it
        else:
            holder.exec_driver_sql("LOCK TABLE cache_generations IN SHARE MODE")  # blocks every INSERT
        started = time.monotonic()
        resp = fresh.test_client().get("/health")
        elapsed = time.monotonic() - started
        holder.rollback()
    assert resp.status_code == 200, resp.get_json()
    assert resp.get_json()["checks"]["database_write"] == {"ok": True, "busy": True}
    assert elapsed < 5  # not the 30 s of DB_BUSY_TIMEOUT


def test_health_is_503_when_the_disk_is_full(fresh, monkeypatch, tmp_path):
    real_write = os.write

    def full(fd, data):
        if os.path.basename(os.readlink(f"/proc/self/fd/{fd}")).startswith(".health-"):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_write(fd, data)

    monkeypatch.setattr(os, "write", full)
    # An instance folder apart from the SQLite file, so that the database's own folder is probed too.
    monkeypatch.setattr(fresh, "instance_path", str(tmp_path))
    resp = fresh.test_client().get("/health")
    assert resp.status_code == 503
    body = resp.get_json()
    full_disk = {"ok": False, "error": "ENOSPC", "reason": "No space left on device"}
    assert body["checks"]["instance_write"] == full_disk
    if db.engine.dialect.name == "sqlite":
        assert body["checks"]["database_write"] == full_disk
        assert body["message"] == "failing: database_write, instance_write"
    else:
        assert body["checks"]["database_write"] == {"ok": True}
        assert body["message"] == "failing: instance_write"
    assert os.listdir(tmp_path) == []  # the probe file is gone


def test_health_writes_at_most_once_a_second_per_process(fresh, monkeypatch):
    calls = []
    real = health._folder_write
    monkeypatch.setattr(health, "_folder_write", lambda folder: calls.append(folder) or real(folder))
    client = fresh.test_client()
    for _ in range(20):
        assert client.get("/health").status_code == 200
    assert len(calls) == 1
    monkeypatch.setattr(health, "WRITE_CHECK_TTL", 0)
    client.get("/health")
    assert len(calls) == 2


def test_health_does_not_probe_writes_of_an_unreachable_database(app_without_database):
    body = app_without_database.test_client().get("/health").get_json()
    assert body["checks"]["database_write"] == {"ok": False, "error": "database unreachable"}
    assert body["checks"]["instance_write"] == {"ok": True}
