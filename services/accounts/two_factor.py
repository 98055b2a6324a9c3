"""Two-factor sign-in (TOTP, RFC 6238): enrolment, the code asked for after the password, recovery
codes, and turning it off. It is optional per user; REQUIRE_2FA_FOR_ADMINS makes it due for admins.

What is kept, on `users`: `totp_secret` (EncryptedText: two-factor sign-in is on when it is set),
`totp_recovery_hashes` (HMACs under API_KEY_PEPPER of the recovery codes not used yet: the codes
themselves are shown once, at enrolment) and `totp_last_step` (the last 30-second step a code was
accepted for: a code is good once, so one seen over a shoulder or in a proxy log cannot be replayed).

- Enrolment: `start_enrolment` makes a secret and a token carrying it (encrypted by the token vault,
  with the user's id and the time) for the confirmation form; nothing is stored until
  `confirm_enrolment` receives a code from the authenticator app, proving it holds the secret.
- A code: 6 digits of the current step or a neighbour (a phone's clock drifts), or an unused recovery
  code (then spent). Every wrong code is a `login_attempts` row (reason `bad_totp`); after
  MAX_FAILURES of them within FAILURE_WINDOW, codes for that account are refused until the window has
  passed, from every address (a 6-digit code must not be guessable across many addresses).
- Turning it off takes the password and a code.

Time: every function takes `now` (aware UTC), by default this module's `utcnow` (tests control it).
"""

from __future__ import annotations

import datetime as dt
import hmac
import json
import logging
import re
import secrets
from dataclasses import dataclass

import pyotp
from flask import current_app
from sqlalchemy import func, select

from database import crypto, db
from database.enums import Role
from database.types import utcnow
from database.unit import unit_of_work
from database.user_db import LoginAttempt, User
from services.accounts import api_keys
from services.accounts import users as accounts

log = logging.getLogger("algobridge.auth")

ISSUER = "Algobridge"
STEP_SECONDS = 30
DRIFT_STEPS = 1  # the step before and the step after are accepted too
ENROLMENT_TTL = dt.timedelta(minutes=10)  # to scan the code and type one
PENDING_TTL = dt.timedelta(minutes=5)  # between the password and the code, at sign-in
MAX_FAILURES = 5
FAILURE_WINDOW = dt.timedelta(minutes=15)
RECOVERY_CODES = 10
_RECOVERY_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"  # no 0/o, 1/l/i: read off paper
_RECOVERY_LENGTH = 10  # about 49 bits each

REASON_BAD_CODE = "bad_totp"
REASON_LOCKED = "totp_locked"
REASON_CODE_OK = "totp"
REASON_RECOVERY_OK = "recovery_code"


class TwoFactorError(Exception):
    """Refused; the message is safe to show to the person who asked."""


@dataclass(frozen=True)
class Enrolment:
    """A secret being enrolled: show `uri` as a QR code (and `secret` for typing in), post `token` back."""

    secret: str
    uri: str
    token: str
    expires_at: dt.datetime


@dataclass(frozen=True)
class Verified:
    """A code accepted at sign-in; `recovery_left` is set when a recovery code was spent."""

    user: User
    recovery_left: int | None = None


# -- reads -----------------------------------------------------------------------------------------------
def is_enrolled(user: User | int) -> bool:
    """Whether two-factor sign-in is on for `user` (a row, or an id: one indexed read)."""
    if isinstance(user, User):
        return user.totp_secret is not None
    return bool(db.session.scalar(select(User.totp_secret.is_not(None)).where(User.id == user)))


def recovery_codes_left(user: User) -> int:
    return len(user.totp_recovery_hashes or ())


def pending_expired(started_at: str | None, *, now: dt.datetime | None = None) -> bool:
    """Whether a sign-in that passed its password at `started_at` (ISO) waited too long for its code."""
    try:
        started = dt.datetime.fromisoformat(started_at) if isinstance(started_at, str) else None
    except ValueError:
        return True
    if started is None or started.tzinfo is None:
        return True
    return not started <= (now or utcnow()) <= started + PENDING_TTL


# -- codes ---------------------------------------------------------------------------------------------------
def _step(now: dt.datetime) -> int:
    return int(now.timestamp()) // STEP_SECONDS


def code_at(secret: str, now: dt.datetime) -> str:
    """The code an authenticator app shows at `now` (for tests and the CLI)."""
    return pyotp.TOTP(secret, interval=STEP_SECONDS).generate_otp(_step(now))


