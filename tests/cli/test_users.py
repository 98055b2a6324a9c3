"""`flask users create/list/disable/enable/reset-password/set-role/reset-2fa`, audited as "cli"."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select

from database import db
from database.audit_db import AuditEvent
from database.enums import Role
from database.user_db import User
from services.accounts import two_factor
from services.accounts import users as accounts
from tests.helpers.accounts import isolated_client, login, make_user, use_test_hasher


@pytest.fixture(autouse=True)
def _fast_hashing(app, monkeypatch):
    use_test_hasher(monkeypatch)


def fresh(username: str) -> User | None:
    db.session.rollback()
    return db.session.scalars(select(User).where(User.username == username)).one_or_none()


def events() -> list[AuditEvent]:
    db.session.rollback()
    return list(db.session.scalars(select(AuditEvent).order_by(AuditEvent.id)))


def test_create_with_password_on_stdin(runner):
    result = runner.invoke(args=["users", "create", "Ops", "--role", "admin", "--password-stdin"],
                           input="ops-password-1\n")
    assert result.exit_code == 0, result.output
    assert "created ops (admin)" in result.output
    user = fresh("ops")
    assert user.role == Role.ADMIN
    assert user.is_active
    assert accounts.verify_password(user.password_hash, "ops-password-1")
    (event,) = events()
    assert (event.actor, event.user_id, event.action, event.ip) == ("cli", None, "user.create", None)
    assert "ops-password-1" not in str(event.after)
    assert "$argon2" not in str(event.after)


def test_create_prompts_twice_and_defaults_to_trader(runner):
    result = runner.invoke(args=["users", "create", "tina"], input="tina-password\ntina-password\n")
    assert result.exit_code == 0, result.output
    assert "tina-password" not in result.output  # hidden input is not echoed
    assert fresh("tina").role == Role.TRADER
    assert "no admin yet" in result.output  # stderr is mixed into output by the runner


def test_create_refuses_duplicates_bad_roles_and_short_passwords(runner):
    make_user("tina")
    result = runner.invoke(args=["users", "create", "TINA", "--password-stdin"], input="tina-password\n")
    assert result.exit_code != 0
    assert "is taken" in result.output
    result = runner.invoke(args=["users", "create", "x1y", "--role", "god", "--password-stdin"], input="whatever-1\n")
    assert result.exit_code != 0
    result = runner.invoke(args=["users", "create", "shorty", "--password-stdin"], input="short\n")
    assert result.exit_code != 0
    assert "at least 8" in result.output
    result = runner.invoke(args=["users", "create", "empty", "--password-stdin"], input="\n")
    assert result.exit_code != 0
    assert "no password" in result.output
    assert fresh("shorty") is None
    assert events() == []


def test_list(runner):
    result = runner.invoke(args=["users", "list"])
    assert result.exit_code == 0
    assert "no users yet" in result.output
    make_user("root", Role.ADMIN)
    make_user("vic", Role.VIEWER, is_active=False)
    result = runner.invoke(args=["users", "list"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0].split()[:3] == ["USERNAME", "ROLE", "STATUS"]
    assert lines[1].split()[:4] == ["root", "admin", "active", "never"]
    assert lines[2].split()[:3] == ["vic", "viewer", "disabled"]


def test_disable_enable_reset_password_and_set_role(runner):
    make_user("root", Role.ADMIN)
    make_user("bob", Role.TRADER)

    result = runner.invoke(args=["users", "disable", "bob"])
    assert result.exit_code == 0
    assert "disabled bob" in result.output
    assert fresh("bob").is_active is False
    result = runner.invoke(args=["users", "enable", "BOB"])
    assert result.exit_code == 0
    assert fresh("bob").is_active is True

    result = runner.invoke(args=["users", "reset-password", "bob", "--password-stdin"], input="bob-new-pass\n")
    assert result.exit_code == 0, result.output
    assert accounts.verify_password(fresh("bob").password_hash, "bob-new-pass")
    result = runner.invoke(args=["users", "reset-password", "bob"], input="bob-newer-pass\nbob-newer-pass\n")
    assert result.exit_code == 0, result.output
    assert accounts.verify_password(fresh("bob").password_hash, "bob-newer-pass")

    result = runner.invoke(args=["users", "set-role", "bob", "viewer"])
    assert result.exit_code == 0
    assert fresh("bob").role == Role.VIEWER

    assert [(e.actor, e.action) for e in events()] == [
        ("cli", "user.disable"), ("cli", "user.enable"), ("cli", "user.password_reset"),
        ("cli", "user.password_reset"), ("cli", "user.role_change"),
    ]
    text = str([(e.before, e.after) for e in events()])
    assert "bob-new" not in text
    assert "$argon2" not in text


def test_unknown_users_and_the_last_admin(runner):
    make_user("root", Role.ADMIN)
    for args in (["disable", "ghost"], ["enable", "ghost"], ["set-role", "ghost", "viewer"],
                 ["reset-password", "ghost", "--password-stdin"]):
        result = runner.invoke(args=["users", *args], input="whatever-123\n")
        assert result.exit_code != 0, args
        assert "No user 'ghost'" in result.output, args
    result = runner.invoke(args=["users", "disable", "root"])
    assert result.exit_code != 0
    assert "last active admin" in result.output
    assert fresh("root").is_active
    assert events() == []


def test_reset_2fa_for_a_user_who_lost_the_phone_and_the_codes(app, runner):
    user = make_user("tina")
    now = dt.datetime(2026, 3, 10, 5, 30, 10, tzinfo=dt.UTC)  # the enrolment's clock: its code is the app's then
    enrolment = two_factor.start_enrolment(user, now=now)
    two_factor.confirm_enrolment(user, enrolment.token, two_factor.code_at(enrolment.secret, now), now=now)
    assert two_factor.is_enrolled(fresh("tina"))
    assert login(isolated_client(app), "tina").location == "/auth/two-factor"  # the password is not enough

    result = runner.invoke(args=["users", "reset-2fa", "TINA"])
    assert result.exit_code == 0, result.output
    assert "two-factor sign-in of tina turned off" in result.output
    tina = fresh("tina")
    assert not two_factor.is_enrolled(tina)
    assert (tina.totp_recovery_hashes, tina.totp_last_step) == (None, None)
    event = events()[-1]
    assert (event.actor, event.user_id, event.action, event.target_id) == ("cli", None, "user.2fa_disable",
                                                                            str(tina.id))
    assert (event.before, event.after) == ({"two_factor": True}, {"two_factor": False})
    client = isolated_client(app)
    resp = login(client, "tina")
    assert resp.status_code == 302
    assert not resp.location.startswith("/auth/"), resp.location  # no code asked for
    assert client.get("/dashboard").status_code == 200  # signed in with the password alone

    again = runner.invoke(args=["users", "reset-2fa", "tina"])
    assert again.exit_code == 0, again.output
    assert "not on for tina" in again.output
    assert events()[-1].id == event.id  # nothing to change, nothing audited
    unknown = runner.invoke(args=["users", "reset-2fa", "nobody"])
    assert unknown.exit_code != 0
    assert "nobody" in unknown.output
