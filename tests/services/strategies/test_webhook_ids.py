"""Webhook ids are kept like API keys (an HMAC under API_KEY_PEPPER, shown once, rotatable), existing ids
are hashed by the migration and keep working, and no log line holds one."""

from __future__ import annotations

import datetime as dt
import logging

import pytest
import sqlalchemy as sa
from flask_migrate import downgrade, upgrade
from sqlalchemy import inspect, select

from app import create_app
from database import db, writer
from database.strategy_db import Strategy
from database.systemlog_db import SystemLog
from database.traffic_db import TrafficLog
from extensions import limiter
from services.accounts import api_keys
from services.market import master_contract, symbol_index
from services.strategies import strategy as strategies
from tests.conftest import shutdown_app
from tests.helpers.accounts import make_user
from tests.helpers.api import flush_logs
from tests.helpers.databases import app_overrides, create_pg_database, drop_pg_database, sqlite_url
from tests.services.strategies.test_webhooks_strategy import at_ist, hook, make_strategy

BEFORE = "d5f464344ea8"
REVISION = "e3c9a5d7b1f2"


@pytest.fixture
def user(app, monkeypatch):
    """A trader, with the sample contract loaded and the exchange clock at 11:00 (as the webhook tests)."""
    limiter.reset()
    master_contract.ensure_sample_contract(rows=2000)
    symbol_index.reload()
    at_ist(monkeypatch, 11, 0)
    return make_user("trader1")


def stored_values() -> list[str]:
    """Every value of the strategies table as text, as the database holds it."""
    db.session.rollback()
    with db.engine.connect() as conn:
        return [str(v) for row in conn.execute(sa.text("SELECT * FROM strategies")) for v in row]


def test_only_the_hash_is_stored_and_the_id_finds_its_strategy(app, client, user):
    wid = make_strategy(user)
    values = stored_values()
    assert not any(wid in v for v in values)
    (s,) = db.session.scalars(select(Strategy)).all()
    assert (s.webhook_hash, s.webhook_prefix) == (api_keys.hash_key(wid), wid[:6])
    assert strategies.get_by_webhook(wid).id == s.id
    assert hook(client, wid, {"symbol": "RELIANCE", "action": "BUY"}).status_code == 200
    for wrong in (wid[:-1], wid.upper(), s.webhook_hash, "", "x" * 10_000):
        assert strategies.get_by_webhook(wrong) is None


def test_rotation_shows_a_new_id_once_and_the_old_one_stops_working(app, client, user):
    from services.accounts.users import Actor

    old = make_strategy(user)
    (s,) = db.session.scalars(select(Strategy)).all()
    strategy, new = strategies.rotate_webhook(Actor(user.username, user.id), s.id)
    assert new != old
    assert (strategy.webhook_prefix, strategy.webhook_hash) == (new[:6], api_keys.hash_key(new))
    resp = hook(client, old, {"symbol": "RELIANCE", "action": "BUY"})
    assert (resp.status_code, resp.get_json()["message"]) == (404, "Unknown webhook.")
    assert hook(client, new, {"symbol": "RELIANCE", "action": "BUY"}).status_code == 200


# -- logs ----------------------------------------------------------------------------------------------------------
def traffic_paths(app) -> list[tuple[str, int]]:
    flush_logs(app)
    db.session.rollback()
    return [(r.path, r.status_code) for r in db.session.scalars(select(TrafficLog).order_by(TrafficLog.id))]


def test_webhook_ids_are_masked_in_traffic_rows_of_every_answer(app, client, user):
    wid = make_strategy(user)
    assert client.get(f"/strategy/webhook/{wid}").status_code == 405  # no route variable is bound
    assert client.post(f"/strategy/webhook/{wid}/extra", json={}).status_code == 404
    assert client.get(f"/chartink/webhook/{wid}?x=1").status_code == 405
    assert client.post(f"/STRATEGY/WEBHOOK/{wid}", json={}).status_code == 404
    assert client.post(f"/strategy/webhook/{wid}", json={"symbol": "RELIANCE", "action": "BUY"}).status_code == 200
    paths = traffic_paths(app)
    assert paths == [("/strategy/webhook/***", 405), ("/strategy/webhook/***/extra", 404),
                     ("/chartink/webhook/***?x=1", 405), ("/STRATEGY/WEBHOOK/***", 404),
                     ("/strategy/webhook/***", 200)]


