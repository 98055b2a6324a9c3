"""Stored history: the simulator's candles, the store (fetch only what is missing, coverage, upsert), the
exchange's sessions, resampling, the bounds; on SQLite and PostgreSQL."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from database import db
from database.history_db import Candle, CandleCoverage, CandleSeries
from services.market import history as store
from services.market import quotes
from services.market.symbol_index import SymbolInfo
from tests.helpers.clock import local

# Mon 9 to Fri 13 Nov 2026; Tue 10 is an NSE holiday (Diwali Balipratipada) on which MCX trades from 17:00.
MON, TUE, FRI, SUN = dt.date(2026, 11, 9), dt.date(2026, 11, 10), dt.date(2026, 11, 13), dt.date(2026, 11, 15)
KITE_LIKE = ("1m", "3m", "5m", "10m", "15m", "30m", "1h", "D")


def info(symbol="INFY", exchange="NSE", itype="EQ", name=None, expiry=None, strike=None):
    return SymbolInfo(symbol, symbol, name, exchange, exchange, "408065", expiry, strike, 1, itype, Decimal("0.05"))


class Counting:
    """A source that counts its calls: the simulator's candles under another name, or given rows."""

    def __init__(self, name="counted", native=store.SIMULATOR_INTERVALS, rows=None):
        self.calls: list[tuple] = []
        self.rows = rows
        self.sim = store.simulator_source()
        self.source = store.Source(name, native, self.fetch)

    def fetch(self, inf, interval, start, end):
        self.calls.append((interval, start, end))
        if self.rows is not None:
            return [r for r in self.rows if start.timestamp() <= r[0] <= end.timestamp()]
        return self.sim.fetch(inf, interval, start, end)


def history(*args, **kwargs) -> list[dict]:
    return store.history(*args, **kwargs).rows()


def stored_history(*args) -> list[dict]:
    return store.stored_history(*args).rows()


def epoch(app, *args) -> int:
    return int(local(app, *args).timestamp())


def utc_day(day: dt.date) -> int:
    return int(dt.datetime.combine(day, dt.time(0), tzinfo=dt.UTC).timestamp())


@pytest.fixture
def later(app):
    """A moment long after the test week, so every day of it is final."""
    return local(app, 2026, 12, 1, 12, 0)


# -- intervals ------------------------------------------------------------------------------------------------
def test_intervals_are_built_from_the_coarsest_native_interval_that_divides_them():
    assert store.build_from("5m", ("1m", "D")) == "1m"
    assert store.build_from("4h", KITE_LIKE) == "1h"
    assert store.build_from("20m", KITE_LIKE) == "10m"
    assert store.build_from("45s", ("1m", "D")) is None
    assert store.build_from("W", ("1m",)) == "1m"
    assert store.build_from("Y", KITE_LIKE) == "D"
    assert store.build_from("D", ()) is None
    simulator = store.grouped(store.available(store.SIMULATOR_INTERVALS))
    assert simulator == {"seconds": [], "minutes": ["1m", "2m", "3m", "5m", "10m", "15m", "20m", "30m"],
                         "hours": ["1h", "2h", "3h", "4h"], "days": ["D"], "weeks": ["W"], "months": ["M", "Q", "Y"]}
    assert store.max_days("1m") == 60
    assert store.max_days("5m") == 300
    assert store.max_days("1h") == 3600
    assert store.max_days("5s") == 5
    assert store.max_days("D") == 7305


# -- the simulator's candles ------------------------------------------------------------------------------------
def test_one_minute_candles_fall_in_the_sessions_and_chain(app, later):
    candles = history(info(), "1m", MON, SUN, store.simulator_source(), now=later)
    days = {dt.datetime.fromtimestamp(c["timestamp"], local(app, 2026, 1, 1).tzinfo).date() for c in candles}
    # Mon, Wed, Thu, Fri: not the Tuesday holiday, not the weekend (ANALYZE_MARKET_HOURS=always adds nothing).
    assert len(candles) == 4 * 375
    first_by_day = {}
    for c in candles:
        first_by_day.setdefault(local_date(app, c["timestamp"]), c["timestamp"])
    assert sorted(first_by_day) == [MON, MON + dt.timedelta(2), MON + dt.timedelta(3), FRI]
    assert set(first_by_day.values()) == {epoch(app, d.year, d.month, d.day, 9, 15) for d in first_by_day}
    assert max(c["timestamp"] for c in candles) == epoch(app, 2026, 11, 13, 15, 29)
    assert days == set(first_by_day)
    for a, b in zip(candles, candles[1:], strict=False):
        assert a["timestamp"] < b["timestamp"]
        assert a["low"] <= min(a["open"], a["close"]) <= max(a["open"], a["close"]) <= a["high"]
        if b["timestamp"] - a["timestamp"] == 60:
            assert b["open"] == a["close"]  # close of minute m is the price at m + 1
    assert all(c["volume"] >= 0 and c["oi"] == 0 for c in candles)
    assert sum(c["volume"] for c in candles) > 0


