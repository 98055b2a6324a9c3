"""Stored history: candles in the database (database/history_db.py), fetched from a source only where the store
lacks them, resampled for the intervals the source does not serve, and kept to the exchange's sessions.

A `Source` is where candles come from: its name keys the stored series ("simulator", or a broker's name), it
says which intervals it serves natively, and `fetch` returns candles of one of them. services.trading.history
picks it per call (the venue decision); `simulator_source()` below is analyze mode's: 1-minute and daily
candles from the quote simulator, deterministic, so the same instrument and day always give the same candles.

Only native intervals are stored; every other interval is built on read from the coarsest stored one that
divides it (5m from 1m, 4h from 1h, W/M/Q/Y from D). Intraday buckets start at the session's open (09:15,
10:15, ... for 1h on NSE), as brokers align theirs.

History is the exchange's: a candle outside the exchange's session that day (services.market.calendar), or a
daily candle of a day without one, is never stored, whatever ANALYZE_MARKET_HOURS says. Days fetched are
recorded (`candle_coverage`) once they are final (the session closed FINAL_AFTER ago, or there was none), so
the same range asked twice makes no second call to the source; today's candles are fetched again from the
last one stored, until the day is final.

Timestamps are Unix seconds: intraday, the candle's start; D, W, M, Q, Y, the period's first date at 00:00
UTC (W: Monday; M, Q, Y: the first day of the month, quarter, year).

Speed: an answer in a stored interval is one range read of the candles' primary key, written as JSON by the
database itself (`Candles`: no Python object per candle); the answer of a final range is also kept in the
process (`_Answers`) while its series' etag is unchanged, so a repeated range costs one small query.
"""

from __future__ import annotations

import datetime as dt
import math
import secrets
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from zoneinfo import ZoneInfo

import orjson
from sqlalchemy import and_, bindparam, case, delete, func, or_, select, text, update

from database import db, upsert
from database.history_db import Candle, CandleCoverage, CandleSeries
from database.types import utcnow
from database.unit import unit_of_work
from services.market import calendar, quotes
from services.market.symbol_index import SymbolInfo

__all__ = [
    "FIELDS", "INTERVALS", "NONE", "SIMULATOR", "SIMULATOR_INTERVALS", "Candles", "HistoryError", "Source",
    "available", "build_from", "fill", "grouped", "history", "max_days", "moment_text", "series",
    "simulator_source", "span", "stored_history",
]

# Intraday intervals by their length in seconds, in the order the API lists them; then the calendar ones.
INTRADAY = {"1s": 1, "5s": 5, "10s": 10, "15s": 15, "30s": 30, "45s": 45,
            "1m": 60, "2m": 120, "3m": 180, "5m": 300, "10m": 600, "15m": 900, "20m": 1200, "30m": 1800,
            "1h": 3600, "2h": 7200, "3h": 10800, "4h": 14400}
PERIODS = ("W", "M", "Q", "Y")
INTERVALS = (*INTRADAY, "D", *PERIODS)
# The `intervals` answer's groups (OpenAlgo's six keys; Q and Y are months, three and twelve).
GROUPS = {"seconds": "s", "minutes": "m", "hours": "h", "days": "D", "weeks": "W", "months": "MQY"}
FIELDS = ("timestamp", "open", "high", "low", "close", "volume", "oi")

SIMULATOR = "simulator"
SIMULATOR_INTERVALS = ("1m", "D")
DERIVATIVES = ("FUT", "CE", "PE")

# A request may span at most this many days, by the interval the source builds it from: 5 days of seconds,
# 60 days per minute of an intraday interval (1m: 60 days, 5m: 300, 1h: 3,600; at most 3,660), 20 years of
# days. The API's bound: it keeps one call to a few tens of thousands of candles.
SECOND_DAYS, DAYS_PER_MINUTE, INTRADAY_DAYS, DAILY_DAYS = 5, 60, 3660, 7305
# Brokers settle a day's last candles a little after the close; until then the day is fetched again.
FINAL_AFTER = dt.timedelta(minutes=15)
# Days fetched per call to the source (and per transaction): progress steps for `flask history download`.
CHUNK_DAYS = {"intraday": 30, "daily": 366}
# Answers of final ranges kept per process (_Answers): a few dozen five-day minute series, bounded so that the
# workers stay inside the memory budget (PSS <= 110 MiB) however many series users ask for.
ANSWERS_BYTES = 8 * 2**20
_EPOCH = dt.date(1970, 1, 1).toordinal()
_DAY = 86400

