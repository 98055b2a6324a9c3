"""First-run setup, sign-in and sign-out, rate limits, CSRF, disabled users, the daily session end."""

from __future__ import annotations

import datetime as dt
import re
import threading

import pytest
from sqlalchemy import delete, func, select

from database import cache, db
from database.audit_db import AuditEvent
from database.enums import Role
from database.session_db import LoginThrottle, WebSession
from database.types import utcnow
from database.user_db import LoginAttempt, User
from extensions import limiter
from services.accounts import sessions
from services.accounts import users as accounts
from tests.helpers.accounts import (
    PASSWORD,
    csrf_token,
    isolated_client,
    login,
    logout,
    make_user,
    post_form,
    use_test_hasher,
)


@pytest.fixture(autouse=True)
def _accounts_env(app, monkeypatch):
    use_test_hasher(monkeypatch)
    limiter.reset()
    yield
    limiter.reset()


@pytest.fixture
def client(app):
    return isolated_client(app)


def attempts() -> list[LoginAttempt]:
    db.session.rollback()  # see rows committed by other sessions (threads) too
    return list(db.session.scalars(select(LoginAttempt).order_by(LoginAttempt.id)))


def user_count() -> int:
    db.session.rollback()
    return db.session.scalar(select(func.count()).select_from(User))


def reset_login_limits() -> None:
    """Forget every sign-in count (they are kept in the database, shared by every worker)."""
    db.session.rollback()
    db.session.execute(delete(LoginThrottle))
    db.session.commit()


# -- first run ---------------------------------------------------------------------------------------------
def test_first_visit_goes_to_setup_and_setup_creates_a_signed_in_admin(client):
    resp = client.get("/")
    assert resp.status_code == 302
    assert resp.location.endswith("/setup")
    assert client.get("/auth/login").location.endswith("/setup")

    resp = post_form(client, "/setup", {"username": "Owner", "password": "s3cret-pass", "confirm": "s3cret-pass"})
    assert resp.status_code == 302
    assert resp.location == "/"
    user = db.session.scalars(select(User)).one()
    assert (user.username, user.role, user.is_active) == ("owner", Role.ADMIN, True)
    assert user.password_hash.startswith("$argon2id$")
    assert "s3cret-pass" not in user.password_hash

    assert client.get("/").location == "/dashboard"  # home is the dashboard
    page = client.get("/dashboard")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "<title>Dashboard" in html
    assert "owner" in html
    assert "admin" in html

    event = db.session.scalars(select(AuditEvent)).one()
    assert (event.actor, event.action, event.target_type, event.target_id) == ("setup", "user.create", "user",
                                                                               str(user.id))
    assert event.after["role"] == "admin"
    assert event.ip == "127.0.0.1"


def test_setup_is_closed_once_a_user_exists(client, app):
    make_user("someone", Role.VIEWER)
    resp = client.get("/setup")
    assert resp.status_code == 302
    assert resp.location.endswith("/auth/login")
    # a POST with a valid token (from another page) is refused as well
    token = csrf_token(client, "/auth/login")
    resp = client.post("/setup", data={"csrf_token": token, "username": "intruder", "password": "p4ssword!",
                                       "confirm": "p4ssword!"})
    assert resp.status_code == 302
    assert resp.location.endswith("/auth/login")
    assert user_count() == 1
    with pytest.raises(accounts.SetupClosedError):
        accounts.create_first_admin("intruder", "p4ssword!")
    assert user_count() == 1


def test_concurrent_setups_create_one_admin(app, monkeypatch):
    clients = [isolated_client(app) for _ in range(2)]
    tokens = [csrf_token(c, "/setup") for c in clients]
    db.session.rollback()

    # Both requests pass the view's "no user yet" check before either takes the lock.
    barrier = threading.Barrier(2, timeout=30)
    real_hash = accounts.hash_password

    def hash_then_wait(password):
        hashed = real_hash(password)
        barrier.wait()
        return hashed

    monkeypatch.setattr(accounts, "hash_password", hash_then_wait)
    results: dict[int, object] = {}

    def run(i):
        resp = clients[i].post("/setup", data={"csrf_token": tokens[i], "username": f"admin{i}",
                                               "password": "p4ssword!", "confirm": "p4ssword!"})
        results[i] = (resp.status_code, resp.location)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(loc for _, loc in results.values()) == ["/", "/auth/login"], results
    db.session.rollback()
    users = db.session.scalars(select(User)).all()
    assert len(users) == 1
    assert users[0].role == Role.ADMIN
    assert db.session.scalar(select(func.count()).select_from(AuditEvent)) == 1


