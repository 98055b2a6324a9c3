"""Admins' edits of the market calendar (`market_calendar_entries`).

The calendar itself ships with the code (services/market/calendar_data/: the regular week and each year's
holidays and special sessions); a row here changes one day for some exchanges, and wins over the shipped
data (services.market.calendar merges them):
  - `holiday`: the exchanges are closed all day;
  - `special_session`: the exchanges trade from `start_time` to `end_time` (exchange time) that day,
    instead of whatever the day had (e.g. Muhurat trading on a Sunday);
  - `open`: the exchanges keep their regular session that day, cancelling a shipped holiday.
"""

from __future__ import annotations

import datetime as dt
from typing import Optional

from sqlalchemy import Date, ForeignKey, Index, Integer, String, Time
from sqlalchemy.orm import Mapped, mapped_column

from database import Base, db, schema
from database.enums import CalendarKind, str_enum
from database.types import UTCDateTime, utcnow


class CalendarEntry(Base):
    __tablename__ = "market_calendar_entries"
    __table_args__ = (Index("ix_market_calendar_entries_day", "day"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    day: Mapped[dt.date] = mapped_column(Date)  # exchange time's calendar day
    kind: Mapped[CalendarKind] = mapped_column(str_enum(CalendarKind, "kind", 16))
    exchanges: Mapped[str] = mapped_column(String(200))  # comma list: NSE,BSE,NFO
    description: Mapped[str] = mapped_column(String(200))
    start_time: Mapped[Optional[dt.time]] = mapped_column(Time)  # exchange time; special sessions only
    end_time: Mapped[Optional[dt.time]] = mapped_column(Time)
    created_by: Mapped[Optional[int]] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)

    @property
    def exchange_list(self) -> list[str]:
        return [e for e in self.exchanges.split(",") if e]


def init_db() -> None:
    schema.require_current(db.engine, ["market_calendar_entries"])
