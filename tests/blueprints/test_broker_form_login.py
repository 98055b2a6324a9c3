"""A form broker (Angel One: client code, PIN, TOTP) through the broker page, against its fake SmartAPI: the page
shows the fields its login needs, a submitted form connects, a wrong TOTP or an empty field is refused with advice
and stores nothing, and the PIN never reaches a page or a log."""

from __future__ import annotations

import logging

from database import db
from database.auth_db import BrokerSession
from services.accounts import broker_login
from tests.helpers.accounts import login, make_user, post_form, use_test_hasher
from tests.helpers.angelone import angel  # noqa: F401 - fixture

_URL = "/broker/connect/angelone"


def _sessions() -> list[BrokerSession]:
    db.session.expire_all()
    return list(db.session.scalars(db.select(BrokerSession).where(BrokerSession.broker == "angelone")))


def test_the_page_shows_the_fields_of_a_form_login(app, angel, monkeypatch):  # noqa: F811
    use_test_hasher(monkeypatch)
    make_user("alice")
    client = app.test_client()
    login(client, "alice")
    page = client.get("/broker").get_data(as_text=True)
    for field, kind in (("clientcode", "text"), ("pin", "password")):
        assert f'name="{field}" type="{kind}"' in page
    assert 'name="totp"' in page
    assert 'autocomplete="one-time-code"' in page
    for label in ("Client code", "PIN", "TOTP"):
        assert f">{label}</label>" in page


def test_a_submitted_form_connects_and_the_pin_is_nowhere(app, angel, monkeypatch, caplog):  # noqa: F811
    caplog.set_level(logging.DEBUG)
    use_test_hasher(monkeypatch)
    make_user("alice")
    client = app.test_client()
    login(client, "alice")
    fields = angel.fake.login_fields()
    resp = post_form(client, _URL, fields, form_url="/broker")
    assert resp.status_code == 302
    assert resp.headers["Location"].endswith("/broker")
    page = client.get("/broker").get_data(as_text=True)
    assert "Connected to <strong>angelone</strong>" in page
    (row,) = _sessions()
    assert row.broker_user_id == fields["clientcode"]
    for secret in (fields["pin"], row.access_token):
        assert secret not in page
        assert secret not in caplog.text


def test_a_wrong_totp_or_an_empty_field_is_refused_with_advice(app, angel, monkeypatch):  # noqa: F811
    use_test_hasher(monkeypatch)
    make_user("alice")
    client = app.test_client()
    login(client, "alice")
    fields = angel.fake.login_fields()
    wrong = str((int(fields["totp"]) + 1) % 1_000_000).zfill(6)
    resp = post_form(client, _URL, {**fields, "totp": wrong}, form_url="/broker")
    assert resp.status_code == 400
    text = resp.get_data(as_text=True)
    assert "angelone refused the login (" in text
    assert "Check what you typed and connect again." in text
    logins = angel.fake.calls_to("loginByPassword")
    resp = post_form(client, _URL, {**fields, "pin": "  "}, form_url="/broker")
    assert resp.status_code == 400
    assert "PIN is required" in resp.get_data(as_text=True)
    assert angel.fake.calls_to("loginByPassword") == logins  # refused before the broker is asked
    assert _sessions() == []


def test_an_unconfigured_form_broker_names_its_missing_setting(app, angel, monkeypatch):  # noqa: F811
    use_test_hasher(monkeypatch)
    monkeypatch.setitem(app.config, "ANGELONE_API_KEY", "")
    broker_login.reset_brokers()
    make_user("alice")
    client = app.test_client()
    login(client, "alice")
    page = client.get("/broker").get_data(as_text=True)
    assert "not configured: set ANGELONE_API_KEY" in page
    assert 'name="pin"' not in page
