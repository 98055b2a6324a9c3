"""The market calendar: when each exchange trades, day by day, and when its intraday positions are squared off.

Three layers, the later winning:
  1. the regular week (calendar_data/sessions.toml): each exchange's hours and MIS square-off time,
     Monday to Friday; index exchanges follow their cash market (NSE_INDEX follows NSE);
  2. the shipped year (calendar_data/<year>.toml): holidays (exchanges closed all day, or trading other
     hours, such as MCX's evening session on an equity holiday) and special sessions (Muhurat trading);
  3. admins' edits in the database (`market_calendar_entries`, database/calendar_db.py): a holiday, a
     special session, or `open` (a shipped holiday cancelled), made on /calendar or with `flask calendar`.

Times in the data are exchange time (EXCHANGE_TIMEZONE); everything this module answers is UTC.

Speed: `session`, `is_open` and `last_squareoff` run for every order, so they read no database: each
year's merged calendar is kept in the two-level cache (database.cache, namespace `market_calendar`, one
entry per year), dropped in every process when an edit commits; on top of it a per-process memo keeps the
parsed days and the sessions already computed, valid for as long as the cache hands back the same entry.

Years without a data file: `timings` and `holidays` (the API) raise CalendarUnavailable naming the
years there are, and an edit can only be made in a known year; the order path (`session`, `is_open`,
`next_open`, `last_squareoff`) follows the regular week there, with a warning logged once per year, so
analyze mode keeps trading when the shipped lists run out (until the next year's list is shipped).
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
import re
import threading
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from flask import current_app
from sqlalchemy import select

import config as config_module
from database import cache, db
from database.audit_db import AuditEvent
from database.calendar_db import CalendarEntry
from database.enums import CalendarKind
from database.types import utcnow
from database.unit import unit_of_work
from database.user_db import User
from vocabulary import EXCHANGES

__all__ = [
    "CACHE_NS", "CalendarError", "CalendarUnavailable", "EntryNotFound", "Session", "add_entry", "calendar_days",
    "current_year", "entries", "exchanges", "holidays", "is_open", "last_squareoff", "local_date", "next_open",
    "parse_time", "regular_hours", "regular_squareoff", "remove_entry", "session", "shipped_years",
    "timezone_name", "timings", "token",
]

DATA_DIR = Path(__file__).with_name("calendar_data")
log = logging.getLogger("algobridge.calendar")

CACHE_NS = "market_calendar"
SEARCH_DAYS = 15  # how far next_open looks ahead, and last_squareoff back
DESCRIPTION_MAX = 200

# OpenAlgo's holiday types (market/holidays)
TRADING_HOLIDAY = "TRADING_HOLIDAY"
SPECIAL_SESSION = "SPECIAL_SESSION"

# The state of one exchange on one day, as the merged calendar stores it (JSON-friendly: it goes
# through Redis): [state, start "HH:MM" | None, end "HH:MM" | None, description].
CLOSED = "closed"  # no session
HOURS = "hours"  # a holiday's other hours (end None: the exchange's regular close that day)
SPECIAL = "special"  # a special session, start to end
REGULAR = "regular"  # the regular session, whatever the shipped data said (an `open` edit)

_WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_HHMM = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")


class CalendarError(ValueError):
    """A calendar question that has no answer, or an edit that is refused; the message says why."""


class CalendarUnavailable(CalendarError):
    """The year has no calendar data (no calendar_data/<year>.toml)."""


class EntryNotFound(CalendarError, LookupError):
    """No edit has that id."""


@dataclass(frozen=True)
class Session:
    """One exchange's trading session on one day. Times are aware UTC datetimes.

    `special`: the hours are not the regular week's (a special session, or a holiday on which the exchange
    trades other hours); `description`: the holiday or session it comes from ("" on a regular day);
    `squareoff`: the MIS square-off moment, None where nothing intraday is traded (index exchanges)."""

    exchange: str
    open: dt.datetime
    close: dt.datetime
    squareoff: dt.datetime | None
    special: bool
    description: str


# -- the regular week (sessions.toml) -----------------------------------------------------------------------
def parse_time(text: Any, what: str = "time") -> dt.time:
    """'09:15' -> time(9, 15); CalendarError for anything but a 24-hour HH:MM."""
    match = _HHMM.match(text.strip()) if isinstance(text, str) else None
    if match is None:
        raise CalendarError(f"{what} must be a time of day written HH:MM (24-hour), not {text!r}")
    return dt.time(int(match.group(1)), int(match.group(2)))


def _minutes(t: dt.time) -> int:
    return t.hour * 60 + t.minute


def _at(minutes: int) -> dt.time:
    return dt.time(minutes // 60, minutes % 60)


@dataclass(frozen=True)
class _Regular:
    open: dt.time
    close: dt.time
    squareoff: dt.time | None
    winter_zone: str | None = None  # while this zone keeps standard time, the close is `winter_close`
    winter_close: dt.time | None = None

    def close_on(self, day: dt.date) -> dt.time:
        if self.winter_zone and self.winter_close:
            noon = dt.datetime.combine(day, dt.time(12), tzinfo=ZoneInfo(self.winter_zone))
            if not noon.dst():
                return self.winter_close
        return self.close

    def squareoff_in(self, start: dt.time, end: dt.time) -> dt.time | None:
        """The square-off of a session from `start` to `end`: the regular time when it falls inside, else
        the end less the regular lead (close - squareoff), never before the start."""
        if self.squareoff is None:
            return None
        if start < self.squareoff <= end:
            return self.squareoff
        lead = _minutes(self.close) - _minutes(self.squareoff)
        return _at(max(_minutes(start), _minutes(end) - lead))


@dataclass(frozen=True)
class _Week:
    weekdays: frozenset[int]
    regular: dict[str, _Regular]  # exchanges with sessions of their own, in the file's order
    follows: dict[str, str]  # index exchange -> the exchange it follows

    @property
    def order(self) -> tuple[str, ...]:
        return tuple(self.regular)


@functools.cache
def _week() -> _Week:
    path = DATA_DIR / "sessions.toml"
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    try:
        weekdays = frozenset(_WEEKDAYS.index(d) for d in data["weekdays"])
    except (KeyError, ValueError):
        raise CalendarError(f"{path}: weekdays must list days as {', '.join(_WEEKDAYS)}") from None
    regular: dict[str, _Regular] = {}
    follows: dict[str, str] = {}
    for name, spec in data.get("exchanges", {}).items():
        if "follows" in spec:
            follows[name] = spec["follows"]
            continue
        winter = spec.get("us_standard_time") or {}
        r = _Regular(open=parse_time(spec["open"], f"{name} open"), close=parse_time(spec["close"], f"{name} close"),
                     squareoff=parse_time(spec["squareoff"], f"{name} squareoff") if "squareoff" in spec else None,
                     winter_zone=winter.get("zone"),
                     winter_close=parse_time(winter["close"], f"{name} winter close") if winter else None)
        if not r.open < r.close or (r.squareoff is not None and not r.open < r.squareoff <= r.close):
            raise CalendarError(f"{path}: {name} needs open < squareoff <= close")
        regular[name] = r
    missing = [e for e in EXCHANGES if e not in regular and e not in follows]
    bad = [f"{e} -> {p}" for e, p in follows.items() if p not in regular]
    if missing or bad:
        raise CalendarError(f"{path}: no sessions for {', '.join(missing + bad)}")
    return _Week(weekdays, regular, follows)


def exchanges() -> tuple[str, ...]:
    """The exchanges with sessions of their own (index exchanges follow one of them), in calendar order."""
    return _week().order


def regular_squareoff(exchange: str) -> dt.time | None:
    """The exchange's MIS square-off time of the regular week (exchange time; the same all year, while
    MCX's close moves with the season); None for index exchanges."""
    week = _week()
    if exchange in week.follows:
        return None
    return _regular(exchange).squareoff


