"""API keys: shown once, stored as a peppered hash, O(1) verification, scoped, revocable, per user."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
import time

import pytest
from sqlalchemy import event, text

from database import db
from database.repository import NotFoundError, ValidationError
from database.types import utcnow
from services.accounts import api_keys
from services.accounts import users as accounts
from services.accounts.api_keys import ApiKeyError
from tests.helpers import ROOT
from tests.helpers.accounts import make_user


@pytest.fixture
def count_queries(app):
    """Counts the SQL statements the engine runs while the test body runs."""
    statements: list[str] = []

    def record(_conn, _cursor, statement, *_args):
        statements.append(statement)

    event.listen(db.engine, "before_cursor_execute", record)
    yield statements
    event.remove(db.engine, "before_cursor_execute", record)


def test_create_shows_the_key_once_and_stores_only_its_hash(app):
    alice = make_user("alice")
    row, key = api_keys.create_key(alice, "tradingview", ["orders", "read"])
    db.session.commit()
    assert len(key) == 64
    assert row.prefix == key[:8]
    with db.engine.connect() as conn:
        raw = " ".join(str(v) for r in conn.execute(text("SELECT * FROM api_keys")) for v in r)
        audit = " ".join(str(v) for r in conn.execute(text("SELECT * FROM audit_events")) for v in r)
    assert key not in raw
    assert key not in audit
    assert row.key_hash == api_keys.hash_key(key) != key
    principal = api_keys.verify(key, "orders")
    assert (principal.user_id, principal.key_id, principal.scopes) == (alice.id, row.id, ("orders", "read"))


def test_verification_is_one_query_then_none(app, count_queries):
    alice = make_user("alice")
    _row, key = api_keys.create_key(alice, "k", "read")
    db.session.commit()
    count_queries.clear()
    api_keys.verify(key)
    lookups = [s for s in count_queries if "FROM api_keys" in s]
    assert len(lookups) == 1
    assert "key_hash" in lookups[0]
    count_queries.clear()
    for _ in range(20):
        api_keys.verify(key)
    assert [s for s in count_queries if "FROM api_keys" in s] == []


def test_scopes_expiry_and_bad_input(app):
    alice = make_user("alice")
    viewer = make_user("val", role="viewer")
    _r, read_key = api_keys.create_key(alice, "r", ["read"])
    with pytest.raises(ValidationError, match="viewer"):
        api_keys.create_key(viewer, "v", ["orders"])
    with pytest.raises(ValidationError, match="unknown scope"):
        api_keys.create_key(alice, "x", ["admin"])
    with pytest.raises(ValidationError, match="future"):
        api_keys.create_key(alice, "x", ["read"], utcnow() - dt.timedelta(seconds=1))
    soon, soon_key = api_keys.create_key(alice, "soon", ["read"], utcnow() + dt.timedelta(seconds=60))
    db.session.commit()
    with pytest.raises(ApiKeyError, match="orders scope"):
        api_keys.verify(read_key, "orders")
    for bad in ["", "x" * 257, None, 123, "0" * 64]:
        with pytest.raises(ApiKeyError):
            api_keys.verify(bad)
    api_keys.verify(soon_key)
    soon.expires_at = utcnow() - dt.timedelta(seconds=1)
    db.session.commit()
    api_keys.forget_user_keys()
    db.session.commit()
    with pytest.raises(ApiKeyError, match="expired"):
        api_keys.verify(soon_key)


def test_a_user_cannot_see_or_revoke_another_users_key(app):
    alice, bob = make_user("alice"), make_user("bob")
    a_row, a_key = api_keys.create_key(alice, "a", "read")
    api_keys.create_key(bob, "b", "read")
    db.session.commit()
    assert [k.name for k in api_keys.list_keys(bob.id)] == ["b"]
    with pytest.raises(NotFoundError):
        api_keys.revoke_key(bob, a_row.id)
    db.session.commit()
    assert api_keys.verify(a_key).user_id == alice.id


def test_revoked_key_and_disabled_owner_are_refused(app):
    alice = make_user("alice")
    row, key = api_keys.create_key(alice, "a", "read")
    _row2, key2 = api_keys.create_key(alice, "b", "read")
    db.session.commit()
    api_keys.verify(key)  # cached now
    api_keys.revoke_key(alice, row.id)
    db.session.commit()
    with pytest.raises(ApiKeyError):
        api_keys.verify(key)
    api_keys.verify(key2)
    admin = make_user("root", role="admin")
    actor = accounts.Actor(user_id=admin.id, name="root", ip=None)
    accounts.set_active(alice.id, False, actor=actor)  # the real path, not a cache call of the test's
    with pytest.raises(ApiKeyError):
        api_keys.verify(key2)


def test_a_trader_demoted_to_viewer_loses_the_orders_scope(app):
    alice = make_user("alice")
    _row, key = api_keys.create_key(alice, "a", ["orders", "read"])
    db.session.commit()
    assert api_keys.verify(key, "orders")
    admin = make_user("root", role="admin")
    accounts.change_role(alice.id, "viewer", actor=accounts.Actor(user_id=admin.id, name="root", ip=None))
    with pytest.raises(ApiKeyError, match="orders scope"):
        api_keys.verify(key, "orders")
    assert api_keys.verify(key, "read").user_id == alice.id


CHILD = r"""
import json, sys, time
sys.path.insert(0, {root!r})
from app import create_app
from services.accounts import users as accounts
from services.accounts import api_keys
app = create_app(json.loads({overrides!r}))
with app.app_context():
    api_keys.verify({key!r})
    print("ready", flush=True)
    refused_at = None
    deadline = time.time() + 20
    while time.time() < deadline:
        try:
            api_keys.verify({key!r})
        except api_keys.ApiKeyError:
            refused_at = time.time()
            break
        finally:
            from database import db
            db.session.remove()
        time.sleep(0.01)
    print(json.dumps({{"refused_at": refused_at}}), flush=True)
"""


@pytest.mark.slow
def test_a_revoked_key_fails_in_a_second_process_within_a_second(app):
    alice = make_user("alice")
    row, key = api_keys.create_key(alice, "a", "orders")
    db.session.commit()
    overrides = {k: app.config[k] for k in ("DATABASE_URL", "SECRET_KEY", "API_KEY_PEPPER", "TOKEN_ENCRYPTION_KEYS",
                                             "REDIS_URL")}
    overrides["INSTANCE_PATH"] = app.instance_path
    child = subprocess.Popen([sys.executable, "-c", CHILD.format(root=ROOT, overrides=json.dumps(overrides), key=key)],
                             stdout=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        assert child.stdout.readline().strip() == "ready"
        time.sleep(0.3)
        api_keys.revoke_key(alice, row.id)
        db.session.commit()
        revoked_at = time.time()
        result = json.loads(child.stdout.readline())
    finally:
        child.wait(timeout=30)
        child.stdout.close()
    assert result["refused_at"] is not None
    assert result["refused_at"] - revoked_at < 1.0
