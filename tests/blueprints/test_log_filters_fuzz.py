"""Log filters: any value of any query parameter answers 200 or 400, never 500 (issue #18).

The rule (blueprints/logs.py): a filter a page reads with a bad value answers 400, the error page
naming the filter; an empty or absent filter is no filter; a parameter a page does not read is
ignored. Property tests with hypothesis, on both databases, over every log page and every parameter
name it reads plus unknown names, with hostile values: any text (NUL and other control characters,
non-ASCII digits such as '²' and '٣', right-to-left marks), integers far beyond 64 bits as text, dates at
the ends of the calendar and malformed ones, very long strings, empty values, repeated parameters
and raw query strings that are not UTF-8.

Examples per page: ALGOBRIDGE_LOG_FUZZ_EXAMPLES_SQLITE (default 150) on SQLite and
ALGOBRIDGE_LOG_FUZZ_EXAMPLES (default 40) on PostgreSQL. Derandomized: the same queries every run.
"""

from __future__ import annotations

import datetime as dt
import os
from urllib.parse import urlencode

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from database import db
from database.alert_db import Alert
from database.apilog_db import ApiLog
from database.audit_db import AuditEvent
from database.latency_db import OrderLatency
from database.systemlog_db import SystemLog
from database.traffic_db import TrafficLog
from database.types import utcnow
from services.logs.reading import MAX_ID
from tests.helpers.accounts import isolated_client, login, make_user

EXAMPLES = {
    "postgresql": int(os.environ.get("ALGOBRIDGE_LOG_FUZZ_EXAMPLES", "40")),
    "sqlite": int(os.environ.get("ALGOBRIDGE_LOG_FUZZ_EXAMPLES_SQLITE", "150")),
}
FUZZ_SETTINGS = {"deadline": None, "derandomize": True, "database": None, "print_blob": True,
                 "suppress_health_check": [HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                           HealthCheck.data_too_large]}

DATES = ("from", "to")
# page -> every query parameter it reads (for an admin; traders and viewers do not read `user` and `ip`)
PARAMS: dict[str, tuple[str, ...]] = {
    "/logs/api": ("before", "type", "status", *DATES, "q"),
    "/logs/traffic": ("before", "status", "method", "path", "ip", "user", *DATES),
    "/logs/latency": ("before", "broker", "endpoint", *DATES),
    "/logs/system": ("before", "level", "q"),
    "/logs/alerts": ("before", "state"),
    "/logs/audit": ("before", "action"),
}
PAGES = sorted(PARAMS)
UNKNOWN = ("page", "sort", "limit", "endpoint", "_external", "_anchor", "_scheme", "_method", "", "before[]",
           "STATUS", "x\x00y", "ü")

# -- values ----------------------------------------------------------------------------------------
any_text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=30)  # NUL and controls included
odd_digits = st.sampled_from(["²", "٣", "①", "𝟙", "१२", "٢٠٢٤-٠١-٠١", "½", "Ⅻ", "¹⁰", "٤٠٤", "５００"])
huge = st.sampled_from([2**31 - 1, 2**31, 2**63 - 1, 2**63, 2**64, 10**30, -(10**30), 10**400, -1, 0])
number_text = (st.integers(-(10**25), 10**25).map(str) | huge.map(str)
               | st.sampled_from(["00", "+5", " 5 ", "5_000", "1e3", "0x10", "5.0", "-0", "1" * 5000]))
odd_dates = (st.dates().map(dt.date.isoformat)  # year 1 to 9999
             | st.sampled_from(["9999-12-31", "0001-01-01", "9999-12-30", "0001-01-02", "2024-02-30", "2024-13-01",
                                "20240101", "2024-W01-1", "2024-001", "+2024-01-01", "2024-01-01T00:00",
                                "2024-1-1", "10000-01-01", "0000-01-01", "2024-01-01\x00", "2024-01-01\n"]))
good = st.sampled_from(["ok", "error", "4xx", "5XX", "429", "999", "GET", "post", "ERROR", "warning", "open",
                        "acknowledged", "all", "placeorder", "funds", "/p", "10.0.0.1", "paper", "settings.",
                        "1", "5", "60"])
long_text = st.integers(30, 3000).map(lambda n: "a" * n) | st.integers(1, 300).map(lambda n: "%_\\" * n)
empty = st.sampled_from(["", " ", "\t", "\x00"])
hostile = any_text | odd_digits | number_text | odd_dates | good | long_text | empty