def local_date(app, ts: int) -> dt.date:
    return dt.datetime.fromtimestamp(ts, local(app, 2026, 1, 1).tzinfo).date()


def test_the_simulators_candles_are_its_quotes(app, later):
    inf = info("RELIANCE")
    candles = history(inf, "1m", FRI, FRI, store.simulator_source(), now=later)
    sim = quotes.simulator()
    ten = epoch(app, 2026, 11, 13, 10, 0)
    minute = next(c for c in candles if c["timestamp"] == ten)
    assert minute["open"] == float(sim.quote(inf, at=ten).ltp)
    assert minute["close"] == float(sim.quote(inf, at=ten + 60).ltp)
    assert minute["volume"] == sim.quote(inf, at=ten + 60).volume - sim.quote(inf, at=ten).volume
    day = history(inf, "D", FRI, FRI, store.simulator_source(), now=later)
    close = sim.quote(inf, at=epoch(app, 2026, 11, 13, 15, 30))
    assert day == [{"timestamp": utc_day(FRI), "open": float(close.open), "high": float(close.high),
                    "low": float(close.low), "close": float(close.ltp), "volume": close.volume, "oi": 0}]


def test_daily_candles_agree_with_the_minutes(app, later):
    """The simulator's native D and D built from its 1m candles are the same candles."""
    for inf in (info("INFY"), info("CRUDEOIL26NOVFUT", "MCX", "FUT", "CRUDEOIL", dt.date(2026, 11, 19))):
        native = history(inf, "D", MON, FRI, store.simulator_source(), now=later)
        minutes_only = Counting(native=("1m",)).source
        built = history(inf, "D", MON, FRI, minutes_only, now=later)
        assert built == native
        assert len(native) == (4 if inf.exchange == "NSE" else 5)  # MCX trades the Tuesday evening


def test_mcx_trades_the_evening_of_an_equity_holiday(app, later):
    crude = info("CRUDEOIL26NOVFUT", "MCX", "FUT", "CRUDEOIL", dt.date(2026, 11, 19))
    candles = history(crude, "1h", TUE, TUE, store.simulator_source(), now=later)
    assert [c["timestamp"] for c in candles][0] == epoch(app, 2026, 11, 10, 17, 0)
    assert candles[-1]["timestamp"] == epoch(app, 2026, 11, 10, 23, 0)  # 23:00-23:55, the winter close
    assert all(c["oi"] > 0 for c in candles)


# -- the store: fetch what is missing, once -----------------------------------------------------------------------
def test_the_same_range_twice_makes_one_call_to_the_source(app, later):
    counted = Counting()
    first = history(info(), "5m", MON, FRI, counted.source, now=later)
    calls = len(counted.calls)
    assert calls >= 1
    again = history(info(), "5m", MON, FRI, counted.source, now=later)
    assert again == first
    assert len(counted.calls) == calls
    # a wider range asks only for the days it adds
    history(info(), "5m", MON, SUN, counted.source, now=later)
    assert len(counted.calls) == calls + 1
    assert counted.calls[-1][1] == local(app, 2026, 11, 14, 0, 0)
    # what is stored: one series of 1m candles, its count kept, one merged coverage range
    series = db.session.execute(select(CandleSeries)).scalars().all()
    assert [(s.source, s.interval, s.candles) for s in series] == [("counted", "1m", 4 * 375)]
    assert db.session.execute(select(CandleCoverage.first_day, CandleCoverage.last_day)).all() == [(MON, SUN)]


def test_holidays_and_empty_ranges_are_not_asked_again(app, later):
    counted = Counting()
    assert history(info(), "1m", dt.date(2026, 11, 14), SUN, counted.source, now=later) == []
    assert history(info(), "1m", TUE, TUE, counted.source, now=later) == []
    assert len(counted.calls) == 2
    assert history(info(), "1m", dt.date(2026, 11, 14), SUN, counted.source, now=later) == []
    assert history(info(), "1m", TUE, TUE, counted.source, now=later) == []
    assert len(counted.calls) == 2


