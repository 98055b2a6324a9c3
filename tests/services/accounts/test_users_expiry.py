"""The daily session boundary (pure functions): edges around 03:00 IST, UTC results, other zones."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from services.accounts.users import last_expiry_boundary, next_expiry, parse_expiry_time, session_expired

IST = ZoneInfo("Asia/Kolkata")
UTC = dt.UTC
AT = dt.time(3, 0)


def ist(y, m, d, hh, mm, ss=0):
    return dt.datetime(y, m, d, hh, mm, ss, tzinfo=IST)


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        (ist(2026, 3, 10, 2, 59, 59), ist(2026, 3, 9, 3, 0)),
        (ist(2026, 3, 10, 3, 0, 0), ist(2026, 3, 10, 3, 0)),
        (ist(2026, 3, 10, 3, 0, 1), ist(2026, 3, 10, 3, 0)),
        (ist(2026, 3, 10, 23, 59), ist(2026, 3, 10, 3, 0)),
        (ist(2026, 3, 10, 0, 0), ist(2026, 3, 9, 3, 0)),
        (ist(2026, 1, 1, 1, 0), ist(2025, 12, 31, 3, 0)),  # across a year end
    ],
)
def test_last_boundary_is_today_at_0300_or_yesterday_before_it(now, expected):
    boundary = last_expiry_boundary(now, AT, IST)
    assert boundary == expected
    assert boundary.tzinfo is UTC


def test_results_are_aware_utc_and_0300_ist_is_2130_utc_the_day_before():
    boundary = last_expiry_boundary(ist(2026, 3, 10, 12, 0), "03:00", "Asia/Kolkata")
    assert boundary.tzinfo is UTC
    assert boundary == dt.datetime(2026, 3, 9, 21, 30, tzinfo=UTC)
    nxt = next_expiry(ist(2026, 3, 10, 12, 0), "03:00", "Asia/Kolkata")
    assert nxt.tzinfo is UTC
    assert nxt == dt.datetime(2026, 3, 10, 21, 30, tzinfo=UTC)


def test_now_given_in_utc_gives_the_same_answer_as_in_ist():
    now_ist = ist(2026, 3, 10, 2, 30)
    now_utc = now_ist.astimezone(UTC)  # 2026-03-09 21:00 UTC: the UTC date is the day before
    assert last_expiry_boundary(now_utc, AT, IST) == last_expiry_boundary(now_ist, AT, IST)
    assert next_expiry(now_utc, AT, IST) == next_expiry(now_ist, AT, IST) == ist(2026, 3, 10, 3, 0)


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        (ist(2026, 3, 10, 2, 59, 59), ist(2026, 3, 10, 3, 0)),
        (ist(2026, 3, 10, 3, 0, 0), ist(2026, 3, 11, 3, 0)),  # strictly after now
        (ist(2026, 3, 10, 3, 0, 1), ist(2026, 3, 11, 3, 0)),
        (ist(2026, 12, 31, 22, 0), ist(2027, 1, 1, 3, 0)),
    ],
)
def test_next_expiry_is_strictly_after_now(now, expected):
    assert next_expiry(now, AT, IST) == expected


@pytest.mark.parametrize(
    ("login_at", "now", "expired"),
    [
        (ist(2026, 3, 10, 2, 59), ist(2026, 3, 10, 3, 1), True),  # signed in just before the boundary
        (ist(2026, 3, 10, 2, 59), ist(2026, 3, 10, 2, 59, 59), False),  # boundary not reached yet
        (ist(2026, 3, 10, 2, 59), ist(2026, 3, 10, 3, 0), True),  # exactly at the boundary
        (ist(2026, 3, 10, 3, 0), ist(2026, 3, 10, 3, 1), False),  # signed in at the boundary
        (ist(2026, 3, 9, 3, 1), ist(2026, 3, 10, 2, 59), False),  # nearly a day, no boundary crossed
        (ist(2026, 3, 9, 3, 1), ist(2026, 3, 10, 3, 0), True),
        (ist(2026, 3, 1, 12, 0), ist(2026, 3, 10, 12, 0), True),  # days old
        (ist(2026, 3, 10, 12, 0), ist(2026, 3, 10, 11, 0), False),  # clock skew: login "in the future"
    ],
)
def test_session_expired_around_0300_ist(login_at, now, expired):
    assert session_expired(login_at, now, AT, IST) is expired
    # the same instants expressed in UTC give the same answer
    assert session_expired(login_at.astimezone(UTC), now.astimezone(UTC), "03:00", "Asia/Kolkata") is expired


def test_a_session_without_a_login_time_has_expired():
    assert session_expired(None, ist(2026, 3, 10, 12, 0), AT, IST) is True


def test_naive_datetimes_are_refused():
    with pytest.raises(ValueError, match="timezone-aware"):
        last_expiry_boundary(dt.datetime(2026, 3, 10, 12, 0), AT, IST)
    with pytest.raises(ValueError, match="timezone-aware"):
        session_expired(dt.datetime(2026, 3, 10, 1, 0), ist(2026, 3, 10, 12, 0), AT, IST)


def test_other_expiry_times_and_zones():
    ny = ZoneInfo("America/New_York")
    now = dt.datetime(2026, 7, 1, 16, 59, tzinfo=ny)
    assert last_expiry_boundary(now, "17:00", ny) == dt.datetime(2026, 6, 30, 17, 0, tzinfo=ny)
    assert next_expiry(now, "17:00", ny) == dt.datetime(2026, 7, 1, 17, 0, tzinfo=ny)


def test_boundaries_bracket_now_through_a_daylight_saving_change():
    ny = ZoneInfo("America/New_York")
    start = dt.datetime(2026, 3, 7, 0, 0, tzinfo=UTC)
    for hours in range(0, 24 * 4):
        now = start + dt.timedelta(hours=hours, minutes=17)
        last, nxt = last_expiry_boundary(now, "02:30", ny), next_expiry(now, "02:30", ny)
        assert last <= now < nxt
        assert dt.timedelta(hours=22) <= nxt - last <= dt.timedelta(hours=26)


def test_parse_expiry_time():
    assert parse_expiry_time("03:00") == dt.time(3, 0)
    assert parse_expiry_time(" 15:30 ") == dt.time(15, 30)
    assert parse_expiry_time(dt.time(4, 5)) == dt.time(4, 5)
    with pytest.raises(ValueError, match="not a time of day"):
        parse_expiry_time("0300")
