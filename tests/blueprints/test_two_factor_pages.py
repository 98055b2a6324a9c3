"""Two-factor sign-in pages: enrolment with an inline QR code and recovery codes shown once, the code
asked for after the password, REQUIRE_2FA_FOR_ADMINS, and turning it off. The TOTP clock is controlled."""

from __future__ import annotations

import datetime as dt
import html
import re

import pytest
from sqlalchemy import select

from database import db
from database.enums import Role
from database.user_db import LoginAttempt
from services.accounts import two_factor
from tests.helpers.accounts import PASSWORD, csrf_token, login, logout, make_user, pages_env, post_form
from tests.helpers.clock import Clock


@pytest.fixture
def clock(app, monkeypatch):
    fake = Clock(dt.datetime(2026, 3, 10, 5, 30, 10, tzinfo=dt.UTC))
    monkeypatch.setattr(two_factor, "utcnow", fake)
    return fake


@pytest.fixture(autouse=True)
def _env(app, monkeypatch):
    yield from pages_env(monkeypatch)


def enrol(client, clock) -> tuple[str, list[str]]:
    """Turn two-factor sign-in on through the pages; (the secret, the recovery codes shown)."""
    page = client.get("/auth/two-factor/setup")
    assert page.status_code == 200
    assert page.headers["Cache-Control"] == "no-store"
    text = page.get_data(as_text=True)
    assert re.search(r'<figure id="totp-qr"[^>]*><svg [^>]*class="segno"', text)  # drawn here, inline
    assert "<script" not in text.split('id="totp-qr"')[1].split("</figure>")[0]
    secret = re.search(r'id="totp-secret">([A-Z2-7]+)<', text).group(1)
    token = html.unescape(re.search(r'name="token" type="hidden" value="([^"]+)"', text).group(1))
    shown = client.post("/auth/two-factor/setup", data={"csrf_token": csrf_token(client, "/auth/two-factor/setup"),
                                                        "token": token,
                                                        "code": two_factor.code_at(secret, clock.now)})
    assert shown.status_code == 200, shown.get_data(as_text=True)[:2000]
    assert shown.headers["Cache-Control"] == "no-store"
    codes = re.findall(r'<code class="secret">([a-z2-9]{5}-[a-z2-9]{5})</code>', shown.get_data(as_text=True))
    assert len(codes) == 10
    return secret, codes


def test_enrolment_then_sign_in_asks_for_the_code_after_the_password(app, client, clock):
    make_user("trader1")
    assert login(client, "trader1").status_code == 302
    secret, codes = enrol(client, clock)
    page = client.get("/auth/two-factor/setup").get_data(as_text=True)
    assert "10 recovery codes left" in page
    assert not any(c in page for c in codes)  # shown once
    logout(client)

    resp = login(client, "trader1", follow_redirects=False, query_string={"next": "/orderbook"})
    assert (resp.status_code, resp.location) == (302, "/auth/two-factor")
    assert client.get("/dashboard").status_code == 302  # nobody is signed in yet
    assert client.get("/dashboard").location.startswith("/auth/login")
    wrong = post_form(client, "/auth/two-factor", {"code": "12345x"})
    assert wrong.status_code == 400
    assert "not valid" in wrong.get_data(as_text=True)
    clock.now += dt.timedelta(seconds=40)
    ok = post_form(client, "/auth/two-factor", {"code": two_factor.code_at(secret, clock.now)})
    assert (ok.status_code, ok.location) == (302, "/orderbook")
    assert client.get("/dashboard").status_code == 200
    reasons = db.session.scalars(select(LoginAttempt.reason).order_by(LoginAttempt.id)).all()
    assert reasons[-3:] == ["success", "bad_totp", "totp"]  # the password, then the codes


