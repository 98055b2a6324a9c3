"""Broker sessions: start a login, complete it, resume a stored one, expire, disconnect.

Tokens are stored encrypted (database.auth_db.BrokerSession, EncryptedText). A session ends at the
broker's own expiry or at SESSION_EXPIRY_TIME (exchange time), whichever comes first. The active
session of a user is cached (namespace "broker_sessions"); disconnecting or expiring it invalidates
that cache in every process once the change commits.
"""

from __future__ import annotations

import datetime as dt
import inspect
import logging
import secrets
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from flask import current_app
from sqlalchemy import select

from brokers import Broker, BrokerError, available_brokers, get_broker, get_broker_class
from brokers.base import LoginField
from database import cache, db
from database.alert_db import Alert
from database.audit_db import AuditEvent
from database.auth_db import BrokerSession
from database.enums import BrokerSessionStatus
from database.types import utcnow
from database.unit import unit_of_work
from database.user_db import User
from services.accounts import users as accounts

log = logging.getLogger("algobridge.broker")

CACHE_NS = "broker_sessions"
# Called with the new session after a login commits (services.runtime registers the master contract's refresh:
# this domain cannot import it). A hook must return at once (long work on a thread of its own) and not raise.
AFTER_LOGIN: list[Callable[[BrokerSession], object]] = []


class BrokerLoginError(Exception):
    """A login that cannot complete; the message says what the user should do next."""


@dataclass(frozen=True)
class ActiveSession:
    """What a service needs to call the broker for a user (the token stays out of caches)."""

    session_id: int
    user_id: int
    broker: str
    broker_user_id: str | None
    expires_at: dt.datetime


# -- brokers of this application -------------------------------------------------------------------
_lock = threading.Lock()


def missing_settings(cls: type[Broker]) -> list[str]:
    """The settings an adapter cannot be built without (its constructor's arguments without a default) that are
    not set, by their configuration names."""
    settings = cls.settings_from(current_app.config)
    try:
        params = inspect.signature(cls.__init__).parameters
    except (TypeError, ValueError):
        return []
    return [key for arg, key in cls.config_keys.items()
            if arg in params and params[arg].default is inspect.Parameter.empty and not settings.get(arg)]


def broker_choices() -> list[dict]:
    """The brokers a user can connect: whether each is configured (and what is missing), and the fields of its
    login form (form brokers: client code, PIN, TOTP, access token...)."""
    out = []
    for name, cls in available_brokers().items():
        missing = missing_settings(cls)
        fields: list[LoginField] = []
        if cls.login_kind == "form" and not missing:
            try:
                fields = list(broker(name).form_fields())
            except BrokerError:
                log.warning("broker %s: its login fields could not be read", name)
        out.append({"name": name, "display_name": cls.display_name, "login_kind": cls.login_kind,
                    "configured": not missing, "missing": missing, "fields": fields})
    return out


def form_values(name: str, submitted: Mapping[str, str]) -> dict[str, str]:
    """The submitted values of `name`'s login fields, trimmed; a required field left empty is a BrokerLoginError
    naming it (before the broker is asked)."""
    values = {}
    for f in broker(name).form_fields():
        value = str(submitted.get(f.name) or "").strip()
        if f.required and not value:
            raise BrokerLoginError(f"{f.label} is required.")
        values[f.name] = value
    return values


def _instances() -> dict[str, Broker]:
    return current_app.extensions.setdefault("algobridge.brokers", {})


def broker(name: str) -> Broker:
    """The adapter `name` of the current app (one instance per app: it pools its HTTP connections)."""
    instances = _instances()
    with _lock:
        inst = instances.get(name)
        if inst is None:
            cls = get_broker_class(name)
            inst = instances[name] = get_broker(name, **cls.settings_from(current_app.config))
    return inst


def reset_brokers() -> None:
    """Forget the current app's adapter instances (after their settings changed)."""
    instances = _instances()
    with _lock:
        for inst in instances.values():
            inst.close()
        instances.clear()