def query(names: tuple[str, ...]) -> st.SearchStrategy[list[tuple[str, str]]]:
    """Up to six (name, value) pairs: mostly the page's own names, else unknown ones; repeats allowed."""
    return st.lists(st.tuples(st.sampled_from(names * 3 + UNKNOWN) | any_text, hostile), max_size=6)


# raw query strings, sent as they are: not UTF-8, a lone surrogate, bad escapes, no values
RAW = ["status=%FF%FE", "to=%ED%A0%80", "q=%00", "from=%C0%AE", "%FF=1", "before=%00%00", "type=%", "&&&=&=",
       "status", "to=9999-12-31&to=", "user=%D9%A3", "q=%zz", "path=%2", "before=1;before=2"]


# -- the world ---------------------------------------------------------------------------------------
def some_rows(user_id: int) -> None:
    """A few rows in every log, more than a page of traffic so that the pager links are drawn."""
    now = utcnow()
    db.session.add_all([TrafficLog(created_at=now - dt.timedelta(seconds=i), method="GET", path=f"/p{i}",
                                   status_code=404 if i % 10 == 0 else 200, duration_ms=1.5, user_id=user_id,
                                   client_ip="10.0.0.1") for i in range(60)])
    db.session.add_all([ApiLog(api_type="placeorder", user_id=user_id, status_code=200, request={"s": "INFY"},
                               response={"status": "success"}),
                        ApiLog(api_type="funds", user_id=user_id, status_code=429, request={}, response={}),
                        OrderLatency(user_id=user_id, broker="paper", endpoint="placeorder", mode="analyze",
                                     total_ms=3.0, broker_ms=0.5),
                        SystemLog(level="ERROR", logger="algobridge.x", message="disk full"),
                        Alert(user_id=user_id, kind="order_rejected", title="Order rejected"),
                        AuditEvent(user_id=user_id, actor="admin1", action="settings.update")])
    db.session.commit()


@pytest.fixture
def admin(app):
    user = make_user("admin1", "admin")
    some_rows(user.id)
    c = isolated_client(app)
    assert login(c, "admin1").status_code in (302, 303)
    return c


@pytest.fixture
def trader(app):
    user = make_user("trader1", "trader")
    some_rows(user.id)
    c = isolated_client(app)
    assert login(c, "trader1").status_code in (302, 303)
    return c


def check(resp, url, *, allowed=(200, 400)):
    body = resp.get_data(as_text=True)
    assert resp.status_code in allowed, (url[:300], resp.status_code, body[:500])
    if resp.status_code == 400:  # the site's error page, naming the bad filter
        assert '<p class="error-code">400' in body, body[:500]
        assert "The filter “" in body, body[:500]
        assert "Traceback" not in body
    return resp.status_code


# -- the property -----------------------------------------------------------------------------------
@pytest.mark.parametrize("page", PAGES)
def test_any_query_answers_200_or_400_for_an_admin(admin, backend, page):
    answers: dict[int, int] = {}

    @settings(max_examples=EXAMPLES[backend], **FUZZ_SETTINGS)
    @given(query(PARAMS[page]))
    def run(pairs):
        url = f"{page}?{urlencode(pairs)}"
        code = check(admin.get(url), url)
        answers[code] = answers.get(code, 0) + 1

    run()
    for raw in RAW:
        check(admin.get(f"{page}?{raw}"), f"{page}?{raw}")
    assert set(answers) == {200, 400}, f"both answers are exercised: {answers}"