def regular_hours(exchange: str) -> tuple[dt.time, dt.time, dt.time | None]:
    """(open, close, MIS square-off) of the exchange's regular session, exchange time (an index exchange:
    the one it follows; MCX's close of the summer)."""
    found = _regular(exchange)
    return found.open, found.close, found.squareoff


def _regular(exchange: str) -> _Regular:
    week = _week()
    found = week.regular.get(week.follows.get(exchange, exchange))
    if found is None:
        raise CalendarError(f"{exchange!r} is not an exchange of the market calendar "
                            f"({', '.join(week.order + tuple(week.follows))})")
    return found


# -- the shipped years (<year>.toml) ------------------------------------------------------------------------
@functools.cache
def shipped_years() -> tuple[int, ...]:
    """The years the calendar knows (a calendar_data/<year>.toml each), in order."""
    return tuple(sorted(int(p.stem) for p in DATA_DIR.glob("[0-9][0-9][0-9][0-9].toml")))


_WARNED: set[int] = set()  # years without data already warned about (once per process)


def _require_year(year: int) -> None:
    if year not in shipped_years():
        known = ", ".join(str(y) for y in shipped_years()) or "none"
        raise CalendarUnavailable(f"no market calendar for {year}: the calendar covers {known}")


def _checked_exchanges(names: Iterable[Any], where: str) -> list[str]:
    order = _week().order
    out: list[str] = []
    for name in names:
        if name not in order:
            raise CalendarError(f"{where}: {name!r} is not one of {', '.join(order)}")
        if name not in out:
            out.append(name)
    return out


