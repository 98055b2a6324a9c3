"""The Zerodha login flow end to end against the fake Kite server, through the service layer:
login, store (encrypted), resume, expiry at the configured time, disconnect."""

from __future__ import annotations

import datetime as dt
import logging
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import text

from brokers.base import next_daily_expiry
from database import db
from database.alert_db import Alert
from database.auth_db import BrokerSession
from database.enums import BrokerSessionStatus
from database.types import utcnow
from services.accounts import broker_login
from services.accounts.broker_login import BrokerLoginError
from tests.fakes.kite_server import API_KEY, USER_ID
from tests.helpers import live as live_fixtures
from tests.helpers.accounts import make_user

kite = live_fixtures.kite  # fixture: the app on a fake Kite

IST = ZoneInfo("Asia/Kolkata")


def _login(kite, user) -> BrokerSession:
    url, state = broker_login.start_login(user, "zerodha")
    assert url.startswith(kite.login_url)
    assert "api_key=" + API_KEY in url
    assert state in url
    request_token = kite.fake.issue_request_token()
    row = broker_login.complete_login(user, "zerodha", {"request_token": request_token, "status": "success"})
    db.session.commit()
    return row


def test_login_stores_the_token_encrypted_and_resumes(app, kite, caplog):
    caplog.set_level(logging.DEBUG)
    alice = make_user("alice")
    row = _login(kite, alice)
    token = row.access_token
    assert row.broker_user_id == USER_ID
    assert row.status == BrokerSessionStatus.ACTIVE
    with db.engine.connect() as conn:
        raw = " ".join(str(v) for r in conn.execute(text("SELECT * FROM broker_sessions")) for v in r)
        audit = " ".join(str(v) for r in conn.execute(text("SELECT * FROM audit_events")) for v in r)
    assert token not in raw
    assert token not in audit
    assert token not in caplog.text
    active = broker_login.active_session(alice.id)
    assert active.broker == "zerodha"
    assert active.session_id == row.id
    assert token not in repr(active)
    # The next web login resumes the stored session: the broker confirms it, no new login.
    resumed = broker_login.resume(alice)
    db.session.commit()
    assert resumed.id == row.id


def test_a_session_ends_at_the_configured_time(app, kite):
    # A daily end that comes before Kite's own 06:00 flush, whatever the time of day the test runs.
    kite_end = next_daily_expiry(utcnow())
    ours = (kite_end - min(dt.timedelta(hours=1), (kite_end - utcnow()) / 2)).astimezone(IST)
    app.config["SESSION_EXPIRY_TIME"] = f"{ours:%H:%M}"
    alice = make_user("alice")
    row = _login(kite, alice)
    local = row.expires_at.astimezone(IST)
    assert (local.hour, local.minute) == (ours.hour, ours.minute)
    assert row.expires_at < kite_end
    assert row.expires_at - utcnow() <= dt.timedelta(days=1)
    # Move the clock past it: the session is expired, an alert is raised, nothing is active.
    row.expires_at = utcnow() - dt.timedelta(seconds=1)
    db.session.commit()
    assert broker_login.expire_due(alice.id) == 1
    db.session.commit()
    assert broker_login.active_session(alice.id) is None
    assert db.session.get(BrokerSession, row.id).status == BrokerSessionStatus.EXPIRED
    assert db.session.scalar(db.select(Alert.kind)) == "broker_session_expired"


def test_a_token_the_broker_refuses_is_not_resumed(app, kite):
    alice = make_user("alice")
    row = _login(kite, alice)
    kite.fake.expire_all()  # Kite's morning flush
    assert broker_login.resume(alice) is None
    db.session.commit()
    assert db.session.get(BrokerSession, row.id).status == BrokerSessionStatus.EXPIRED


def test_bad_callback_gives_advice_not_a_traceback(app, kite):
    alice = make_user("alice")
    with pytest.raises(BrokerLoginError, match="connect again"):
        broker_login.complete_login(alice, "zerodha", {"request_token": "not-issued"})
    db.session.rollback()
    assert db.session.scalar(db.select(db.func.count()).select_from(BrokerSession)) == 0


def test_disconnect_invalidates_at_the_broker_and_revokes(app, kite):
    alice, bob = make_user("alice"), make_user("bob")
    row = _login(kite, alice)
    token = row.access_token
    bob_row = _login(kite, bob)
    assert broker_login.disconnect(alice) == 1
    db.session.commit()
    assert broker_login.active_session(alice.id) is None
    assert db.session.get(BrokerSession, row.id).status == BrokerSessionStatus.REVOKED
    with pytest.raises(Exception, match="(?i)token|session"):
        broker_login.broker("zerodha").session(token).profile()
    # Bob's session is his own and untouched.
    assert broker_login.active_session(bob.id).session_id == bob_row.id


def test_a_new_login_replaces_the_previous_session(app, kite):
    alice = make_user("alice")
    first = _login(kite, alice)
    second = _login(kite, alice)
    assert db.session.get(BrokerSession, first.id).status == BrokerSessionStatus.REVOKED
    assert broker_login.active_session(alice.id).session_id == second.id


def test_paper_connects_without_credentials(app):
    alice = make_user("alice")
    url, _state = broker_login.start_login(alice, "paper")
    assert url is None
    row = broker_login.complete_login(alice, "paper", {})
    db.session.commit()
    assert broker_login.active_session(alice.id).broker == "paper"
    assert row.access_token
