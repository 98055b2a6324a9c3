"""/history (what the candle store holds) and /history/chart.json (the symbols page's candle chart)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from blueprints import history as history_pages
from services.market import history as store
from services.market.symbol_index import SymbolInfo
from tests.helpers.accounts import client_for, isolated_client, one_user_per_role
from tests.helpers.clock import local

FRI = dt.date(2026, 11, 13)


def info(symbol: str) -> SymbolInfo:
    return SymbolInfo(symbol, symbol, None, "NSE", "NSE", "1", None, None, 1, "EQ", Decimal("0.05"))


@pytest.fixture
def people(app):
    return one_user_per_role()


@pytest.fixture
def stored(app, people):
    """INFY's and SBIN's 1-minute candles of Mon 9 to Fri 13 Nov 2026 (Tue 10 a holiday), from the simulator."""
    later = local(app, 2026, 12, 1, 12, 0)
    for symbol in ("INFY", "SBIN"):
        store.fill(info(symbol), "1m", dt.date(2026, 11, 9), FRI, store.simulator_source(), now=later)


@pytest.mark.parametrize("role", ["admin", "trader", "viewer"])
def test_the_page_lists_what_is_stored_for_every_role(app, stored, role):
    resp = client_for(app, f"{role}1").get("/history")
    assert resp.status_code == 200
    body = resp.get_data(as_text=True)
    assert "<code>INFY</code> NSE" in body
    assert "<code>SBIN</code> NSE" in body
    assert '<td data-label="Source" class="col-mid">simulator</td><td data-label="Interval">1m</td>' in body
    assert ('<td data-label="From" class="nowrap">2026-11-09 09:15</td>'
            '<td data-label="To" class="nowrap">2026-11-13 15:29</td>') in body
    assert '<td data-label="Candles" class="num">1,500</td>' in body
    assert "/symbols/?chart=INFY&amp;chart_exchange=NSE&amp;chart_source=simulator#chart" in body


def test_the_page_filters_and_pages(app, stored, monkeypatch):
    c = client_for(app, "viewer1")
    body = c.get("/history?q=sb").get_data(as_text=True)
    assert "<code>SBIN</code>" in body
    assert "<code>INFY</code>" not in body
    assert "No stored history matches." in c.get("/history?q=zzz").get_data(as_text=True)
    monkeypatch.setattr(history_pages, "PAGE_ROWS", 1)
    first = c.get("/history").get_data(as_text=True)
    assert "<code>INFY</code>" in first
    assert "<code>SBIN</code>" not in first
    assert 'rel="next"' in first
    nxt = c.get("/history?after_symbol=INFY&after_id=1").get_data(as_text=True)
    assert "<code>SBIN</code>" in nxt
    assert "<code>INFY</code>" not in nxt
    assert 'rel="next"' not in nxt
    assert c.get("/history?after_symbol=INFY&after_id=x&exchange=MOON").status_code == 200


def test_signed_out_visitors_go_to_sign_in(app, people):
    resp = isolated_client(app).get("/history/chart.json?symbol=INFY&exchange=NSE")
    assert resp.status_code in (302, 303)
    assert "/auth/login" in resp.headers["Location"]


def test_chart_data_is_the_stored_candles(app, stored):
    c = client_for(app, "trader1")
    data = c.get("/history/chart.json?symbol=infy&exchange=NSE").get_json()
    assert data["source"] == "simulator"
    assert data["interval"] == "D"
    assert "5m" in data["intervals"]
    assert "D" in data["intervals"]
    assert "5s" not in data["intervals"]
    assert [row[0] for row in data["candles"]] == [
        int(dt.datetime(2026, 11, d, tzinfo=dt.UTC).timestamp()) for d in (9, 11, 12, 13)]
    assert all(len(row) == 6 and row[3] <= row[1] <= row[2] for row in data["candles"])
    fives = c.get("/history/chart.json?symbol=INFY&exchange=NSE&interval=5m&days=1").get_json()
    assert fives["interval"] == "5m"
    assert fives["intraday"] is True
    assert fives["timezone"] == "Asia/Kolkata"
    assert len(fives["candles"]) == 75
    assert fives["candles"][0][0] == int(local(app, 2026, 11, 13, 9, 15).timestamp())
    assert fives["candles"][-1][4] == data["candles"][-1][4]


def test_chart_without_data_says_so(app, people):
    c = client_for(app, "viewer1")
    data = c.get("/history/chart.json?symbol=INFY&exchange=NSE").get_json()
    assert data["candles"] == []
    assert "No stored history for INFY on NSE" in data["message"]
    resp = c.get("/history/chart.json?symbol=INFY&exchange=MOON")
    assert resp.status_code == 400
    assert resp.get_json()["candles"] == []


def test_the_symbols_page_has_the_chart(app, people):
    body = client_for(app, "viewer1").get("/symbols?chart=INFY&chart_exchange=BSE").get_data(as_text=True)
    assert 'id="chart" data-url="/history/chart.json"' in body
    assert 'name="symbol" value="INFY"' in body
    assert "<option selected>BSE</option>" in body
    assert "/static/js/candles.js" in body
