"""User management: admin-only pages, roles, the audit trail, and the role_required decorator."""

from __future__ import annotations

import json

import pytest
from flask_login import login_user
from sqlalchemy import select
from werkzeug.exceptions import Forbidden

from blueprints.access import role_required
from database import db
from database.audit_db import AuditEvent
from database.enums import Role
from database.user_db import User
from extensions import limiter
from services.accounts import users as accounts
from tests.helpers.accounts import PASSWORD, csrf_token, isolated_client, login, make_user, post_form, use_test_hasher


@pytest.fixture(autouse=True)
def _accounts_env(app, monkeypatch):
    use_test_hasher(monkeypatch)
    limiter.reset()
    yield
    limiter.reset()


@pytest.fixture
def client(app):
    return isolated_client(app)


@pytest.fixture
def admin_client(app):
    make_user("root", Role.ADMIN)
    c = isolated_client(app)
    assert login(c, "root").status_code == 302
    return c


def fresh(username: str) -> User:
    db.session.rollback()
    return db.session.scalars(select(User).where(User.username == username)).one()


def events() -> list[AuditEvent]:
    db.session.rollback()
    return list(db.session.scalars(select(AuditEvent).order_by(AuditEvent.id)))


ADMIN_PAGES = ["/users/", "/users/new", "/users/1/password"]


@pytest.mark.parametrize("role", [Role.VIEWER, Role.TRADER])
def test_viewers_and_traders_cannot_reach_user_management(client, role):
    target = make_user("root", Role.ADMIN)
    make_user("someone", role)
    login(client, "someone")
    for url in ADMIN_PAGES:
        assert client.get(url.replace("/1/", f"/{target.id}/")).status_code == 403, url
    token = csrf_token(client, "/dashboard")
    for action in ("disable", "enable", "role", "password"):
        resp = client.post(f"/users/{target.id}/{action}", data={"csrf_token": token, "role": "viewer",
                                                                  "password": "x" * 12, "confirm": "x" * 12})
        assert resp.status_code == 403, action
    resp = client.post("/users/new", data={"csrf_token": token, "username": "sneaky", "role": "admin",
                                           "password": "x" * 12, "confirm": "x" * 12})
    assert resp.status_code == 403
    assert "Only an administrator" in resp.get_data(as_text=True)
    assert fresh("root").is_active
    assert events() == []
    assert "/users/" not in client.get("/dashboard").get_data(as_text=True)  # no Users link in the nav


def test_anonymous_visitors_are_sent_to_sign_in(client):
    make_user("root", Role.ADMIN)
    resp = client.get("/users/")
    assert resp.status_code == 302
    assert "/auth/login?next=" in resp.location


def test_admin_lists_and_adds_users(admin_client):
    make_user("bob", Role.VIEWER)
    html = admin_client.get("/users/").get_data(as_text=True)
    assert "root" in html
    assert "bob" in html
    assert "Users" in html

    resp = post_form(admin_client, "/users/new", {"username": "Carol", "role": "trader", "password": "carol-pass-1",
                                                  "confirm": "carol-pass-1"})
    assert resp.status_code == 302
    assert resp.location == "/users/"
    carol = fresh("carol")
    assert carol.role == Role.TRADER
    assert carol.is_active
    (event,) = events()
    root = fresh("root")
    assert (event.actor, event.user_id, event.action, event.target_id, event.ip) == (
        "root", root.id, "user.create", str(carol.id), "127.0.0.1")
    assert event.before is None
    assert event.after == {"username": "carol", "role": "trader", "is_active": True}

    # duplicate username, bad username, short password: refused with a message, nothing written
    resp = post_form(admin_client, "/users/new", {"username": "CAROL", "role": "viewer", "password": "whatever-1",
                                                  "confirm": "whatever-1"}, follow_redirects=True)
    assert "is taken" in resp.get_data(as_text=True)
    resp = post_form(admin_client, "/users/new", {"username": "a b", "role": "viewer", "password": "whatever-1",
                                                  "confirm": "whatever-1"})
    assert "A username has" in resp.get_data(as_text=True)
    resp = post_form(admin_client, "/users/new", {"username": "dave", "role": "viewer", "password": "short",
                                                  "confirm": "short"})
    assert resp.status_code == 200
    assert "at least 8" in resp.get_data(as_text=True)
    assert len(events()) == 1