# -- sign-in and sign-out -------------------------------------------------------------------------------------------
def test_login_and_logout(client):
    make_user("alice", Role.TRADER)
    resp = client.get("/")
    assert resp.status_code == 302
    assert resp.location.endswith("/auth/login")

    resp = login(client, "Alice")  # usernames are case-insensitive
    assert resp.status_code == 302
    assert resp.location == "/"
    html = client.get("/dashboard").get_data(as_text=True)
    assert "alice" in html
    assert "trader" in html
    assert client.get("/auth/login").status_code == 302  # already signed in

    (attempt,) = attempts()
    assert (attempt.username, attempt.is_success, attempt.reason, attempt.ip) == ("alice", True, "success", "127.0.0.1")
    assert attempt.user_id is not None
    assert attempt.user_agent
    assert db.session.scalars(select(User)).one().last_login_at is not None

    resp = logout(client)
    assert resp.status_code == 302
    assert resp.location.endswith("/auth/login")
    assert client.get("/").location.endswith("/auth/login")


def test_login_redirects_only_to_local_next(client):
    make_user("alice")
    resp = post_form(client, "/auth/login?next=/apikey", {"username": "alice", "password": PASSWORD})
    assert resp.location == "/apikey"
    logout(client)
    for evil in ("//evil.example/x", "https://evil.example/", "/\\evil.example"):
        resp = post_form(client, f"/auth/login?next={evil}", {"username": "alice", "password": PASSWORD})
        assert resp.location == "/", evil
        logout(client)


def test_failed_logins_are_recorded_and_limited(client, app):
    alice = make_user("alice")
    assert app.config["LOGIN_RATE_LIMIT"] == "5 per minute;25 per hour"
    resp = login(client, "nobody", "whatever1")
    assert resp.status_code == 200
    assert "Invalid username or password" in resp.get_data(as_text=True)
    for _ in range(4):
        resp = login(client, "alice", "wrong-password")
        assert resp.status_code == 200
        assert "Invalid username or password" in resp.get_data(as_text=True)

    resp = login(client, "alice", PASSWORD)  # the right password, but over the limit
    assert resp.status_code == 429
    html = resp.get_data(as_text=True)
    assert "Too many sign-in attempts" in html
    assert "Try again in" in html
    assert 0 < int(resp.headers["Retry-After"]) <= 60

    rows = attempts()
    assert [r.reason for r in rows] == ["unknown_user"] + ["bad_password"] * 4 + ["rate_limited"]
    assert rows[0].user_id is None
    assert rows[0].username == "nobody"
    assert all(r.user_id == alice.id for r in rows[1:])
    assert not any(r.is_success for r in rows)
    assert all(r.ip == "127.0.0.1" for r in rows)
    assert client.get("/").location.endswith("/auth/login")

    reset_login_limits()
    assert login(client, "alice").status_code == 302


def test_a_form_post_without_csrf_token_is_refused(client):
    make_user("alice")
    resp = client.post("/auth/login", data={"username": "alice", "password": PASSWORD})
    assert resp.status_code == 400
    assert "security token" in resp.get_data(as_text=True)
    assert attempts() == []
    resp = client.post("/auth/login", data={"username": "alice", "password": PASSWORD, "csrf_token": "forged"})
    assert resp.status_code == 400
    db.session.execute(User.__table__.delete())
    db.session.commit()
    resp = client.post("/setup", data={"username": "x-admin", "password": "p4ssword!", "confirm": "p4ssword!"})
    assert resp.status_code == 400
    assert user_count() == 0


