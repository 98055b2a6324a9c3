"""Risk limits per account and per strategy, the trading day's risk state, the kill switch, and
orders waiting for approval (issue #19).

`risk_limits`: one row per user and scope: the account (`scope_kind` "account", `scope` ""), a strategy
(`scope_kind` "strategy", `scope` its name, as orders carry it) or an API key (`scope_kind` "apikey",
`scope` the key's id: only `require_approval` applies there). A NULL limit is no limit. The account row
also carries the kill switch (`killed_at`, `killed_by`): it stays on until switched back.

`risk_days`: what a trading day (from one SESSION_EXPIRY_TIME to the next) has seen per user, mode and
scope: the peak net P&L (for the trailing profit lock), the last one, and once a loss or target limit
was reached, the block of new entries (`blocked_reason`, `blocked_at`) that the next day lifts.

`approvals`: an order held for a person's approval, with the input that made it and the alert text;
queued -> approved | rejected | expired.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any, Optional

from sqlalchemy import JSON, Boolean, Date, ForeignKey, Index, Integer, Numeric, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from database import Base, db, schema
from database.types import UTCDateTime, utcnow

MONEY = Numeric(18, 4)

ACCOUNT = "account"
STRATEGY = "strategy"
APIKEY = "apikey"

QUEUED = "queued"
APPROVED = "approved"
REJECTED = "rejected"
EXPIRED = "expired"
FAILED = "failed"  # approved, but the venue refused the order


class RiskLimit(Base):
    __tablename__ = "risk_limits"
    __table_args__ = (UniqueConstraint("user_id", "scope_kind", "scope", name="uq_risk_limits_user_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    scope_kind: Mapped[str] = mapped_column(String(10), default=ACCOUNT)
    scope: Mapped[str] = mapped_column(String(100), default="")
    max_loss: Mapped[Optional[Decimal]] = mapped_column(MONEY)  # a positive amount: stop at P&L <= -max_loss
    target: Mapped[Optional[Decimal]] = mapped_column(MONEY)  # stop at P&L >= target
    trail_trigger: Mapped[Optional[Decimal]] = mapped_column(MONEY)  # the peak P&L that arms the lock
    trail_gap: Mapped[Optional[Decimal]] = mapped_column(MONEY)  # stop at P&L <= peak - gap once armed
    max_orders_per_minute: Mapped[Optional[int]] = mapped_column(Integer)
    max_orders_per_day: Mapped[Optional[int]] = mapped_column(Integer)
    max_open_positions: Mapped[Optional[int]] = mapped_column(Integer)
    max_order_quantity: Mapped[Optional[int]] = mapped_column(Integer)
    max_order_value: Mapped[Optional[Decimal]] = mapped_column(MONEY)
    require_approval: Mapped[bool] = mapped_column(Boolean, default=False)
    approval_ttl_seconds: Mapped[int] = mapped_column(Integer, default=300)
    killed_at: Mapped[Optional[dt.datetime]] = mapped_column(UTCDateTime)
    killed_by: Mapped[Optional[str]] = mapped_column(String(64))
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class RiskDay(Base):
    __tablename__ = "risk_days"
    __table_args__ = (
        UniqueConstraint("user_id", "mode", "scope_kind", "scope", "trading_day", name="uq_risk_days_user_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    mode: Mapped[str] = mapped_column(String(8))
    scope_kind: Mapped[str] = mapped_column(String(10), default=ACCOUNT)
    scope: Mapped[str] = mapped_column(String(100), default="")
    trading_day: Mapped[dt.date] = mapped_column(Date)
    peak_pnl: Mapped[Decimal] = mapped_column(MONEY, default=Decimal(0))
    last_pnl: Mapped[Decimal] = mapped_column(MONEY, default=Decimal(0))
    blocked_reason: Mapped[Optional[str]] = mapped_column(String(32))  # max_loss, target, trailing_lock
    blocked_at: Mapped[Optional[dt.datetime]] = mapped_column(UTCDateTime)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class Approval(Base):
    __tablename__ = "approvals"
    __table_args__ = (
        Index("ix_approvals_user_id_status", "user_id", "status"),
        Index("ix_approvals_status_expires_at", "status", "expires_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(10), default="place")  # place, smart
    order: Mapped[dict[str, Any]] = mapped_column(JSON)  # the order's input (and a smart order's position_size)
    strategy: Mapped[Optional[str]] = mapped_column(String(100))
    api_key_id: Mapped[Optional[int]] = mapped_column(Integer)
    signal_id: Mapped[Optional[int]] = mapped_column(Integer)
    mode: Mapped[Optional[str]] = mapped_column(String(8))  # the mode the order was queued in: placed only there
    broker: Mapped[Optional[str]] = mapped_column(String(32))  # and the broker (the paper venue's in analyze mode)
    alert: Mapped[Optional[str]] = mapped_column(Text)  # what made the order (the webhook's alert, the call)
    status: Mapped[str] = mapped_column(String(10), default=QUEUED)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    decided_at: Mapped[Optional[dt.datetime]] = mapped_column(UTCDateTime)
    decided_by: Mapped[Optional[str]] = mapped_column(String(64))
    reason: Mapped[Optional[str]] = mapped_column(Text)
    orderid: Mapped[Optional[str]] = mapped_column(String(64))


def init_db() -> None:
    schema.require_current(db.engine, ["risk_limits", "risk_days", "approvals"])
