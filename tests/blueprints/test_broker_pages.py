"""The Zerodha flow through the pages, against the fake Kite server: connect, callback, resume on
the next sign-in, disconnect; bad callbacks get advice; the token reaches no cookie, log or page."""

from __future__ import annotations

import logging
from urllib.parse import parse_qs, urlparse

import pytest

from database import db
from database.auth_db import BrokerSession
from database.enums import BrokerSessionStatus
from services.accounts import broker_login
from tests.fakes.kite_server import API_KEY, API_SECRET, running_kite
from tests.helpers.accounts import login, logout, make_user, post_form, use_test_hasher


@pytest.fixture
def kite(app, monkeypatch):
    use_test_hasher(monkeypatch)
    with running_kite() as server:
        for key, value in {"ZERODHA_API_KEY": API_KEY, "ZERODHA_API_SECRET": API_SECRET,
                           "ZERODHA_ROOT_URL": server.url, "ZERODHA_LOGIN_URL": server.login_url}.items():
            monkeypatch.setitem(app.config, key, value)
        broker_login.reset_brokers()
        yield server
        broker_login.reset_brokers()


def _connect(client, kite) -> str:
    resp = post_form(client, "/broker/connect/zerodha", form_url="/broker")
    assert resp.status_code == 302
    assert resp.headers["Location"].startswith(kite.login_url)
    state = parse_qs(urlparse(resp.headers["Location"]).query)["redirect_params"][0].split("=", 1)[1]
    request_token = kite.fake.issue_request_token()  # the user signs in at Kite
    return client.get(f"/zerodha/callback?request_token={request_token}&action=login&status=success&state={state}")


def test_connect_resume_disconnect(app, kite, caplog):
    caplog.set_level(logging.DEBUG)
    make_user("alice")
    client = app.test_client()
    login(client, "alice")
    resp = _connect(client, kite)
    assert resp.status_code == 302
    assert resp.headers["Location"].endswith("/broker")
    page = client.get("/broker").get_data(as_text=True)
    assert "Connected to <strong>zerodha</strong>" in page
    row = db.session.scalars(db.select(BrokerSession)).one()
    token = row.access_token
    with client.session_transaction() as sess:
        assert token not in str(dict(sess))
    assert token not in page
    assert token not in caplog.text

    # Next day's sign-in (same day here): the stored session is resumed, no new broker login.
    logout(client)
    login(client, "alice")
    db.session.expire_all()
    assert db.session.scalar(db.select(db.func.count()).select_from(BrokerSession)) == 1
    assert db.session.get(BrokerSession, row.id).status == BrokerSessionStatus.ACTIVE
    assert "Connected to <strong>zerodha</strong>" in client.get("/broker").get_data(as_text=True)

    resp = post_form(client, "/broker/disconnect", form_url="/broker")
    assert resp.status_code == 302
    db.session.expire_all()
    assert db.session.get(BrokerSession, row.id).status == BrokerSessionStatus.REVOKED
    assert token not in kite.fake.access_tokens  # invalidated at the broker too


def test_a_callback_not_started_here_is_refused_with_advice(app, kite):
    make_user("alice")
    client = app.test_client()
    login(client, "alice")
    resp = client.get("/zerodha/callback?request_token=abc&status=success&state=forged")
    assert resp.status_code == 400
    text = resp.get_data(as_text=True)
    assert "Start again from the Broker page" in text
    assert "Traceback" not in text
    assert db.session.scalar(db.select(db.func.count()).select_from(BrokerSession)) == 0


def test_a_refused_request_token_gets_advice(app, kite):
    make_user("alice")
    client = app.test_client()
    login(client, "alice")
    resp = post_form(client, "/broker/connect/zerodha", form_url="/broker")
    state = parse_qs(urlparse(resp.headers["Location"]).query)["redirect_params"][0].split("=", 1)[1]
    resp = client.get(f"/zerodha/callback?request_token=never-issued&status=success&state={state}")
    assert resp.status_code == 400
    assert "connect again" in resp.get_data(as_text=True)


def test_viewer_sees_the_page_but_cannot_connect(app, kite):
    make_user("val", role="viewer")
    client = app.test_client()
    login(client, "val")
    assert client.get("/broker").status_code == 200
    assert post_form(client, "/broker/connect/paper", form_url="/broker").status_code == 403
