"""Accounts: the first-run setup, sign-in, user management, roles and the daily session boundary.

Every use case here is one unit of work that commits once. Changes to accounts write an
`audit_events` row (never a password or a hash); every sign-in attempt writes a `login_attempts` row.

Race safety: every use case that writes accounts opens its unit with one lock (SQLite: BEGIN IMMEDIATE
through `unit_of_work(write=True)`; PostgreSQL: a transaction-level advisory lock), so two concurrent
first-run setups cannot both create an admin, and two admins cannot concurrently disable each other and
leave no active admin.

No HTTP here: who may see a view (`role_required`, `check_role`) is blueprints.access's; the use cases
take plain values (an Actor, an address, a user agent).

The session-boundary functions (`last_expiry_boundary`, `next_expiry`, `session_expired`) are pure:
they take aware datetimes and return aware UTC datetimes, and broker sessions use them too.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import hmac
import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from flask import current_app
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from config import exchange_tz, parse_time_of_day
from database import cache, db
from database.audit_db import AuditEvent
from database.enums import Role
from database.repository import Page, Repository
from database.types import UTC, utcnow
from database.unit import unit_of_work
from database.user_db import LoginAttempt, User
from services.accounts import api_keys, login_guard, sessions

log = logging.getLogger("algobridge.auth")

#: Roles that may place orders and change settings (viewers may only look).
TRADE_ROLES: tuple[Role, ...] = (Role.ADMIN, Role.TRADER)

USERNAME_RE = re.compile(r"^[a-z0-9][a-z0-9_.-]{2,63}$")
MIN_PASSWORD_LENGTH = 8
# argon2 hashes whatever it is given; an unbounded password is a cheap way to burn CPU.
MAX_PASSWORD_LENGTH = 1024

# pg_advisory_xact_lock key of account writes (app.py's migration lock is 72150001).
ACCOUNTS_LOCK_KEY = 72150002

# Reasons recorded in login_attempts.reason.
REASON_SUCCESS = "success"
REASON_BAD_PASSWORD = "bad_password"  # noqa: S105 - a reason code, not a password
REASON_UNKNOWN_USER = "unknown_user"
REASON_DISABLED = "disabled"
REASON_RATE_LIMITED = "rate_limited"
REASON_INVALID_FORM = "invalid_form"
REASON_LOCKED = "locked"  # too many failed sign-ins of the username: refused unchecked


# -- errors ----------------------------------------------------------------------------------------
class AccountError(Exception):
    """A use case was refused; the message is safe to show to the person who asked."""


class SetupClosedError(AccountError):
    pass


class UserNotFoundError(AccountError):
    pass


class UsernameTakenError(AccountError):
    pass


class LastAdminError(AccountError):
    pass


# -- who is acting -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Actor:
    """Who makes a change, for the audit trail: a signed-in user, the CLI or the first-run setup."""

    name: str
    user_id: int | None = None
    ip: str | None = None

    @classmethod
    def cli(cls) -> Actor:
        return cls("cli")

    @classmethod
    def setup(cls, ip: str | None = None) -> Actor:
        return cls("setup", None, ip)


# -- passwords -----------------------------------------------------------------------------------------
# argon2id with argon2-cffi's defaults (RFC 9106 low-memory profile). Tests swap in a cheaper
# hasher (tests/helpers/accounts.py); verification always uses the parameters stored in the hash.
_hasher = PasswordHasher()
_dummy_hashes: dict[int, str] = {}


def hash_password(password: str) -> str:
    check_password_policy(password)
    return _hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def _burn_verify(password: str) -> None:
    """Spend the time of a real verification, so an unknown username answers as slowly as a wrong
    password (no user enumeration by timing)."""
    key = id(_hasher)
    if key not in _dummy_hashes:
        _dummy_hashes[key] = _hasher.hash("not-a-real-password-0123456789")
    verify_password(_dummy_hashes[key], password)


def check_password_policy(password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise AccountError(f"The password must have at least {MIN_PASSWORD_LENGTH} characters.")
    if len(password) > MAX_PASSWORD_LENGTH:
        raise AccountError(f"The password must have at most {MAX_PASSWORD_LENGTH} characters.")


def normalise_username(raw: str) -> str:
    """Usernames are case-insensitive: stored and looked up in lower case."""
    username = (raw or "").strip().lower()
    if not USERNAME_RE.match(username):
        raise AccountError(
            "A username has 3 to 64 characters: letters, digits, '.', '_' or '-', starting with a letter or digit."
        )
    return username


def _as_role(role: Role | str) -> Role:
    try:
        return Role(role)
    except ValueError:
        raise AccountError(f"Unknown role {role!r}: use one of {', '.join(Role.values())}.") from None


# -- reads -----------------------------------------------------------------------------------------------
def users() -> Repository[User]:
    return Repository(User)


def any_user_exists() -> bool:
    return users().exists()


def find_user(username: str) -> User | None:
    return users().find(username=(username or "").strip().lower())


def get_user(ref: int | str) -> User:
    """A user by id (int) or username (str); UserNotFoundError otherwise."""
    user = db.session.get(User, ref) if isinstance(ref, int) else find_user(ref)
    if user is None:
        raise UserNotFoundError(f"No user {ref!r}.")
    return user


def list_users(*, after: str | None = None, limit: int = 100) -> Page[User]:
    return users().list(order_by="username", descending=False, limit=limit, after=after)


def _active_admin_count() -> int:
    return int(db.session.scalar(
        select(func.count()).select_from(User).where(User.role == Role.ADMIN, User.is_active.is_(True))
    ) or 0)


# -- the unit of work ----------------------------------------------------------------------------------
@contextlib.contextmanager
def _account_unit() -> Iterator[Session]:
    """The unit of a use case that writes accounts, with the accounts lock taken before its first read."""
    with unit_of_work(write=True) as session:  # SQLite: BEGIN IMMEDIATE, the database-wide write lock
        if session.get_bind().dialect.name == "postgresql":
            # Held until the unit commits or rolls back; READ COMMITTED reads after it see the
            # other unit's committed rows.
            session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": ACCOUNTS_LOCK_KEY})
        yield session


def _snapshot(user: User) -> dict[str, Any]:
    """What the audit trail keeps of a user: never the password hash or the TOTP secret."""
    return {"username": user.username, "role": str(user.role), "is_active": bool(user.is_active)}


def audit_user(actor: Actor, action: str, user: User, before: dict | None, after: dict | None) -> None:
    """Add one audit row about `user` (flushed; the use case's unit commits it)."""
    Repository(AuditEvent).add(AuditEvent(
        user_id=actor.user_id, actor=actor.name[:64], action=action, target_type="user",
        target_id=str(user.id), ip=actor.ip and actor.ip[:45], before=before, after=after,
    ))


# -- use cases -----------------------------------------------------------------------------------------------
def create_first_admin(username: str, password: str, *, ip: str | None = None) -> User:
    """The first-run setup: create the first user, as admin. Refused once any user exists."""
    username = normalise_username(username)
    password_hash = hash_password(password)  # before the lock: hashing is slow by design
    with _account_unit():
        if any_user_exists():
            raise SetupClosedError("Setup is already complete: sign in instead.")
        user = users().create(username=username, password_hash=password_hash, role=Role.ADMIN, is_active=True)
        audit_user(Actor.setup(ip), "user.create", user, None, {**_snapshot(user), "via": "setup"})
    log.info("first-run setup created admin %s", username)
    return user


def create_user(username: str, password: str, role: Role | str, *, actor: Actor) -> User:
    username = normalise_username(username)
    role = _as_role(role)
    password_hash = hash_password(password)
    with _account_unit():
        if find_user(username) is not None:
            raise UsernameTakenError(f"The username {username!r} is taken.")
        user = users().create(username=username, password_hash=password_hash, role=role, is_active=True)
        audit_user(actor, "user.create", user, None, _snapshot(user))
    log.info("%s created user %s (%s)", actor.name, username, role)
    return user


def _would_remove_last_admin(user: User, *, role: Role, active: bool) -> bool:
    was_admin = user.role == Role.ADMIN and user.is_active
    stays_admin = role == Role.ADMIN and active
    return was_admin and not stays_admin and _active_admin_count() <= 1


def set_active(ref: int | str, active: bool, *, actor: Actor) -> User:
    """Enable or disable an account. A disabled user cannot sign in, and every web session of theirs
    ends (in every process within a second). The last active admin cannot be disabled, nor can you
    disable yourself."""
    with _account_unit():
        user = get_user(ref)
        if not active and actor.user_id == user.id:
            raise AccountError("You cannot disable your own account.")
        if _would_remove_last_admin(user, role=user.role, active=active):
            raise LastAdminError("This is the last active admin; make another user admin first.")
        before = _snapshot(user)
        changed = bool(user.is_active) != active
        if changed:
            user.is_active = active
            db.session.flush()
            audit_user(actor, "user.enable" if active else "user.disable", user, before, _snapshot(user))
            if not active:
                sessions.end_all(user.id, sessions.DISABLED)
            api_keys.forget_user_keys(db.session)  # cached keys follow the account, once committed
            forget_principal(user.id)
    if changed:
        log.info("%s %s user %s", actor.name, "enabled" if active else "disabled", user.username)
    return user


def change_role(ref: int | str, role: Role | str, *, actor: Actor) -> User:
    role = _as_role(role)
    with _account_unit():
        user = get_user(ref)
        if actor.user_id == user.id and role != user.role:
            raise AccountError("You cannot change your own role; ask another admin.")
        if _would_remove_last_admin(user, role=role, active=bool(user.is_active)):
            raise LastAdminError("This is the last active admin; make another user admin first.")
        before = _snapshot(user)
        changed = user.role != role
        if changed:
            user.role = role
            db.session.flush()
            audit_user(actor, "user.role_change", user, before, _snapshot(user))
            api_keys.forget_user_keys(db.session)  # a viewer's keys lose the orders scope
            forget_principal(user.id)
    if changed:
        log.info("%s changed the role of %s to %s", actor.name, user.username, role)
    return user


def reset_password(ref: int | str, password: str, *, actor: Actor, keep_session: str | None = None) -> User:
    """Set a new password. Every web session of the user ends, but `keep_session` (the token of the
    session of a user changing their own password); the username's sign-in lockout is cleared."""
    password_hash = hash_password(password)
    with _account_unit():
        user = get_user(ref)
        user.password_hash = password_hash
        db.session.flush()
        audit_user(actor, "user.password_reset", user, None, {"password_reset": True})
        if keep_session and actor.user_id == user.id:
            sessions.end_all(user.id, sessions.PASSWORD_CHANGE, keep=keep_session)
        else:
            sessions.end_all(user.id, sessions.PASSWORD_RESET)
        login_guard.clear_account(user.username)
        forget_principal(user.id)
    log.info("%s reset the password of %s", actor.name, user.username)
    return user


# -- sign-in ---------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class LoginResult:
    user: User | None
    reason: str
    retry_at: dt.datetime | None = None  # the username is locked until then (REASON_LOCKED, or locked by this failure)

    @property
    def ok(self) -> bool:
        return self.reason == REASON_SUCCESS


def record_login_attempt(username: str, *, user_id: int | None, ip: str | None, user_agent: str | None,
                         success: bool, reason: str, created_at: dt.datetime | None = None) -> None:
    """Add one login_attempts row (flushed; the use case's unit commits it), at `created_at` (default: now)."""
    row = LoginAttempt(
        username=(username or "")[:64], user_id=user_id, ip=(ip or None) and ip[:45],
        user_agent=(user_agent or None) and user_agent[:255], is_success=success, reason=reason,
    )
    if created_at is not None:
        row.created_at = created_at
    Repository(LoginAttempt).add(row)


def record_invalid_form(username: str, *, ip: str | None, user_agent: str | None) -> None:
    """Record a sign-in refused because its form was incomplete or invalid, in a unit of its own."""
    with unit_of_work():
        record_login_attempt((username or "").strip().lower(), user_id=None, ip=ip, user_agent=user_agent,
                             success=False, reason=REASON_INVALID_FORM)


def record_rate_limited(username: str, *, ip: str | None, user_agent: str | None) -> None:
    """Record a sign-in refused by the rate limit (its password never checked), in a unit of its own."""
    name = (username or "").strip().lower()
    with unit_of_work():
        user = find_user(name) if name else None
        record_login_attempt(name, user_id=user.id if user else None, ip=ip, user_agent=user_agent,
                             success=False, reason=REASON_RATE_LIMITED)


def authenticate(username: str, password: str, *, ip: str | None, user_agent: str | None,
                 now: dt.datetime | None = None) -> LoginResult:
    """Check a sign-in and record the attempt, whatever its outcome. One unit of work.

    A username locked by too many failures (services.accounts.login_guard) is refused without checking
    the password, whether or not such a user exists; a failure counts towards its lockout, a success
    clears it."""
    now = now or utcnow()
    name = (username or "").strip().lower()[:64]
    user = find_user(name) if name else None
    locked_until = login_guard.account_locked(name, now=now)
    if locked_until is not None:
        with unit_of_work():
            record_login_attempt(name, user_id=user.id if user else None, ip=ip, user_agent=user_agent,
                                 success=False, reason=REASON_LOCKED)
        log.warning("sign-in for %r from %s refused: locked until %s", name, ip, locked_until)
        return LoginResult(None, REASON_LOCKED, locked_until)
    # The password is checked before the unit opens: argon2 is slow by design.
    rehashed = False
    if user is None:
        _burn_verify(password)
        result = LoginResult(None, REASON_UNKNOWN_USER)
    elif not verify_password(user.password_hash, password):
        result = LoginResult(user, REASON_BAD_PASSWORD)
    elif not user.is_active:
        # Checked after the password, so only someone who knows it learns the account is disabled.
        result = LoginResult(user, REASON_DISABLED)
    else:
        rehashed = _hasher.check_needs_rehash(user.password_hash)
        result = LoginResult(user, REASON_SUCCESS)
    new_hash = _hasher.hash(password) if rehashed else None
    with unit_of_work():
        if result.ok:
            if new_hash is not None:
                user.password_hash = new_hash
            user.last_login_at = utcnow()
            login_guard.clear_account(name)
        elif result.reason in (REASON_BAD_PASSWORD, REASON_UNKNOWN_USER):
            until = login_guard.note_failure(name, login_guard.LockoutPolicy.from_config(), now=now)
            if until is not None:
                result = LoginResult(result.user, result.reason, until)
        record_login_attempt(name, user_id=user.id if user else None, ip=ip, user_agent=user_agent,
                             success=result.ok, reason=result.reason)
        if new_hash is not None:
            forget_principal(user.id)  # a new hash is a new session stamp
    if result.ok:
        log.info("sign-in of %s from %s", name, ip)
    else:
        log.warning("failed sign-in for %r from %s: %s", name, ip, result.reason)
    return result


# -- the signed-in principal (Flask-Login) ----------------------------------------------------------------------
@dataclass(frozen=True)
class AccountPrincipal:
    """The user of a web session: a snapshot of the users row (cached per user id, see load_principal).

    `get_id()` carries a stamp derived from the password hash, so resetting a password ends every
    session of that user; a disabled user loads as nobody.
    """

    id: int
    username: str
    role: Role
    stamp: str

    is_authenticated = True
    is_active = True
    is_anonymous = False

    def get_id(self) -> str:
        return f"{self.id}:{self.stamp}"

    @property
    def is_admin(self) -> bool:
        return self.role == Role.ADMIN

    @property
    def can_trade(self) -> bool:
        return self.role in TRADE_ROLES


def session_stamp(user: User) -> str:
    key = current_app.config["SECRET_KEY"].encode()
    return hmac.new(key, f"{user.id}:{user.password_hash}".encode(), hashlib.sha256).hexdigest()[:24]


def principal_for(user: User) -> AccountPrincipal:
    return AccountPrincipal(id=user.id, username=user.username, role=Role(user.role), stamp=session_stamp(user))


# The principal of each user id, cached (database.cache) so a signed-in page does not read the users
# table: {"username", "role", "stamp", "active"} (the stamp, never the password hash). The use cases
# that change a password, a role or the active flag (set_active, change_role, reset_password, a
# rehash at sign-in) drop that entry in every process when they commit (forget_principal): a disabled
# or re-passworded user is refused within a second everywhere, as before.
PRINCIPALS_NS = "principals"
cache.shard_by_key(PRINCIPALS_NS)  # without Redis: a generation row per user, not one for all


def _principal_entry(user_id: int) -> dict | None:
    user = db.session.get(User, user_id)
    if user is None:
        return None
    return {"username": user.username, "role": str(Role(user.role)), "stamp": session_stamp(user),
            "active": bool(user.is_active)}


def load_principal(session_id: str) -> AccountPrincipal | None:
    """Flask-Login's user loader: None for an unknown, disabled or re-passworded user."""
    ident, _, stamp = (session_id or "").partition(":")
    try:
        user_id = int(ident)
    except ValueError:
        return None
    entry = cache.get_or_load(PRINCIPALS_NS, str(user_id), lambda: _principal_entry(user_id))
    if entry is None or not entry["active"]:
        return None
    if not hmac.compare_digest(entry["stamp"], stamp):
        return None
    return AccountPrincipal(id=user_id, username=entry["username"], role=Role(entry["role"]), stamp=entry["stamp"])


def forget_principal(user_id: int) -> None:
    """Drop the cached principal of `user_id` in every process once the current unit commits. Call it
    after the unit's last savepoint (Repository.add): a savepoint's commit would announce it early."""
    cache.invalidate(PRINCIPALS_NS, str(user_id), session=db.session)


# -- the daily session boundary (pure) ----------------------------------------------------------------
def parse_expiry_time(value: dt.time | str) -> dt.time:
    return value if isinstance(value, dt.time) else parse_time_of_day(value)


def _zone(tz: dt.tzinfo | str) -> dt.tzinfo:
    return ZoneInfo(tz) if isinstance(tz, str) else tz


def _aware(name: str, value: dt.datetime) -> dt.datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be a timezone-aware datetime")
    return value


def _boundary_on(day: dt.date, at: dt.time, zone: dt.tzinfo) -> dt.datetime:
    # In a zone with daylight saving, a time that does not exist that day resolves with fold=0,
    # i.e. the offset in force before the change; the exchange zones in use have no DST.
    return dt.datetime.combine(day, at, tzinfo=zone).astimezone(UTC)


def last_expiry_boundary(now: dt.datetime, expiry_time: dt.time | str, tz: dt.tzinfo | str) -> dt.datetime:
    """The most recent expiry at or before `now`: today at `expiry_time` (exchange time), or
    yesterday's when `now` is earlier in the day. Aware, in UTC."""
    now = _aware("now", now).astimezone(UTC)
    zone, at = _zone(tz), parse_expiry_time(expiry_time)
    local_day = now.astimezone(zone).date()
    boundary = _boundary_on(local_day, at, zone)
    if boundary > now:
        boundary = _boundary_on(local_day - dt.timedelta(days=1), at, zone)
    return boundary


def next_expiry(now: dt.datetime, expiry_time: dt.time | str, tz: dt.tzinfo | str) -> dt.datetime:
    """The first expiry strictly after `now`. Aware, in UTC."""
    now = _aware("now", now).astimezone(UTC)
    zone, at = _zone(tz), parse_expiry_time(expiry_time)
    local_day = now.astimezone(zone).date()
    boundary = _boundary_on(local_day, at, zone)
    if boundary <= now:
        boundary = _boundary_on(local_day + dt.timedelta(days=1), at, zone)
    return boundary


def session_expired(login_at: dt.datetime | None, now: dt.datetime, expiry_time: dt.time | str,
                    tz: dt.tzinfo | str) -> bool:
    """True when a session that began at `login_at` has crossed an expiry boundary by `now`.
    A session with no known start has expired."""
    if login_at is None:
        return True
    login_at = _aware("login_at", login_at).astimezone(UTC)
    return login_at < last_expiry_boundary(now, expiry_time, tz)


def expiry_settings(config: Any = None) -> tuple[dt.time, dt.tzinfo]:
    """(SESSION_EXPIRY_TIME, EXCHANGE_TIMEZONE) of the application, parsed."""
    config = config if config is not None else current_app.config
    return parse_expiry_time(config["SESSION_EXPIRY_TIME"]), exchange_tz(config)