def _matching_step(secret: str, code: str, now: dt.datetime, after: int | None) -> int | None:
    """The step within the drift whose code is `code` and that comes after `after`, or None."""
    totp = pyotp.TOTP(secret, interval=STEP_SECONDS)
    current = _step(now)
    for step in range(current - DRIFT_STEPS, current + DRIFT_STEPS + 1):
        if (after is None or step > after) and hmac.compare_digest(totp.generate_otp(step), code):
            return step
    return None


def _normalise(code: str) -> str:
    return re.sub(r"[\s-]", "", code or "").lower()[:64]


def _recovery_hash(user_id: int, code: str) -> str:
    # Bound to the user: a code of one account is nothing on another.
    return api_keys.hash_key(f"totp-recovery:{user_id}:{code}")


def _new_recovery_codes(user_id: int) -> tuple[list[str], list[str]]:
    """(codes as shown, their hashes)."""
    raw = ["".join(secrets.choice(_RECOVERY_ALPHABET) for _ in range(_RECOVERY_LENGTH)) for _ in range(RECOVERY_CODES)]
    shown = [f"{c[:5]}-{c[5:]}" for c in raw]
    return shown, [_recovery_hash(user_id, c) for c in raw]


# -- enrolment -------------------------------------------------------------------------------------------------
def _enrolment(user: User, secret: str, issued: int) -> Enrolment:
    token = crypto.vault().encrypt(json.dumps({"u": user.id, "s": secret, "t": issued}))
    uri = pyotp.TOTP(secret, interval=STEP_SECONDS).provisioning_uri(name=user.username, issuer_name=ISSUER)
    return Enrolment(secret, uri, token, dt.datetime.fromtimestamp(issued, dt.UTC) + ENROLMENT_TTL)


def start_enrolment(user: User, *, now: dt.datetime | None = None) -> Enrolment:
    """A new secret for `user` to scan; nothing is stored yet."""
    if is_enrolled(user):
        raise TwoFactorError("Two-factor sign-in is already on for this account.")
    return _enrolment(user, pyotp.random_base32(), int((now or utcnow()).timestamp()))


def resume_enrolment(user: User, token: str, *, now: dt.datetime | None = None) -> Enrolment:
    """The enrolment a confirmation form carried (to show it again after a wrong code); TwoFactorError
    when the token is not this user's, was altered, or is older than ENROLMENT_TTL."""
    try:
        data = json.loads(crypto.vault().decrypt(token or ""))
        user_id, secret, issued = int(data["u"]), str(data["s"]), int(data["t"])
    except (crypto.VaultError, ValueError, KeyError, TypeError):
        raise TwoFactorError("This enrolment form is not valid: start again.") from None
    now = now or utcnow()
    if user_id != user.id or not issued <= now.timestamp() <= issued + ENROLMENT_TTL.total_seconds():
        raise TwoFactorError("This enrolment form has expired: scan the new code and try again.")
    return _enrolment(user, secret, issued)


def confirm_enrolment(user: User, token: str, code: str, *, ip: str | None = None,
                      now: dt.datetime | None = None) -> list[str]:
    """Turn two-factor sign-in on with the enrolment's secret, once `code` shows the app has it. Returns
    the recovery codes, which are not kept: show them once. One unit of work, audited."""
    now = now or utcnow()
    enrolment = resume_enrolment(user, token, now=now)
    step = _matching_step(enrolment.secret, _normalise(code), now, None)
    if step is None:
        raise TwoFactorError("That code does not match: check the app's clock and type the code it shows now.")
    shown, hashes = _new_recovery_codes(user.id)
    with unit_of_work(write=True):
        row = db.session.get(User, user.id, with_for_update=True, populate_existing=True)
        if row is None or row.totp_secret is not None:
            raise TwoFactorError("Two-factor sign-in is already on for this account.")
        row.totp_secret, row.totp_recovery_hashes, row.totp_last_step = enrolment.secret, hashes, step
        _audit(row, "user.2fa_enable", ip, {"two_factor": False}, {"two_factor": True})
    log.info("two-factor sign-in turned on for %s", user.username)
    return shown


# -- sign-in -------------------------------------------------------------------------------------------------
def _failures(username: str, now: dt.datetime) -> int:
    return int(db.session.scalar(
        select(func.count()).select_from(LoginAttempt).where(
            LoginAttempt.username == username, LoginAttempt.reason == REASON_BAD_CODE,
            LoginAttempt.created_at > now - FAILURE_WINDOW, LoginAttempt.created_at <= now)
    ) or 0)


def _attempt(user: User, reason: str, ok: bool, ip: str | None, user_agent: str | None, now: dt.datetime) -> None:
    accounts.record_login_attempt(user.username, user_id=user.id, ip=ip, user_agent=user_agent, success=ok,
                                  reason=reason, created_at=now)


