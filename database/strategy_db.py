"""Webhook strategies (TradingView, Chartink, Amibroker, Python) and their symbol mappings."""

from __future__ import annotations

import datetime as dt
from typing import Optional

from sqlalchemy import Boolean, ForeignKey, Integer, String, Time, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from database import Base, db, schema
from database.enums import Exchange, Platform, Product, StrategyMode, str_enum
from database.types import UTCDateTime, utcnow


class Strategy(Base):
    __tablename__ = "strategies"
    __table_args__ = (UniqueConstraint("user_id", "name", name="uq_strategies_user_id_name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(100))
    # The webhook id places orders, like an API key: only its HMAC-SHA256 under API_KEY_PEPPER is kept,
    # found by this unique index. The prefix lets its owner recognise the URL they configured.
    webhook_hash: Mapped[str] = mapped_column(String(64), unique=True)
    webhook_prefix: Mapped[str] = mapped_column(String(8))
    platform: Mapped[Platform] = mapped_column(str_enum(Platform, "platform", 12))
    mode: Mapped[StrategyMode] = mapped_column(str_enum(StrategyMode, "mode", 5), default=StrategyMode.BOTH)
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    is_intraday: Mapped[bool] = mapped_column(Boolean, default=True)
    start_time: Mapped[Optional[dt.time]] = mapped_column(Time)  # exchange time
    end_time: Mapped[Optional[dt.time]] = mapped_column(Time)
    squareoff_time: Mapped[Optional[dt.time]] = mapped_column(Time)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class StrategySymbolMapping(Base):
    __tablename__ = "strategy_symbol_mappings"
    __table_args__ = (
        UniqueConstraint("strategy_id", "symbol", "exchange", name="uq_strategy_symbol_mappings_strategy_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    strategy_id: Mapped[int] = mapped_column(ForeignKey("strategies.id", ondelete="CASCADE"))
    symbol: Mapped[str] = mapped_column(String(64))
    exchange: Mapped[Exchange] = mapped_column(str_enum(Exchange, "exchange", 12))
    quantity: Mapped[int] = mapped_column(Integer)
    product: Mapped[Product] = mapped_column(str_enum(Product, "product", 4), default=Product.MIS)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


def init_db() -> None:
    schema.require_current(db.engine, ["strategies", "strategy_symbol_mappings"])
