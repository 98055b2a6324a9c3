"""API keys: create (shown once), list, revoke, and verify on every API call.

A key is 64 random hex characters (OpenAlgo's shape, so existing clients accept it). Only its
HMAC-SHA256 under API_KEY_PEPPER is stored, which makes verification one lookup by a unique
index, cached in the two-level cache under the hash. Revoking a key, or disabling its owner,
invalidates that cache in every process (database.cache) after the change commits.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import logging
import secrets
import threading
import time
from dataclasses import dataclass

from flask import current_app
from sqlalchemy import select, update

from database import cache, db
from database.audit_db import AuditEvent
from database.auth_db import ApiKey
from database.repository import NotFoundError, Repository, ValidationError
from database.types import utcnow
from database.unit import unit_of_work
from database.user_db import User

log = logging.getLogger("algobridge.apikeys")

SCOPES = ("orders", "read", "data")
READ_ONLY_SCOPES = ("read", "data")
CACHE_NS = "apikeys"
LAST_USED_EVERY = 60.0  # seconds: last_used_at is a hint, not worth a write per request


class ApiKeyError(Exception):
    """The key is unknown, revoked, expired, its owner disabled, or lacks the scope (403)."""


@dataclass(frozen=True)
class Principal:
    """Who an API call acts for."""

    user_id: int
    key_id: int
    scopes: tuple[str, ...]

    def allows(self, scope: str) -> bool:
        return scope in self.scopes


def hash_key(key: str, pepper: str | None = None) -> str:
    pepper = pepper if pepper is not None else current_app.config["API_KEY_PEPPER"]
    return hmac.new(pepper.encode(), key.encode(), hashlib.sha256).hexdigest()


def parse_scopes(values: list[str] | tuple[str, ...] | str) -> tuple[str, ...]:
    items = values.split(",") if isinstance(values, str) else list(values)
    scopes = tuple(dict.fromkeys(s.strip().lower() for s in items if s and s.strip()))
    unknown = [s for s in scopes if s not in SCOPES]
    if unknown:
        raise ValidationError(f"unknown scope {unknown[0]!r}: choose from {', '.join(SCOPES)}")
    if not scopes:
        raise ValidationError("choose at least one scope")
    return scopes


def create_key(user: User, name: str, scopes: list[str] | tuple[str, ...] | str,
               expires_at: dt.datetime | None = None, *, ip: str | None = None) -> tuple[ApiKey, str]:
    """Create a key for `user`; returns the row and the plaintext, which is never stored or shown again.
    One unit of work, with its audit row."""
    name = (name or "").strip()
    if not name or len(name) > 64:
        raise ValidationError("the key needs a name of 1 to 64 characters")
    chosen = parse_scopes(scopes)
    if user.role == "viewer" and "orders" in chosen:
        raise ValidationError("a viewer's key cannot have the orders scope")
    if expires_at is not None and expires_at <= utcnow():
        raise ValidationError("the expiry must be in the future")
    plaintext = secrets.token_hex(32)
    with unit_of_work():
        row = Repository(ApiKey).create(
            user_id=user.id, name=name, key_hash=hash_key(plaintext), prefix=plaintext[:8],
            scopes=",".join(chosen), expires_at=expires_at,
        )
        db.session.add(AuditEvent(user_id=user.id, actor=user.username, action="apikey.create",
                                  target_type="apikey", target_id=str(row.id), ip=ip,
                                  after={"name": name, "prefix": row.prefix, "scopes": row.scopes,
                                         "expires_at": expires_at.isoformat() if expires_at else None}))
        db.session.flush()
    return row, plaintext


def list_keys(user_id: int) -> list[ApiKey]:
    return list(db.session.scalars(select(ApiKey).where(ApiKey.user_id == user_id).order_by(ApiKey.id.desc())))


def revoke_key(user: User, key_id: int, *, ip: str | None = None) -> ApiKey:
    """Revoke one of `user`'s own keys. Another user's key is "not found", not "forbidden", so
    key ids of other users cannot be probed. One unit of work: takes effect everywhere once it commits."""
    with unit_of_work():
        row = db.session.scalar(select(ApiKey).where(ApiKey.id == key_id, ApiKey.user_id == user.id))
        if row is None:
            raise NotFoundError(f"API key {key_id} not found")
        if row.revoked_at is None:
            row.revoked_at = utcnow()
            db.session.add(AuditEvent(user_id=user.id, actor=user.username, action="apikey.revoke",
                                      target_type="apikey", target_id=str(row.id), ip=ip,
                                      before={"revoked": False}, after={"revoked": True}))
            db.session.flush()
            cache.invalidate(CACHE_NS, row.key_hash, session=db.session)
    return row


def forget_user_keys(session=None) -> None:
    """Drop every cached key (e.g. after a user is disabled), once the change commits."""
    cache.invalidate(CACHE_NS, None, session=session or db.session)


def verify(key: object, scope: str | None = None) -> Principal:
    """The principal of a valid API key, or ApiKeyError. One indexed lookup, then cached."""
    if not isinstance(key, str) or not 1 <= len(key) <= 256:
        raise ApiKeyError("Invalid openalgo apikey")
    digest = hash_key(key)
    entry = cache.get_or_load(CACHE_NS, digest, lambda: _load(digest))
    if entry is None:
        raise ApiKeyError("Invalid openalgo apikey")
    if entry["revoked"] or not entry["user_active"]:
        raise ApiKeyError("Invalid openalgo apikey")
    if entry["expires_at"] is not None and dt.datetime.fromisoformat(entry["expires_at"]) <= utcnow():
        raise ApiKeyError("The API key has expired")
    principal = Principal(entry["user_id"], entry["key_id"], tuple(entry["scopes"]))
    if scope is not None and not principal.allows(scope):
        raise ApiKeyError(f"This API key does not have the {scope} scope")
    _touch(principal.key_id)
    return principal


def _load(digest: str) -> dict | None:
    row = db.session.execute(
        select(ApiKey.id, ApiKey.user_id, ApiKey.scopes, ApiKey.expires_at, ApiKey.revoked_at, User.is_active,
               User.role)
        .join(User, User.id == ApiKey.user_id)
        .where(ApiKey.key_hash == digest)
    ).first()
    if row is None:
        return None
    scopes = row.scopes.split(",")
    if row.role == "viewer":
        # A key keeps what its owner may do now: a trader demoted to viewer loses "orders".
        scopes = [s for s in scopes if s in READ_ONLY_SCOPES]
    return {"key_id": row.id, "user_id": row.user_id, "scopes": scopes,
            "expires_at": row.expires_at.isoformat() if row.expires_at else None,
            "revoked": row.revoked_at is not None, "user_active": bool(row.is_active)}


_touched: dict[int, float] = {}
_touch_lock = threading.Lock()


def _touch(key_id: int) -> None:
    """Record last use at most once a minute per key and process, on its own short transaction on its
    own connection (never the request's unit, like the log writer), so a read-only API call stays
    read-only and a hint never joins, or fails, a use case."""
    now = time.monotonic()
    with _touch_lock:
        if now - _touched.get(key_id, -LAST_USED_EVERY) < LAST_USED_EVERY:
            return
        _touched[key_id] = now
    try:
        with db.engine.begin() as conn:
            conn.execute(update(ApiKey).where(ApiKey.id == key_id).values(last_used_at=utcnow()))
    except Exception:  # noqa: BLE001 - a hint must never fail the call
        log.warning("could not record the last use of API key %s", key_id)
