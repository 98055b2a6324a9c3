"""Server-side web sessions: begun with a random token (only its hash stored), checked from the cache, ended
for good by sign-out, a new password or a disabled account, in the same unit of work as the change."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import event, select

from database import cache, db
from database.enums import Role
from database.session_db import WebSession
from database.types import utcnow
from services.accounts import sessions
from services.accounts import users as accounts
from tests.helpers.accounts import make_user, use_test_hasher


@pytest.fixture(autouse=True)
def _cheap_hashes(app, monkeypatch):
    use_test_hasher(monkeypatch)


def rows(user_id: int | None = None) -> list[WebSession]:
    db.session.rollback()  # see what other units committed
    query = select(WebSession).order_by(WebSession.id)
    if user_id is not None:
        query = query.where(WebSession.user_id == user_id)
    return list(db.session.scalars(query))


def test_a_session_is_a_random_token_whose_hash_alone_is_stored(app):
    alice = make_user("alice")
    token = sessions.begin(alice.id, ip="203.0.113.5", user_agent="probe/1.0")
    other = sessions.begin(alice.id)
    assert token != other
    assert len(token) >= 40
    (row, _) = rows()
    assert row.token_hash == sessions.token_hash(token) != token
    assert (row.user_id, row.ip, row.user_agent, row.ended_at) == (alice.id, "203.0.113.5", "probe/1.0", None)
    assert row.created_at.tzinfo is not None
    assert sessions.is_live(token, alice.id)
    assert not sessions.is_live(token, alice.id + 1)  # a token names one user's session
    assert not sessions.is_live("not-a-token", alice.id)
    assert not sessions.is_live(None, alice.id)
    assert [s.token_hash for s in sessions.live(alice.id)] == [sessions.token_hash(t) for t in (token, other)]


def test_ending_a_session_is_final_and_reaches_the_cached_check(app):
    alice = make_user("alice")
    token = sessions.begin(alice.id)
    assert sessions.is_live(token, alice.id)  # now cached as live
    assert cache.get(sessions.CACHE_NS, sessions.token_hash(token)) == {"user": alice.id, "live": True}
    assert sessions.end(token, sessions.LOGOUT) is True
    assert not sessions.is_live(token, alice.id)
    assert sessions.end(token, sessions.LOGOUT) is False  # already ended
    (row,) = rows()
    assert row.ended_at is not None
    assert row.end_reason == "logout"
    assert cache.get(sessions.CACHE_NS, sessions.token_hash(token)) == {"user": alice.id, "live": False}


def test_a_live_session_is_checked_without_a_query(app):
    alice = make_user("alice")
    token = sessions.begin(alice.id)
    assert sessions.is_live(token, alice.id)
    statements: list[str] = []

    def record(_conn, _cursor, statement, *_args):
        statements.append(statement)

    event.listen(db.engine, "before_cursor_execute", record)
    try:
        for _ in range(20):
            assert sessions.is_live(token, alice.id)
    finally:
        event.remove(db.engine, "before_cursor_execute", record)
    assert statements == []


def test_end_all_keeps_only_the_session_asked_for(app):
    alice, bob = make_user("alice"), make_user("bob")
    mine, other, third = (sessions.begin(alice.id) for _ in range(3))
    bobs = sessions.begin(bob.id)
    for token in (mine, other, third):
        assert sessions.is_live(token, alice.id)
    assert sessions.end_all(alice.id, sessions.PASSWORD_CHANGE, keep=mine) == 2
    assert sessions.is_live(mine, alice.id)
    assert not sessions.is_live(other, alice.id)
    assert not sessions.is_live(third, alice.id)
    assert sessions.is_live(bobs, bob.id)  # another user's sessions are untouched
    assert sorted((r.end_reason or "live") for r in rows(alice.id)) == ["live", "password_change", "password_change"]
    assert sessions.end_all(alice.id, sessions.PASSWORD_RESET) == 1
    assert not sessions.is_live(mine, alice.id)


def test_disabling_a_user_ends_every_session_and_enabling_does_not_bring_them_back(app):
    make_user("root", Role.ADMIN)
    bob = make_user("bob")
    tokens = [sessions.begin(bob.id) for _ in range(2)]
    assert all(sessions.is_live(t, bob.id) for t in tokens)
    accounts.set_active(bob.id, False, actor=accounts.Actor("root", None))
    assert not any(sessions.is_live(t, bob.id) for t in tokens)
    assert {r.end_reason for r in rows(bob.id)} == {"disabled"}
    accounts.set_active(bob.id, True, actor=accounts.Actor("root", None))
    assert not any(sessions.is_live(t, bob.id) for t in tokens)


def test_a_password_reset_ends_every_session_and_an_own_change_keeps_the_current_one(app):
    root = make_user("root", Role.ADMIN)
    bob = make_user("bob")
    bobs = [sessions.begin(bob.id) for _ in range(2)]
    # An administrator's reset (or the CLI's) ends them all, even if it names a session to keep.
    accounts.reset_password(bob.id, "a-new-password", actor=accounts.Actor("root", root.id), keep_session=bobs[0])
    assert not any(sessions.is_live(t, bob.id) for t in bobs)
    assert {r.end_reason for r in rows(bob.id)} == {"password_reset"}

    current, elsewhere = sessions.begin(root.id), sessions.begin(root.id)
    accounts.reset_password(root.id, "root-new-password", actor=accounts.Actor("root", root.id), keep_session=current)
    assert sessions.is_live(current, root.id)
    assert not sessions.is_live(elsewhere, root.id)
    assert [r.end_reason for r in rows(root.id)] == [None, "password_change"]


def test_a_failed_change_ends_nothing(app):
    make_user("root", Role.ADMIN)
    bob = make_user("bob")
    token = sessions.begin(bob.id)
    assert sessions.is_live(token, bob.id)
    with pytest.raises(accounts.AccountError):  # you cannot disable yourself: the unit rolls back
        accounts.set_active(bob.id, False, actor=accounts.Actor("bob", bob.id))
    assert sessions.is_live(token, bob.id)
    assert rows(bob.id)[0].ended_at is None


def test_activity_is_written_at_most_once_a_minute_per_process(app, monkeypatch):
    monkeypatch.setattr(sessions, "_touched", {})
    alice = make_user("alice")
    start = utcnow() - dt.timedelta(hours=1)
    token = sessions.begin(alice.id, now=start)
    later = start + dt.timedelta(minutes=5)
    sessions.touch(token, now=later)
    assert rows()[0].last_seen_at == later
    sessions.touch(token, now=later + dt.timedelta(minutes=1))  # within TOUCH_EVERY of this process's write
    assert rows()[0].last_seen_at == later
    sessions.end(token)
    monkeypatch.setattr(sessions, "_touched", {})
    sessions.touch(token, now=later + dt.timedelta(minutes=2))  # an ended session keeps its last activity
    assert rows()[0].last_seen_at == later


def test_old_sessions_are_purged_when_a_new_one_begins(app, monkeypatch):
    alice = make_user("alice")
    now = utcnow()
    old = sessions.begin(alice.id, now=now - sessions.KEEP_FOR - dt.timedelta(minutes=1))
    monkeypatch.setattr(sessions, "_next_purge", 0.0)
    fresh = sessions.begin(alice.id, now=now)
    assert [r.token_hash for r in rows()] == [sessions.token_hash(fresh)]
    assert not sessions.is_live(old, alice.id)


def test_deleting_a_user_deletes_their_sessions(app):
    alice = make_user("alice")
    sessions.begin(alice.id)
    db.session.delete(db.session.get(type(alice), alice.id))
    db.session.commit()
    assert rows() == []
