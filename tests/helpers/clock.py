"""A controlled clock for the trading road: `clock.now = ...` moves the time that placing, matching, the
books, the quotes store and the dashboard read (their `utcnow`, database.types.utcnow); sign-in and the
log writer keep the real time. `local(app, y, m, d, ...)` is a moment in exchange time, as aware UTC."""

from __future__ import annotations

import datetime as dt
import importlib

import pytest

import config
from database.types import utcnow

CLOCKED = ("services.trading.shapes", "services.trading.paper.account", "services.trading.paper.exchange",
           "services.trading.journal", "services.trading.portfolio", "services.market.quotes",
           "services.trading.options", "blueprints.dashboard", "blueprints.options")


class Clock:
    def __init__(self, now: dt.datetime):
        self.now = now

    def __call__(self) -> dt.datetime:
        return self.now


@pytest.fixture
def clock(app, monkeypatch):
    fake = Clock(utcnow())
    for name in CLOCKED:
        module = importlib.import_module(name)
        assert module.utcnow is utcnow, f"{name} reads the time some other way: clock it here"
        monkeypatch.setattr(module, "utcnow", fake)
    return fake


def local(app, *args) -> dt.datetime:
    """Exchange time (EXCHANGE_TIMEZONE) -> aware UTC."""
    return dt.datetime(*args, tzinfo=config.exchange_tz(app.config)).astimezone(dt.UTC)


def weekdays_back(n: int, today: dt.date | None = None) -> tuple[str, str]:
    """(first, last) ISO dates of the `n` weekdays before `today` (default: today's date), the span of a
    history request that has candles whatever the day the test runs."""
    end = (today or dt.date.today()) - dt.timedelta(days=1)
    while end.weekday() >= 5:
        end -= dt.timedelta(days=1)
    start = end
    while n > 1:
        start -= dt.timedelta(days=1)
        n -= start.weekday() < 5
    return start.isoformat(), end.isoformat()
