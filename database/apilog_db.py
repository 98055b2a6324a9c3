"""Every REST API call (`api_logs`): endpoint, redacted request, response, status and mode.

Rows are written by the background writer (database.writer), never on a request's transaction.
`user_id` is a plain column, not a foreign key: a log outlives the account it mentions, and a
batch insert must not fail because a user was deleted meanwhile.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Optional

from sqlalchemy import JSON, Float, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from database import Base, db, schema
from database.enums import Mode, str_enum
from database.types import UTCDateTime, utcnow


class ApiLog(Base):
    __tablename__ = "api_logs"
    __table_args__ = (
        Index("ix_api_logs_created_at", "created_at"),
        Index("ix_api_logs_user_id_id", "user_id", "id"),
        Index("ix_api_logs_api_type_id", "api_type", "id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    user_id: Mapped[Optional[int]] = mapped_column(Integer)
    api_type: Mapped[str] = mapped_column(String(32))  # endpoint name: placeorder, funds, ...
    mode: Mapped[Optional[Mode]] = mapped_column(str_enum(Mode, "mode", 8))
    request: Mapped[Optional[dict[str, Any]]] = mapped_column(JSON)  # apikey removed
    response: Mapped[Optional[dict[str, Any]]] = mapped_column(JSON)
    status_code: Mapped[int] = mapped_column(Integer)
    duration_ms: Mapped[Optional[float]] = mapped_column(Float)
    client_ip: Mapped[Optional[str]] = mapped_column(String(45))


def init_db() -> None:
    schema.require_current(db.engine, ["api_logs"])
