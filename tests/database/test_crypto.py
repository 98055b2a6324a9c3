"""Broker tokens are encrypted at rest; keys rotate without downtime; bad keys give clear errors."""

from __future__ import annotations

import datetime as dt

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import text

from config import ConfigError, load_config
from database import crypto, db
from database.auth_db import BrokerSession
from database.types import utcnow
from database.user_db import User

TOKEN = "kite-access-token-0123456789abcdef"


def _store_session(token: str = TOKEN) -> int:
    user = User(username="alice", password_hash="x", totp_secret="JBSWY3DPEHPK3PXP")
    db.session.add(user)
    db.session.flush()
    bs = BrokerSession(user_id=user.id, broker="zerodha", access_token=token, feed_token="feed-" + token,
                       expires_at=utcnow() + dt.timedelta(hours=8))
    db.session.add(bs)
    db.session.commit()
    return bs.id


def _raw(sql: str) -> list[str]:
    with db.engine.connect() as conn:
        return [v for row in conn.execute(text(sql)) for v in row if v is not None]


def test_no_plaintext_in_the_raw_rows(app):
    sid = _store_session()
    raw = _raw("SELECT access_token, feed_token FROM broker_sessions") + _raw("SELECT totp_secret FROM users")
    assert len(raw) == 3
    for value in raw:
        assert TOKEN not in value
        assert "JBSWY3DPEHPK3PXP" not in value
        assert value.startswith("gAAAAA")  # a Fernet token
    db.session.expire_all()
    assert db.session.get(BrokerSession, sid).access_token == TOKEN


def test_rotation_then_old_key_removed(app, runner):
    old_keys = app.config["TOKEN_ENCRYPTION_KEYS"]
    sid = _store_session()
    before = _raw("SELECT access_token FROM broker_sessions")[0]
    new_key = Fernet.generate_key().decode()
    try:
        crypto.configure(f"{new_key},{old_keys}")
        result = runner.invoke(args=["secrets", "rotate"])
        assert result.exit_code == 0, result.output
        assert "broker_sessions: 1 rows re-encrypted" in result.output
        after = _raw("SELECT access_token FROM broker_sessions")[0]
        assert after != before
        crypto.configure(new_key)  # the old key is gone
        db.session.rollback()  # leave the snapshot taken before the rotation
        assert db.session.get(BrokerSession, sid).access_token == TOKEN
        assert db.session.get(User, db.session.get(BrokerSession, sid).user_id).totp_secret == "JBSWY3DPEHPK3PXP"
    finally:
        crypto.configure(old_keys)


def test_wrong_key_gives_a_clear_error(app):
    old_keys = app.config["TOKEN_ENCRYPTION_KEYS"]
    sid = _store_session()
    try:
        crypto.configure(Fernet.generate_key().decode())
        db.session.expire_all()
        with pytest.raises(crypto.TokenDecryptionError, match="TOKEN_ENCRYPTION_KEYS"):
            db.session.get(BrokerSession, sid).access_token  # noqa: B018
        db.session.rollback()
    finally:
        crypto.configure(old_keys)


@pytest.mark.parametrize("keys", ["not-a-key", "", "abc,def"])
def test_malformed_keys_are_refused_by_name(tmp_path, keys):
    env = {"DATABASE_URL": "postgresql://x@127.0.0.1/x", "SECRET_KEY": "k" * 10 + "abcdefghijklmnopqrstuvwxyz0123",
           "API_KEY_PEPPER": "p" * 10 + "abcdefghijklmnopqrstuvwxyz0123", "TOKEN_ENCRYPTION_KEYS": keys}
    with pytest.raises(ConfigError, match="TOKEN_ENCRYPTION_KEYS"):
        load_config(str(tmp_path), environ=env)
