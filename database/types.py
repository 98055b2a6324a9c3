"""Column types shared by every domain module: UTC datetimes and encrypted text."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import DateTime, Text
from sqlalchemy.types import TypeDecorator

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


class EncryptedText(TypeDecorator):
    """Text encrypted with the token vault (database.crypto) on write, decrypted on read.

    The database only ever holds Fernet tokens. Reading a value that no configured key can decrypt
    raises `crypto.TokenDecryptionError` with a message that says what to do.
    """

    impl = Text
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Any) -> Any:
        if value is None:
            return None
        from database.crypto import vault

        return vault().encrypt(str(value))

    def process_result_value(self, value: Any, dialect: Any) -> Any:
        if value is None:
            return None
        from database.crypto import vault

        return vault().decrypt(value)