def test_a_disabled_user_cannot_sign_in(client):
    make_user("bob", is_active=False)
    resp = login(client, "bob", "wrong-password")
    assert "Invalid username or password" in resp.get_data(as_text=True)  # no hint without the password
    resp = login(client, "bob")
    assert resp.status_code == 200
    assert "disabled" in resp.get_data(as_text=True)
    assert [r.reason for r in attempts()] == ["bad_password", "disabled"]
    assert client.get("/").location.endswith("/auth/login")


def test_the_open_session_of_a_disabled_user_is_refused(client):
    make_user("root", Role.ADMIN)
    bob = make_user("bob")
    login(client, "bob")
    assert client.get("/dashboard").status_code == 200
    accounts.set_active(bob.id, False, actor=accounts.Actor("root"))
    resp = client.get("/")
    assert resp.status_code == 302
    assert resp.location.endswith("/auth/login")
    with client.session_transaction() as sess:
        assert "_user_id" not in sess
    accounts.set_active(bob.id, True, actor=accounts.Actor("root"))
    assert client.get("/").location.endswith("/auth/login")  # the session stays ended


def test_a_password_reset_ends_open_sessions(client):
    bob = make_user("bob")
    login(client, "bob")
    assert client.get("/dashboard").status_code == 200
    accounts.reset_password(bob.id, "another-password", actor=accounts.Actor.cli())
    assert client.get("/").location.endswith("/auth/login")
    assert login(client, "bob").status_code == 200  # the old password no longer works
    assert login(client, "bob", "another-password").location == "/"


def test_the_signed_in_user_is_cached_and_changes_reach_open_sessions(client, app):
    from sqlalchemy import event

    from database import cache

    make_user("root", Role.ADMIN)
    bob = make_user("bob")
    login(client, "bob")
    assert client.get("/dashboard").status_code == 200
    assert cache.get(accounts.PRINCIPALS_NS, str(bob.id))["role"] == "trader"
    reads = []

    def count(_conn, _cursor, statement, *_args):
        if "FROM users" in statement:
            reads.append(statement)

    event.listen(db.engine, "before_cursor_execute", count)
    try:
        assert client.get("/dashboard").status_code == 200
    finally:
        event.remove(db.engine, "before_cursor_execute", count)
    assert reads == []  # the principal came from the cache
    accounts.change_role(bob.id, Role.VIEWER, actor=accounts.Actor("root"))
    assert cache.get(accounts.PRINCIPALS_NS, str(bob.id)) is None
    assert client.get("/dashboard").status_code == 200
    assert cache.get(accounts.PRINCIPALS_NS, str(bob.id))["role"] == "viewer"
    # A change that does not touch the principal (the last sign-in time) keeps the entry.
    db.session.get(User, bob.id).last_login_at = utcnow()
    db.session.commit()
    assert cache.get(accounts.PRINCIPALS_NS, str(bob.id)) is not None


# -- the daily session end -------------------------------------------------------------------------------------------
def _boundary(app) -> dt.datetime:
    at, zone = accounts.expiry_settings(app.config)
    return accounts.last_expiry_boundary(utcnow(), at, zone)


def test_a_session_that_began_before_the_last_expiry_is_ended(client, app):
    make_user("alice")
    login(client, "alice")
    with client.session_transaction() as sess:
        started = dt.datetime.fromisoformat(sess["login_at"])
        assert started.tzinfo is not None
        assert started >= _boundary(app)
        sess["login_at"] = (_boundary(app) - dt.timedelta(minutes=1)).isoformat()
    resp = client.get("/")
    assert resp.status_code == 302
    assert resp.location.endswith("/auth/login")
    page = client.get(resp.location).get_data(as_text=True)
    assert "Your session ended at 03:00 (Asia/Kolkata)" in page
    with client.session_transaction() as sess:
        assert "_user_id" not in sess
        assert "login_at" not in sess


def test_a_session_that_began_after_the_last_expiry_stays(client, app):
    make_user("alice")
    login(client, "alice")
    with client.session_transaction() as sess:
        sess["login_at"] = _boundary(app).isoformat()  # exactly at the boundary: still valid
    assert client.get("/dashboard").status_code == 200


@pytest.mark.parametrize("value", [None, "garbage", "2026-03-10T10:00:00"])  # missing, invalid, naive
def test_a_session_without_a_valid_login_time_is_ended(client, value):
    make_user("alice")
    login(client, "alice")
    with client.session_transaction() as sess:
        if value is None:
            del sess["login_at"]
        else:
            sess["login_at"] = value
    assert client.get("/").location.endswith("/auth/login")


