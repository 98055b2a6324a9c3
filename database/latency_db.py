"""Per-order stage timings (`order_latency`), written through the background writer."""

from __future__ import annotations

import datetime as dt
from typing import Optional

from sqlalchemy import Boolean, Float, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from database import Base, db, schema
from database.enums import Mode, str_enum
from database.types import UTCDateTime, utcnow


class OrderLatency(Base):
    __tablename__ = "order_latency"
    __table_args__ = (
        Index("ix_order_latency_created_at", "created_at"),
        Index("ix_order_latency_broker_id", "broker", "id"),
        Index("ix_order_latency_endpoint_id", "endpoint", "id"),
        Index("ix_order_latency_user_id_id", "user_id", "id"),  # a user's own rows, newest first
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    user_id: Mapped[Optional[int]] = mapped_column(Integer)  # not a foreign key: logs outlive users
    orderid: Mapped[Optional[str]] = mapped_column(String(64))
    broker: Mapped[str] = mapped_column(String(32))
    endpoint: Mapped[str] = mapped_column(String(32))  # placeorder, placesmartorder, ...
    mode: Mapped[Mode] = mapped_column(str_enum(Mode, "mode", 8))
    symbol: Mapped[Optional[str]] = mapped_column(String(64))
    validation_ms: Mapped[float] = mapped_column(Float, default=0.0)
    broker_ms: Mapped[float] = mapped_column(Float, default=0.0)
    response_ms: Mapped[float] = mapped_column(Float, default=0.0)
    overhead_ms: Mapped[float] = mapped_column(Float, default=0.0)
    total_ms: Mapped[float] = mapped_column(Float, default=0.0)
    is_success: Mapped[bool] = mapped_column(Boolean, default=True)
    error: Mapped[Optional[str]] = mapped_column(String(255))


def init_db() -> None:
    schema.require_current(db.engine, ["order_latency"])
