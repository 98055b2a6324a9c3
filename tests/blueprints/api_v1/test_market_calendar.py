"""REST API v1 market calendar: market/holidays and market/timings in OpenAlgo's shapes, bad input in words."""

from __future__ import annotations

import datetime as dt

import pytest

from services.market import calendar
from tests.helpers.api import post, raise_limits, user_with_key
from tests.helpers.clock import local

EVERY = ["NSE", "BSE", "NFO", "BFO", "CDS", "BCD", "MCX", "NCDEX"]


@pytest.fixture
def key(app, monkeypatch):
    raise_limits(app, monkeypatch)
    _user, _row, plaintext = user_with_key(scopes=("data",))
    return plaintext


def ms(app, *moment) -> int:
    return int(local(app, *moment).timestamp()) * 1000


# -- market/holidays -------------------------------------------------------------------------------------------------
def test_holidays_of_a_year(app, client, key):
    resp = post(client, "market/holidays", {"apikey": key, "year": 2026})
    assert resp.status_code == 200, resp.get_json()
    body = resp.get_json()
    assert set(body) == {"status", "year", "timezone", "data"}
    assert (body["status"], body["year"], body["timezone"]) == ("success", 2026, "Asia/Kolkata")
    assert len(body["data"]) == 21
    for entry in body["data"]:
        assert set(entry) == {"date", "description", "holiday_type", "closed_exchanges", "open_exchanges"}
    by_date = {h["date"]: h for h in body["data"]}
    assert by_date["2026-01-26"] == {"date": "2026-01-26", "description": "Republic Day",
                                     "holiday_type": "TRADING_HOLIDAY", "closed_exchanges": EVERY,
                                     "open_exchanges": []}
    assert by_date["2026-11-24"]["open_exchanges"] == [
        {"exchange": "MCX", "start_time": ms(app, 2026, 11, 24, 17, 0), "end_time": ms(app, 2026, 11, 24, 23, 55)}]


def test_holidays_year_as_a_string_and_without_a_year(app, client, key, monkeypatch):
    assert post(client, "market/holidays", {"apikey": key, "year": "2026"}).get_json()["year"] == 2026
    monkeypatch.setattr(calendar, "current_year", lambda: 2027)  # "now" is in 2027
    for body in ({"apikey": key}, {"apikey": key, "year": None}):
        resp = post(client, "market/holidays", body)
        assert resp.status_code == 200, resp.get_json()
        assert (resp.get_json()["year"], resp.get_json()["data"]) == (2027, [])  # 2027: not yet published


def test_an_edit_shows_in_both_answers(app, client, key):
    calendar.add_entry(dt.date(2026, 11, 8), "special_session", "NSE,BSE", "Muhurat trading",
                       start=dt.time(18), end=dt.time(19))
    data = post(client, "market/holidays", {"apikey": key, "year": 2026}).get_json()["data"]
    (muhurat,) = [h for h in data if h["date"] == "2026-11-08"]
    assert muhurat["holiday_type"] == "SPECIAL_SESSION"
    session = {"start_time": ms(app, 2026, 11, 8, 18, 0), "end_time": ms(app, 2026, 11, 8, 19, 0)}
    assert muhurat["open_exchanges"] == [{"exchange": "NSE", **session}, {"exchange": "BSE", **session}]
    timings = post(client, "market/timings", {"apikey": key, "date": "2026-11-08"}).get_json()["data"]
    assert timings == muhurat["open_exchanges"]


@pytest.mark.parametrize(("body", "message"), [
    ({"year": 1800}, "year must be at least 2020"),
    ({"year": 2051}, "year is out of range (at most 2050)"),
    ({"year": "twenty"}, "year must be a whole number"),
    ({"year": 2026.5}, "year must be a whole number"),
    ({"year": True}, "year must be a number, not true/false"),
    ({"year": 2030}, "no market calendar for 2030: the calendar covers 2026, 2027"),
    ({"year": 2025}, "no market calendar for 2025: the calendar covers 2026, 2027"),
    ({"year": 2026, "exchange": "NSE"}, "unknown field: exchange"),
])
def test_holidays_bad_input_is_a_400_in_words(client, key, body, message):
    resp = post(client, "market/holidays", {"apikey": key, **body})
    assert resp.status_code == 400
    assert resp.get_json() == {"status": "error", "message": message}