@functools.cache
def _shipped(year: int) -> dict[str, dict[str, list]]:
    """The shipped year as day -> exchange -> state (see CLOSED ...), checked; plus the descriptions.
    A year without a data file has no day of its own (the regular week)."""
    if year not in shipped_years():
        return {}
    path = DATA_DIR / f"{year}.toml"
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    if data.get("year") != year:
        raise CalendarError(f"{path}: year must be {year}")
    days: dict[str, dict[str, list]] = {}

    def day_of(item: dict, kind: str) -> dict[str, list]:
        day = item.get("date")
        text = item.get("description")
        if not isinstance(day, dt.date) or day.year != year or not isinstance(text, str) or not text.strip():
            raise CalendarError(f"{path}: each {kind} needs a date in {year} and a description: {item!r}")
        return days.setdefault(day.isoformat(), {})

    for item in data.get("holidays", []):
        states = day_of(item, "holiday")
        text = item["description"].strip()
        where = f"{path} {item['date']}"
        for name in _checked_exchanges(item.get("closed", []), where):
            states[name] = [CLOSED, None, None, text]
        for hours in item.get("open", []):
            (name,) = _checked_exchanges([hours.get("exchange")], where)
            if name in states:
                raise CalendarError(f"{where}: {name} is listed twice")
            start = parse_time(hours.get("start"), f"{where} {name} start")
            end = parse_time(hours["end"], f"{where} {name} end") if "end" in hours else None
            if end is not None and not start < end:
                raise CalendarError(f"{where}: {name} needs start < end")
            states[name] = [HOURS, start.strftime("%H:%M"), end.strftime("%H:%M") if end else None, text]
    for item in data.get("special_sessions", []):
        states = day_of(item, "special session")
        where = f"{path} {item['date']}"
        start, end = parse_time(item.get("start"), f"{where} start"), parse_time(item.get("end"), f"{where} end")
        if not start < end:
            raise CalendarError(f"{where}: needs start < end")
        for name in _checked_exchanges(item.get("exchanges", []), where):
            states[name] = [SPECIAL, start.strftime("%H:%M"), end.strftime("%H:%M"), item["description"].strip()]
    return days


# -- the merged year: shipped data + edits, in the two-level cache --------------------------------------------
def _load_year(year: int) -> dict[str, Any]:
    """The year's calendar as the cache keeps it: {"days": {iso day: {"x": {exchange: state}, "shipped":
    bool, "edited": bool}}}. One query (the year's edits)."""
    if year not in shipped_years() and year not in _WARNED:
        _WARNED.add(year)
        log.warning("market calendar: no holiday list for %s (shipped: %s); the regular week applies, add "
                    "holidays with `flask calendar`", year, ", ".join(map(str, shipped_years())))
    days: dict[str, dict[str, Any]] = {}
    for iso, states in _shipped(year).items():
        days[iso] = {"x": {name: list(state) for name, state in states.items()}, "shipped": True, "edited": False}
    rows = db.session.scalars(select(CalendarEntry).where(CalendarEntry.day >= dt.date(year, 1, 1),
                                                          CalendarEntry.day <= dt.date(year, 12, 31))
                              .order_by(CalendarEntry.id))
    for row in rows:  # later edits win over earlier ones
        day = days.setdefault(row.day.isoformat(), {"x": {}, "shipped": False, "edited": False})
        day["edited"] = True
        for name in row.exchange_list:
            if row.kind == CalendarKind.HOLIDAY:
                day["x"][name] = [CLOSED, None, None, row.description]
            elif row.kind == CalendarKind.SPECIAL_SESSION and row.start_time and row.end_time:
                day["x"][name] = [SPECIAL, row.start_time.strftime("%H:%M"), row.end_time.strftime("%H:%M"),
                                  row.description]
            else:
                day["x"][name] = [REGULAR, None, None, row.description]
    return {"days": days}