# -- login -----------------------------------------------------------------------------------------
def start_login(user: User, name: str) -> tuple[str | None, str]:
    """Begin connecting `name` for `user`. Returns (redirect URL or None, state).

    The state is a random nonce the caller keeps in the web session and compares at the callback,
    so a callback cannot be replayed into another user's session.
    """
    adapter = broker(name)
    state = secrets.token_urlsafe(24)
    if adapter.login_kind == "redirect":
        return adapter.login_url(state), state
    return None, state


def complete_login(user: User, name: str, callback_args: dict[str, str], *, ip: str | None = None) -> BrokerSession:
    """Exchange the callback for a token and store it, replacing the user's earlier sessions with
    this broker. The broker is asked first; then one unit of work stores the session."""
    adapter = broker(name)
    try:
        result = adapter.complete_login(callback_args)
    except BrokerError as exc:
        log.warning("broker login to %s failed for user %s: %s", name, user.id, exc.kind)
        raise BrokerLoginError(login_advice(name, exc)) from exc
    now = utcnow()
    # Two callbacks at once must not leave two active sessions: serialise on the user's row
    # (SQLite: the write lock, taken as the unit opens).
    with unit_of_work(write=True):
        db.session.execute(select(User.id).where(User.id == user.id).with_for_update())
        for old in _active_rows(user.id, name):
            old.status = BrokerSessionStatus.REVOKED
            old.revoked_at = now
        # The daily end of sessions (SESSION_EXPIRY_TIME, exchange time), or the broker's own if earlier.
        deadline = accounts.next_expiry(now, *accounts.expiry_settings())
        expires_at = min(result.expires_at, deadline) if result.expires_at else deadline
        row = BrokerSession(user_id=user.id, broker=name, broker_user_id=result.broker_user_id,
                            access_token=result.access_token, status=BrokerSessionStatus.ACTIVE,
                            created_at=now, expires_at=expires_at, last_used_at=now)
        db.session.add(row)
        db.session.add(AuditEvent(user_id=user.id, actor=user.username, action="broker.connect",
                                  target_type="broker", target_id=name, ip=ip,
                                  after={"broker_user_id": result.broker_user_id,
                                         "expires_at": expires_at.isoformat()}))
        db.session.flush()
        cache.invalidate(CACHE_NS, str(user.id), session=db.session)
    for hook in AFTER_LOGIN:
        try:
            hook(row)
        except Exception:  # the login succeeded; a hook's failure is logged, not the user's problem
            log.exception("a hook after the %s login of user %s failed", name, user.id)
    return row


def login_advice(name: str, exc: BrokerError) -> str:
    if exc.kind == "config":
        return f"{name} is not configured on this server: set its API key and secret, then restart."
    if exc.kind == "network":
        return f"{name} could not be reached. Check the server's internet connection and try again."
    if exc.kind in ("token", "input"):
        if get_broker_class(name).login_kind == "form":
            return f"{name} refused the login ({exc.message}). Check what you typed and connect again."
        return (f"{name} refused the login ({exc.message}). The login link is valid once and for a few "
                "minutes: connect again from the Broker page.")
    return f"{name} answered with an error ({exc.message}). Try connecting again in a minute."


# -- reading the current session -------------------------------------------------------------------
def _active_rows(user_id: int, name: str | None = None) -> list[BrokerSession]:
    q = select(BrokerSession).where(BrokerSession.user_id == user_id,
                                    BrokerSession.status == BrokerSessionStatus.ACTIVE)
    if name is not None:
        q = q.where(BrokerSession.broker == name)
    return list(db.session.scalars(q.order_by(BrokerSession.id.desc())))


def active_session(user_id: int) -> ActiveSession | None:
    """The user's live broker session, if any (cached; never the token)."""
    entry = cache.get_or_load(CACHE_NS, str(user_id), lambda: _load_active(user_id))
    if not entry:
        return None
    expires_at = dt.datetime.fromisoformat(entry["expires_at"])
    if expires_at <= utcnow():
        return None
    return ActiveSession(entry["session_id"], user_id, entry["broker"], entry["broker_user_id"], expires_at)