def test_today_is_fetched_again_from_the_last_candle_until_it_is_final(app):
    counted = Counting()
    at_ten = local(app, 2026, 11, 13, 10, 0, 30)
    morning = history(info(), "1m", FRI, FRI, counted.source, now=at_ten)
    assert len(morning) == 45
    assert morning[-1]["timestamp"] == epoch(app, 2026, 11, 13, 9, 59)
    at_eleven = local(app, 2026, 11, 13, 11, 0)
    later_on = history(info(), "1m", FRI, FRI, counted.source, now=at_eleven)
    assert len(later_on) == 105
    assert later_on[:45] == morning
    assert counted.calls[-1][1] == local(app, 2026, 11, 13, 9, 59)  # from the last candle stored
    assert db.session.scalar(select(func.count()).select_from(CandleCoverage)) == 0  # not final: not covered
    evening = local(app, 2026, 11, 13, 16, 0)
    assert len(history(info(), "1m", FRI, FRI, counted.source, now=evening)) == 375
    calls = len(counted.calls)
    assert len(history(info(), "1m", FRI, FRI, counted.source, now=evening)) == 375
    assert len(counted.calls) == calls  # final now: stored once and for all
    # before the next day's session opens nothing is asked for it
    history(info(), "1m", FRI, dt.date(2026, 11, 16), counted.source, now=local(app, 2026, 11, 16, 8, 0))
    assert len(counted.calls) == calls + 1
    assert counted.calls[-1][2] < local(app, 2026, 11, 16, 0, 0)


def test_only_the_exchanges_sessions_are_stored_and_a_fresher_fetch_wins(app, later):
    nine, sunday_noon = epoch(app, 2026, 11, 13, 9, 0), epoch(app, 2026, 11, 15, 12, 0)
    inside = epoch(app, 2026, 11, 13, 9, 15)
    rows = [(nine, 1, 2, 0.5, 1.5, 10, 0), (inside, 100, 101, 99, 100.5, 7, 3), (sunday_noon, 1, 1, 1, 1, 1, 0)]
    broker = Counting("broker", KITE_LIKE, rows)
    got = history(info(), "1m", FRI, SUN, broker.source, now=later)
    assert got == [{"timestamp": inside, "open": 100.0, "high": 101.0, "low": 99.0, "close": 100.5, "volume": 7,
                    "oi": 3}]
    assert history(info(), "1m", FRI, FRI, broker.source, now=later)[0]["high"] == 101.0  # kept in memory now
    # a later fetch of the same candle (the day asked again through another range) replaces it
    broker.rows = [(inside, 100, 102, 98, 101, 9, 4)]
    store.fill(info(), "1m", FRI, FRI, broker.source, now=later)  # covered: nothing asked
    assert len(broker.calls) == 1
    db.session.execute(CandleCoverage.__table__.delete())
    db.session.commit()
    store.fill(info(), "1m", FRI, FRI, broker.source, now=later)
    assert history(info(), "1m", FRI, FRI, broker.source, now=later)[0]["high"] == 102.0  # the write is seen
    assert db.session.scalar(select(func.count()).select_from(Candle)) == 1


def test_daily_candles_are_dated_at_midnight_utc_and_periods_are_resampled(app, later):
    sim = store.simulator_source()
    days = history(info(), "D", dt.date(2026, 11, 2), dt.date(2026, 11, 30), sim, now=later)
    assert all(c["timestamp"] % 86400 == 0 for c in days)
    weeks = history(info(), "W", dt.date(2026, 11, 4), dt.date(2026, 11, 18), sim, now=later)
    assert [c["timestamp"] for c in weeks] == [utc_day(dt.date(2026, 11, d)) for d in (2, 9, 16)]  # Mondays
    week = [c for c in days if utc_day(dt.date(2026, 11, 9)) <= c["timestamp"] < utc_day(dt.date(2026, 11, 16))]
    assert weeks[1] == {"timestamp": utc_day(dt.date(2026, 11, 9)), "open": week[0]["open"],
                        "high": max(c["high"] for c in week), "low": min(c["low"] for c in week),
                        "close": week[-1]["close"], "volume": sum(c["volume"] for c in week), "oi": 0}
    months = history(info(), "M", dt.date(2026, 11, 15), dt.date(2026, 11, 15), sim, now=later)
    assert [c["timestamp"] for c in months] == [utc_day(dt.date(2026, 11, 1))]
    assert months[0]["open"] == days[0]["open"]
    assert months[0]["close"] == days[-1]["close"]