def test_webhook_ids_are_masked_in_the_system_log_and_the_servers_access_lines(app, user, caplog):
    wid = make_strategy(user)
    logging.getLogger("algobridge.anything").warning("POST http://host/strategy/webhook/%s failed", wid)
    assert writer.current().flush(timeout=10)
    db.session.rollback()
    (row,) = db.session.scalars(select(SystemLog)).all()
    assert row.message == "POST http://host/strategy/webhook/*** failed"

    with caplog.at_level(logging.INFO, logger="werkzeug"):
        # werkzeug's development server's access line (gunicorn's access log, when turned on, likewise)
        logging.getLogger("werkzeug").info('127.0.0.1 - - "%s" %s %s', f"GET /chartink/webhook/{wid} HTTP/1.1",
                                           "405", "-")
    (line,) = [r.getMessage() for r in caplog.records if r.name == "werkzeug"]
    assert line == '127.0.0.1 - - "GET /chartink/webhook/*** HTTP/1.1" 405 -'


# -- the migration ----------------------------------------------------------------------------------------------------
@pytest.fixture(params=["sqlite", "postgresql"])
def empty_app(request, tmp_path):
    url = sqlite_url(str(tmp_path)) if request.param == "sqlite" else create_pg_database("algobridge_wh")
    application = create_app(app_overrides(url, str(tmp_path), AUTO_MIGRATE=False, SETUP_ENVIRONMENT=False))
    yield application
    shutdown_app(application)
    if request.param == "postgresql":
        drop_pg_database(url)


def _insert(conn, table: str, **values) -> int:
    reflected = sa.Table(table, sa.MetaData(), autoload_with=conn)  # the table as it is at this revision
    return conn.execute(reflected.insert().values(**values)).inserted_primary_key[0]


def test_the_migration_hashes_existing_ids_which_keep_working(empty_app):
    now = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)
    old_ids = ["0c4d1e2f3a5b4c6d8e7f9a0b1c2d3e4f", "5f2b9c0e-8a7d-4e1f-9b3c-6a2d7e8f0a1b"]
    with empty_app.app_context():
        upgrade(revision=BEFORE)
        with db.engine.begin() as conn:
            uid = _insert(conn, "users", username="old", password_hash="x", role="trader", is_active=True,
                          created_at=now, updated_at=now)
            for n, wid in enumerate(old_ids):
                _insert(conn, "strategies", user_id=uid, name=f"S{n}", webhook_id=wid, platform="tradingview",
                        mode="LONG", is_active=True, is_intraday=False, created_at=now, updated_at=now)
        upgrade(revision=REVISION)
        columns = {c["name"] for c in inspect(db.engine).get_columns("strategies")}
        assert {"webhook_hash", "webhook_prefix"} <= columns
        assert "webhook_id" not in columns
        for n, wid in enumerate(old_ids):
            found = strategies.get_by_webhook(wid)  # the migration's HMAC is the service's
            assert (found.name, found.webhook_prefix) == (f"S{n}", wid[:6])
        db.session.remove()

        downgrade(revision=BEFORE)  # the old ids cannot come back: new random ones
        with db.engine.connect() as conn:
            ids = [r[0] for r in conn.execute(sa.text("SELECT webhook_id FROM strategies ORDER BY id"))]
        assert len(ids) == 2
        assert not set(ids) & set(old_ids)
        upgrade()
        assert strategies.get_by_webhook(ids[0]).name == "S0"
        db.session.remove()
    result = empty_app.test_cli_runner().invoke(args=["db", "check"])
    assert result.exit_code == 0, result.output
