"""REST API v1 `history` and `intervals`: analyze mode (the simulator's candles, stored) on both databases, live
mode against the fake Kite (its historical API, asked once per range), validation and the API log."""

from __future__ import annotations

import datetime as dt

import pytest

from database import db
from services.market import history as store
from services.trading import venues
from tests.helpers import live as live_fixtures
from tests.helpers.api import api_logs, flush_logs, load_symbols, post, raise_limits, user_with_key
from tests.helpers.clock import local
from tests.helpers.live import connect_live_with_contract

kite = live_fixtures.kite
FIELDS = {"timestamp", "open", "high", "low", "close", "volume", "oi"}
# Mon 9 to Fri 13 Nov 2026; Tue 10 is an NSE holiday.
WEEK = {"start_date": "2026-11-09", "end_date": "2026-11-13"}


@pytest.fixture
def user_key(app, monkeypatch):
    raise_limits(app, monkeypatch)
    load_symbols(2000)
    # The store's clock: a moment after the test week, so its days are final whenever the test runs.
    monkeypatch.setattr(store, "utcnow", lambda: local(app, 2026, 12, 1, 12, 0))
    user, _row, plaintext = user_with_key()
    return user, plaintext


@pytest.fixture
def key(user_key):
    return user_key[1]


def history(client, key, **fields):
    return post(client, "history", {"apikey": key, "symbol": "INFY", "exchange": "NSE", "interval": "1m",
                                    **WEEK, **fields})


def test_history_in_analyze_mode_is_the_stored_simulator_candles(app, client, key):
    resp = history(client, key)
    assert resp.status_code == 200, resp.get_json()
    body = resp.get_json()
    assert body["status"] == "success"
    assert body["mode"] == "analyze"
    candles = body["data"]
    assert len(candles) == 4 * 375  # four sessions: the holiday and the weekend have none
    assert all(set(c) == FIELDS for c in candles)
    assert candles[0]["timestamp"] == int(local(app, 2026, 11, 9, 9, 15).timestamp())
    assert [c["timestamp"] for c in candles] == sorted({c["timestamp"] for c in candles})
    assert all(c["low"] <= c["open"] <= c["high"] and c["low"] <= c["close"] <= c["high"] for c in candles)
    again = history(client, key).get_json()
    assert again["data"] == candles
    stored = history(client, key, source="db").get_json()
    assert stored["data"] == candles
    # the API log keeps the call and the number of candles, not the candles
    flush_logs(app)
    rows = [r for r in api_logs() if r.api_type == "history"]
    assert len(rows) == 3
    assert rows[0].response == {"status": "success", "data": "1500 candles", "mode": "analyze"}
    assert "apikey" not in rows[0].request
    assert rows[0].mode == "analyze"


def test_resampled_and_calendar_intervals(app, client, key):
    fives = history(client, key, interval="5m").get_json()["data"]
    assert len(fives) == 4 * 75
    days = history(client, key, interval="D").get_json()["data"]
    assert [c["timestamp"] for c in days] == [
        int(dt.datetime(2026, 11, d, tzinfo=dt.UTC).timestamp()) for d in (9, 11, 12, 13)]
    assert days[-1]["close"] == fives[-1]["close"]
    weeks = history(client, key, interval="W", start_date="2026-11-11", end_date="2026-11-11").get_json()["data"]
    assert [c["timestamp"] for c in weeks] == [int(dt.datetime(2026, 11, 9, tzinfo=dt.UTC).timestamp())]
    assert weeks[0]["open"] == days[0]["open"]
    assert weeks[0]["close"] == days[-1]["close"]


def test_the_store_alone_answers_nothing_before_a_fetch(client, key):
    resp = history(client, key, source="DB")
    assert resp.status_code == 200
    assert resp.get_json()["data"] == []


def test_intervals_in_analyze_mode(client, key):
    resp = post(client, "intervals", {"apikey": key})
    assert resp.status_code == 200
    body = resp.get_json()
    assert body["mode"] == "analyze"
    assert body["data"] == {"seconds": [], "minutes": ["1m", "2m", "3m", "5m", "10m", "15m", "20m", "30m"],
                            "hours": ["1h", "2h", "3h", "4h"], "days": ["D"], "weeks": ["W"],
                            "months": ["M", "Q", "Y"]}