@dataclass
class _Year:
    """One year, parsed for fast answers: day -> exchange -> state, and the sessions already computed."""

    raw: Any
    zone: Any
    days: dict[dt.date, dict[str, list]]
    sessions: dict[tuple[str, dt.date], Session | None] = field(default_factory=dict)


_memo: dict[int, _Year] = {}
_memo_lock = threading.Lock()


def token(year: int) -> Any:
    """An object that changes when the year's merged calendar does (an edit, a reload): for memos over
    the calendar's answers."""
    return _year(year).raw


def _year(year: int) -> _Year:
    raw = cache.current().get_or_load(CACHE_NS, str(year), lambda: _load_year(year))
    zone = config_module.exchange_tz(current_app.config)
    found = _memo.get(year)
    if found is not None and found.raw is raw and found.zone is zone:
        return found
    parsed = _Year(raw, zone, {dt.date.fromisoformat(iso): day["x"] for iso, day in raw["days"].items()})
    with _memo_lock:
        _memo[year] = parsed
    return parsed


def _zone():
    return config_module.exchange_tz(current_app.config)


def local_date(now: dt.datetime) -> dt.date:
    """The exchange's calendar day at `now` (an aware datetime)."""
    if now.tzinfo is None or now.utcoffset() is None:
        raise CalendarError("the time must be timezone-aware")
    return now.astimezone(_zone()).date()


def current_year() -> int:
    """The exchange's calendar year now."""
    return local_date(utcnow()).year


def timezone_name() -> str:
    """The exchange time zone's name (EXCHANGE_TIMEZONE), e.g. Asia/Kolkata."""
    return str(_zone())


def _utc(day: dt.date, t: dt.time, zone: Any) -> dt.datetime:
    return dt.datetime.combine(day, t, tzinfo=zone).astimezone(dt.UTC)


def _hours(exchange: str, day: dt.date, state: list | None, weekday_open: bool) -> tuple | None:
    """(start, end, special, description) in exchange time, or None when closed."""
    regular = _regular(exchange)
    kind = state[0] if state else None
    if kind == CLOSED or (kind is None and not weekday_open):
        return None
    if kind in (HOURS, SPECIAL):
        end = parse_time(state[2]) if state[2] else regular.close_on(day)
        return parse_time(state[1]), end, True, state[3]
    return regular.open, regular.close_on(day), False, state[3] if state else ""


# -- the questions --------------------------------------------------------------------------------------------
def session(exchange: str, day: dt.date) -> Session | None:
    """The exchange's session on `day` (exchange time's calendar day); None when it is closed that day."""
    year = _year(day.year)
    key = (exchange, day)
    if key in year.sessions:
        return year.sessions[key]
    week = _week()
    parent = week.follows.get(exchange, exchange)
    regular = _regular(exchange)
    found = _hours(parent, day, year.days.get(day, {}).get(parent), day.weekday() in week.weekdays)
    result = None
    if found is not None:
        start, end, special, description = found
        squareoff = None if exchange in week.follows else regular.squareoff_in(start, end)
        result = Session(exchange=exchange, open=_utc(day, start, year.zone), close=_utc(day, end, year.zone),
                         squareoff=_utc(day, squareoff, year.zone) if squareoff else None, special=special,
                         description=description)
    year.sessions[key] = result
    return result


def is_trading_day(exchange: str, day: dt.date) -> bool:
    """Whether the exchange has a session on `day`; in a year the calendar does not know, whether `day` is a
    regular weekday (Monday to Friday)."""
    try:
        return session(exchange, day) is not None
    except CalendarUnavailable:
        return day.weekday() < 5


def is_open(exchange: str, now: dt.datetime) -> bool:
    """Whether the exchange is in session at `now` (open <= now < close). False in a year the calendar does
    not know: a session there is not known to exist."""
    try:
        found = session(exchange, local_date(now))
    except CalendarUnavailable:
        return False
    return found is not None and found.open <= now < found.close