Row = Sequence  # (start epoch seconds, open, high, low, close, volume, oi)


class HistoryError(ValueError):
    """A history request that cannot be answered as asked; `message` says why, `status` the HTTP status."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


@dataclass(frozen=True)
class Source:
    """Where candles come from. `fetch(info, interval, start, end)`: candles of `interval` (one of `native`)
    that start within [start, end] (aware datetimes) and exist by `end`, as rows (start in Unix seconds, open,
    high, low, close, volume, oi); a daily candle may start at any moment of its day."""

    name: str
    native: tuple[str, ...]
    fetch: Callable[[SymbolInfo, str, dt.datetime, dt.datetime], Iterable[Row]]


# -- intervals ----------------------------------------------------------------------------------------------
def build_from(interval: str, native: Iterable[str]) -> str | None:
    """The native interval `interval` is built from: itself, else the coarsest native intraday interval that
    divides it (D: the coarsest intraday one; W, M, Q, Y: whatever D is built from); None when none can."""
    native = tuple(native)
    if interval in native:
        return interval
    if interval in PERIODS:
        return build_from("D", native)
    finer = [n for n in native if n in INTRADAY and (interval == "D" or INTRADAY[interval] % INTRADAY[n] == 0)]
    return max(finer, key=INTRADAY.__getitem__) if finer else None


def available(native: Iterable[str]) -> list[str]:
    """Every interval a source with these native intervals can answer, in the API's order."""
    native = tuple(native)
    return [i for i in INTERVALS if build_from(i, native) is not None]


def grouped(codes: Iterable[str]) -> dict[str, list[str]]:
    """The `intervals` answer: {seconds, minutes, hours, days, weeks, months: [codes]}."""
    codes = list(codes)
    return {group: [c for c in codes if c[-1] in suffixes] for group, suffixes in GROUPS.items()}


