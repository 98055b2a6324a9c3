"""Positions, holdings and funds per user and mode (the source of truth in analyze mode), and
equity snapshots over time for the equity curve."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from sqlalchemy import ForeignKey, Index, Integer, Numeric, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from database import Base, db, schema
from database.enums import Exchange, Mode, Product, SnapshotReason, str_enum
from database.types import UTCDateTime, utcnow

QTY = Numeric(18, 0)
MONEY = Numeric(18, 4)


class Position(Base):
    __tablename__ = "positions"
    __table_args__ = (
        UniqueConstraint("user_id", "mode", "symbol", "exchange", "product", name="uq_positions_user_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    mode: Mapped[Mode] = mapped_column(str_enum(Mode, "mode", 8))
    symbol: Mapped[str] = mapped_column(String(64))
    exchange: Mapped[Exchange] = mapped_column(str_enum(Exchange, "exchange", 12))
    product: Mapped[Product] = mapped_column(str_enum(Product, "product", 4))
    quantity: Mapped[Decimal] = mapped_column(QTY, default=Decimal(0))  # signed net
    average_price: Mapped[Decimal] = mapped_column(MONEY, default=Decimal(0))
    buy_quantity: Mapped[Decimal] = mapped_column(QTY, default=Decimal(0))
    buy_value: Mapped[Decimal] = mapped_column(MONEY, default=Decimal(0))
    sell_quantity: Mapped[Decimal] = mapped_column(QTY, default=Decimal(0))
    sell_value: Mapped[Decimal] = mapped_column(MONEY, default=Decimal(0))
    realized_pnl: Mapped[Decimal] = mapped_column(MONEY, default=Decimal(0))  # gross of charges
    charges: Mapped[Decimal] = mapped_column(MONEY, default=Decimal(0))  # of the position's fills, to date
    margin_blocked: Mapped[Decimal] = mapped_column(MONEY, default=Decimal(0))
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class Holding(Base):
    __tablename__ = "holdings"
    __table_args__ = (UniqueConstraint("user_id", "mode", "symbol", "exchange", name="uq_holdings_user_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    mode: Mapped[Mode] = mapped_column(str_enum(Mode, "mode", 8))
    symbol: Mapped[str] = mapped_column(String(64))
    exchange: Mapped[Exchange] = mapped_column(str_enum(Exchange, "exchange", 12))
    quantity: Mapped[Decimal] = mapped_column(QTY, default=Decimal(0))
    average_price: Mapped[Decimal] = mapped_column(MONEY, default=Decimal(0))
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class Funds(Base):
    __tablename__ = "funds"
    __table_args__ = (UniqueConstraint("user_id", "mode", name="uq_funds_user_id_mode"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    mode: Mapped[Mode] = mapped_column(str_enum(Mode, "mode", 8))
    opening_balance: Mapped[Decimal] = mapped_column(MONEY, default=Decimal(0))
    available_cash: Mapped[Decimal] = mapped_column(MONEY, default=Decimal(0))
    collateral: Mapped[Decimal] = mapped_column(MONEY, default=Decimal(0))
    used_margin: Mapped[Decimal] = mapped_column(MONEY, default=Decimal(0))
    realized_pnl: Mapped[Decimal] = mapped_column(MONEY, default=Decimal(0))
    unrealized_pnl: Mapped[Decimal] = mapped_column(MONEY, default=Decimal(0))
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class PortfolioSnapshot(Base):
    __tablename__ = "portfolio_snapshots"
    __table_args__ = (Index("ix_portfolio_snapshots_user_id_mode_taken_at", "user_id", "mode", "taken_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    mode: Mapped[Mode] = mapped_column(str_enum(Mode, "mode", 8))
    taken_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    equity: Mapped[Decimal] = mapped_column(MONEY)
    cash: Mapped[Decimal] = mapped_column(MONEY)
    realized_pnl: Mapped[Decimal] = mapped_column(MONEY, default=Decimal(0))
    unrealized_pnl: Mapped[Decimal] = mapped_column(MONEY, default=Decimal(0))
    reason: Mapped[SnapshotReason] = mapped_column(
        str_enum(SnapshotReason, "reason", 10), default=SnapshotReason.SCHEDULED
    )


def init_db() -> None:
    schema.require_current(db.engine, ["positions", "holdings", "funds", "portfolio_snapshots"])
