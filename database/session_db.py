"""Web sign-in state kept on the server: the sessions behind the browsers' cookies (`web_sessions`) and
the sign-in throttles shared by every worker (`login_throttles`).

A `web_sessions` row is what a session cookie stands for: the cookie carries a random token, the row
its SHA-256 (`token_hash`), so the table alone cannot sign anyone in. A row with `ended_at` set is a
session that ended (sign-out, a new password, a disabled account, the daily expiry): the cookie that
names it no longer works, wherever it was copied to.

A `login_throttles` row is one counter with a fixed window, keyed by what it limits ("addr:<seconds>:
<address>" for the per-address sign-in limits, "user:<username>" for the per-account lockout), plus the
account lockout's state. `hit()` counts in one atomic statement (INSERT ... ON CONFLICT DO UPDATE ...
RETURNING) on both databases, so concurrent workers never both see room for one more attempt.
"""

from __future__ import annotations

import datetime as dt
import functools
from typing import Optional

from sqlalchemy import ForeignKey, Index, Integer, String, bindparam, case, delete, select, update
from sqlalchemy.orm import Mapped, mapped_column

from database import Base, db, schema, upsert
from database.types import UTCDateTime, utcnow


class WebSession(Base):
    __tablename__ = "web_sessions"
    __table_args__ = (Index("ix_web_sessions_user_id_ended_at", "user_id", "ended_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)  # hex SHA-256 of the cookie's token
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    last_seen_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    ended_at: Mapped[Optional[dt.datetime]] = mapped_column(UTCDateTime)
    end_reason: Mapped[Optional[str]] = mapped_column(String(32))  # logout, password_change, disabled, ...
    ip: Mapped[Optional[str]] = mapped_column(String(45))
    user_agent: Mapped[Optional[str]] = mapped_column(String(255))


class LoginThrottle(Base):
    __tablename__ = "login_throttles"

    key: Mapped[str] = mapped_column(String(128), primary_key=True)
    window_started_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    hits: Mapped[int] = mapped_column(Integer, default=0)
    lockouts: Mapped[int] = mapped_column(Integer, default=0)  # account lockouts in a row (the backoff's step)
    locked_until: Mapped[Optional[dt.datetime]] = mapped_column(UTCDateTime)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)


# -- web sessions ------------------------------------------------------------------------------------
def add_session(token_hash: str, user_id: int, *, now: dt.datetime, ip: str | None,
                user_agent: str | None) -> WebSession:
    row = WebSession(token_hash=token_hash, user_id=user_id, created_at=now, last_seen_at=now,
                     ip=(ip or None) and ip[:45], user_agent=(user_agent or None) and user_agent[:255])
    db.session.add(row)
    db.session.flush()
    return row


def session_state(token_hash: str) -> tuple[int, bool] | None:
    """(user id, still live) of the session with this token hash; None when there is none."""
    row = db.session.execute(select(WebSession.user_id, WebSession.ended_at)
                             .where(WebSession.token_hash == token_hash)).first()
    return None if row is None else (row.user_id, row.ended_at is None)


def end_sessions(*, now: dt.datetime, reason: str, token_hash: str | None = None, user_id: int | None = None,
                 keep_hash: str | None = None) -> list[str]:
    """End the live session `token_hash`, or every live session of `user_id` but `keep_hash`. Returns the
    token hashes it ended (flushed; the caller's unit commits)."""
    cond = [WebSession.ended_at.is_(None)]
    if token_hash is not None:
        cond.append(WebSession.token_hash == token_hash)
    if user_id is not None:
        cond.append(WebSession.user_id == user_id)
    if keep_hash is not None:
        cond.append(WebSession.token_hash != keep_hash)
    if len(cond) == 1:
        raise ValueError("end_sessions needs a token hash or a user id")
    ended = list(db.session.scalars(select(WebSession.token_hash).where(*cond)))
    if ended:
        db.session.execute(update(WebSession).where(*cond).values(ended_at=now, end_reason=reason[:32]))
    return ended


def touch_session(token_hash: str, now: dt.datetime) -> None:
    db.session.execute(update(WebSession).where(WebSession.token_hash == token_hash, WebSession.ended_at.is_(None))
                       .values(last_seen_at=now))


def live_sessions(user_id: int) -> list[WebSession]:
    return list(db.session.scalars(select(WebSession).where(WebSession.user_id == user_id,
                                                            WebSession.ended_at.is_(None))
                                   .order_by(WebSession.id)))


def purge_sessions(before: dt.datetime) -> int:
    """Delete sessions begun before `before` (long dead: every session ends at the daily expiry)."""
    return db.session.execute(delete(WebSession).where(WebSession.created_at < before)).rowcount or 0


# -- sign-in throttles -----------------------------------------------------------------------------
@functools.cache
def _hit_statement(dialect: str):
    """Count one hit of a key in its fixed window, starting a new window when the last one has passed;
    RETURNING the count and the window's start. One statement: atomic under concurrency."""
    t = LoginThrottle.__table__
    now = bindparam("now", type_=t.c.updated_at.type)
    stale = t.c.window_started_at <= bindparam("stale_before", type_=t.c.updated_at.type)
    stmt = upsert(t, dialect).values(key=bindparam("key"), window_started_at=now, hits=1, lockouts=0,
                                     updated_at=now)
    return stmt.on_conflict_do_update(
        index_elements=[t.c.key],
        set_={"hits": case((stale, 1), else_=t.c.hits + 1),
              "window_started_at": case((stale, now), else_=t.c.window_started_at),
              # the backoff starts again after a quiet spell
              "lockouts": case((t.c.updated_at <= bindparam("quiet_before", type_=t.c.updated_at.type), 0),
                               else_=t.c.lockouts),
              "updated_at": now},
    ).returning(t.c.hits, t.c.window_started_at, t.c.lockouts)


def hit(key: str, *, now: dt.datetime, window: dt.timedelta,
        quiet: dt.timedelta = dt.timedelta(days=1)) -> tuple[int, dt.datetime, int]:
    """Count one hit of `key`: (hits in the current window, its start, lockouts so far). A window
    that began `window` ago or more starts anew; `lockouts` resets after `quiet` without hits."""
    session = db.session()
    row = session.execute(_hit_statement(session.get_bind().dialect.name),
                          {"key": key[:128], "now": now, "stale_before": now - window,
                           "quiet_before": now - quiet}).one()
    started = row.window_started_at
    if started.tzinfo is None:  # RETURNING skips the column type's result processing on some dialects
        started = started.replace(tzinfo=dt.UTC)
    return int(row.hits), started, int(row.lockouts)


def lock(key: str, *, until: dt.datetime, now: dt.datetime) -> None:
    """Lock `key` until `until`: one more lockout in a row, and a fresh count of hits after it."""
    t = LoginThrottle.__table__
    db.session.execute(update(t).where(t.c.key == key[:128])
                       .values(locked_until=until, lockouts=t.c.lockouts + 1, hits=0, window_started_at=now,
                               updated_at=now))


def locked_until(key: str, now: dt.datetime) -> dt.datetime | None:
    until = db.session.scalar(select(LoginThrottle.locked_until).where(LoginThrottle.key == key[:128]))
    return until if until is not None and until > now else None


def forget(key: str) -> None:
    db.session.execute(delete(LoginThrottle).where(LoginThrottle.key == key[:128]))


def purge_throttles(before: dt.datetime) -> int:
    """Delete counters untouched since `before` (their windows and locks are long over)."""
    t = LoginThrottle.__table__
    return db.session.execute(delete(t).where(t.c.updated_at < before)).rowcount or 0


def init_db() -> None:
    schema.require_current(db.engine, ["web_sessions", "login_throttles"])
