"""The traffic log middleware: a row per request through the writer, with the user, without secrets,
without static files, with the proxy-named client when proxy headers are trusted."""

from __future__ import annotations

from sqlalchemy import select
from werkzeug.middleware.proxy_fix import ProxyFix

from database import db
from database.traffic_db import TrafficLog
from services.logs.traffic import safe_path
from tests.helpers.accounts import login, make_user
from tests.helpers.api import flush_logs, post, raise_limits, user_with_key


def rows(app) -> list[TrafficLog]:
    flush_logs(app)
    db.session.rollback()
    return list(db.session.scalars(select(TrafficLog).order_by(TrafficLog.id)))


def test_page_requests_are_logged_with_the_signed_in_user(app, client):
    user = make_user("tara")
    login(client, "tara")
    assert client.get("/apikey").status_code == 200
    assert client.get("/no/such/page").status_code == 404
    found = rows(app)
    by_path = {(r.method, r.path): r for r in found}
    page = by_path[("GET", "/apikey")]
    assert page.user_id == user.id
    assert page.status_code == 200
    assert page.duration_ms >= 0
    assert page.client_ip == "127.0.0.1"
    assert by_path[("GET", "/no/such/page")].status_code == 404
    login_post = by_path[("POST", "/auth/login")]
    assert login_post.status_code in (302, 303)


def test_anonymous_request_has_no_user_and_keeps_the_user_agent(app, client):
    client.get("/auth/login", headers={"User-Agent": "probe/1.0"})
    (row,) = rows(app)
    assert row.user_id is None
    assert row.user_agent == "probe/1.0"
    assert row.path == "/auth/login"


def test_api_calls_carry_the_key_owner(app, client, monkeypatch):
    raise_limits(app, monkeypatch)
    user, _row, key = user_with_key("apiuser")
    assert post(client, "ping", {"apikey": key}).status_code == 200
    assert post(client, "ping", {"apikey": "wrong"}).status_code == 403
    ok, refused = [r for r in rows(app) if r.path == "/api/v1/ping"]
    assert (ok.user_id, ok.status_code, ok.method) == (user.id, 200, "POST")
    assert (refused.user_id, refused.status_code) == (None, 403)


def test_static_files_are_not_logged(app, client):
    resp = client.get("/static/css/app.css")
    assert resp.status_code == 200
    resp.close()
    client.get("/auth/login")
    assert [r.path for r in rows(app)] == ["/auth/login"]


def test_secrets_in_query_strings_and_webhook_ids_are_redacted(app, client):
    client.get("/auth/login?next=/logs&apikey=SEKRET1&request_token=SEKRET2&password=SEKRET3")
    client.post("/strategy/webhook/SEKRETWEBHOOKID", json={})
    found = rows(app)
    text = " ".join(r.path for r in found)
    assert "SEKRET" not in text
    assert "/auth/login?next=/logs&apikey=***&request_token=***&password=***" in text
    assert "/strategy/webhook/***" in text


def test_safe_path_cuts_to_the_column_and_leaves_plain_paths():
    assert safe_path("/logs/traffic", b"", None) == "/logs/traffic"
    assert safe_path("/logs/traffic", b"before=10&status=4xx", None) == "/logs/traffic?before=10&status=4xx"
    assert len(safe_path("/x" * 600, b"", None)) == 512
    assert safe_path("/chartink/webhook/abc", b"", {"webhook_id": "abc"}) == "/chartink/webhook/***"


def test_client_address_comes_from_the_proxy_only_when_trusted(app, client, monkeypatch):
    headers = {"X-Forwarded-For": "203.0.113.9"}
    client.get("/auth/login", headers=headers, environ_base={"REMOTE_ADDR": "10.0.0.2"})
    monkeypatch.setattr(app, "wsgi_app", ProxyFix(app.wsgi_app, x_for=1))  # what TRUST_PROXY_HEADERS installs
    client.get("/auth/login", headers=headers, environ_base={"REMOTE_ADDR": "10.0.0.2"})
    assert [r.client_ip for r in rows(app)] == ["10.0.0.2", "203.0.113.9"]
