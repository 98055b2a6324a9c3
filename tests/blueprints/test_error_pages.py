"""Error pages for people (404, 403, 429, 500) in the site's style; JSON for machines; no traceback."""

from __future__ import annotations

import pytest
from flask import abort

from tests.helpers.accounts import login, make_user


def _boom():
    raise RuntimeError("SECRET internal detail")


def _limited():
    abort(429)


@pytest.fixture
def signed_in(app, client):
    make_user("trader1", "trader")
    login(client, "trader1")
    return client


def _page(resp, code):
    assert resp.status_code == code
    assert resp.mimetype == "text/html"
    body = resp.get_data(as_text=True)
    assert '<p class="error-code">' + str(code) in body
    # the site's layout
    assert 'href="/static/css/app.css"' in body
    assert 'class="topbar"' in body
    assert "Traceback" not in body
    assert "SECRET" not in body
    return body


def test_404(signed_in):
    assert "Check the address" in _page(signed_in.get("/no/such/page"), 404)


def test_403(signed_in):
    assert "Your role does not allow" in _page(signed_in.get("/logs/system"), 403)


def test_429(app, signed_in, monkeypatch):
    monkeypatch.setitem(app.view_functions, "symbols.status_json", _limited)
    assert "Too many requests" in _page(signed_in.get("/symbols/status.json"), 429)


def test_500(app, signed_in, monkeypatch):
    monkeypatch.setitem(app.view_functions, "symbols.status_json", _boom)
    assert "system log" in _page(signed_in.get("/symbols/status.json"), 500)


def test_anonymous_404_offers_sign_in(client):
    assert 'href="/auth/login"' in _page(client.get("/nowhere"), 404)


def test_json_for_machines(app, signed_in, monkeypatch):
    monkeypatch.setitem(app.view_functions, "symbols.status_json", _boom)
    resp = signed_in.get("/symbols/status.json", headers={"Accept": "application/json"})
    assert resp.status_code == 500
    assert resp.get_json()["status"] == "error"
    assert "SECRET" not in resp.get_data(as_text=True)