# -- market/timings --------------------------------------------------------------------------------------------------
def test_timings_of_a_trading_day(app, client, key):
    resp = post(client, "market/timings", {"apikey": key, "date": "2026-12-01"})
    assert resp.status_code == 200, resp.get_json()
    body = resp.get_json()
    assert set(body) == {"status", "data"}
    day = (2026, 12, 1)
    hours = {"NSE": ((9, 15), (15, 30)), "BSE": ((9, 15), (15, 30)), "NFO": ((9, 15), (15, 30)),
             "BFO": ((9, 15), (15, 30)), "CDS": ((9, 0), (17, 0)), "BCD": ((9, 0), (17, 0)),
             "MCX": ((9, 0), (23, 55)), "NCDEX": ((9, 0), (17, 0))}
    assert body["data"] == [{"exchange": e, "start_time": ms(app, *day, *hours[e][0]),
                             "end_time": ms(app, *day, *hours[e][1])} for e in EVERY]


@pytest.mark.parametrize("day", ["2026-01-26", "2026-12-05", "2026-12-06", " 2026-04-03 "])
def test_timings_of_a_holiday_or_weekend_is_empty(client, key, day):
    resp = post(client, "market/timings", {"apikey": key, "date": day})
    assert resp.status_code == 200, resp.get_json()
    assert resp.get_json() == {"status": "success", "data": []}


def test_timings_of_a_holiday_with_mcx_evening_session(app, client, key):
    data = post(client, "market/timings", {"apikey": key, "date": "2026-05-01"}).get_json()["data"]
    assert data == [{"exchange": "MCX", "start_time": ms(app, 2026, 5, 1, 17, 0),
                     "end_time": ms(app, 2026, 5, 1, 23, 30)}]


@pytest.mark.parametrize(("body", "message"), [
    ({"date": "2026-13-45"}, "date must be a date written YYYY-MM-DD, e.g. 2026-01-26"),
    ({"date": "2026-02-30"}, "date must be a date written YYYY-MM-DD, e.g. 2026-01-26"),
    ({"date": "01-12-2026"}, "date must be a date written YYYY-MM-DD, e.g. 2026-01-26"),
    ({"date": "20261201"}, "date must be a date written YYYY-MM-DD, e.g. 2026-01-26"),
    ({"date": 20261201}, "date must be a date written YYYY-MM-DD, e.g. 2026-01-26"),
    ({"date": "tomorrow"}, "date must be a date written YYYY-MM-DD, e.g. 2026-01-26"),
    ({"date": ["2026-12-01"]}, "date must be a date written YYYY-MM-DD, e.g. 2026-01-26"),
    ({"date": None}, "date must be a date written YYYY-MM-DD, e.g. 2026-01-26"),
    ({}, "Missing mandatory field: date"),
    ({"date": "2025-12-31"}, "no market calendar for 2025: the calendar covers 2026, 2027"),
    ({"date": "1800-01-01"}, "no market calendar for 1800: the calendar covers 2026, 2027"),
])
def test_timings_bad_input_is_a_400_in_words(client, key, body, message):
    resp = post(client, "market/timings", {"apikey": key, **body})
    assert resp.status_code == 400
    assert resp.get_json() == {"status": "error", "message": message}


# -- keys --------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["market/holidays", "market/timings"])
def test_a_key_is_needed_with_the_data_scope(app, client, monkeypatch, name):
    raise_limits(app, monkeypatch)
    body = {"date": "2026-12-01"} if name == "market/timings" else {"year": 2026}
    assert post(client, name, {"apikey": "not-a-key", **body}).status_code == 403
    _user, _row, read_only = user_with_key("bob", scopes=("read",))
    resp = post(client, name, {"apikey": read_only, **body})
    assert resp.status_code == 403
    assert resp.get_json()["status"] == "error"
    resp = post(client, name, body)
    assert resp.status_code == 400
    assert resp.get_json() == {"status": "error", "message": "Missing mandatory field: apikey"}
    assert post(client, name, ["not", "an", "object"]).status_code == 400
