"""Telegram: which chat belongs to which user, the one-time codes that link them, and the lease that makes one
process (of all the workers and hosts) the one that talks to the bot.

- `telegram_links`: one row per linked user (a user has one chat, a chat one user), with a pending `/closeall`
  confirmation (a random nonce the confirm button carries, and until when it holds).
- `telegram_link_codes`: the codes shown on the settings page, stored as their SHA-256 only, each usable once
  before it expires.
- `telegram_leases`: one row per lease (`notifier`): who holds it until when, and what the holder must hand on
  to the next one (the alerts already told, the last day whose P&L summary went out). `take_lease` takes or
  renews it in one statement (INSERT ... ON CONFLICT DO UPDATE ... WHERE ... RETURNING), atomic on both
  databases.
"""

from __future__ import annotations

import datetime as dt
import functools
from typing import Optional

from sqlalchemy import BigInteger, Date, ForeignKey, Integer, String, bindparam, delete, or_, select, update
from sqlalchemy.orm import Mapped, mapped_column

from database import Base, db, schema, upsert
from database.types import UTCDateTime, utcnow


class TelegramLink(Base):
    __tablename__ = "telegram_links"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), unique=True)
    chat_id: Mapped[int] = mapped_column(BigInteger, unique=True)
    chat_name: Mapped[Optional[str]] = mapped_column(String(64))  # the Telegram @username or first name, shown
    linked_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    pending_nonce: Mapped[Optional[str]] = mapped_column(String(32))  # a /closeall awaiting its confirmation
    pending_until: Mapped[Optional[dt.datetime]] = mapped_column(UTCDateTime)


class TelegramLinkCode(Base):
    __tablename__ = "telegram_link_codes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    code_hash: Mapped[str] = mapped_column(String(64), unique=True)  # hex SHA-256 of the code
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    used_at: Mapped[Optional[dt.datetime]] = mapped_column(UTCDateTime)


class TelegramLease(Base):
    __tablename__ = "telegram_leases"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    holder: Mapped[str] = mapped_column(String(64))
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    alert_mark: Mapped[Optional[int]] = mapped_column(Integer)  # alerts up to this id were told (None: not yet)
    summary_day: Mapped[Optional[dt.date]] = mapped_column(Date)  # the last exchange day summarised


# -- links and codes ----------------------------------------------------------------------------------------
def link_of_user(user_id: int) -> TelegramLink | None:
    return db.session.scalar(select(TelegramLink).where(TelegramLink.user_id == user_id))


def link_of_chat(chat_id: int) -> TelegramLink | None:
    return db.session.scalar(select(TelegramLink).where(TelegramLink.chat_id == chat_id))


def chats_by_user() -> dict[int, int]:
    """Every link, user id -> chat id (a handful of rows: one per linked user)."""
    return {u: c for u, c in db.session.execute(select(TelegramLink.user_id, TelegramLink.chat_id))}


def delete_links(*, user_id: int | None = None, chat_id: int | None = None) -> int:
    cond = []
    if user_id is not None:
        cond.append(TelegramLink.user_id == user_id)
    if chat_id is not None:
        cond.append(TelegramLink.chat_id == chat_id)
    if not cond:
        raise ValueError("delete_links needs a user id or a chat id")
    return db.session.execute(delete(TelegramLink).where(or_(*cond))).rowcount or 0


def add_code(user_id: int, code_hash: str, *, now: dt.datetime, expires_at: dt.datetime) -> None:
    """A new code for the user; their earlier codes stop working."""
    db.session.execute(delete(TelegramLinkCode).where(TelegramLinkCode.user_id == user_id))
    db.session.add(TelegramLinkCode(user_id=user_id, code_hash=code_hash, created_at=now, expires_at=expires_at))
    db.session.flush()


def code_for_update(code_hash: str) -> TelegramLinkCode | None:
    return db.session.scalar(select(TelegramLinkCode).where(TelegramLinkCode.code_hash == code_hash)
                             .with_for_update())


def purge_codes(before: dt.datetime) -> int:
    return db.session.execute(delete(TelegramLinkCode).where(TelegramLinkCode.expires_at < before)).rowcount or 0


# -- the lease ----------------------------------------------------------------------------------------------
@functools.cache
def _take_statement(dialect: str):
    t = TelegramLease.__table__
    now = bindparam("now", type_=t.c.expires_at.type)
    until = bindparam("until", type_=t.c.expires_at.type)
    holder = bindparam("holder", type_=t.c.holder.type)
    stmt = upsert(t, dialect).values(name=bindparam("name"), holder=holder, expires_at=until)
    return stmt.on_conflict_do_update(
        index_elements=[t.c.name], set_={"holder": holder, "expires_at": until},
        where=or_(t.c.holder == holder, t.c.expires_at <= now),
    ).returning(t.c.holder)


def take_lease(name: str, holder: str, *, now: dt.datetime, until: dt.datetime) -> bool:
    """Take the lease `name` for `holder` until `until`, or renew it: True when `holder` has it now. Another
    holder's lease that has not expired is left alone (False)."""
    session = db.session()
    got = session.execute(_take_statement(session.get_bind().dialect.name),
                          {"name": name, "holder": holder[:64], "now": now, "until": until}).first()
    return got is not None and got.holder == holder[:64]


def release_lease(name: str, holder: str, *, now: dt.datetime) -> None:
    """Let the lease go at once (its row, with what it hands on, stays for the next holder)."""
    db.session.execute(update(TelegramLease).where(TelegramLease.name == name, TelegramLease.holder == holder[:64])
                       .values(expires_at=now))


def lease(name: str) -> TelegramLease | None:
    return db.session.get(TelegramLease, name)


def init_db() -> None:
    schema.require_current(db.engine, ["telegram_links", "telegram_link_codes", "telegram_leases"])