def _audit(user: User, action: str, ip: str | None, before: dict | None, after: dict | None,
           actor: accounts.Actor | None = None) -> None:
    accounts.audit_user(actor or accounts.Actor(user.username, user.id, ip), action, user, before, after)


def _check_code(row: User, code: str, now: dt.datetime) -> tuple[str, int | None] | None:
    """Apply `code` to the locked `row`: (reason, recovery codes left or None) when it is good (the step
    or the recovery code is spent on the row), None when it is not."""
    code = _normalise(code)
    if re.fullmatch(r"\d{6}", code):
        step = _matching_step(row.totp_secret, code, now, row.totp_last_step)
        if step is None:
            return None
        row.totp_last_step = step
        return REASON_CODE_OK, None
    hashes = list(row.totp_recovery_hashes or ())
    digest = _recovery_hash(row.id, code)
    match = next((h for h in hashes if hmac.compare_digest(h, digest)), None)
    if match is None:
        return None
    hashes.remove(match)
    row.totp_recovery_hashes = hashes  # a new list: JSON columns do not see changes made in place
    return REASON_RECOVERY_OK, len(hashes)


def verify(user_id: int, code: str, *, ip: str | None = None, user_agent: str | None = None,
           now: dt.datetime | None = None) -> Verified:
    """The second step of a sign-in whose password was accepted: TwoFactorError unless `code` is a good
    code or an unused recovery code of `user_id`'s. Records the attempt, either way."""
    now = now or utcnow()
    with unit_of_work(write=True):
        row = db.session.get(User, user_id, with_for_update=True, populate_existing=True)
        if row is None or not row.is_active or row.totp_secret is None:
            raise TwoFactorError("This sign-in is no longer valid: sign in again.")
        locked = _failures(row.username, now) >= MAX_FAILURES
        outcome = None if locked else _check_code(row, code, now)
        if outcome is None:
            _attempt(row, REASON_LOCKED if locked else REASON_BAD_CODE, False, ip, user_agent, now)
        else:
            _attempt(row, outcome[0], True, ip, user_agent, now)
            if outcome[0] == REASON_RECOVERY_OK:
                _audit(row, "user.2fa_recovery_code", ip, None, {"recovery_codes_left": outcome[1]})
    # committed: a refusal is recorded before it is raised
    if locked:
        log.warning("two-factor codes of %s refused: %d wrong codes in %d minutes", row.username, MAX_FAILURES,
                    FAILURE_WINDOW.seconds // 60)
        raise TwoFactorError(f"Too many wrong codes: wait {FAILURE_WINDOW.seconds // 60} minutes, then sign in again.")
    if outcome is None:
        log.warning("wrong two-factor code for %s from %s", row.username, ip)
        raise TwoFactorError("That code is not valid (or was used already). Type the code the app shows now, "
                             "or a recovery code.")
    return Verified(row, outcome[1])


# -- turning it off ------------------------------------------------------------------------------------------
def disable(user_id: int, password: str, code: str, *, ip: str | None = None, user_agent: str | None = None,
            now: dt.datetime | None = None) -> None:
    """Turn two-factor sign-in off, with the account's password and a code (or a recovery code)."""
    now = now or utcnow()
    user = db.session.get(User, user_id)
    if user is None or user.totp_secret is None:
        raise TwoFactorError("Two-factor sign-in is not on for this account.")
    if user.role == Role.ADMIN and current_app.config.get("REQUIRE_2FA_FOR_ADMINS"):
        raise TwoFactorError("Administrators must keep two-factor sign-in on here (REQUIRE_2FA_FOR_ADMINS).")
    if not accounts.verify_password(user.password_hash, password or ""):
        raise TwoFactorError("The password is not correct.")
    verify(user_id, code, ip=ip, user_agent=user_agent, now=now)
    _turn_off(user_id, ip=ip)


def reset(user_ref: int | str, *, actor: accounts.Actor) -> User:
    """An administrator's (or the CLI's) way out for a user who lost the app and the recovery codes:
    turn two-factor sign-in off, so that the password alone signs in again."""
    user = accounts.get_user(user_ref)
    _turn_off(user.id, ip=actor.ip, actor=actor)
    return user


def _turn_off(user_id: int, *, ip: str | None, actor: accounts.Actor | None = None) -> None:
    with unit_of_work(write=True):
        row = db.session.get(User, user_id, with_for_update=True, populate_existing=True)
        if row is None or row.totp_secret is None:
            return
        row.totp_secret, row.totp_recovery_hashes, row.totp_last_step = None, None, None
        _audit(row, "user.2fa_disable", ip, {"two_factor": True}, {"two_factor": False}, actor)
    log.info("two-factor sign-in turned off for %s", row.username)
