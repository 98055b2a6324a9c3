"""Two-factor sign-in: enrolment, codes on a controlled clock (drift, single use), recovery codes, the
lockout after wrong codes, and turning it off."""

from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy as sa
from sqlalchemy import select

from database import db
from database.audit_db import AuditEvent
from database.enums import Role
from database.user_db import LoginAttempt, User
from services.accounts import api_keys, two_factor
from services.accounts.two_factor import TwoFactorError
from tests.helpers.accounts import PASSWORD, make_user, use_test_hasher

T0 = dt.datetime(2026, 3, 10, 5, 30, 10, tzinfo=dt.UTC)  # 10 s into a 30-second step
STEP = dt.timedelta(seconds=30)


@pytest.fixture(autouse=True)
def _hasher(monkeypatch):
    use_test_hasher(monkeypatch)


def fresh(user_id: int) -> User:
    db.session.rollback()
    return db.session.get(User, user_id, populate_existing=True)


def enrolled(username: str = "trader1", role: Role = Role.TRADER) -> tuple[User, str, list[str]]:
    """A user with two-factor sign-in on (enrolled at T0 - 1 hour): (user, secret, recovery codes)."""
    user = make_user(username, role)
    at = T0 - dt.timedelta(hours=1)
    enrolment = two_factor.start_enrolment(user, now=at)
    codes = two_factor.confirm_enrolment(user, enrolment.token, two_factor.code_at(enrolment.secret, at), now=at)
    return fresh(user.id), enrolment.secret, codes


def test_enrolment_stores_the_secret_encrypted_only_once_a_code_proves_the_app_has_it(app):
    user = make_user("trader1")
    enrolment = two_factor.start_enrolment(user, now=T0)
    assert enrolment.uri.startswith("otpauth://totp/Algobridge:trader1?secret=")
    assert not two_factor.is_enrolled(user.id)  # nothing stored yet
    wrong = str((int(two_factor.code_at(enrolment.secret, T0)) + 1) % 1_000_000).zfill(6)
    with pytest.raises(TwoFactorError, match="does not match"):
        two_factor.confirm_enrolment(user, enrolment.token, wrong, now=T0)
    assert not two_factor.is_enrolled(user.id)

    codes = two_factor.confirm_enrolment(user, enrolment.token, two_factor.code_at(enrolment.secret, T0), now=T0)
    row = fresh(user.id)
    assert two_factor.is_enrolled(user.id)
    assert row.totp_secret == enrolment.secret
    with db.engine.connect() as conn:  # at rest: a Fernet token, not the secret
        raw = conn.execute(sa.text("SELECT totp_secret, totp_recovery_hashes FROM users")).one()
    assert enrolment.secret not in raw[0]
    assert len(codes) == len(set(codes)) == 10
    assert all(len(c) == 11 and c[5] == "-" for c in codes)
    assert not any(c.replace("-", "") in str(raw[1]) for c in codes)  # their hashes only
    assert db.session.scalars(select(AuditEvent.action)).all() == ["user.2fa_enable"]
    with pytest.raises(TwoFactorError, match="already on"):
        two_factor.start_enrolment(row, now=T0)


def test_an_enrolment_form_is_good_for_its_user_for_ten_minutes_and_cannot_be_altered(app):
    user, other = make_user("trader1"), make_user("trader2")
    enrolment = two_factor.start_enrolment(user, now=T0)
    later = T0 + dt.timedelta(minutes=11)
    with pytest.raises(TwoFactorError, match="expired"):
        two_factor.confirm_enrolment(user, enrolment.token, two_factor.code_at(enrolment.secret, later), now=later)
    with pytest.raises(TwoFactorError, match="expired"):
        two_factor.confirm_enrolment(other, enrolment.token, two_factor.code_at(enrolment.secret, T0), now=T0)
    with pytest.raises(TwoFactorError, match="not valid"):
        two_factor.confirm_enrolment(user, enrolment.token[:-4] + "AAAA", "000000", now=T0)
    assert two_factor.resume_enrolment(user, enrolment.token, now=T0 + dt.timedelta(minutes=9)).secret == \
        enrolment.secret


def wrong_code(secret: str, now: dt.datetime, n: int = 0) -> str:
    """A 6-digit code that no step within the drift of `now` has."""
    valid = {two_factor.code_at(secret, now + k * STEP) for k in (-1, 0, 1)}
    return next(c for c in (f"{(n + i) % 1_000_000:06d}" for i in range(10)) if c not in valid)