def _load_active(user_id: int) -> dict:
    """The active session's fields, or {} for none: "no session" is cached too (connecting
    invalidates it), or every API call of a user without a broker would query for it."""
    row = db.session.execute(
        select(BrokerSession.id, BrokerSession.broker, BrokerSession.broker_user_id, BrokerSession.expires_at)
        .where(BrokerSession.user_id == user_id, BrokerSession.status == BrokerSessionStatus.ACTIVE,
               BrokerSession.expires_at > utcnow())
        .order_by(BrokerSession.id.desc()).limit(1)
    ).first()
    if row is None:
        return {}
    return {"session_id": row.id, "broker": row.broker, "broker_user_id": row.broker_user_id,
            "expires_at": row.expires_at.isoformat()}


def access_token(session: ActiveSession) -> str:
    """Decrypt the token of `session` for a broker call (never cached, never logged)."""
    row = db.session.get(BrokerSession, session.session_id)
    if row is None or row.status != BrokerSessionStatus.ACTIVE:
        raise BrokerLoginError("The broker session has ended: connect the broker again.")
    return row.access_token


def resume(user: User, *, verify: bool = True) -> BrokerSession | None:
    """On web login: the stored session if it is still valid, without a new broker login.

    With `verify`, the broker is asked (profile) whether it still honours the token, before
    anything is written (on SQLite a write would hold the lock through the network call). A
    refused token ends the session, and sessions past their expiry end (each with its alert), in
    units of their own; then the session resumed is marked used, in one more.
    """
    rows = _active_rows(user.id)
    row = rows[0] if rows else None
    if row is not None and row.expires_at > utcnow() and verify and row.broker != "paper":
        try:
            broker(row.broker).session(row.access_token).profile()
        except BrokerError as exc:
            if exc.is_session_error:
                with unit_of_work():
                    mark_expired(row, reason="was refused by the broker")
                row = None
            else:
                log.warning("could not check the %s session of user %s (%s); keeping it",
                            row.broker, user.id, exc.kind)
    expire_due(user.id)
    if row is None or row.status != BrokerSessionStatus.ACTIVE:
        return None
    with unit_of_work():
        row.last_used_at = utcnow()
    return row


def expire_due(user_id: int | None = None) -> int:
    """Mark sessions past their expiry as expired, each with its alert: one unit of work (none when
    nothing is due). Returns how many."""
    q = select(BrokerSession).where(BrokerSession.status == BrokerSessionStatus.ACTIVE,
                                    BrokerSession.expires_at <= utcnow())
    if user_id is not None:
        q = q.where(BrokerSession.user_id == user_id)
    rows = list(db.session.scalars(q))
    if rows:
        with unit_of_work():
            for row in rows:
                mark_expired(row, reason="reached its expiry time")
    return len(rows)


def mark_expired(row: BrokerSession, *, reason: str) -> None:
    """End `row` as expired and raise its alert. Adds and flushes only: the caller's unit commits
    (a refused token is recorded by the caller in a unit of its own)."""
    row.status = BrokerSessionStatus.EXPIRED
    db.session.add(Alert(user_id=row.user_id, severity="warning", kind="broker_session_expired",
                         title=f"{row.broker} session ended",
                         message=f"The {row.broker} session {reason}. Connect the broker again to trade live."))
    db.session.flush()
    cache.invalidate(CACHE_NS, str(row.user_id), session=db.session)


def disconnect(user: User, *, ip: str | None = None) -> int:
    """Log out at the broker and revoke every active session of `user`. Returns how many.

    A broker that cannot be reached does not keep the session alive here: the row is revoked
    either way, and the failure is logged. The brokers are called first; then one unit of work
    revokes the rows.
    """
    rows = _active_rows(user.id)
    now = utcnow()
    for row in rows:
        try:
            broker(row.broker).logout(row.access_token)
        except BrokerError as exc:
            log.warning("logout at %s failed for user %s (%s); revoking locally", row.broker, user.id, exc.kind)
    with unit_of_work():
        for row in rows:
            row.status = BrokerSessionStatus.REVOKED
            row.revoked_at = now
            db.session.add(AuditEvent(user_id=user.id, actor=user.username, action="broker.disconnect",
                                      target_type="broker", target_id=row.broker, ip=ip))
        db.session.flush()
        cache.invalidate(CACHE_NS, str(user.id), session=db.session)
    return len(rows)
