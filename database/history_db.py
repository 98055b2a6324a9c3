"""Stored history: candles per series, and which days of a series have been fetched.

- `candle_series`: one row per (source, exchange, symbol, interval): `source` is where the candles came from
  ("simulator", or "simulator-<seed>" for another simulator seed, or the live broker's name), so simulated
  and real candles never mix. It also keeps the series' count and first and last candle, so that the page
  listing what is stored reads this table only, and an `etag` that every write changes.
- `candles`: one row per candle of a series, keyed by (series, ts). `ts` is Unix seconds, the API's own
  unit, rather than a UTCDateTime: `history` serves thousands of rows per call, and an integer is read and
  written as it is (intraday: the candle's start; D: the date at 00:00 UTC). Prices are doubles: candles are
  market data answered as JSON numbers, never money the journal adds up. On SQLite the table is WITHOUT
  ROWID, so a range of one series is one walk of the primary key's B-tree.
- `candle_coverage`: day ranges (exchange time, inclusive) of a series already fetched from its source,
  holidays and empty days included, so that they are not asked for again.

Queries live in services.market.history, the store's one user.
"""

from __future__ import annotations

import datetime as dt
from typing import Optional

from sqlalchemy import BigInteger, Date, Double, ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from database import Base, db, schema
from database.enums import Exchange, str_enum
from database.types import UTCDateTime, utcnow


class CandleSeries(Base):
    __tablename__ = "candle_series"
    __table_args__ = (UniqueConstraint("source", "exchange", "symbol", "interval",
                                       name="uq_candle_series_source_exchange_symbol_interval"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    source: Mapped[str] = mapped_column(String(32))
    exchange: Mapped[Exchange] = mapped_column(str_enum(Exchange, "exchange", 12))
    symbol: Mapped[str] = mapped_column(String(64))  # OpenAlgo's symbol (the master contract's spelling)
    interval: Mapped[str] = mapped_column(String(4))  # the series' own interval: one its source serves
    candles: Mapped[int] = mapped_column(Integer, default=0)
    first_ts: Mapped[Optional[int]] = mapped_column(BigInteger)
    last_ts: Mapped[Optional[int]] = mapped_column(BigInteger)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    # A new random value at every write to the series, in whatever process: what an answer read from it is
    # kept under (services.market.history), so that a changed series is never answered from memory.
    etag: Mapped[str] = mapped_column(String(16), default="")


class Candle(Base):
    __tablename__ = "candles"
    __table_args__ = {"sqlite_with_rowid": False}

    series_id: Mapped[int] = mapped_column(ForeignKey("candle_series.id", ondelete="CASCADE"), primary_key=True)
    ts: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    open: Mapped[float] = mapped_column(Double)
    high: Mapped[float] = mapped_column(Double)
    low: Mapped[float] = mapped_column(Double)
    close: Mapped[float] = mapped_column(Double)
    volume: Mapped[int] = mapped_column(BigInteger, default=0)
    oi: Mapped[int] = mapped_column(BigInteger, default=0)


class CandleCoverage(Base):
    __tablename__ = "candle_coverage"

    series_id: Mapped[int] = mapped_column(ForeignKey("candle_series.id", ondelete="CASCADE"), primary_key=True)
    first_day: Mapped[dt.date] = mapped_column(Date, primary_key=True)
    last_day: Mapped[dt.date] = mapped_column(Date)


def init_db() -> None:
    schema.require_current(db.engine, ["candle_series", "candles", "candle_coverage"])
