"""The /apikey page: create (shown once), list, revoke; CSRF; one user's keys only."""

from __future__ import annotations

import re

import pytest

from database.auth_db import ApiKey
from services.accounts import api_keys
from services.accounts.api_keys import ApiKeyError
from tests.helpers.accounts import login, make_user, post_form, use_test_hasher


@pytest.fixture(autouse=True)
def _cheap_hashes(monkeypatch):
    use_test_hasher(monkeypatch)


@pytest.fixture
def alice_client(app):
    make_user("alice")
    client = app.test_client()
    assert login(client, "alice").status_code in (200, 302)
    return client


def _create(client, name="tv", scopes=("orders", "read")):
    resp = post_form(client, "/apikey", {"name": name, "scopes": list(scopes)}, follow_redirects=True)
    key = re.search(r'id="new-key">([0-9a-f]{64})<', resp.get_data(as_text=True))
    return resp, key.group(1) if key else None


def test_create_shows_the_key_once_and_it_works(app, alice_client):
    resp, key = _create(alice_client)
    assert resp.status_code == 200
    assert key
    assert resp.headers["Cache-Control"] == "no-store"
    assert api_keys.verify(key, "orders").user_id
    page = alice_client.get("/apikey").get_data(as_text=True)
    # listed by prefix, never again in full
    assert key not in page
    assert key[:8] in page


def test_form_without_csrf_is_refused(app, alice_client):
    resp = alice_client.post("/apikey", data={"name": "x", "scopes": ["read"]})
    assert resp.status_code == 400
    assert app.extensions["sqlalchemy"].session.query(ApiKey).count() == 0  # nothing created


def test_revoke_and_cross_user_isolation(app, alice_client):
    _resp, key = _create(alice_client)
    row = app.extensions["sqlalchemy"].session.query(ApiKey).one()
    make_user("bob")
    bob = app.test_client()
    login(bob, "bob")
    assert key[:8] not in bob.get("/apikey").get_data(as_text=True)
    resp = post_form(bob, f"/apikey/{row.id}/revoke", form_url="/apikey")
    assert resp.status_code == 404
    assert api_keys.verify(key).user_id  # still valid
    resp = post_form(alice_client, f"/apikey/{row.id}/revoke", form_url="/apikey")
    assert resp.status_code == 302
    with pytest.raises(ApiKeyError):
        api_keys.verify(key)


def test_viewer_cannot_create_an_orders_key(app):
    make_user("val", role="viewer")
    client = app.test_client()
    login(client, "val")
    resp, key = _create(client, scopes=("orders",))
    assert resp.status_code == 400
    assert key is None
    assert "viewer" in resp.get_data(as_text=True)


def test_anonymous_is_sent_to_login(client):
    resp = client.get("/apikey")
    assert resp.status_code == 302
    assert "/auth/login" in resp.headers["Location"]