@pytest.mark.parametrize(("fields", "status", "message"), [
    ({"interval": "7m"}, 400, "interval must be one of 1s, 5s"),
    ({"interval": "5s"}, 400, "interval 5s is not available from simulator: use one of 1m"),
    ({"start_date": "2026-11-31"}, 400, "start_date must be a date written YYYY-MM-DD"),
    ({"end_date": "13-11-2026"}, 400, "end_date must be a date written YYYY-MM-DD"),
    ({"start_date": "1900-01-01"}, 400, "start_date must be a date from 1990-01-01"),
    ({"start_date": "2026-11-14", "end_date": "2026-11-13"}, 400, "start_date must not be after end_date"),
    ({"start_date": "2026-01-01"}, 400, "a 1m history spans at most 60 days per request"),
    ({"symbol": "NOPE"}, 404, "Symbol NOPE not found in exchange NSE"),
    ({"exchange": "MOON"}, 400, "exchange must be one of"),
    ({"source": "broker"}, 400, "source must be api"),
    ({"interval": None}, 400, "interval must be one of"),
    ({"extra": 1}, 400, "unknown field: extra"),
])
def test_bad_requests_are_400_in_words(client, key, fields, status, message):
    resp = history(client, key, **fields)
    assert resp.status_code == status, resp.get_json()
    body = resp.get_json()
    assert body["status"] == "error"
    assert message in body["message"], body["message"]


def test_missing_fields_and_bad_keys(client, key):
    resp = post(client, "history", {"apikey": key, "symbol": "INFY", "exchange": "NSE", "interval": "D"})
    assert resp.status_code == 400
    assert "Missing mandatory field: start_date" in resp.get_json()["message"]
    assert history(client, "not-a-key").status_code == 403
    assert post(client, "intervals", {"apikey": "not-a-key"}).status_code == 403


# -- live mode ----------------------------------------------------------------------------------------------------
def live(user, kite) -> None:
    """The user in live mode on the fake Kite, with Kite's master contract (its instrument tokens)."""
    connect_live_with_contract(user.id, kite)


def test_live_mode_stores_the_brokers_candles_and_asks_once(app, client, user_key, kite):
    user, key = user_key
    live(user, kite)
    resp = history(client, key, interval="5m")
    assert resp.status_code == 200, resp.get_json()
    body = resp.get_json()
    assert "mode" not in body
    candles = body["data"]
    assert kite.fake.history_requests[-1]["interval"] == "5minute"  # Kite's own 5-minute candles
    asked = len(kite.fake.history_requests)
    # the fake trades every weekday; the exchange's calendar drops its Tuesday holiday
    days = {dt.datetime.fromtimestamp(c["timestamp"], local(app, 2026, 1, 1).tzinfo).date() for c in candles}
    assert days == {dt.date(2026, 11, d) for d in (9, 11, 12, 13)}
    assert len(candles) == 4 * 75
    assert candles[0]["timestamp"] == int(local(app, 2026, 11, 9, 9, 15).timestamp())
    assert history(client, key, interval="5m").get_json()["data"] == candles
    assert len(kite.fake.history_requests) == asked  # served from the store
    # 2m: not Kite's, built from its 1-minute candles; the series are the broker's, not the simulator's
    twos = history(client, key, interval="2m").get_json()["data"]
    assert kite.fake.history_requests[-1]["interval"] == "minute"
    assert twos[0]["timestamp"] == candles[0]["timestamp"]
    assert len(twos) == 4 * 188
    assert {(s["source"], s["interval"]) for s in store.series(symbol="INFY")} == {("zerodha", "5m"),
                                                                                 ("zerodha", "1m")}
    intervals = post(client, "intervals", {"apikey": key}).get_json()["data"]
    assert intervals["minutes"] == ["1m", "2m", "3m", "5m", "10m", "15m", "20m", "30m"]
    assert intervals["hours"] == ["1h", "2h", "3h", "4h"]
    assert intervals["months"] == ["M", "Q", "Y"]


def test_a_brokers_refusal_is_an_answer_and_nothing_is_recorded(client, user_key, kite):
    user, key = user_key
    live(user, kite)
    kite.fake.historical_data_enabled = False
    resp = history(client, key, interval="D")
    assert resp.status_code in (400, 403), resp.get_json()
    body = resp.get_json()
    assert body["status"] == "error"
    assert body["message"]
    kite.fake.historical_data_enabled = True
    asked = len(kite.fake.history_requests)
    resp = history(client, key, interval="D")
    assert resp.status_code == 200, resp.get_json()
    assert len(resp.get_json()["data"]) == 4
    assert len(kite.fake.history_requests) == asked + 1  # the refused range was asked again


def test_live_mode_without_a_session_is_403(client, user_key):
    user, key = user_key
    venues.set_analyze(user.id, False)
    db.session.commit()
    for name in ("history", "intervals"):
        resp = post(client, name, {"apikey": key, "symbol": "INFY", "exchange": "NSE", "interval": "D", **WEEK}
                    if name == "history" else {"apikey": key})
        assert resp.status_code == 403, resp.get_json()
        assert resp.get_json()["status"] == "error"
