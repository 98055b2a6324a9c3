"""The market calendar (services.market.calendar): the regular week per exchange, the shipped holidays and
special sessions, admins' edits on top, and the two-level cache that keeps the order path off the database.
Every time is an explicit moment in exchange time (`local`), so the tests pass on any day."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import event, select

from database import cache, db
from database.audit_db import AuditEvent
from database.calendar_db import CalendarEntry
from database.enums import CalendarKind
from database.types import utcnow
from services.market import calendar
from tests.helpers.clock import local

EQUITY = ("NSE", "BSE", "NFO", "BFO")
CURRENCY = ("CDS", "BCD")
EVERY = (*EQUITY, *CURRENCY, "MCX", "NCDEX")
TUESDAY = (2026, 12, 1)  # an ordinary Tuesday, US standard time (MCX closes 23:55)
SUMMER_TUESDAY = (2026, 6, 2)  # US daylight saving time (MCX closes 23:30)


def hm(app, day: tuple, hour: int, minute: int = 0) -> dt.datetime:
    return local(app, *day, hour, minute)


def day_of(day: tuple) -> dt.date:
    return dt.date(*day)


# -- the regular week --------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("exchange", "opens", "closes", "squareoff"), [
    ("NSE", (9, 15), (15, 30), (15, 15)),
    ("BSE", (9, 15), (15, 30), (15, 15)),
    ("NFO", (9, 15), (15, 30), (15, 15)),
    ("BFO", (9, 15), (15, 30), (15, 15)),
    ("CDS", (9, 0), (17, 0), (16, 45)),
    ("BCD", (9, 0), (17, 0), (16, 45)),
    ("MCX", (9, 0), (23, 55), (23, 30)),
    ("NCDEX", (9, 0), (17, 0), (16, 45)),
])
def test_the_regular_session_of_each_exchange(app, exchange, opens, closes, squareoff):
    s = calendar.session(exchange, day_of(TUESDAY))
    assert s == calendar.Session(exchange=exchange, open=hm(app, TUESDAY, *opens), close=hm(app, TUESDAY, *closes),
                                 squareoff=hm(app, TUESDAY, *squareoff), special=False, description="")
    assert s.open.tzinfo == dt.UTC
    assert calendar.regular_squareoff(exchange) == dt.time(*squareoff)


def test_index_exchanges_follow_their_cash_market_without_a_squareoff(app):
    for index, cash in (("NSE_INDEX", "NSE"), ("BSE_INDEX", "BSE")):
        s, c = calendar.session(index, day_of(TUESDAY)), calendar.session(cash, day_of(TUESDAY))
        assert (s.exchange, s.open, s.close, s.squareoff) == (index, c.open, c.close, None)
        assert calendar.regular_squareoff(index) is None
        assert calendar.session(index, dt.date(2026, 1, 26)) is None  # Republic Day closes the index too
        assert calendar.last_squareoff(index, hm(app, TUESDAY, 20)) is None


@pytest.mark.parametrize(("day", "closes"), [
    ((2026, 3, 6), (23, 55)),   # Friday: the US still on standard time
    ((2026, 3, 9), (23, 30)),   # Monday after the US clocks went forward (Sunday 8 March)
    (SUMMER_TUESDAY, (23, 30)),
    ((2026, 10, 30), (23, 30)),  # Friday before the US clocks go back (Sunday 1 November)
    ((2026, 11, 2), (23, 55)),
])
def test_mcx_closes_later_while_the_us_keeps_standard_time(app, day, closes):
    s = calendar.session("MCX", day_of(day))
    assert s.close == hm(app, day, *closes)
    assert s.squareoff == hm(app, day, 23, 30)  # the square-off time stays, inside the session either way


def test_weekends_are_closed(app):
    for day in ((2026, 12, 5), (2026, 12, 6)):
        assert all(calendar.session(e, day_of(day)) is None for e in (*EVERY, "NSE_INDEX"))
        assert calendar.timings(day_of(day)) == []
        assert not calendar.is_open("MCX", hm(app, day, 12))


@pytest.mark.parametrize(("exchange", "moment", "expected"), [
    ("NSE", (9, 14), False), ("NSE", (9, 15), True), ("NSE", (15, 29), True), ("NSE", (15, 30), False),
    ("CDS", (8, 59), False), ("CDS", (16, 59), True), ("CDS", (17, 0), False),
    ("MCX", (23, 54), True), ("MCX", (23, 55), False), ("NSE_INDEX", (10, 0), True),
])
def test_is_open_from_the_open_until_before_the_close(app, exchange, moment, expected):
    assert calendar.is_open(exchange, hm(app, TUESDAY, *moment)) is expected


def test_a_naive_time_is_refused(app):
    with pytest.raises(calendar.CalendarError, match="timezone-aware"):
        calendar.is_open("NSE", dt.datetime(2026, 12, 1, 10, 0))  # noqa: DTZ001 - the point of the test


def test_an_unknown_exchange_is_refused(app):
    with pytest.raises(calendar.CalendarError, match="not an exchange"):
        calendar.session("NYSE", day_of(TUESDAY))


# -- the shipped holidays ------------------------------------------------------------------------------------------
def test_a_holiday_of_every_exchange(app):
    republic_day = dt.date(2026, 1, 26)  # a Monday
    assert all(calendar.session(e, republic_day) is None for e in EVERY)
    assert calendar.timings(republic_day) == []
    (entry,) = [h for h in calendar.holidays(2026) if h["date"] == "2026-01-26"]
    assert entry == {"date": "2026-01-26", "description": "Republic Day", "holiday_type": "TRADING_HOLIDAY",
                     "closed_exchanges": list(EVERY), "open_exchanges": []}


def test_a_holiday_on_which_mcx_trades_its_evening_session(app):
    holi = (2026, 3, 3)
    assert all(calendar.session(e, day_of(holi)) is None for e in (*EQUITY, *CURRENCY, "NCDEX"))
    mcx = calendar.session("MCX", day_of(holi))
    assert mcx == calendar.Session(exchange="MCX", open=hm(app, holi, 17), close=hm(app, holi, 23, 55),
                                   squareoff=hm(app, holi, 23, 30), special=True, description="Holi")
    assert not calendar.is_open("MCX", hm(app, holi, 16, 59))
    assert calendar.is_open("MCX", hm(app, holi, 17))
    ms = int(hm(app, holi, 17).timestamp()) * 1000
    assert calendar.timings(day_of(holi)) == [{"exchange": "MCX", "start_time": ms,
                                               "end_time": int(hm(app, holi, 23, 55).timestamp()) * 1000}]
    (entry,) = [h for h in calendar.holidays(2026) if h["date"] == "2026-03-03"]
    assert entry["closed_exchanges"] == [*EQUITY, *CURRENCY, "NCDEX"]
    assert entry["open_exchanges"] == calendar.timings(day_of(holi))


def test_a_currency_holiday_leaves_equity_open(app):
    day = (2026, 2, 19)
    assert calendar.session("CDS", day_of(day)) is None
    assert calendar.session("BCD", day_of(day)) is None
    assert calendar.session("NSE", day_of(day)).open == hm(app, day, 9, 15)
    assert [t["exchange"] for t in calendar.timings(day_of(day))] == [*EQUITY, "MCX", "NCDEX"]


def test_mcx_morning_only_on_new_year_day(app):
    day = (2026, 1, 1)
    mcx = calendar.session("MCX", day_of(day))
    # 23:30 is outside the session: the square-off moves to the close less MCX's lead (none)
    assert (mcx.open, mcx.close, mcx.squareoff) == (hm(app, day, 9), hm(app, day, 17), hm(app, day, 17))
    assert calendar.session("NSE", day_of(day)).open == hm(app, day, 9, 15)


def test_the_shipped_years_and_their_data(app):
    assert calendar.shipped_years() == (2026, 2027)
    found = calendar.holidays(2026)
    assert len(found) == 21
    assert [h["date"] for h in found] == sorted(h["date"] for h in found)
    for h in found:
        assert dt.date.fromisoformat(h["date"]).weekday() < 5, h  # the lists name weekdays only
        assert h["holiday_type"] == "TRADING_HOLIDAY"
    equity_closed = [h["date"] for h in found if "NSE" in h["closed_exchanges"]]
    assert len(equity_closed) == 16  # NSE's 15 and 15 January
    assert len([h for h in found if "CDS" in h["closed_exchanges"]]) == 20
    # 2027's list is not published yet: the regular week only
    assert calendar.holidays(2027) == []
    assert calendar.session("NSE", dt.date(2027, 1, 26)) is not None


def test_a_year_without_data_is_unknown_to_the_api_and_the_regular_week_to_orders(app, caplog):
    with pytest.raises(calendar.CalendarUnavailable,
                       match="no market calendar for 2030: the calendar covers 2026, 2027"):
        calendar.holidays(2030)
    with pytest.raises(calendar.CalendarUnavailable):
        calendar.timings(dt.date(2028, 1, 3))
    # orders keep trading when the shipped lists run out: the regular week, and a warning
    calendar._WARNED.discard(2028)  # noqa: SLF001 - the warning is once per process
    with caplog.at_level("WARNING", logger="algobridge.calendar"):
        assert calendar.is_open("NSE", local(app, 2028, 1, 3, 10, 0)) is True  # a Monday
        assert calendar.is_open("NSE", local(app, 2028, 1, 1, 10, 0)) is False  # a Saturday
    assert "no holiday list for 2028" in caplog.text
    assert calendar.session("NSE", dt.date(2025, 12, 31)).open == local(app, 2025, 12, 31, 9, 15)


def test_a_trading_day_is_a_day_with_a_session_and_a_weekday_in_a_year_without_data(app):
    assert calendar.is_trading_day("NSE", day_of(TUESDAY)) is True
    assert calendar.is_trading_day("NSE", dt.date(2026, 12, 5)) is False  # a Saturday
    assert calendar.is_trading_day("NSE", dt.date(2026, 1, 26)) is False  # Republic Day
    assert calendar.is_trading_day("MCX", dt.date(2026, 3, 3)) is True  # Holi: MCX's evening session
    assert 2030 not in calendar.shipped_years()
    assert calendar.is_trading_day("NSE", dt.date(2030, 1, 1)) is True  # a Tuesday: no holiday list to say no
    assert calendar.is_trading_day("NSE", dt.date(2030, 1, 5)) is False  # a Saturday
    assert calendar.is_trading_day("NSE", dt.date(2030, 1, 6)) is False  # a Sunday


# -- next_open ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("exchange", "now", "expected"), [
    ("NSE", (2026, 12, 4, 16, 0), (2026, 12, 7, 9, 15)),    # Friday evening -> Monday
    ("NSE", (2026, 12, 5, 10, 0), (2026, 12, 7, 9, 15)),    # Saturday -> Monday
    ("NSE", (2026, 4, 2, 16, 0), (2026, 4, 6, 9, 15)),      # the eve of Good Friday -> Monday
    ("NSE", (2026, 1, 14, 15, 45), (2026, 1, 16, 9, 15)),   # the eve of 15 January's holiday
    ("NSE", (2026, 12, 1, 8, 0), (2026, 12, 1, 9, 15)),     # before today's open: today's
    ("NSE", (2026, 12, 1, 9, 15), (2026, 12, 2, 9, 15)),    # at the open: the next one (strictly after)
    ("MCX", (2026, 3, 2, 23, 56), (2026, 3, 3, 17, 0)),     # Holi eve: MCX's evening session
    ("CDS", (2026, 3, 31, 18, 0), (2026, 4, 2, 9, 0)),      # Mahavir Jayanti, then Annual Bank Closing
    ("NSE_INDEX", (2026, 12, 4, 16, 0), (2026, 12, 7, 9, 15)),
])
def test_next_open(app, exchange, now, expected):
    found = calendar.next_open(exchange, local(app, *now))
    assert found == local(app, *expected)
    assert found.tzinfo == dt.UTC


def test_next_open_beyond_the_shipped_years_follows_the_regular_week(app):
    assert calendar.next_open("NSE", local(app, 2027, 12, 31, 16, 0)) == local(app, 2028, 1, 3, 9, 15)


def test_next_open_gives_up_after_the_search_window(app):
    start = dt.date(2026, 12, 1)
    for offset in range(calendar.SEARCH_DAYS + 1):
        calendar.add_entry(start + dt.timedelta(days=offset), "holiday", "NSE", "closed for the test")
    with pytest.raises(calendar.CalendarError, match="no NSE session in the 15 days after 2026-12-01"):
        calendar.next_open("NSE", local(app, 2026, 12, 1, 8, 0))


# -- last_squareoff ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("exchange", "now", "expected"), [
    ("NSE", (2026, 12, 1, 15, 15), (2026, 12, 1, 15, 15)),   # at the square-off: it counts
    ("NSE", (2026, 12, 1, 15, 10), (2026, 11, 30, 15, 15)),  # before it: the previous trading day's
    ("BFO", (2026, 12, 7, 9, 0), (2026, 12, 4, 15, 15)),     # Monday morning: Friday's
    ("NSE", (2026, 1, 27, 10, 0), (2026, 1, 23, 15, 15)),    # Republic Day had none
    ("CDS", (2026, 12, 1, 17, 0), (2026, 12, 1, 16, 45)),
    ("BCD", (2026, 2, 20, 10, 0), (2026, 2, 18, 16, 45)),    # 19 Feb: currency closed
    ("MCX", (2026, 12, 1, 23, 40), (2026, 12, 1, 23, 30)),
    ("MCX", (2026, 1, 2, 10, 0), (2026, 1, 1, 17, 0)),       # New Year: the morning session's close
    ("MCX", (2026, 3, 4, 8, 0), (2026, 3, 3, 23, 30)),       # Holi's evening session squares off too
    ("NCDEX", (2026, 12, 1, 16, 45), (2026, 12, 1, 16, 45)),
])
def test_last_squareoff_per_exchange(app, exchange, now, expected):
    found = calendar.last_squareoff(exchange, local(app, *now))
    assert found == local(app, *expected)
    assert found.tzinfo == dt.UTC


def test_last_squareoff_looks_back_into_a_year_without_data(app):
    assert calendar.last_squareoff("NSE", local(app, 2026, 1, 1, 10, 0)) == local(app, 2025, 12, 31, 15, 15)
    assert calendar.last_squareoff("NSE", local(app, 2026, 1, 1, 15, 20)) == local(app, 2026, 1, 1, 15, 15)


# -- admins' edits -------------------------------------------------------------------------------------------------
def test_a_special_session_added_in_the_database(app):
    muhurat = (2026, 11, 8)  # a Sunday
    entry = calendar.add_entry(day_of(muhurat), "special_session", ["nse", "BSE", "MCX"], "Muhurat trading",
                               start=dt.time(18, 0), end=dt.time(19, 0))
    assert (entry["kind"], entry["exchanges"], entry["start_time"], entry["end_time"]) == (
        "special_session", ["NSE", "BSE", "MCX"], "18:00", "19:00")
    nse = calendar.session("NSE", day_of(muhurat))
    assert nse == calendar.Session(exchange="NSE", open=hm(app, muhurat, 18), close=hm(app, muhurat, 19),
                                   squareoff=hm(app, muhurat, 18, 45), special=True, description="Muhurat trading")
    assert calendar.session("MCX", day_of(muhurat)).squareoff == hm(app, muhurat, 19)  # MCX's lead is nil
    assert calendar.session("NSE_INDEX", day_of(muhurat)).open == nse.open
    assert calendar.session("NFO", day_of(muhurat)) is None  # not named: still the weekend
    assert calendar.is_open("NSE", hm(app, muhurat, 18, 30))
    assert calendar.next_open("BSE", local(app, 2026, 11, 6, 16, 0)) == hm(app, muhurat, 18)
    assert [t["exchange"] for t in calendar.timings(day_of(muhurat))] == ["NSE", "BSE", "MCX"]
    (day,) = [d for d in calendar.holidays(2026) if d["date"] == "2026-11-08"]
    assert day["holiday_type"] == "SPECIAL_SESSION"
    assert day["closed_exchanges"] == []
    assert [o["exchange"] for o in day["open_exchanges"]] == ["NSE", "BSE", "MCX"]


def test_edits_override_the_shipped_data_and_removing_them_restores_it(app):
    republic_day = (2026, 1, 26)
    reopened = calendar.add_entry(day_of(republic_day), "open", "NSE,BSE", "holiday withdrawn (test)")
    assert calendar.session("NSE", day_of(republic_day)).open == hm(app, republic_day, 9, 15)
    assert calendar.session("NSE", day_of(republic_day)).special is False
    assert calendar.session("NFO", day_of(republic_day)) is None  # not named: still the shipped holiday
    (day,) = [d for d in calendar.calendar_days(2026) if d["date"] == day_of(republic_day)]
    assert day["closed"] == ["NFO", "BFO", *CURRENCY, "MCX", "NCDEX"]
    assert (day["shipped"], day["edited"]) == (True, True)

    closed = calendar.add_entry(day_of(TUESDAY), "holiday", ["MCX"], "exchange outage (test)")
    assert calendar.session("MCX", day_of(TUESDAY)) is None
    assert calendar.session("NSE", day_of(TUESDAY)) is not None
    (day,) = [d for d in calendar.calendar_days(2026) if d["date"] == day_of(TUESDAY)]
    assert (day["closed"], day["shipped"], day["edited"]) == (["MCX"], False, True)

    # a later edit of the same exchange and day wins over an earlier one
    calendar.add_entry(day_of(TUESDAY), "special_session", ["MCX"], "back in the evening",
                       start=dt.time(17), end=dt.time(23, 0))
    assert calendar.session("MCX", day_of(TUESDAY)).open == hm(app, TUESDAY, 17)

    assert [e["id"] for e in calendar.entries(2026)] == [reopened["id"], closed["id"], closed["id"] + 1]
    for entry in calendar.entries(2026):
        calendar.remove_entry(entry["id"])
    assert calendar.session("NSE", day_of(republic_day)) is None
    assert calendar.session("MCX", day_of(TUESDAY)).open == hm(app, TUESDAY, 9)
    assert calendar.entries(2026) == []


def test_an_edit_cancelling_every_closure_leaves_the_holiday_list(app):
    calendar.add_entry(dt.date(2026, 2, 19), "open", "CDS,BCD", "test")
    assert "2026-02-19" not in [h["date"] for h in calendar.holidays(2026)]


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"exchanges": "NYSE"}, "'NYSE' is not one of NSE, BSE"),
    ({"exchanges": "NSE_INDEX"}, "NSE_INDEX follows NSE: edit NSE instead"),
    ({"exchanges": " , "}, "name at least one exchange"),
    ({"kind": "closed"}, "kind must be one of holiday, special_session, open"),
    ({"kind": "special_session"}, "needs a start and an end"),
    ({"kind": "special_session", "start": dt.time(19), "end": dt.time(18)}, "needs a start and an end"),
    ({"start": dt.time(9)}, "a holiday entry takes no start or end time"),
    ({"description": "  "}, "description: 1 to 200 characters"),
    ({"description": "x" * 201}, "description: 1 to 200 characters"),
    ({"day": dt.date(2030, 1, 1)}, "no market calendar for 2030"),
])
def test_invalid_edits_are_refused(app, kwargs, message):
    args = {"day": day_of(TUESDAY), "kind": "holiday", "exchanges": "NSE", "description": "test"} | kwargs
    with pytest.raises(calendar.CalendarError, match=message):
        calendar.add_entry(args.pop("day"), args.pop("kind"), args.pop("exchanges"), args.pop("description"), **args)
    assert calendar.entries(2026) == []


def test_removing_an_unknown_edit(app):
    with pytest.raises(calendar.EntryNotFound, match="no calendar edit has id 404"):
        calendar.remove_entry(404)


def test_edits_are_audited(app):
    entry = calendar.add_entry(day_of(TUESDAY), "holiday", "NSE", "audited", actor="ops", ip="10.0.0.1")
    calendar.remove_entry(entry["id"], actor="ops")
    db.session.rollback()
    rows = list(db.session.scalars(select(AuditEvent).order_by(AuditEvent.id)))
    assert [(r.action, r.actor, r.target_type, r.target_id) for r in rows] == [
        ("calendar.add", "ops", "calendar_entry", str(entry["id"])),
        ("calendar.remove", "ops", "calendar_entry", str(entry["id"]))]
    assert rows[0].after["exchanges"] == ["NSE"]
    assert rows[0].ip == "10.0.0.1"
    assert rows[1].before["description"] == "audited"


# -- the cache -----------------------------------------------------------------------------------------------------
def _calendar_queries():
    seen: list[str] = []

    def listen(_conn, _cursor, statement, *_args):
        if "market_calendar_entries" in statement:
            seen.append(statement)

    return seen, listen


def test_the_order_path_reads_no_database_once_the_year_is_cached(app):
    seen, listen = _calendar_queries()
    event.listen(db.engine, "before_cursor_execute", listen)
    try:
        calendar.is_open("NSE", hm(app, TUESDAY, 10))  # loads 2026 once
        loaded = len(seen)
        for minute in range(200):
            now = hm(app, TUESDAY, 9) + dt.timedelta(minutes=minute)
            calendar.is_open("NFO", now)
            calendar.session("MCX", day_of(TUESDAY))
            calendar.last_squareoff("CDS", now)
    finally:
        event.remove(db.engine, "before_cursor_execute", listen)
    assert loaded == 1
    assert len(seen) == loaded


def test_an_edit_drops_the_cached_year_in_every_process(app):
    before = calendar.session("NSE", day_of(TUESDAY))
    assert cache.current().get(calendar.CACHE_NS, "2026") is not None
    calendar.add_entry(day_of(TUESDAY), "holiday", "NSE", "invalidated")
    # dropped on commit (and announced: Redis, or the cache_generations counter other processes poll)
    assert cache.current().get(calendar.CACHE_NS, "2026") is None
    assert before is not None
    assert calendar.session("NSE", day_of(TUESDAY)) is None


def test_a_row_written_behind_the_cache_is_seen_only_once_invalidated(app):
    assert calendar.session("BSE", day_of(TUESDAY)) is not None  # cached
    db.session.add(CalendarEntry(day=day_of(TUESDAY), kind=CalendarKind.HOLIDAY, exchanges="BSE",
                                 description="written directly", created_at=utcnow()))
    db.session.commit()
    assert calendar.session("BSE", day_of(TUESDAY)) is not None  # the cache still answers
    cache.current().invalidate(calendar.CACHE_NS, "2026")
    assert calendar.session("BSE", day_of(TUESDAY)) is None