def test_a_code_is_good_within_one_step_of_drift_and_only_once(app):
    user, secret, _codes = enrolled()
    assert two_factor.verify(user.id, two_factor.code_at(secret, T0), now=T0).user.id == user.id
    with pytest.raises(TwoFactorError, match="used already"):  # replayed
        two_factor.verify(user.id, two_factor.code_at(secret, T0), now=T0)
    with pytest.raises(TwoFactorError):  # an earlier step, after a later one was used
        two_factor.verify(user.id, two_factor.code_at(secret, T0 - STEP), now=T0)
    # the phone's clock a step ahead, then a step behind: both accepted (spaces as apps group the digits)
    two_factor.verify(user.id, two_factor.code_at(secret, T0 + 2 * STEP), now=T0 + STEP)
    behind = two_factor.code_at(secret, T0 + 3 * STEP)
    two_factor.verify(user.id, f"{behind[:3]} {behind[3:]}", now=T0 + 4 * STEP)
    with pytest.raises(TwoFactorError):  # two steps away is too far
        two_factor.verify(user.id, two_factor.code_at(secret, T0 + 7 * STEP), now=T0 + 5 * STEP)
    reasons = db.session.scalars(select(LoginAttempt.reason).order_by(LoginAttempt.id)).all()
    assert reasons == ["totp", "bad_totp", "bad_totp", "totp", "totp", "bad_totp"]


def test_a_recovery_code_signs_in_once_whatever_its_spelling(app):
    user, _secret, codes = enrolled()
    left = two_factor.verify(user.id, codes[3].upper().replace("-", " "), now=T0)
    assert left.recovery_left == 9
    with pytest.raises(TwoFactorError):
        two_factor.verify(user.id, codes[3], now=T0)
    assert two_factor.recovery_codes_left(fresh(user.id)) == 9
    other, _s, other_codes = enrolled("trader2")
    with pytest.raises(TwoFactorError):  # a code of another account
        two_factor.verify(user.id, other_codes[0], now=T0)
    assert two_factor.verify(other.id, other_codes[0], now=T0).recovery_left == 9


def test_five_wrong_codes_lock_the_account_s_codes_for_fifteen_minutes(app):
    user, secret, _codes = enrolled()
    for n in range(two_factor.MAX_FAILURES):
        at = T0 + dt.timedelta(seconds=n)
        with pytest.raises(TwoFactorError, match="not valid"):
            two_factor.verify(user.id, wrong_code(secret, at, n * 10), ip=f"10.0.0.{n}", now=at)
    good = T0 + dt.timedelta(minutes=1)
    with pytest.raises(TwoFactorError, match="Too many wrong codes"):  # even the right code, from anywhere
        two_factor.verify(user.id, two_factor.code_at(secret, good), now=good)
    after = T0 + dt.timedelta(minutes=15, seconds=10)
    assert two_factor.verify(user.id, two_factor.code_at(secret, after), now=after).user.id == user.id
    counts = dict(db.session.execute(select(LoginAttempt.reason, sa.func.count()).group_by(LoginAttempt.reason)).all())
    assert counts == {"bad_totp": 5, "totp_locked": 1, "totp": 1}


def test_turning_it_off_takes_the_password_and_a_code(app):
    user, secret, _codes = enrolled()
    code = two_factor.code_at(secret, T0)
    with pytest.raises(TwoFactorError, match="password"):
        two_factor.disable(user.id, "wrong-password", code, now=T0)
    with pytest.raises(TwoFactorError, match="not valid"):
        two_factor.disable(user.id, PASSWORD, wrong_code(secret, T0), now=T0)
    assert two_factor.is_enrolled(user.id)
    two_factor.disable(user.id, PASSWORD, code, now=T0)
    row = fresh(user.id)
    assert (row.totp_secret, row.totp_recovery_hashes, row.totp_last_step) == (None, None, None)
    assert db.session.scalars(select(AuditEvent.action).order_by(AuditEvent.id)).all() == [
        "user.2fa_enable", "user.2fa_disable"]


def test_admins_keep_it_on_when_it_is_required_and_a_disabled_user_has_no_second_step(app, monkeypatch):
    admin, secret, _codes = enrolled("admin1", Role.ADMIN)
    monkeypatch.setitem(app.config, "REQUIRE_2FA_FOR_ADMINS", True)
    with pytest.raises(TwoFactorError, match="REQUIRE_2FA_FOR_ADMINS"):
        two_factor.disable(admin.id, PASSWORD, two_factor.code_at(secret, T0), now=T0)
    from services.accounts import users as accounts

    accounts.reset_password(admin.id, "another-password-1", actor=accounts.Actor.cli())  # unrelated: stays on
    assert two_factor.is_enrolled(admin.id)
    two_factor.reset(admin.id, actor=accounts.Actor.cli())  # the way out for a lost phone
    assert not two_factor.is_enrolled(admin.id)

    user, secret, _codes = enrolled("trader1")
    accounts.set_active(user.id, False, actor=accounts.Actor.cli())
    with pytest.raises(TwoFactorError, match="sign in again"):
        two_factor.verify(user.id, two_factor.code_at(secret, T0), now=T0)


def test_recovery_hashes_are_bound_to_the_pepper_and_the_user(app):
    user, _secret, codes = enrolled()
    raw = codes[0].replace("-", "")
    assert api_keys.hash_key(f"totp-recovery:{user.id}:{raw}") in fresh(user.id).totp_recovery_hashes
