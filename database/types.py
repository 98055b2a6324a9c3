"""Column types shared by every domain module: UTC datetimes and encrypted text.

`EncryptedText` is defined with the token vault (database.crypto), which it encrypts with, and
exported here with the other column types.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import DateTime
from sqlalchemy.types import TypeDecorator

from database.crypto import EncryptedText

__all__ = ["UTC", "EncryptedText", "UTCDateTime", "utcnow"]

UTC = dt.UTC


def utcnow() -> dt.datetime:
    """The current time, timezone-aware, in UTC. The only clock the data layer uses."""
    return dt.datetime.now(UTC)


class UTCDateTime(TypeDecorator):
    """A datetime stored in UTC and always returned timezone-aware.

    Naive datetimes are refused on write: a naive value's zone is a guess, and guessing is how
    "UTC" columns end up holding local times.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Any) -> Any:
        if value is None:
            return None
        if not isinstance(value, dt.datetime):
            raise TypeError(f"UTCDateTime expects a datetime, got {type(value).__name__}")
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError("UTCDateTime refuses a naive datetime; pass an aware one (e.g. utcnow())")
        value = value.astimezone(UTC)
        if dialect.name == "sqlite":
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: Any, dialect: Any) -> Any:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)