def max_days(base: str) -> int:
    """The longest span (calendar days) of one request built from `base` (see SECOND_DAYS ...)."""
    if base not in INTRADAY:
        return DAILY_DAYS
    seconds = INTRADAY[base]
    return SECOND_DAYS if seconds < 60 else min(INTRADAY_DAYS, DAYS_PER_MINUTE * seconds // 60)


def _check(interval: str, start: dt.date, end: dt.date) -> None:
    if interval not in INTERVALS:
        raise HistoryError(f"interval must be one of {', '.join(INTERVALS)}")
    if start > end:
        raise HistoryError("start_date must not be after end_date")


def span(interval: str, start: dt.date, end: dt.date) -> tuple[dt.date, dt.date]:
    """The days a request reads (and `fill` reports progress over): W, M, Q, Y widen it to whole periods."""
    if interval not in PERIODS:
        return start, end
    last = _period_start(interval, end)
    after = last + dt.timedelta(days=7) if interval == "W" else _add_months(last, {"M": 1, "Q": 3, "Y": 12}[interval])
    return _period_start(interval, start), after - dt.timedelta(days=1)


def _period_start(interval: str, day: dt.date) -> dt.date:
    if interval == "W":
        return day - dt.timedelta(days=day.weekday())
    if interval == "M":
        return day.replace(day=1)
    if interval == "Q":
        return day.replace(month=(day.month - 1) // 3 * 3 + 1, day=1)
    return day.replace(month=1, day=1)


def _add_months(day: dt.date, months: int) -> dt.date:
    index = day.month - 1 + months
    return day.replace(year=day.year + index // 12, month=index % 12 + 1)


# -- time ---------------------------------------------------------------------------------------------------
def _zone() -> ZoneInfo:
    return ZoneInfo(calendar.timezone_name())


def _midnight(day: dt.date, zone: ZoneInfo) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(0), tzinfo=zone)


def _utc_day(day: dt.date) -> int:
    return (day.toordinal() - _EPOCH) * _DAY


def _day_of_utc(ts: int) -> dt.date:
    return dt.date.fromordinal(ts // _DAY + _EPOCH)


def _days(first: dt.date, last: dt.date) -> Iterable[dt.date]:
    day = first
    while day <= last:
        yield day
        day += dt.timedelta(days=1)


class _Sessions:
    """The exchange's session of each day, as epoch seconds, looked up once per day."""

    def __init__(self, exchange: str, zone: ZoneInfo) -> None:
        self.exchange, self.zone = exchange, zone
        self.found: dict[dt.date, tuple[int, int] | None] = {}

    def of(self, day: dt.date) -> tuple[int, int] | None:
        if day not in self.found:
            s = calendar.session(self.exchange, day)
            self.found[day] = (int(s.open.timestamp()), int(s.close.timestamp())) if s else None
        return self.found[day]

    def day_of(self, ts: float) -> dt.date:
        return dt.datetime.fromtimestamp(ts, self.zone).date()


# -- the simulator's candles ----------------------------------------------------------------------------------
def simulator_source() -> Source:
    """Analyze mode's source: the quote simulator's 1-minute and daily candles. Its name carries the simulator's
    seed when it is not the default, so candles of another seed are another series."""
    sim = quotes.simulator()
    name = SIMULATOR if not sim.seed else f"{SIMULATOR}-{sim.seed}"

    def fetch(info: SymbolInfo, interval: str, start: dt.datetime, end: dt.datetime) -> list[Row]:
        return _simulated(sim, info, interval, start, end)

    return Source(name, SIMULATOR_INTERVALS, fetch)


def _simulated(sim: quotes.PriceSimulator, info: SymbolInfo, interval: str, start: dt.datetime,
               end: dt.datetime) -> list[Row]:
    sessions = _Sessions(info.exchange, sim.tz)
    lo, hi = start.timestamp(), end.timestamp()
    out: list[Row] = []
    for day in _days(sessions.day_of(lo), sessions.day_of(hi)):
        found = sessions.of(day)
        if found is None:
            continue
        if interval == "D":
            if found[0] <= hi:
                bar = _sim_day(sim, info, day, found, min(hi, found[1]))
                if bar is not None:
                    out.append(bar)
        else:
            out.extend(_sim_minutes(sim, info, found, lo, hi))
    return out


def _sim_minutes(sim: quotes.PriceSimulator, info: SymbolInfo, found: tuple[int, int], lo: float,
                 hi: float) -> list[Row]:
    """The session's minutes that start at or after `lo` and end by `hi`: minute m opens at the simulated price
    at its start and closes at the price at its end; volume is the growth of the day's cumulative volume."""
    opened, closed = found
    first = max(0, math.ceil((lo - opened) / 60))
    stop = min((closed - opened) // 60, math.floor((hi - opened) / 60))
    if stop <= first:
        return []
    prices = [sim.quote(info, at=opened + 60 * m) for m in range(first, stop + 1)]
    out = []
    for k in range(stop - first):
        a, b = prices[k], prices[k + 1]
        out.append((opened + 60 * (first + k), a.ltp, max(a.ltp, b.ltp), min(a.ltp, b.ltp), b.ltp,
                    b.volume - a.volume, b.oi))
    return out


def _sim_day(sim: quotes.PriceSimulator, info: SymbolInfo, day: dt.date, found: tuple[int, int],
             until: float) -> Row | None:
    """The day's candle up to `until`. The simulator's day path runs SESSION_MINUTES from SESSION_OPEN; a
    session that spans it (NSE's, MCX's) has the quote's day open/high/low and cumulative volume as its candle,
    which are exactly its minutes' (rounding to the tick keeps the order of prices). A derivative's price also
    moves with its time to expiry, so its day high and low are not its minutes', and other sessions cover part
    of the path: those days add their minutes up."""
    path_open = dt.datetime.combine(day, quotes.SESSION_OPEN, tzinfo=sim.tz).timestamp()
    path_close = path_open + quotes.SESSION_MINUTES * 60
    if info.instrumenttype not in DERIVATIVES and found[0] <= path_open and found[1] >= path_close:
        q = sim.quote(info, at=until)
        return (found[0], q.open, q.high, q.low, q.ltp, q.volume, q.oi)
    bars = _sim_minutes(sim, info, found, found[0], until)
    if not bars:
        return None
    return (found[0], bars[0][1], max(b[2] for b in bars), min(b[3] for b in bars), bars[-1][4],
            sum(b[5] for b in bars), bars[-1][6])


# -- the store ------------------------------------------------------------------------------------------------
_S = CandleSeries.__table__
_C = Candle.__table__
_V = CandleCoverage.__table__
# Statements built once: SQLAlchemy caches their compiled form, and building one costs more than running it.
_SERIES = select(_S.c.id, _S.c.etag).where(
    _S.c.source == bindparam("source"), _S.c.exchange == bindparam("exchange"), _S.c.symbol == bindparam("symbol"),
    _S.c.interval == bindparam("interval"))
_STORED = select(_S.c.interval, _S.c.id).where(
    _S.c.source == bindparam("source"), _S.c.exchange == bindparam("exchange"), _S.c.symbol == bindparam("symbol"))
_LAST_TS = select(_S.c.last_ts).where(_S.c.id == bindparam("sid"))
_ETAG = select(_S.c.etag).where(_S.c.id == bindparam("sid"))
_COVERED = (select(_V.c.first_day, _V.c.last_day)
            .where(_V.c.series_id == bindparam("sid"), _V.c.first_day <= bindparam("last"),
                   _V.c.last_day >= bindparam("first"))
            .order_by(_V.c.first_day))
_READ = (select(_C.c.ts, _C.c.open, _C.c.high, _C.c.low, _C.c.close, _C.c.volume, _C.c.oi)
         .where(_C.c.series_id == bindparam("sid"), _C.c.ts >= bindparam("lo"), _C.c.ts < bindparam("hi"))
         .order_by(_C.c.ts))
# The answer as the database writes it: one range read of the primary key, its rows as JSON objects (keys in
# the API's sorted order), joined in time order. SQLite keeps the subquery's order (an aggregate outer query
# never flattens an ordered subquery); PostgreSQL is told.
_READ_JSON = {
    "sqlite": text(
        "SELECT count(*), '[' || coalesce(group_concat(o, ','), '') || ']' FROM (SELECT json_object("
        "'close', close, 'high', high, 'low', low, 'oi', oi, 'open', open, 'timestamp', ts, 'volume', volume) AS o "
        "FROM candles WHERE series_id = :sid AND ts >= :lo AND ts < :hi ORDER BY ts)"),
    "postgresql": text(
        "SELECT count(*), coalesce(json_agg(r ORDER BY r.\"timestamp\"), '[]')::text FROM (SELECT close, high, low, "
        "oi, open, ts AS \"timestamp\", volume FROM candles WHERE series_id = :sid AND ts >= :lo AND ts < :hi) AS r"),
}


def _series_id(source: str, exchange: str, symbol: str, interval: str, *, create: bool) -> int | None:
    key = {"source": source, "exchange": exchange, "symbol": symbol, "interval": interval}
    found = db.session.scalar(_SERIES, key)
    if found is not None or not create:
        return found
    with unit_of_work():
        stmt = upsert(_S, db.session.get_bind().dialect.name).values(**key, candles=0, updated_at=utcnow(), etag="")
        db.session.execute(stmt.on_conflict_do_nothing(index_elements=["source", "exchange", "symbol", "interval"]))
    return db.session.scalar(_SERIES, key)


def _covered(series_id: int, first: dt.date, last: dt.date) -> list[tuple[dt.date, dt.date]]:
    return [(a, b) for a, b in db.session.execute(_COVERED, {"sid": series_id, "first": first, "last": last})]


def _gaps(covered: list[tuple[dt.date, dt.date]], first: dt.date, last: dt.date) -> list[tuple[dt.date, dt.date]]:
    out, day = [], first
    for a, b in covered:
        if a > day:
            out.append((day, min(a - dt.timedelta(days=1), last)))
        day = max(day, b + dt.timedelta(days=1))
        if day > last:
            return out
    if day <= last:
        out.append((day, last))
    return out


def _cover(series_id: int, first: dt.date, last: dt.date) -> None:
    """Record [first, last] as fetched, merged with the ranges it touches (in the caller's unit)."""
    one = dt.timedelta(days=1)
    touching = db.session.execute(select(_V.c.first_day, _V.c.last_day).where(
        _V.c.series_id == series_id, _V.c.first_day <= last + one, _V.c.last_day >= first - one)).all()
    lo = min([first, *(a for a, _ in touching)])
    hi = max([last, *(b for _, b in touching)])
    if touching:
        db.session.execute(delete(_V).where(_V.c.series_id == series_id,
                                            _V.c.first_day.in_([a for a, _ in touching])))
    stmt = upsert(_V, db.session.get_bind().dialect.name).values(series_id=series_id, first_day=lo, last_day=hi)
    # Another process may have merged the same range meanwhile (PostgreSQL): keep the longer of the two.
    db.session.execute(stmt.on_conflict_do_update(
        index_elements=["series_id", "first_day"],
        set_={"last_day": case((stmt.excluded.last_day > _V.c.last_day, stmt.excluded.last_day),
                               else_=_V.c.last_day)}))


def _normalize(rows: Iterable[Row], interval: str, sessions: _Sessions, now: float) -> list[dict]:
    """The rows as the store keeps them, only those in the exchange's sessions and not in the future."""
    out: list[dict] = []
    intraday = interval in INTRADAY
    for start, o, h, lo, c, v, oi in rows:
        start = int(start)
        if start > now:
            continue
        day = sessions.day_of(start)
        found = sessions.of(day)
        if found is None or (intraday and not found[0] <= start < found[1]):
            continue
        out.append({"series_id": 0, "ts": start if intraday else _utc_day(day), "open": float(o), "high": float(h),
                    "low": float(lo), "close": float(c), "volume": int(v or 0), "oi": int(oi or 0)})
    return out


def _store(series_id: int, rows: list[dict]) -> None:
    """Upsert the candles (a fresher fetch wins) and bring the series' count and ends up to date."""
    for row in rows:
        row["series_id"] = series_id
    if rows:
        stmt = upsert(_C, db.session.get_bind().dialect.name)
        stmt = stmt.on_conflict_do_update(index_elements=["series_id", "ts"],
                                          set_={k: stmt.excluded[k] for k in FIELDS[1:]})
        db.session.execute(stmt, rows)
    mine = _C.c.series_id == series_id
    db.session.execute(update(_S).where(_S.c.id == series_id).values(
        candles=select(func.count()).select_from(_C).where(mine).scalar_subquery(),
        first_ts=select(func.min(_C.c.ts)).where(mine).scalar_subquery(),
        last_ts=select(func.max(_C.c.ts)).where(mine).scalar_subquery(),
        updated_at=utcnow(), etag=secrets.token_hex(8)))


def _final_and_open(exchange: str, now: dt.datetime) -> tuple[dt.date, dt.date]:
    """(the last day whose candles are final, the last day that has any yet)."""
    today = calendar.local_date(now)
    yesterday = today - dt.timedelta(days=1)
    s = calendar.session(exchange, today)
    if s is None or now >= s.close + FINAL_AFTER:
        return today, today
    return yesterday, (today if now >= s.open else yesterday)


def _chunks(first: dt.date, last: dt.date, days: int) -> Iterable[tuple[dt.date, dt.date]]:
    while first <= last:
        end = min(last, first + dt.timedelta(days=days - 1))
        yield first, end
        first = end + dt.timedelta(days=1)


def _plan(interval: str, start: dt.date, end: dt.date, native: Sequence[str], source: str,
          bounded: bool) -> tuple[str, dt.date, dt.date]:
    _check(interval, start, end)
    base = build_from(interval, native)
    if base is None:
        if not native:
            raise HistoryError(f"{source} has no historical data", 501)
        raise HistoryError(f"interval {interval} is not available from {source}: "
                           f"use one of {', '.join(available(native))}")
    if bounded and (end - start).days + 1 > max_days(base):
        raise HistoryError(f"a {interval} history spans at most {max_days(base)} days per request: "
                           f"ask for {start.isoformat()} to {end.isoformat()} in parts")
    first, last = span(interval, start, end)
    return base, first, last


def fill(info: SymbolInfo, interval: str, start: dt.date, end: dt.date, source: Source, *,
         now: dt.datetime | None = None, progress: Callable[[int], None] | None = None) -> int:
    """Fetch from `source` the days of [start, end] the store lacks for `interval` (the native interval it is
    built from), store them and record the final ones. Returns the candles stored. Each chunk of days is a unit
    of work of its own, so an interrupted fill keeps what it stored. `progress(days)` is called as days are
    done, adding up to the span's days. Call it outside a unit of work: the source is called with none open.
    HistoryError when the interval cannot be built from the source."""
    base, first, last = _plan(interval, start, end, source.native, source.name, False)
    return _fill(info, base, first, last, source, now or utcnow(), progress)[1]


def _fill(info: SymbolInfo, base: str, first: dt.date, last: dt.date, source: Source, now: dt.datetime,
          progress: Callable[[int], None] | None) -> tuple[int | None, int]:
    """(the series' id, None when nothing of it exists yet; the candles stored)."""
    zone = _zone()
    sessions = _Sessions(info.exchange, zone)
    final, reached = _final_and_open(info.exchange, now)
    series_id = _series_id(source.name, info.exchange, info.symbol, base, create=first <= reached)
    done = stored = 0

    def advance(to: dt.date) -> None:
        nonlocal done
        step = (min(to, last) - first).days + 1 - done
        if progress is not None and step > 0:
            progress(step)
        done += max(step, 0)

    def fetch(begin: dt.datetime, day: dt.date, final_day: bool) -> None:
        nonlocal stored
        finish = min(_midnight(day + dt.timedelta(days=1), zone) - dt.timedelta(seconds=1), now)
        rows = _normalize(source.fetch(info, base, begin, finish), base, sessions, now.timestamp())
        with unit_of_work(write=True):
            _store(series_id, rows)
            if final_day:
                _cover(series_id, begin.astimezone(zone).date(), day)
        stored += len(rows)
        advance(day)

    if series_id is not None:
        chunk = CHUNK_DAYS["intraday" if base in INTRADAY else "daily"]
        for a, b in _gaps(_covered(series_id, first, min(last, reached)), first, min(last, reached)):
            for lo, hi in _chunks(a, min(b, final), chunk):
                fetch(_midnight(lo, zone), hi, True)
            if b > final:  # today, not final yet: again, from the last candle stored
                begin = _midnight(b, zone)
                last_ts = db.session.scalar(_LAST_TS, {"sid": series_id})
                if base in INTRADAY and last_ts is not None and last_ts >= begin.timestamp():
                    begin = dt.datetime.fromtimestamp(last_ts, zone)
                fetch(begin, b, False)
    advance(last)
    return series_id, stored


@dataclass(frozen=True)
class Candles:
    """Candles as the API answers them: `json`, a JSON array of {close, high, low, oi, open, timestamp, volume}
    objects oldest first (written by the database itself when the interval asked is the one stored), and how
    many there are."""

    count: int
    json: bytes

    def rows(self) -> list[dict]:
        return orjson.loads(self.json)


NONE = Candles(0, b"[]")


def stored_history(exchange: str, symbol: str, interval: str, start: dt.date, end: dt.date, source: str) -> Candles:
    """The candles of [start, end] the store holds for `source`, built from the coarsest stored series that
    can (nothing is fetched). HistoryError for a bad interval or range."""
    _check(interval, start, end)
    stored = dict(db.session.execute(_STORED, {"source": source, "exchange": exchange, "symbol": symbol}).all())
    base = build_from(interval, stored)
    if base is None:
        return NONE
    first, last = span(interval, start, end)
    return _answer(exchange, interval, base, first, last, stored[base])


def history(info: SymbolInfo, interval: str, start: dt.date, end: dt.date, source: Source, *,
            fetch: bool = True, now: dt.datetime | None = None) -> Candles:
    """The `history` data of one instrument. With `fetch`, what the store lacks is fetched from `source` first
    (see `fill`; the span is bounded by `max_days`); without, the store alone answers (`stored_history`).
    HistoryError (400, or 501 for a source without history) when the request cannot be answered."""
    if not fetch:
        _plan(interval, start, end, INTERVALS, source.name, True)  # the same bound, whatever is stored
        return stored_history(info.exchange, info.symbol, interval, start, end, source.name)
    base, first, last = _plan(interval, start, end, source.native, source.name, True)
    now = now or utcnow()
    final = last <= _final_and_open(info.exchange, now)[0]
    key = (source.name, info.exchange, info.symbol, base, interval, first, last)
    if final:  # a range that will not change: its answer may be kept (_Answers), while its series is unchanged
        row = db.session.execute(_SERIES, {"source": source.name, "exchange": info.exchange, "symbol": info.symbol,
                                           "interval": base}).first()
        kept = _answers.get(key, (row.id, row.etag)) if row is not None else None
        if kept is not None:
            return kept
    series_id, _ = _fill(info, base, first, last, source, now, None)
    if series_id is None:
        return NONE
    # The etag is read before the candles: a write between the two leaves the kept answer under an old etag,
    # never a newer etag on an older answer.
    etag = db.session.scalar(_ETAG, {"sid": series_id}) if final else None
    candles = _answer(info.exchange, interval, base, first, last, series_id)
    if etag is not None:
        _answers.put(key, (series_id, etag), candles)
    return candles


class _Answers:
    """Answers of final ranges in this process, by (source, exchange, symbol, series interval, interval, first
    day, last day), each with the (id, etag) of its series when it was read: every write to a series changes its
    etag, in whatever process it is made, so an answer is served only while its series is unchanged. The least
    recently used go first beyond `budget` bytes. A repeated range is then one small query, not thousands of
    rows."""

    def __init__(self, budget: int) -> None:
        self.budget, self.used = budget, 0
        self.kept: OrderedDict[tuple, tuple[tuple, Candles]] = OrderedDict()
        self.lock = threading.Lock()

    def get(self, key: tuple, version: tuple) -> Candles | None:
        with self.lock:
            found = self.kept.get(key)
            if found is None or found[0] != version:
                return None
            self.kept.move_to_end(key)
            return found[1]

    def put(self, key: tuple, version: tuple, candles: Candles) -> None:
        size = len(candles.json)
        if size > self.budget // 4:
            return
        with self.lock:
            old = self.kept.pop(key, None)
            self.used -= len(old[1].json) if old else 0
            self.kept[key] = (version, candles)
            self.used += size
            while self.used > self.budget:
                _, (_, dropped) = self.kept.popitem(last=False)
                self.used -= len(dropped.json)


_answers = _Answers(ANSWERS_BYTES)


def _answer(exchange: str, interval: str, base: str, first: dt.date, last: dt.date, series_id: int | None) -> Candles:
    if series_id is None:
        return NONE
    zone = _zone()
    if base in INTRADAY:
        lo, hi = int(_midnight(first, zone).timestamp()), int(_midnight(last + dt.timedelta(days=1), zone).timestamp())
    else:
        lo, hi = _utc_day(first), _utc_day(last + dt.timedelta(days=1))
    params = {"sid": series_id, "lo": lo, "hi": hi}
    if interval == base:
        count, text_ = db.session.execute(_READ_JSON[db.session.get_bind().dialect.name], params).one()
        return Candles(count, text_.encode())
    rows = db.session.execute(_READ, params).all()
    sessions = _Sessions(exchange, zone)
    if interval in INTRADAY:
        rows = _by_session(rows, sessions, INTRADAY[interval])
    else:
        rows = _by_day(rows, sessions) if base in INTRADAY else rows
        if interval in PERIODS:
            rows = _merge(rows, lambda ts: _utc_day(_period_start(interval, _day_of_utc(ts))))
    return Candles(len(rows), orjson.dumps([dict(zip(FIELDS, row, strict=True)) for row in rows],
                                           option=orjson.OPT_SORT_KEYS))


# -- resampling -----------------------------------------------------------------------------------------------
def _merge(rows: Iterable[Row], key: Callable[[int], int | None]) -> list[list]:
    """Candles merged by `key(ts)` (None: dropped): first open, highest high, lowest low, last close, summed
    volume, last open interest. `rows` are in time order, so equal keys are neighbours."""
    out: list[list] = []
    current = None
    for ts, o, h, lo, c, v, oi in rows:
        k = key(ts)
        if k is None:
            continue
        if k != current:
            out.append([k, o, h, lo, c, v, oi])
            current = k
            continue
        bar = out[-1]
        bar[2] = max(bar[2], h)
        bar[3] = min(bar[3], lo)
        bar[4], bar[6] = c, oi
        bar[5] += v
    return out


def _by_session(rows: Iterable[Row], sessions: _Sessions, seconds: int) -> list[list]:
    """Intraday candles in buckets of `seconds` counted from each session's open."""
    window: list[int] = [0, 0]

    def key(ts: int) -> int | None:
        if not window[0] <= ts < window[1]:
            found = sessions.of(sessions.day_of(ts))
            if found is None or not found[0] <= ts < found[1]:
                return None
            window[:] = found
        return window[0] + (ts - window[0]) // seconds * seconds

    return _merge(rows, key)


def _by_day(rows: Iterable[Row], sessions: _Sessions) -> list[list]:
    def key(ts: int) -> int | None:
        day = sessions.day_of(ts)
        return _utc_day(day) if sessions.of(day) is not None else None

    return _merge(rows, key)


# -- what is stored -------------------------------------------------------------------------------------------
def moment_text(moment: dt.datetime | None, intraday: bool) -> str:
    """A stored candle's time as pages and the CLI write it: intraday in exchange time, daily ones as dates."""
    if moment is None:
        return "-"
    return moment.astimezone(_zone()).strftime("%Y-%m-%d %H:%M") if intraday else moment.date().isoformat()


def series(*, exchange: str | None = None, symbol: str | None = None, prefix: str | None = None,
           after: tuple[str, int] | None = None, limit: int = 200) -> list[dict]:
    """Stored series, by symbol then id: id, source, exchange, symbol, interval, candles, first and last (aware
    UTC datetimes of the first and last candle, or None), updated_at. Filters: an exact exchange and symbol, or
    a symbol prefix; `after` = (symbol, id) of the last row of the previous page (keyset paging)."""
    q = select(_S).order_by(_S.c.symbol, _S.c.id).limit(max(1, min(limit, 1000)))
    if exchange:
        q = q.where(_S.c.exchange == exchange)
    if symbol:
        q = q.where(_S.c.symbol == symbol)
    if prefix:
        q = q.where(_S.c.symbol.startswith(prefix, autoescape=True))
    if after is not None:
        q = q.where(or_(_S.c.symbol > after[0], and_(_S.c.symbol == after[0], _S.c.id > after[1])))

    def moment(ts: int | None) -> dt.datetime | None:
        return None if ts is None else dt.datetime.fromtimestamp(ts, dt.UTC)

    return [{"id": r.id, "source": r.source, "exchange": str(r.exchange), "symbol": r.symbol, "interval": r.interval,
             "intraday": r.interval in INTRADAY, "candles": r.candles, "first": moment(r.first_ts),
             "last": moment(r.last_ts), "updated_at": r.updated_at}
            for r in db.session.execute(q)]
