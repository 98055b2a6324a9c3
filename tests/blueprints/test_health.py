"""`/health`, and what every request gets while the database is unreachable: a clear 503 (JSON for
the API and machine clients, a page for people), never a 500, a traceback or a hang.

The unreachable database is a real one: a PostgreSQL URL on a loopback port where nothing listens
(connections are refused at once), not a mock.
"""

from __future__ import annotations

import os
import socket

import pytest

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
