"""Warnings and errors of the application itself (`system_logs`), written by a logging handler
through the background writer."""

from __future__ import annotations

import datetime as dt
import logging
from typing import Optional

from sqlalchemy import Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from database import Base, db, schema, writer
from database.types import UTCDateTime, utcnow


class SystemLog(Base):
    __tablename__ = "system_logs"
    __table_args__ = (
        Index("ix_system_logs_created_at", "created_at"),
        Index("ix_system_logs_level_id", "level", "id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    level: Mapped[str] = mapped_column(String(10))
    logger: Mapped[str] = mapped_column(String(100))
    message: Mapped[str] = mapped_column(Text)
    traceback: Mapped[Optional[str]] = mapped_column(Text)
    pid: Mapped[Optional[int]] = mapped_column(Integer)


def install_handler() -> None:
    """Send the application's warnings and errors to `system_logs` (once per process)."""
    logger = logging.getLogger("algobridge")
    if not any(isinstance(h, DatabaseLogHandler) for h in logger.handlers):
        logger.addHandler(DatabaseLogHandler())


class DatabaseLogHandler(logging.Handler):
    """Sends WARNING and above to `system_logs` through the background writer.

    Never raises into the code that logged, and ignores the writer's own logger so a failing
    database cannot feed itself log rows.
    """

    def __init__(self, level: int = logging.WARNING):
        super().__init__(level)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            log_writer = writer.current()
        except RuntimeError:
            return  # no application yet: the stream handler has it
        if record.name.startswith("algobridge.writer") or log_writer.is_writer_thread():
            return
        try:
            tb = None
            if record.exc_info:
                tb = logging.Formatter().formatException(record.exc_info)
            log_writer.enqueue(
                SystemLog,
                {
                    "created_at": dt.datetime.fromtimestamp(record.created, dt.UTC),
                    "level": record.levelname,
                    "logger": record.name[:100],
                    "message": record.getMessage(),
                    "traceback": tb,
                    "pid": record.process,
                },
            )
        except Exception:  # noqa: BLE001 - logging must never fail the caller
            self.handleError(record)


def init_db() -> None:
    schema.require_current(db.engine, ["system_logs"])