def next_open(exchange: str, now: dt.datetime) -> dt.datetime:
    """The open (UTC) of the exchange's next session: today's when `now` is before it, else the first
    session after today. CalendarError when none is found in SEARCH_DAYS days or the calendar ends first."""
    today = local_date(now)
    for offset in range(SEARCH_DAYS + 1):
        day = today + dt.timedelta(days=offset)
        try:
            found = session(exchange, day)
        except CalendarUnavailable as exc:
            raise CalendarUnavailable(f"no {exchange} session is known after {today}: {exc}") from None
        if found is not None and found.open > now:
            return found.open
    raise CalendarError(f"no {exchange} session in the {SEARCH_DAYS} days after {today}")


def last_squareoff(exchange: str, now: dt.datetime) -> dt.datetime | None:
    """The latest MIS square-off moment (UTC) at or before `now`, on a day the exchange had a session;
    None when there is none in the SEARCH_DAYS days before (or the known years end first), or the
    exchange has no intraday product."""
    today = local_date(now)
    for offset in range(SEARCH_DAYS + 1):
        try:
            found = session(exchange, today - dt.timedelta(days=offset))
        except CalendarUnavailable:
            return None
        if found is not None and found.squareoff is not None and found.squareoff <= now:
            return found.squareoff
    return None


# -- OpenAlgo's answers (market/holidays, market/timings) ------------------------------------------------------
def _ms(moment: dt.datetime) -> int:
    return int(moment.timestamp()) * 1000


def calendar_days(year: int) -> list[dict[str, Any]]:
    """The year's days that differ from the regular week, with where that comes from: date, description,
    holiday_type, closed (exchanges), open ([{exchange, start, end (UTC datetimes), start_time, end_time
    ("HH:MM" exchange time)}]), shipped, edited (bools: from the data files, from the database).
    A day whose every change was cancelled (an `open` edit) is left out."""
    _require_year(year)
    parsed = _year(year)
    raw_days = parsed.raw["days"]
    order = _week().order
    out = []
    for day in sorted(parsed.days):
        states = parsed.days[day]
        closed = [name for name in order if states.get(name, [None])[0] == CLOSED]
        opened = []
        for name in order:
            state = states.get(name)
            if state and state[0] in (HOURS, SPECIAL):
                s = session(name, day)
                opened.append({"exchange": name, "start": s.open, "end": s.close,
                               "start_time": s.open.astimezone(parsed.zone).strftime("%H:%M"),
                               "end_time": s.close.astimezone(parsed.zone).strftime("%H:%M")})
        if not closed and not opened:
            continue
        texts = list(dict.fromkeys(state[3] for state in states.values() if state[0] != REGULAR))
        special = any(state[0] == SPECIAL for state in states.values())
        info = raw_days[day.isoformat()]
        out.append({"date": day, "description": " / ".join(texts),
                    "holiday_type": SPECIAL_SESSION if special else TRADING_HOLIDAY, "closed": closed,
                    "open": opened, "shipped": info["shipped"], "edited": info["edited"]})
    return out


def holidays(year: int) -> list[dict[str, Any]]:
    """OpenAlgo's market/holidays data: [{date, description, holiday_type, closed_exchanges,
    open_exchanges: [{exchange, start_time, end_time}] (epoch milliseconds)}], in date order."""
    return [{"date": d["date"].isoformat(), "description": d["description"], "holiday_type": d["holiday_type"],
             "closed_exchanges": d["closed"],
             "open_exchanges": [{"exchange": o["exchange"], "start_time": _ms(o["start"]), "end_time": _ms(o["end"])}
                                for o in d["open"]]}
            for d in calendar_days(year)]


def timings(day: dt.date) -> list[dict[str, Any]]:
    """OpenAlgo's market/timings data: [{exchange, start_time, end_time}] (epoch milliseconds) of every
    exchange in session on `day`; [] on a weekend or a holiday of every exchange."""
    _require_year(day.year)
    out = []
    for name in _week().order:
        found = session(name, day)
        if found is not None:
            out.append({"exchange": name, "start_time": _ms(found.open), "end_time": _ms(found.close)})
    return out


# -- admins' edits ----------------------------------------------------------------------------------------------
def _entry_dict(row: CalendarEntry, username: str | None = None) -> dict[str, Any]:
    return {"id": row.id, "day": row.day, "kind": str(row.kind), "exchanges": row.exchange_list,
            "description": row.description,
            "start_time": row.start_time.strftime("%H:%M") if row.start_time else None,
            "end_time": row.end_time.strftime("%H:%M") if row.end_time else None,
            "created_by": row.created_by, "created_by_name": username, "created_at": row.created_at}


