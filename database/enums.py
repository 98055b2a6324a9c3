"""Every enumeration of the domain, in one place.

All are `str` enums stored as strings with a named CHECK constraint (`str_enum()`), so the values
read the same in SQL, JSON and templates. The trading vocabulary (exchanges, actions, price types,
products, order statuses, modes) is defined once in `vocabulary` and re-exported here, so models and
queries import every enum from this module; the stored values are the vocabulary's values.
"""

from __future__ import annotations

from sqlalchemy import Enum

from vocabulary import Action, Exchange, Mode, OrderStatus, PriceType, Product, StrEnum

__all__ = [
    "Action",
    "BrokerSessionStatus",
    "CalendarKind",
    "Exchange",
    "ImportState",
    "InstrumentType",
    "Mode",
    "OrderStatus",
    "Platform",
    "PriceType",
    "Product",
    "Role",
    "Severity",
    "SignalSource",
    "SignalStatus",
    "SnapshotReason",
    "StrEnum",
    "StrategyMode",
    "str_enum",
]


class Role(StrEnum):
    ADMIN = "admin"
    TRADER = "trader"
    VIEWER = "viewer"


class InstrumentType(StrEnum):
    EQ = "EQ"
    FUT = "FUT"
    CE = "CE"
    PE = "PE"
    INDEX = "INDEX"


class Platform(StrEnum):
    TRADINGVIEW = "tradingview"
    CHARTINK = "chartink"
    AMIBROKER = "amibroker"
    PYTHON = "python"


class StrategyMode(StrEnum):
    LONG = "LONG"
    SHORT = "SHORT"
    BOTH = "BOTH"


class SignalSource(StrEnum):
    API = "api"
    STRATEGY = "strategy"
    CHARTINK = "chartink"


class SignalStatus(StrEnum):
    RECEIVED = "received"
    ACCEPTED = "accepted"
    REJECTED = "rejected"


class BrokerSessionStatus(StrEnum):
    ACTIVE = "active"
    EXPIRED = "expired"
    REVOKED = "revoked"


class ImportState(StrEnum):
    IDLE = "idle"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"


class Severity(StrEnum):
    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"


class SnapshotReason(StrEnum):
    SCHEDULED = "scheduled"
    SQUAREOFF = "squareoff"
    MANUAL = "manual"


class CalendarKind(StrEnum):
    """An admin's edit of a day of the market calendar (database/calendar_db.py)."""

    HOLIDAY = "holiday"
    SPECIAL_SESSION = "special_session"
    OPEN = "open"  # a shipped holiday cancelled: the regular session


def str_enum(enum_cls: type[StrEnum], name: str, length: int = 20) -> Enum:
    """A column type for `enum_cls`: stored as its values, checked by a constraint named `name`."""
    return Enum(
        enum_cls,
        name=name,
        native_enum=False,
        create_constraint=True,
        length=length,
        validate_strings=True,
        values_callable=lambda cls: [m.value for m in cls],
    )
