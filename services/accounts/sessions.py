"""Web sessions kept on the server: begun at sign-in, checked on every signed-in request, ended for good.

The session cookie (Flask's, signed) carries a random token; `database.session_db.WebSession` keeps its
SHA-256 with the user, the start, the last activity and, once it ended, when and why. A copied cookie
works only as long as its row is live: sign-out ends that row; a new password ends every other row of
the user (`end_all(..., keep=current)`); disabling a user or an administrator's password reset ends
them all.

The check is on the request path of every page, so it reads the cache (database.cache), not the
table: an entry per token hash, dropped in every worker process within a second when the session ends
(Redis pub/sub, or the database's generation counters without Redis), because `end`/`end_all` invalidate
it in the same unit of work that ends the rows. An ended session is cached as ended (it never comes back).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import secrets
import threading
import time

from database import cache, db, session_db
from database.types import utcnow
from database.unit import unit_of_work

log = logging.getLogger("algobridge.auth")

CACHE_NS = "web_sessions"
TOUCH_EVERY = 60.0  # seconds between two writes of a session's last_seen_at by one process
KEEP_FOR = dt.timedelta(days=30)  # rows older than this are deleted (every session ends within a day)
PURGE_EVERY = 3600.0  # seconds between two such purges by one process

# Reasons recorded in web_sessions.end_reason.
LOGOUT = "logout"
PASSWORD_CHANGE = "password_change"  # noqa: S105 - the user's own new password: their other sessions end
PASSWORD_RESET = "password_reset"  # noqa: S105 - by an administrator or the CLI: every session ends
DISABLED = "disabled"
EXPIRED = "expired"  # the daily SESSION_EXPIRY_TIME

_touched: dict[str, float] = {}  # token hash -> time.monotonic() of this process's last write
_touch_lock = threading.Lock()
_next_purge = 0.0


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def begin(user_id: int, *, ip: str | None = None, user_agent: str | None = None,
          now: dt.datetime | None = None) -> str:
    """Start a session of `user_id` (one unit of work); returns the token for the cookie."""
    global _next_purge
    now = now or utcnow()
    token = secrets.token_urlsafe(32)
    with unit_of_work():
        session_db.add_session(token_hash(token), user_id, now=now, ip=ip, user_agent=user_agent)
        if time.monotonic() >= _next_purge:
            _next_purge = time.monotonic() + PURGE_EVERY
            session_db.purge_sessions(now - KEEP_FOR)
    return token


def _state(hashed: str) -> dict | None:
    found = session_db.session_state(hashed)
    return None if found is None else {"user": found[0], "live": found[1]}


def is_live(token: str | None, user_id: int) -> bool:
    """Whether `token` names a live session of `user_id` (cached: no query on the usual request)."""
    if not token or not isinstance(token, str):
        return False
    entry = cache.get_or_load(CACHE_NS, token_hash(token), lambda: _state(token_hash(token)))
    return entry is not None and entry["live"] and entry["user"] == user_id


def touch(token: str | None, *, now: dt.datetime | None = None) -> None:
    """Note the session's activity (last_seen_at), at most once a TOUCH_EVERY per process. Never fails
    the request: the write is bookkeeping."""
    if not token:
        return
    hashed, clock = token_hash(token), time.monotonic()
    with _touch_lock:
        if clock - _touched.get(hashed, float("-inf")) < TOUCH_EVERY:
            return
        _touched[hashed] = clock
        if len(_touched) > 10000:  # a bound, not a policy: forgetting only means an earlier write
            _touched.clear()
    try:
        with unit_of_work():
            session_db.touch_session(hashed, now or utcnow())
    except Exception:  # noqa: BLE001 - its unit rolled back; the page goes on
        log.warning("could not record the activity of a web session", exc_info=True)


def _forget(hashes: list[str]) -> None:
    # Once the unit commits, every process drops (and reloads as ended) these entries.
    for hashed in hashes:
        cache.invalidate(CACHE_NS, hashed, session=db.session)


def end(token: str | None, reason: str = LOGOUT, *, now: dt.datetime | None = None) -> bool:
    """End the session of `token` (one unit of work, or part of the caller's). False when it was not live."""
    if not token:
        return False
    with unit_of_work():
        ended = session_db.end_sessions(now=now or utcnow(), reason=reason, token_hash=token_hash(token))
        _forget(ended)
    return bool(ended)


def end_all(user_id: int, reason: str, *, keep: str | None = None, now: dt.datetime | None = None) -> int:
    """End every live session of `user_id` but the one of the token `keep` (part of the caller's unit of
    work when there is one: the change that ends them and their end commit together). Returns how many."""
    with unit_of_work():
        ended = session_db.end_sessions(now=now or utcnow(), reason=reason, user_id=user_id,
                                        keep_hash=token_hash(keep) if keep else None)
        _forget(ended)
    if ended:
        log.info("%d web session(s) of user %s ended: %s", len(ended), user_id, reason)
    return len(ended)


def live(user_id: int) -> list[session_db.WebSession]:
    """The user's sessions not ended yet (some may be past the daily expiry without a request since)."""
    return session_db.live_sessions(user_id)
