"""Things that need a person's attention (a rejected order, an expired broker session)."""

from __future__ import annotations

import datetime as dt
from typing import Optional

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from database import Base, db, schema
from database.enums import Severity, str_enum
from database.types import UTCDateTime, utcnow


class Alert(Base):
    __tablename__ = "alerts"
    __table_args__ = (Index("ix_alerts_user_id_is_acknowledged_id", "user_id", "is_acknowledged", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    user_id: Mapped[Optional[int]] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))  # None: admins
    severity: Mapped[Severity] = mapped_column(str_enum(Severity, "severity", 10), default=Severity.WARNING)
    kind: Mapped[str] = mapped_column(String(32))  # order_rejected, broker_session_expired, ...
    title: Mapped[str] = mapped_column(String(200))
    message: Mapped[Optional[str]] = mapped_column(Text)
    is_acknowledged: Mapped[bool] = mapped_column(Boolean, default=False)
    acknowledged_at: Mapped[Optional[dt.datetime]] = mapped_column(UTCDateTime)
    acknowledged_by: Mapped[Optional[int]] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))


def init_db() -> None:
    schema.require_current(db.engine, ["alerts"])