# -- cookies ---------------------------------------------------------------------------------------------------------
def _session_cookie(resp) -> str:
    cookies = [v for v in resp.headers.getlist("Set-Cookie") if v.startswith("session=")]
    assert cookies, resp.headers
    return cookies[-1]


def test_session_cookie_is_httponly_lax_and_secure_over_https(app):
    make_user("alice")
    plain = isolated_client(app)
    cookie = _session_cookie(login(plain, "alice"))
    assert "HttpOnly" in cookie
    assert "SameSite=Lax" in cookie
    assert "Secure" not in cookie

    secure = isolated_client(app)
    token = csrf_token(secure, "https://localhost/auth/login")
    resp = secure.post("https://localhost/auth/login", data={"csrf_token": token, "username": "alice",
                                                             "password": PASSWORD},
                       headers={"Referer": "https://localhost/auth/login"})
    assert resp.status_code == 302
    cookie = _session_cookie(resp)
    assert "Secure" in cookie
    assert "HttpOnly" in cookie
    assert "SameSite=Lax" in cookie


# -- server-side sessions: a copied cookie ends with the session ---------------------------------------------
def copy_of(client, app):
    """Another browser holding a copy of `client`'s session cookie."""
    thief = isolated_client(app)
    cookie = client.get_cookie("session")
    assert cookie is not None
    thief.set_cookie("session", cookie.value)
    return thief


def signed_in(client) -> bool:
    return client.get("/dashboard").status_code == 200


def test_a_copied_cookie_stops_working_at_sign_out(client, app):
    make_user("alice")
    login(client, "alice")
    thief = copy_of(client, app)
    assert signed_in(thief)
    logout(client)
    assert not signed_in(client)
    assert thief.get("/").location.endswith("/auth/login")
    assert not signed_in(thief)
    (row,) = db.session.scalars(select(WebSession)).all()
    assert (row.end_reason, row.ip) == ("logout", "127.0.0.1")
    assert row.ended_at is not None
    with client.session_transaction() as sess:
        assert "sid" not in sess


def test_a_cookie_without_a_server_side_session_is_refused(client, app):
    make_user("alice")
    login(client, "alice")
    db.session.execute(delete(WebSession))  # e.g. a cookie issued before sessions were kept on the server
    db.session.commit()
    cache.invalidate(sessions.CACHE_NS)
    assert not signed_in(client)


def test_a_disabled_users_copied_cookie_stays_dead_after_re_enabling(client, app):
    make_user("root", Role.ADMIN)
    bob = make_user("bob")
    login(client, "bob")
    thief = copy_of(client, app)
    accounts.set_active(bob.id, False, actor=accounts.Actor("root"))
    assert not signed_in(thief)
    accounts.set_active(bob.id, True, actor=accounts.Actor("root"))
    assert not signed_in(thief)  # the session ended with the account, it does not come back with it
    assert not signed_in(client)


def test_an_own_new_password_keeps_this_session_and_ends_the_others(app):
    root = make_user("root", Role.ADMIN)
    here, elsewhere = isolated_client(app), isolated_client(app)
    login(here, "root")
    login(elsewhere, "root")
    copy_before = copy_of(here, app)
    resp = post_form(here, f"/users/{root.id}/password", {"password": "fresh-pass-1", "confirm": "fresh-pass-1"})
    assert resp.status_code == 302
    assert signed_in(here)
    assert not signed_in(elsewhere)
    assert not signed_in(copy_before)  # the cookie was re-issued: the old copy names the old password
    assert not signed_in(copy_of(elsewhere, app))
    reasons = sorted((r.end_reason or "live") for r in db.session.scalars(select(WebSession)))
    assert reasons == ["live", "password_change"]


def test_an_administrators_reset_ends_every_session_of_that_user(app):
    make_user("root", Role.ADMIN)
    bob = make_user("bob")
    admin, bobs = isolated_client(app), isolated_client(app)
    login(admin, "root")
    login(bobs, "bob")
    thief = copy_of(bobs, app)
    post_form(admin, f"/users/{bob.id}/password", {"password": "new-password-1", "confirm": "new-password-1"})
    assert not signed_in(bobs)
    assert not signed_in(thief)
    assert signed_in(admin)


