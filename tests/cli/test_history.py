"""`flask history download/list`: filling the candle store from the command line, and what it holds."""

from __future__ import annotations

import pytest

from cli.history import history_cli
from services.market import history as store
from tests.helpers.accounts import make_user
from tests.helpers.api import load_symbols
from tests.helpers.clock import local

WEEK = ("--from", "2026-11-09", "--to", "2026-11-13")  # Tue 10 is an NSE holiday


@pytest.fixture
def contract(app, monkeypatch):
    load_symbols(2000)
    monkeypatch.setattr(store, "utcnow", lambda: local(app, 2026, 12, 1, 12, 0))


def run(runner, *args: str):
    # The group itself, so that the test does not depend on app.py listing it.
    return runner.invoke(history_cli, list(args))


def test_download_fills_the_store_once_and_list_shows_it(runner, contract):
    result = run(runner, "download", "INFY,NSE:SBIN", "--interval", "5m", *WEEK)
    assert result.exit_code == 0, result.output
    assert "stored 3,000 candles for 2 of 2 instruments" in result.output  # 1m candles: 4 sessions x 375, twice
    assert {(r["symbol"], r["interval"], r["candles"]) for r in store.series()} == {("INFY", "1m", 1500),
                                                                                  ("SBIN", "1m", 1500)}
    again = run(runner, "download", "INFY", "SBIN", "--interval", "1m", *WEEK)
    assert again.exit_code == 0, again.output
    assert "stored 0 candles for 2 of 2 instruments" in again.output
    listing = run(runner, "list")
    assert listing.exit_code == 0, listing.output
    assert "simulator    NSE       INFY                     1m   2026-11-09 09:15 .. 2026-11-13 15:29  1,500 candles" \
        in listing.output
    assert "SBIN" in run(runner, "list", "--symbol", "sb").output
    assert "INFY" not in run(runner, "list", "--symbol", "sb").output


def test_daily_download_and_an_unknown_symbol(runner, contract):
    result = run(runner, "download", "INFY", "NOPE", "--interval", "W", "--from", "2026-10-01", "--to", "2026-11-30")
    assert result.exit_code == 1, result.output
    assert "failed NSE:NOPE: Symbol NOPE not found in exchange NSE" in result.output
    assert "for 1 of 2 instruments" in result.output
    (series,) = store.series()
    # whole weeks: Mon 28 Sep to "today" (Tue 1 Dec, its session so far), 47 weekdays less 4 NSE holidays
    assert series["interval"] == "D"
    assert series["candles"] == 43


@pytest.mark.parametrize(("args", "message"), [
    (("INFY", "--from", "2026-11-31"), "is not a date written YYYY-MM-DD"),
    (("INFY", "--from", "2026-11-13", "--to", "2026-11-09"), "--from must not be after --to"),
    (("INFY", "--interval", "7m", *WEEK), "'7m' is not one of"),
    (("MOON:INFY", *WEEK), "MOON is not an exchange"),
    ((",", *WEEK), "name at least one symbol"),
    (("INFY", "--user", "nobody", *WEEK), "no user named 'nobody'"),
])
def test_bad_arguments_are_refused_in_words(runner, contract, args, message):
    result = run(runner, "download", *args)
    assert result.exit_code in (1, 2), result.output
    assert message in result.output
    assert store.series() == []


def test_a_users_venue_in_analyze_mode_is_the_simulator(runner, contract):
    make_user("carol")
    result = run(runner, "download", "INFY", "--user", "carol", "--interval", "D", *WEEK)
    assert result.exit_code == 0, result.output
    assert [(r["source"], r["candles"]) for r in store.series()] == [("simulator", 4)]


def test_list_with_nothing_stored(runner):
    result = run(runner, "list")
    assert result.exit_code == 0
    assert "nothing stored" in result.output
