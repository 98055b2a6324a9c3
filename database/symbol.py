"""The broker's master contract (`sym_tokens`), its import status, and the latest quotes.

Rows map OpenAlgo symbols (docs/api.md, Symbols and quotes) to the broker's symbol and token. The table is replaced
whole by an import (services/market/master_contract.py); fast lookups go through services.market.symbol_index.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Optional

from sqlalchemy import BigInteger, Date, Index, Integer, Numeric, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from database import Base, db, schema
from database.enums import Exchange, ImportState, InstrumentType, str_enum
from database.types import UTCDateTime, utcnow


class SymToken(Base):
    __tablename__ = "sym_tokens"
    __table_args__ = (
        UniqueConstraint("exchange", "symbol", name="uq_sym_tokens_exchange_symbol"),
        Index("ix_sym_tokens_brexchange_token", "brexchange", "token"),
        Index("ix_sym_tokens_brexchange_brsymbol", "brexchange", "brsymbol"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    symbol: Mapped[str] = mapped_column(String(64))  # OpenAlgo format: INFY, NIFTY28MAR2420800CE
    brsymbol: Mapped[str] = mapped_column(String(64))  # the broker's trading symbol
    name: Mapped[Optional[str]] = mapped_column(String(128))
    exchange: Mapped[Exchange] = mapped_column(str_enum(Exchange, "exchange", 12))
    brexchange: Mapped[str] = mapped_column(String(16))
    token: Mapped[str] = mapped_column(String(32))  # the broker's instrument token
    expiry: Mapped[Optional[dt.date]] = mapped_column(Date)
    strike: Mapped[Optional[Decimal]] = mapped_column(Numeric(14, 4))
    lotsize: Mapped[int] = mapped_column(Integer, default=1)
    instrumenttype: Mapped[InstrumentType] = mapped_column(str_enum(InstrumentType, "instrumenttype", 8))
    tick_size: Mapped[Decimal] = mapped_column(Numeric(12, 4), default=Decimal("0.05"))
    # The most one order may carry (the exchange's quantity freeze); NULL when the source does not say
    # (Kite's instruments file has no such column): not known, so not checked (services.trading.rules).
    freeze_qty: Mapped[Optional[int]] = mapped_column(Integer)


class MasterContractStatus(Base):
    """One row per broker: the state of the last or running import, for the dashboard to poll."""

    __tablename__ = "master_contract_status"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    broker: Mapped[str] = mapped_column(String(32), unique=True)
    state: Mapped[ImportState] = mapped_column(str_enum(ImportState, "state", 10), default=ImportState.IDLE)
    rows_done: Mapped[int] = mapped_column(Integer, default=0)
    rows_total: Mapped[int] = mapped_column(Integer, default=0)
    rows_skipped: Mapped[int] = mapped_column(Integer, default=0)
    source: Mapped[Optional[str]] = mapped_column(String(255))
    error: Mapped[Optional[str]] = mapped_column(Text)
    started_at: Mapped[Optional[dt.datetime]] = mapped_column(UTCDateTime)
    finished_at: Mapped[Optional[dt.datetime]] = mapped_column(UTCDateTime)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class Quote(Base):
    """The latest quote per instrument: fed by the live broker, or by the price simulator."""

    __tablename__ = "quotes"
    __table_args__ = (UniqueConstraint("exchange", "symbol", name="uq_quotes_exchange_symbol"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    symbol: Mapped[str] = mapped_column(String(64))
    exchange: Mapped[Exchange] = mapped_column(str_enum(Exchange, "exchange", 12))
    ltp: Mapped[Decimal] = mapped_column(Numeric(14, 4))
    bid: Mapped[Decimal] = mapped_column(Numeric(14, 4), default=Decimal(0))
    ask: Mapped[Decimal] = mapped_column(Numeric(14, 4), default=Decimal(0))
    open: Mapped[Decimal] = mapped_column(Numeric(14, 4), default=Decimal(0))
    high: Mapped[Decimal] = mapped_column(Numeric(14, 4), default=Decimal(0))
    low: Mapped[Decimal] = mapped_column(Numeric(14, 4), default=Decimal(0))
    prev_close: Mapped[Decimal] = mapped_column(Numeric(14, 4), default=Decimal(0))
    volume: Mapped[int] = mapped_column(BigInteger, default=0)
    oi: Mapped[int] = mapped_column(BigInteger, default=0)
    source: Mapped[str] = mapped_column(String(16), default="simulator")  # broker name or "simulator"
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


def init_db() -> None:
    schema.require_current(db.engine, ["sym_tokens", "master_contract_status", "quotes"])
