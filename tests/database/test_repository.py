"""The generic repository on both databases: CRUD, keyset paging, and errors mapped."""

from __future__ import annotations

import datetime as dt

import pytest

from database import db
from database.repository import DuplicateError, NotFoundError, Repository, ValidationError
from database.strategy_db import Strategy, StrategySymbolMapping
from database.types import utcnow
from database.user_db import User


@pytest.fixture
def users(app):
    return Repository(User)


def test_add_get_find_count_exists_delete(users):
    u = users.create(username="bob", password_hash="h")
    assert users.get(u.id) is u
    assert users.find(username="bob") is u
    assert users.count() == 1
    assert users.count({"username": "nobody"}) == 0
    assert users.exists({"username": "bob"})
    assert not users.exists({"username": "eve"})
    users.delete(u.id)
    assert users.count() == 0
    with pytest.raises(NotFoundError, match=f"User {u.id} not found"):
        users.get(u.id)


def test_duplicate_is_mapped_and_the_unit_of_work_survives(users):
    users.create(username="bob", password_hash="h")
    with pytest.raises(DuplicateError):
        users.create(username="bob", password_hash="h2")
    users.create(username="carol", password_hash="h")  # the session is still usable
    db.session.commit()
    assert users.count() == 2


def test_invalid_values_are_validation_errors(users):
    with pytest.raises(ValidationError):
        users.create(username="x", password_hash="h", role="superuser")  # not in the enum
    with pytest.raises(ValidationError):
        users.create(username=None, password_hash="h")  # NOT NULL
    with pytest.raises(ValidationError):  # foreign key to a missing strategy
        Repository(StrategySymbolMapping).create(strategy_id=987654, symbol="INFY", exchange="NSE", quantity=1)
    with pytest.raises(ValidationError, match="no field"):
        users.count({"nope": 1})


def test_keyset_paging_walks_every_row_once(users):
    base = utcnow()
    for i in range(23):
        # Equal timestamps in pairs, to exercise the tie-break on the primary key.
        users.create(username=f"u{i:02d}", password_hash="h", created_at=base + dt.timedelta(seconds=i // 2))
    db.session.commit()
    for order_by in (None, "created_at", "username"):
        for descending in (True, False):
            seen, cursor = [], None
            while True:
                page = users.list(order_by=order_by, descending=descending, limit=5, after=cursor)
                seen += [u.username for u in page.items]
                cursor = page.next_cursor
                if cursor is None:
                    break
            assert len(seen) == 23
            assert len(set(seen)) == 23
            expected = sorted(seen) if order_by == "username" else None
            if expected:
                assert seen == (expected[::-1] if descending else expected)


def test_filters_and_bad_cursor(users):
    users.create(username="a", password_hash="h", role="admin")
    users.create(username="b", password_hash="h", role="viewer")
    users.create(username="c", password_hash="h", role="trader")
    page = users.list({"role": ["admin", "viewer"]}, order_by="username", descending=False)
    assert [u.username for u in page.items] == ["a", "b"]
    assert page.next_cursor is None
    with pytest.raises(ValidationError, match="cursor"):
        users.list(after="%%%not-a-cursor")


def test_strategy_cascade_delete(app):
    owner = Repository(User).create(username="own", password_hash="h")
    s = Repository(Strategy).create(user_id=owner.id, name="s1", webhook_hash="w" * 64, webhook_prefix="wwwwww",
                                    platform="tradingview")
    Repository(StrategySymbolMapping).create(strategy_id=s.id, symbol="INFY", exchange="NSE", quantity=1)
    db.session.commit()
    Repository(User).delete(owner)
    db.session.commit()
    assert Repository(StrategySymbolMapping).count() == 0


def test_paging_by_a_nullable_column_is_refused(users):
    with pytest.raises(ValidationError, match="may be empty"):
        users.list(order_by="email")
