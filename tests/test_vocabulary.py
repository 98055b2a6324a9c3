"""The trading vocabulary: one definition, the stored and wire values unchanged, used by every layer."""

from __future__ import annotations

import ast
import datetime as dt
import pathlib
from zoneinfo import ZoneInfo

import config
import vocabulary as v
from brokers.base import exchange_time, next_daily_expiry
from database import enums

ROOT = pathlib.Path(__file__).resolve().parents[1]


def test_values_are_the_stored_and_wire_values():
    # Changing any of these changes stored rows (CHECK constraints) and the API: it needs a migration.
    assert v.EXCHANGES == ("NSE", "BSE", "NFO", "BFO", "CDS", "BCD", "MCX", "NCDEX", "NSE_INDEX", "BSE_INDEX")
    assert v.ACTIONS == ("BUY", "SELL")
    assert v.PRICE_TYPES == ("MARKET", "LIMIT", "SL", "SL-M")
    assert v.PRODUCTS == ("MIS", "NRML", "CNC")
    assert v.ORDER_STATUSES == ("open", "complete", "cancelled", "rejected", "trigger pending")
    assert v.MODES == ("live", "analyze")


def test_groups():
    assert v.TRADABLE_EXCHANGES == ("NSE", "BSE", "NFO", "BFO", "CDS", "BCD", "MCX", "NCDEX")
    assert set(v.INDEX_EXCHANGES) | set(v.TRADABLE_EXCHANGES) == set(v.EXCHANGES)
    assert set(v.CASH_EXCHANGES) | set(v.DERIVATIVE_EXCHANGES) == set(v.TRADABLE_EXCHANGES)
    assert [p for p in v.PRICE_TYPES if v.needs_price(p)] == ["LIMIT", "SL"]
    assert [p for p in v.PRICE_TYPES if v.needs_trigger(p)] == ["SL", "SL-M"]
    assert "trigger pending" in v.OPEN_STATUSES
    assert "complete" not in v.OPEN_STATUSES


def test_database_enums_are_the_vocabulary():
    for name in ("Exchange", "Action", "PriceType", "Product", "OrderStatus", "Mode", "StrEnum"):
        assert getattr(enums, name) is getattr(v, name)


def test_vocabulary_imports_nothing_from_the_project():
    tree = ast.parse((ROOT / "vocabulary/__init__.py").read_text(encoding="utf-8"))
    imported = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    imported |= {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    assert imported <= {"__future__", "enum", "decimal"}


def test_exchange_timezone_default_and_helper():
    assert config.SETTINGS
    assert any(s.name == "EXCHANGE_TIMEZONE" and s.default == v.DEFAULT_EXCHANGE_TIMEZONE
                                   for s in config.SETTINGS)
    assert config.exchange_tz({"EXCHANGE_TIMEZONE": "UTC"}) == ZoneInfo("UTC")
    assert config.exchange_tz({}) == ZoneInfo(v.DEFAULT_EXCHANGE_TIMEZONE)


def test_broker_times_take_the_zone_they_are_given():
    ny = ZoneInfo("America/New_York")
    assert exchange_time("2024-03-28 09:15:00", ny) == dt.datetime(2024, 3, 28, 9, 15, tzinfo=ny)
    # 10:00 UTC is 06:00 in New York (EDT): the next 06:00 there is a day later.
    moment = dt.datetime(2024, 3, 28, 10, 0, tzinfo=dt.UTC)
    assert next_daily_expiry(moment, tz=ny) == dt.datetime(2024, 3, 29, 6, 0, tzinfo=ny)
    # Across the spring-forward night, 06:00 local is still 06:00 local.
    assert next_daily_expiry(dt.datetime(2024, 3, 9, 12, 0, tzinfo=ny), tz=ny).utcoffset() == dt.timedelta(hours=-4)