def _audit_values(entry: dict[str, Any]) -> dict[str, Any]:
    return {k: (v.isoformat() if isinstance(v, dt.date | dt.datetime) else v)
            for k, v in entry.items() if k not in ("created_by_name", "created_at")}


def entries(year: int) -> list[dict[str, Any]]:
    """The year's edits, in date order (then id): id, day, kind, exchanges, description, start_time and
    end_time ("HH:MM" or None), created_by (user id), created_by_name, created_at."""
    rows = db.session.execute(
        select(CalendarEntry, User.username).outerjoin(User, User.id == CalendarEntry.created_by)
        .where(CalendarEntry.day >= dt.date(year, 1, 1), CalendarEntry.day <= dt.date(year, 12, 31))
        .order_by(CalendarEntry.day, CalendarEntry.id))
    return [_entry_dict(row, username) for row, username in rows]


def _edit_exchanges(raw: str | Iterable[str]) -> list[str]:
    names = raw.split(",") if isinstance(raw, str) else list(raw)
    names = [str(n).strip().upper() for n in names if str(n).strip()]
    if not names:
        raise CalendarError("exchanges: name at least one exchange")
    week = _week()
    for name in names:
        if name in week.follows:
            raise CalendarError(f"exchanges: {name} follows {week.follows[name]}: edit {week.follows[name]} instead")
    return _checked_exchanges(names, "exchanges")


def add_entry(day: dt.date, kind: str, exchanges: str | Iterable[str], description: str, *,
              start: dt.time | None = None, end: dt.time | None = None, created_by: int | None = None,
              actor: str = "cli", ip: str | None = None) -> dict[str, Any]:
    """Record an edit of `day` for `exchanges` (a list, or "NSE,BSE"): kind `holiday` (closed all day),
    `special_session` (trading from `start` to `end`, exchange time) or `open` (the regular session,
    cancelling a shipped holiday). One unit of work, audited as `calendar.add` by `actor`; every process
    drops its cached year when it commits. CalendarError when the edit is not valid."""
    if kind not in CalendarKind.values():
        raise CalendarError(f"kind must be one of {', '.join(CalendarKind.values())}")
    if not isinstance(day, dt.date) or isinstance(day, dt.datetime):
        raise CalendarError("day must be a date")
    _require_year(day.year)
    names = _edit_exchanges(exchanges)
    text = (description or "").strip()
    if not text or len(text) > DESCRIPTION_MAX or "\x00" in text:
        raise CalendarError(f"description: 1 to {DESCRIPTION_MAX} characters")
    if kind == CalendarKind.SPECIAL_SESSION:
        if start is None or end is None or not start < end:
            raise CalendarError("a special session needs a start and an end, the start first (same day)")
    elif start is not None or end is not None:
        raise CalendarError(f"a {kind} entry takes no start or end time")
    joined = ",".join(names)
    if len(joined) > 200:
        raise CalendarError("exchanges: too many")
    with unit_of_work(write=True):
        row = CalendarEntry(day=day, kind=CalendarKind(kind), exchanges=joined, description=text, start_time=start,
                            end_time=end, created_by=created_by, created_at=utcnow())
        db.session.add(row)
        db.session.flush()
        entry = _entry_dict(row)
        db.session.add(AuditEvent(user_id=created_by, actor=actor[:64], action="calendar.add",
                                  target_type="calendar_entry", target_id=str(row.id), ip=ip,
                                  after=_audit_values(entry)))
        cache.current().invalidate(CACHE_NS, str(day.year), session=db.session)
    return entry


def remove_entry(entry_id: int, *, user_id: int | None = None, actor: str = "cli",
                 ip: str | None = None) -> dict[str, Any]:
    """Delete an edit (the shipped data of its day applies again); the removed entry. One unit of work,
    audited as `calendar.remove`. EntryNotFound when there is no such edit."""
    with unit_of_work(write=True):
        row = db.session.get(CalendarEntry, entry_id) if 0 < entry_id < 2**31 else None  # an id the column holds
        if row is None:
            raise EntryNotFound(f"no calendar edit has id {entry_id}")
        entry = _entry_dict(row)
        db.session.delete(row)
        db.session.add(AuditEvent(user_id=user_id, actor=actor[:64], action="calendar.remove",
                                  target_type="calendar_entry", target_id=str(entry_id), ip=ip,
                                  before=_audit_values(entry)))
        cache.current().invalidate(CACHE_NS, str(entry["day"].year), session=db.session)
    return entry
