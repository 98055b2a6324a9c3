"""Every enumeration of the domain, in one place.

All are `str` enums stored as strings with a named CHECK constraint (`str_enum()`), so the values
read the same in SQL, JSON and templates.
"""

from __future__ import annotations

import enum

from sqlalchemy import Enum


class StrEnum(enum.StrEnum):
    @classmethod
    def values(cls) -> list[str]:
        return [m.value for m in cls]


class Role(StrEnum):
    ADMIN = "admin"
    TRADER = "trader"
    VIEWER = "viewer"


class Exchange(StrEnum):
    NSE = "NSE"
    BSE = "BSE"
    NFO = "NFO"
    BFO = "BFO"
    CDS = "CDS"
    BCD = "BCD"
    MCX = "MCX"
    NCDEX = "NCDEX"
    NSE_INDEX = "NSE_INDEX"
    BSE_INDEX = "BSE_INDEX"


class Action(StrEnum):
    BUY = "BUY"
    SELL = "SELL"


class PriceType(StrEnum):
    MARKET = "MARKET"
    LIMIT = "LIMIT"
    SL = "SL"
    SL_M = "SL-M"


class Product(StrEnum):
    MIS = "MIS"
    NRML = "NRML"
    CNC = "CNC"


class OrderStatus(StrEnum):
    OPEN = "open"
    COMPLETE = "complete"
    CANCELLED = "cancelled"
    REJECTED = "rejected"
    TRIGGER_PENDING = "trigger pending"


class Mode(StrEnum):
    LIVE = "live"
    ANALYZE = "analyze"


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