@pytest.mark.parametrize("page", PAGES)
def test_valid_filters_answer_200(admin, backend, page):
    """The other half of strictness: every good value of every filter, together, is accepted."""
    valid = {
        "before": st.integers(1, MAX_ID).map(str), "user": st.integers(1, MAX_ID).map(str),
        "type": st.sampled_from(["placeorder", "funds", "PlaceOrder"]),
        "status": st.sampled_from(["ok", "error", "OK", "1xx", "2xx", "4XX", "5xx", "100", "429", "599", " 200 "]),
        "from": st.dates().map(dt.date.isoformat), "to": st.dates().map(dt.date.isoformat),
        "method": st.sampled_from(["GET", "post", "Delete", "OPTIONS"]),
        "level": st.sampled_from(["WARNING", "error", "Critical"]),
        "state": st.sampled_from(["open", "acknowledged", "all", "ALL"]),
        "q": any_text.filter(lambda s: s.isprintable()), "path": any_text.filter(lambda s: s.isprintable()),
        "action": any_text.filter(lambda s: s.isprintable()), "broker": st.sampled_from(["paper", "zerodha", "ü"]),
        "endpoint": st.sampled_from(["placeorder", "cancelorder", "x y"]), "ip": st.sampled_from(["10.0.0.1", "::1"]),
    }

    @settings(max_examples=max(10, EXAMPLES[backend] // 3), **FUZZ_SETTINGS)
    @given(st.fixed_dictionaries({}, optional={name: valid[name] for name in PARAMS[page]}),
           st.dictionaries(st.sampled_from(UNKNOWN), any_text, max_size=2))
    def run(filters, unknown):
        url = f"{page}?{urlencode({**unknown, **filters})}"
        check(admin.get(url), url, allowed=(200,))

    run()


def test_a_trader_gets_200_400_or_403(trader, backend):
    """A trader reads neither `user` nor `ip` (ignored), and the system log is refused whatever the query."""

    @settings(max_examples=max(10, EXAMPLES[backend] // 2), **FUZZ_SETTINGS)
    @given(st.sampled_from(PAGES).flatmap(lambda p: st.tuples(st.just(p), query(PARAMS[p]))))
    def run(case):
        page, pairs = case
        url = f"{page}?{urlencode(pairs)}"
        check(trader.get(url), url, allowed=(403,) if page == "/logs/system" else (200, 400))

    run()
    assert trader.get("/logs/traffic?user=%C2%B2&ip=%00").status_code == 200


# -- regressions: found by the property, 500s before the fix -----------------------------------------
def test_to_at_the_end_of_the_calendar_is_no_upper_bound(admin):
    for url in ("/logs/api?to=9999-12-31", "/logs/traffic?to=9999-12-31", "/logs/latency?to=9999-12-31",
                "/logs/api?from=0001-01-01", "/logs/api?from=0001-01-01&to=9999-12-31"):
        resp = admin.get(url)
        assert resp.status_code == 200, (url, resp.status_code)
    assert "<code>placeorder</code>" in admin.get("/logs/api?to=9999-12-31").get_data(as_text=True)


@pytest.mark.parametrize("value", ["²", "٣", "1²", "５００"])
def test_a_status_of_non_ascii_digits_is_refused(admin, value):
    for page in ("/logs/api", "/logs/traffic"):
        resp = admin.get(page, query_string={"status": value})
        assert resp.status_code == 400, (page, value, resp.status_code)
        assert "The filter “status”" in resp.get_data(as_text=True)


def test_the_latency_pager_keeps_an_endpoint_filter(admin):
    resp = admin.get("/logs/latency?endpoint=placeorder&before=1000")
    assert resp.status_code == 200, resp.status_code
    assert 'href="/logs/latency?endpoint=placeorder"' in resp.get_data(as_text=True)


@pytest.mark.parametrize(("url", "name"), [
    ("/logs/api?q=a%00b", "q"), ("/logs/traffic?before=99999999999999999999", "before"),
    ("/logs/audit?before=2147483648", "before"), ("/logs/traffic?user=9223372036854775807", "user"),
    ("/logs/traffic?user=%D9%A3", "user"), ("/logs/api?from=2024-02-30", "from"), ("/logs/api?to=20240101", "to"),
    ("/logs/api?status=ok&status=error", "status"), ("/logs/traffic?method=BREW", "method"),
    ("/logs/system?level=debug", "level"), ("/logs/alerts?state=closed", "state"),
    ("/logs/api?type=nosuch", "type"), ("/logs/audit?action=" + "a" * 65, "action"),
    ("/logs/traffic?status=600", "status"),
])
def test_bad_values_are_refused_with_the_filter_named(admin, url, name):
    resp = admin.get(url)
    assert resp.status_code == 400, (url, resp.status_code)
    assert f"The filter “{name}”" in resp.get_data(as_text=True)


def test_empty_and_unknown_parameters_are_no_filter(admin):
    page = admin.get("/logs/traffic?status=&from=&to=&user=&before=&q=junk&sort=%00").get_data(as_text=True)
    assert page.count('<td data-label="Path" class="path">') == 50
    assert "q=junk" not in page  # unknown names are not carried into the pager's links
