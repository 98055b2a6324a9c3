"""The order journal: signals received, orders placed through the bridge (live or analyze), fills."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any, Optional

from sqlalchemy import JSON, ForeignKey, Index, Integer, Numeric, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from database import Base, db, schema
from database.enums import (
    Action,
    Exchange,
    Mode,
    OrderStatus,
    PriceType,
    Product,
    SignalSource,
    SignalStatus,
    str_enum,
)
from database.types import UTCDateTime, utcnow

QTY = Numeric(18, 0)
PRICE = Numeric(18, 4)


class Signal(Base):
    """An alert received from a strategy webhook, Chartink or the API, before it became orders."""

    __tablename__ = "signals"
    __table_args__ = (Index("ix_signals_user_id_received_at", "user_id", "received_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    strategy_id: Mapped[Optional[int]] = mapped_column(ForeignKey("strategies.id", ondelete="SET NULL"), index=True)
    source: Mapped[SignalSource] = mapped_column(str_enum(SignalSource, "source", 10))
    payload: Mapped[Optional[dict[str, Any]]] = mapped_column(JSON)
    symbol: Mapped[Optional[str]] = mapped_column(String(64))
    exchange: Mapped[Optional[Exchange]] = mapped_column(str_enum(Exchange, "exchange", 12))
    action: Mapped[Optional[Action]] = mapped_column(str_enum(Action, "action", 4))
    position_size: Mapped[Optional[Decimal]] = mapped_column(QTY)
    status: Mapped[SignalStatus] = mapped_column(str_enum(SignalStatus, "status", 10), default=SignalStatus.RECEIVED)
    message: Mapped[Optional[str]] = mapped_column(Text)
    received_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class Order(Base):
    __tablename__ = "orders"
    __table_args__ = (
        UniqueConstraint("broker", "orderid", name="uq_orders_broker_orderid"),
        Index("ix_orders_user_id_placed_at", "user_id", "placed_at"),
        Index("ix_orders_user_id_status", "user_id", "status"),
        Index("ix_orders_user_id_symbol_exchange", "user_id", "symbol", "exchange"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    signal_id: Mapped[Optional[int]] = mapped_column(ForeignKey("signals.id", ondelete="SET NULL"), index=True)
    parent_id: Mapped[Optional[int]] = mapped_column(ForeignKey("orders.id", ondelete="SET NULL"))  # split/basket
    orderid: Mapped[str] = mapped_column(String(64))  # the broker's (or the paper broker's) order id
    broker: Mapped[str] = mapped_column(String(32))
    mode: Mapped[Mode] = mapped_column(str_enum(Mode, "mode", 8))
    strategy: Mapped[Optional[str]] = mapped_column(String(100))  # the API's free-text strategy name
    symbol: Mapped[str] = mapped_column(String(64))
    exchange: Mapped[Exchange] = mapped_column(str_enum(Exchange, "exchange", 12))
    action: Mapped[Action] = mapped_column(str_enum(Action, "action", 4))
    pricetype: Mapped[PriceType] = mapped_column(str_enum(PriceType, "pricetype", 6))
    product: Mapped[Product] = mapped_column(str_enum(Product, "product", 4))
    quantity: Mapped[Decimal] = mapped_column(QTY)
    filled_quantity: Mapped[Decimal] = mapped_column(QTY, default=Decimal(0))
    price: Mapped[Decimal] = mapped_column(PRICE, default=Decimal(0))
    trigger_price: Mapped[Decimal] = mapped_column(PRICE, default=Decimal(0))
    disclosed_quantity: Mapped[Decimal] = mapped_column(QTY, default=Decimal(0))
    average_price: Mapped[Decimal] = mapped_column(PRICE, default=Decimal(0))
    status: Mapped[OrderStatus] = mapped_column(str_enum(OrderStatus, "status", 16), default=OrderStatus.OPEN)
    status_message: Mapped[Optional[str]] = mapped_column(Text)
    placed_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class Fill(Base):
    __tablename__ = "fills"
    __table_args__ = (UniqueConstraint("order_id", "tradeid", name="uq_fills_order_id_tradeid"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id", ondelete="CASCADE"))
    tradeid: Mapped[str] = mapped_column(String(64))
    quantity: Mapped[Decimal] = mapped_column(QTY)
    price: Mapped[Decimal] = mapped_column(PRICE)
    # analyze mode: the P&L this fill realized (gross) and its charges (brokerage, taxes, fees); 0 on live
    # fills (the broker's contract note has them)
    realized_pnl: Mapped[Decimal] = mapped_column(PRICE, default=Decimal(0))
    charges: Mapped[Decimal] = mapped_column(PRICE, default=Decimal(0))
    filled_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)


def init_db() -> None:
    schema.require_current(db.engine, ["signals", "orders", "fills"])
