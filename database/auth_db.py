"""Broker sessions (tokens encrypted at rest) and API keys (stored only as a peppered HMAC)."""

from __future__ import annotations

import datetime as dt
from typing import Optional

from sqlalchemy import ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from database import Base, db, schema
from database.enums import BrokerSessionStatus, str_enum
from database.types import EncryptedText, UTCDateTime, utcnow


class BrokerSession(Base):
    __tablename__ = "broker_sessions"
    __table_args__ = (Index("ix_broker_sessions_user_id_broker_status", "user_id", "broker", "status"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    broker: Mapped[str] = mapped_column(String(32))
    broker_user_id: Mapped[Optional[str]] = mapped_column(String(64))
    access_token: Mapped[str] = mapped_column(EncryptedText)
    refresh_token: Mapped[Optional[str]] = mapped_column(EncryptedText)
    feed_token: Mapped[Optional[str]] = mapped_column(EncryptedText)
    status: Mapped[BrokerSessionStatus] = mapped_column(
        str_enum(BrokerSessionStatus, "status", 10), default=BrokerSessionStatus.ACTIVE
    )
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    revoked_at: Mapped[Optional[dt.datetime]] = mapped_column(UTCDateTime)
    last_used_at: Mapped[Optional[dt.datetime]] = mapped_column(UTCDateTime)


class ApiKey(Base):
    __tablename__ = "api_keys"
    __table_args__ = (Index("ix_api_keys_user_id", "user_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(64))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)  # hex HMAC-SHA256 under API_KEY_PEPPER
    prefix: Mapped[str] = mapped_column(String(12))  # first characters, to recognise a key in lists
    scopes: Mapped[str] = mapped_column(String(64), default="orders,read,data")  # comma-separated
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[Optional[dt.datetime]] = mapped_column(UTCDateTime)
    revoked_at: Mapped[Optional[dt.datetime]] = mapped_column(UTCDateTime)
    last_used_at: Mapped[Optional[dt.datetime]] = mapped_column(UTCDateTime)


def init_db() -> None:
    schema.require_current(db.engine, ["broker_sessions", "api_keys"])