def test_admin_disables_enables_changes_role_and_resets_password(admin_client, app):
    bob = make_user("bob", Role.TRADER)
    bob_client = isolated_client(app)
    login(bob_client, "bob")

    resp = post_form(admin_client, f"/users/{bob.id}/disable", form_url="/users/")
    assert resp.status_code == 302
    assert not fresh("bob").is_active
    assert bob_client.get("/").location.endswith("/auth/login")  # his session ended
    post_form(admin_client, f"/users/{bob.id}/enable", form_url="/users/")
    assert fresh("bob").is_active

    post_form(admin_client, f"/users/{bob.id}/role", {"role": "viewer"}, form_url="/users/")
    assert fresh("bob").role == Role.VIEWER
    resp = post_form(admin_client, f"/users/{bob.id}/role", {"role": "superuser"}, form_url="/users/",
                     follow_redirects=True)
    assert "Choose a valid role" in resp.get_data(as_text=True)
    assert fresh("bob").role == Role.VIEWER

    resp = post_form(admin_client, f"/users/{bob.id}/password", {"password": "new-password-1",
                                                                 "confirm": "new-password-1"})
    assert resp.status_code == 302
    assert accounts.verify_password(fresh("bob").password_hash, "new-password-1")
    assert not accounts.verify_password(fresh("bob").password_hash, PASSWORD)

    actions = [(e.action, e.before, e.after) for e in events()]
    assert actions == [
        ("user.disable", {"username": "bob", "role": "trader", "is_active": True},
         {"username": "bob", "role": "trader", "is_active": False}),
        ("user.enable", {"username": "bob", "role": "trader", "is_active": False},
         {"username": "bob", "role": "trader", "is_active": True}),
        ("user.role_change", {"username": "bob", "role": "trader", "is_active": True},
         {"username": "bob", "role": "viewer", "is_active": True}),
        ("user.password_reset", None, {"password_reset": True}),
    ]
    assert admin_client.post(f"/users/{bob.id + 1000}/disable",
                             data={"csrf_token": csrf_token(admin_client, "/users/")}).status_code == 404


def test_admin_resetting_own_password_stays_signed_in(admin_client):
    root = fresh("root")
    post_form(admin_client, f"/users/{root.id}/password", {"password": "fresh-pass-1", "confirm": "fresh-pass-1"})
    assert admin_client.get("/users/").status_code == 200


def test_the_last_admin_and_oneself_are_protected(admin_client):
    root = fresh("root")
    resp = post_form(admin_client, f"/users/{root.id}/disable", form_url="/users/", follow_redirects=True)
    assert "cannot disable your own account" in resp.get_data(as_text=True)
    resp = post_form(admin_client, f"/users/{root.id}/role", {"role": "viewer"}, form_url="/users/",
                     follow_redirects=True)
    assert "cannot change your own role" in resp.get_data(as_text=True)
    assert fresh("root").is_active
    assert fresh("root").role == Role.ADMIN

    with pytest.raises(accounts.LastAdminError):
        accounts.set_active("root", False, actor=accounts.Actor.cli())
    with pytest.raises(accounts.LastAdminError):
        accounts.change_role("root", "trader", actor=accounts.Actor.cli())
    make_user("second", Role.ADMIN)
    accounts.change_role("root", "trader", actor=accounts.Actor.cli())
    assert fresh("root").role == Role.TRADER
    assert len(events()) == 1


def test_audit_rows_never_hold_a_password_or_hash(admin_client, app):
    post_form(admin_client, "/users/new", {"username": "eve", "role": "viewer", "password": "eve-secret-pw",
                                           "confirm": "eve-secret-pw"})
    eve = fresh("eve")
    post_form(admin_client, f"/users/{eve.id}/password", {"password": "eve-other-pw", "confirm": "eve-other-pw"})
    accounts.reset_password("eve", "eve-third-pw", actor=accounts.Actor.cli())
    rows = events()
    assert len(rows) == 3
    text = json.dumps([[r.before, r.after, r.actor, r.action, r.target_id] for r in rows])
    hashes = [fresh("eve").password_hash, fresh("root").password_hash]
    for secret in ("eve-secret-pw", "eve-other-pw", "eve-third-pw", PASSWORD, "$argon2", *hashes):
        assert secret not in text


def test_role_required_decorator(app):
    viewer = make_user("val", Role.VIEWER)
    trader = make_user("tom", Role.TRADER)

    @role_required("admin", "trader")
    def place_order():
        return "placed"

    with app.test_request_context("/orders"):
        resp = place_order()  # anonymous: sent to sign in
        assert resp.status_code == 302
        assert "/auth/login" in resp.location
    with app.test_request_context("/orders"):
        login_user(accounts.principal_for(viewer))
        with pytest.raises(Forbidden):
            place_order()
    with app.test_request_context("/orders"):
        login_user(accounts.principal_for(trader))
        assert place_order() == "placed"
    with pytest.raises(TypeError):
        role_required()
    with pytest.raises(ValueError, match="not a valid Role"):
        role_required("superuser")