def test_intraday_buckets_start_at_the_sessions_open(app, later):
    sim = store.simulator_source()
    minutes = history(info(), "1m", FRI, FRI, sim, now=later)
    fives = history(info(), "5m", FRI, FRI, sim, now=later)
    assert len(fives) == 75
    assert fives[0]["timestamp"] == epoch(app, 2026, 11, 13, 9, 15)
    assert fives[1] == {"timestamp": minutes[5]["timestamp"], "open": minutes[5]["open"],
                        "high": max(c["high"] for c in minutes[5:10]), "low": min(c["low"] for c in minutes[5:10]),
                        "close": minutes[9]["close"], "volume": sum(c["volume"] for c in minutes[5:10]), "oi": 0}
    hours = history(info(), "1h", FRI, FRI, sim, now=later)
    assert [c["timestamp"] for c in hours] == [epoch(app, 2026, 11, 13, h, 15) for h in range(9, 16)]
    assert hours[-1]["close"] == minutes[-1]["close"]
    fours = history(info(), "4h", FRI, FRI, sim, now=later)
    assert [c["timestamp"] for c in fours] == [epoch(app, 2026, 11, 13, 9, 15), epoch(app, 2026, 11, 13, 13, 15)]


# -- the store alone, and the bounds ------------------------------------------------------------------------------
def test_the_store_alone_answers_what_it_holds(app, later):
    sim = store.simulator_source()
    assert history(info(), "5m", MON, FRI, sim, fetch=False) == []
    store.fill(info(), "1m", FRI, FRI, sim, now=later)
    stored = history(info(), "15m", MON, FRI, sim, fetch=False)
    assert len(stored) == 25  # Friday's 375 minutes, in 15s
    assert stored_history("NSE", "INFY", "1m", FRI, FRI, "another source") == []
    rows = store.series(symbol="INFY", exchange="NSE")
    assert [(r["source"], r["interval"], r["candles"]) for r in rows] == [(sim.name, "1m", 375)]
    assert rows[0]["first"] == local(app, 2026, 11, 13, 9, 15)
    assert store.moment_text(rows[0]["last"], True) == "2026-11-13 15:29"


def test_requests_are_bounded_and_checked(app, later):
    sim = store.simulator_source()
    with pytest.raises(store.HistoryError, match="at most 60 days"):
        history(info(), "1m", dt.date(2026, 9, 1), dt.date(2026, 10, 31), sim, now=later)
    with pytest.raises(store.HistoryError, match="at most 60 days"):
        history(info(), "1h", dt.date(2026, 9, 1), dt.date(2026, 10, 31), sim, now=later)  # from 1m
    with pytest.raises(store.HistoryError, match="not available from simulator: use one of 1m, 2m"):
        history(info(), "5s", FRI, FRI, sim, now=later)
    with pytest.raises(store.HistoryError, match="interval must be one of"):
        history(info(), "7m", FRI, FRI, sim, now=later)
    with pytest.raises(store.HistoryError, match="start_date must not be after end_date"):
        history(info(), "D", FRI, MON, sim, now=later)
    with pytest.raises(store.HistoryError) as found:
        history(info(), "D", FRI, FRI, store.Source("nobroker", (), lambda *a: []), now=later)
    assert found.value.status == 501
    assert db.session.scalar(select(func.count()).select_from(CandleSeries)) == 0
    # a future range stores nothing and asks nothing
    counted = Counting()
    assert history(info(), "D", dt.date(2027, 1, 4), dt.date(2027, 1, 8), counted.source, now=later) == []
    assert counted.calls == []


def test_a_download_reports_progress_over_every_day(app, later):
    steps: list[int] = []
    stored = store.fill(info(), "1m", dt.date(2026, 9, 1), dt.date(2026, 11, 15), store.simulator_source(),
                        now=later, progress=steps.append)
    assert sum(steps) == 76
    assert len(steps) >= 3
    assert stored == db.session.scalar(select(func.count()).select_from(Candle))
    assert stored % 375 == 0
    assert stored > 40 * 375
