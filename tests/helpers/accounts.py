"""Accounts for tests: users with a password hashed once per process, CSRF-aware form posts, sign-in.

argon2 is slow by design (~0.2 s a hash with the production parameters). Tests swap in argon2's
cheapest parameters (`use_test_hasher`) and reuse one hash per password for every user they make.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator

from argon2 import PasswordHasher, profiles
from flask.testing import FlaskClient

from database import db
from database.enums import Role
from database.user_db import User
from extensions import limiter

PASSWORD = "correct-horse-battery"
TEST_HASHER = PasswordHasher.from_parameters(profiles.CHEAPEST)

_CSRF_INPUT = re.compile(r'<input[^>]*\bname="csrf_token"[^>]*>')
_VALUE = re.compile(r'\bvalue="([^"]+)"')


class IsolatedClient(FlaskClient):
    """A test client whose every request runs in an app context of its own, as in production.

    The `app` fixture keeps an app context pushed for the whole test, and Flask reuses it for
    requests made on the same thread: `g` would then carry one request's state into the next
    (Flask-Login caches the signed-in user there, Flask-WTF the CSRF token), so a disabled user
    would stay signed in and two clients would share a CSRF token.
    """

    def open(self, *args, **kwargs):
        with self.application.app_context():
            return super().open(*args, **kwargs)


def isolated_client(app) -> IsolatedClient:
    return IsolatedClient(app, app.response_class, use_cookies=True)


def use_test_hasher(monkeypatch) -> None:
    """Make services.accounts.users hash with cheap parameters for the current test."""
    from services.accounts import users as accounts

    monkeypatch.setattr(accounts, "_hasher", TEST_HASHER)


@functools.cache
def password_hash(password: str = PASSWORD) -> str:
    return TEST_HASHER.hash(password)


def make_user(username: str = "trader1", role: Role | str = Role.TRADER, *, password: str = PASSWORD,
              is_active: bool = True, **overrides) -> User:
    """A committed user whose password is `password` (hashed once per process)."""
    user = User(username=username, password_hash=password_hash(password), role=Role(role), is_active=is_active,
                **overrides)
    db.session.add(user)
    db.session.commit()
    return user


def pages_env(monkeypatch) -> Iterator[None]:
    """The body of a page test module's autouse fixture (`yield from pages_env(monkeypatch)`): cheap
    password hashing, and the rate limits fresh before and after the test."""
    use_test_hasher(monkeypatch)
    limiter.reset()
    yield
    limiter.reset()


def csrf_token(client, url: str) -> str:
    """GET `url` and return the CSRF token of its form (the session cookie keeps the secret)."""
    resp = client.get(url)
    assert resp.status_code == 200, f"GET {url} answered {resp.status_code}"
    tag = _CSRF_INPUT.search(resp.get_data(as_text=True))
    assert tag is not None, f"no csrf_token on {url}"
    match = _VALUE.search(tag.group(0))
    assert match is not None
    return match.group(1)


def post_form(client, url: str, data: dict | None = None, *, form_url: str | None = None, **kwargs):
    """POST `data` to `url` with the CSRF token of the page at `form_url` (default: `url`)."""
    token = csrf_token(client, form_url or url)
    return client.post(url, data={**(data or {}), "csrf_token": token}, **kwargs)


def login(client, username: str, password: str = PASSWORD, **kwargs):
    return post_form(client, "/auth/login", {"username": username, "password": password}, **kwargs)


def sign_in(client, username: str = "trader1", role: Role | str = Role.TRADER) -> User:
    """Make `username` and sign `client` in as them."""
    user = make_user(username, role)
    resp = login(client, username)
    assert resp.status_code == 302, resp.get_data(as_text=True)
    return user


def logout(client, *, form_url: str = "/dashboard", **kwargs):
    """Sign out through the form in the top bar of a signed-in page."""
    return client.post("/auth/logout", data={"csrf_token": csrf_token(client, form_url)}, **kwargs)


def one_user_per_role() -> dict[str, object]:
    """An admin1, a trader1 and a viewer1 (the pages' role tests), by role name."""
    return {role: make_user(f"{role}1", role) for role in ("admin", "trader", "viewer")}


def client_for(app, username: str) -> IsolatedClient:
    """A client of its own, signed in as `username`."""
    c = isolated_client(app)
    assert login(c, username).status_code in (302, 303)
    return c