def test_a_recovery_code_signs_in_once_and_a_late_code_starts_again(app, client, clock):
    make_user("trader1")
    login(client, "trader1")
    secret, codes = enrol(client, clock)
    logout(client)

    login(client, "trader1")
    resp = post_form(client, "/auth/two-factor", {"code": codes[0]})
    assert resp.status_code == 302
    assert "9 left" in client.get("/dashboard").get_data(as_text=True)
    logout(client)
    login(client, "trader1")
    assert post_form(client, "/auth/two-factor", {"code": codes[0]}).status_code == 400

    clock.now += dt.timedelta(minutes=6)  # the password was given too long ago
    late = client.get("/auth/two-factor")
    assert (late.status_code, late.location) == (302, "/auth/login")
    assert client.get("/dashboard").status_code == 302


def test_the_code_step_is_refused_without_a_password_or_after_a_password_change(app, client, clock):
    from services.accounts import users as accounts

    user = make_user("trader1")
    login(client, "trader1")
    secret, _codes = enrol(client, clock)
    logout(client)
    assert client.get("/auth/two-factor").location == "/auth/login"  # no password given
    login(client, "trader1")
    accounts.reset_password(user.id, "a-new-password-9", actor=accounts.Actor.cli())
    resp = client.get("/auth/two-factor")
    assert resp.location == "/auth/login"
    assert client.get("/dashboard").status_code == 302


def test_admins_must_enrol_when_required_and_traders_need_not(app, client, clock, monkeypatch):
    monkeypatch.setitem(app.config, "REQUIRE_2FA_FOR_ADMINS", True)
    admin = make_user("admin1", Role.ADMIN)
    make_user("trader1")
    trader = app.test_client()
    assert login(trader, "trader1").location == "/"
    assert trader.get("/dashboard").status_code == 200

    assert login(client, "admin1").location == "/auth/two-factor/setup"
    for page in ("/dashboard", "/users", "/apikey"):
        resp = client.get(page)
        assert (resp.status_code, resp.location) == (302, "/auth/two-factor/setup"), page
    secret, _codes = enrol(client, clock)
    assert client.get("/dashboard").status_code == 200

    # and it cannot be turned off while required
    resp = post_form(client, "/auth/two-factor/disable", {"password": PASSWORD,
                                                          "code": two_factor.code_at(secret, clock.now)},
                     form_url="/auth/two-factor/setup", follow_redirects=True)
    assert "REQUIRE_2FA_FOR_ADMINS" in resp.get_data(as_text=True)
    assert two_factor.is_enrolled(admin.id)


def test_turning_it_off_with_the_password_and_a_code(app, client, clock):
    user = make_user("trader1")
    login(client, "trader1")
    secret, _codes = enrol(client, clock)
    clock.now += dt.timedelta(seconds=30)
    refused = post_form(client, "/auth/two-factor/disable", {"password": "not-it", "code":
                                                             two_factor.code_at(secret, clock.now)},
                        form_url="/auth/two-factor/setup", follow_redirects=True)
    assert "The password is not correct." in refused.get_data(as_text=True)
    assert two_factor.is_enrolled(user.id)
    done = post_form(client, "/auth/two-factor/disable", {"password": PASSWORD,
                                                          "code": two_factor.code_at(secret, clock.now)},
                     form_url="/auth/two-factor/setup", follow_redirects=True)
    assert "Two-factor sign-in is off" in done.get_data(as_text=True)
    assert not two_factor.is_enrolled(user.id)
    logout(client)
    assert login(client, "trader1").location == "/"  # the password alone again


def test_codes_count_against_the_address_s_sign_in_limit(app, client, clock, monkeypatch):
    monkeypatch.setitem(app.config, "LOGIN_RATE_LIMIT", "4 per minute")
    make_user("trader1")
    login(client, "trader1")  # 1
    enrol(client, clock)
    logout(client)
    assert login(client, "trader1").location == "/auth/two-factor"  # 2
    assert post_form(client, "/auth/two-factor", {"code": "x"}).status_code == 400  # 3
    assert post_form(client, "/auth/two-factor", {"code": "y"}).status_code == 400  # 4
    refused = post_form(client, "/auth/two-factor", {"code": "z"})
    assert refused.status_code == 429
    assert int(refused.headers["Retry-After"]) >= 1