# -- sign-in limits and lockout -------------------------------------------------------------------------------
def from_address(client, address: str, username: str, password: str, **headers):
    token = csrf_token(client, "/auth/login")
    return client.post("/auth/login", data={"csrf_token": token, "username": username, "password": password},
                       environ_base={"REMOTE_ADDR": address}, headers=headers)


def test_five_failures_lock_a_username_whether_or_not_it_exists(client, app):
    make_user("alice")
    pages = {}
    for name in ("alice", "ghost"):
        for i in range(4):  # from different addresses: the per-address limit is not what stops them
            resp = from_address(client, f"198.51.100.{i + 1}", name, "wrong-password")
            assert resp.status_code == 200
            assert "Too many failed sign-ins" not in resp.get_data(as_text=True)
        resp = from_address(client, "198.51.100.9", name, "wrong-password")
        assert resp.status_code == 200
        assert "Too many failed sign-ins for this username. Try again after" in resp.get_data(as_text=True)
        resp = from_address(client, "198.51.100.10", name, PASSWORD)  # the right password, unchecked
        html = resp.get_data(as_text=True)
        assert resp.status_code == 429
        assert 0 < int(resp.headers["Retry-After"]) <= 60
        assert "Invalid username or password" not in html
        pages[name] = re.sub(r"\d\d:\d\d:\d\d|csrf_token[^>]*>", "", html).replace(f'value="{name}"', "")
    assert pages["alice"] == pages["ghost"]  # nothing but the username typed in differs
    assert "in 1 minute." in pages["alice"]
    assert not signed_in(client)
    assert [r.reason for r in attempts()][-1] == "locked"


def test_the_address_limit_is_counted_in_the_database(client, app):
    """Not in the process's memory: what the limiter of this process forgets, the database still counts
    (so every worker counts the same attempts; tests/scale/test_sessions.py runs 4 of them)."""
    make_user("alice")
    for i in range(5):
        assert from_address(client, "203.0.113.5", f"user{i}", "wrong-password").status_code == 200
    limiter.reset()
    assert from_address(client, "203.0.113.5", "user9", "wrong-password").status_code == 429
    keys = sorted(db.session.scalars(select(LoginThrottle.key).where(LoginThrottle.key.like("addr:%"))))
    assert keys == ["addr:3600:203.0.113.5", "addr:60:203.0.113.5"]


def test_x_forwarded_for_counts_only_from_trusted_proxies(client, app, monkeypatch):
    from ipaddress import ip_network

    from werkzeug.middleware.proxy_fix import ProxyFix

    # TRUST_PROXY_HEADERS as before (ProxyFix in front of the app), and now TRUSTED_PROXIES beside it.
    monkeypatch.setattr(app, "wsgi_app", ProxyFix(app.wsgi_app, x_for=1))
    monkeypatch.setitem(app.config, "TRUST_PROXY_HEADERS", True)
    monkeypatch.setitem(app.config, "TRUSTED_PROXIES", (ip_network("10.0.0.2/32"),))
    make_user("alice")
    # Rotating the header from anywhere else gains nothing: counted against the peer itself.
    for i in range(5):
        resp = from_address(client, "198.51.100.7", f"u{i}", "wrong-password", **{"X-Forwarded-For": f"1.1.1.{i}"})
        assert resp.status_code == 200
    resp = from_address(client, "198.51.100.7", "u9", "wrong-password", **{"X-Forwarded-For": "1.1.1.99"})
    assert resp.status_code == 429
    # Through our proxy, each client has its own count.
    for i in range(8):
        resp = from_address(client, "10.0.0.2", f"v{i}", "wrong-password",
                            **{"X-Forwarded-For": f"6.6.6.6, 203.0.113.{i}"})
        assert resp.status_code == 200
    ips = [r.ip for r in attempts()]
    assert ips[:6] == ["198.51.100.7"] * 6
    assert ips[6:] == [f"203.0.113.{i}" for i in range(8)]
