"""UTCDateTime: stored in UTC, returned aware, naive values refused."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy.exc import StatementError

from database import db
from database.user_db import User


def test_aware_datetimes_round_trip_as_utc(app):
    ist = dt.datetime(2026, 3, 2, 9, 15, tzinfo=ZoneInfo("Asia/Kolkata"))
    user = User(username="t1", password_hash="x", last_login_at=ist)
    db.session.add(user)
    db.session.commit()
    db.session.expire_all()
    got = db.session.get(User, user.id).last_login_at
    assert got.tzinfo is not None
    assert got.utcoffset() == dt.timedelta(0)
    assert got == ist
    assert got.hour == 3
    assert got.minute == 45


def test_naive_datetime_is_refused(app):
    db.session.add(User(username="t2", password_hash="x", last_login_at=dt.datetime(2026, 1, 1)))  # noqa: DTZ001
    with pytest.raises(StatementError, match="naive"):
        db.session.flush()
    db.session.rollback()
