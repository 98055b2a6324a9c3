"""Every HTTP request (`traffic_logs`, written through the background writer) and IP bans."""

from __future__ import annotations

import datetime as dt
from typing import Optional

from sqlalchemy import Float, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from database import Base, db, schema
from database.types import UTCDateTime, utcnow


class TrafficLog(Base):
    __tablename__ = "traffic_logs"
    __table_args__ = (
        Index("ix_traffic_logs_created_at", "created_at"),
        Index("ix_traffic_logs_status_code_id", "status_code", "id"),
        Index("ix_traffic_logs_client_ip_id", "client_ip", "id"),
        Index("ix_traffic_logs_user_id_id", "user_id", "id"),  # a user's own rows, newest first
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    client_ip: Mapped[Optional[str]] = mapped_column(String(45))
    method: Mapped[str] = mapped_column(String(8))
    path: Mapped[str] = mapped_column(String(512))
    status_code: Mapped[int] = mapped_column(Integer)
    duration_ms: Mapped[float] = mapped_column(Float)
    user_id: Mapped[Optional[int]] = mapped_column(Integer)  # not a foreign key: logs outlive users
    user_agent: Mapped[Optional[str]] = mapped_column(String(255))


class IpBan(Base):
    __tablename__ = "ip_bans"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    ip: Mapped[str] = mapped_column(String(45), unique=True)
    reason: Mapped[Optional[str]] = mapped_column(String(255))
    ban_count: Mapped[int] = mapped_column(Integer, default=1)
    is_permanent: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[Optional[dt.datetime]] = mapped_column(UTCDateTime)


def init_db() -> None:
    schema.require_current(db.engine, ["traffic_logs", "ip_bans"])
