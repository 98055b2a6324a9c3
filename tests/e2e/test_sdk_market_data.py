"""The `openalgo` SDK's market-data calls (multiquotes, depth, instruments, margin, intervals, history) against
Algobridge on a real port: analyze mode on SQLite and PostgreSQL, and live mode against the fake Kite."""

from __future__ import annotations

import pandas as pd
import pytest

from tests.helpers import live as live_fixtures
from tests.helpers import sdk
from tests.helpers.clock import weekdays_back
from tests.helpers.live import connect_live_with_contract
from tests.helpers.sdk import ok, sdk_client

server = sdk.server
kite = live_fixtures.kite


def check_market_data(client, *, analyze: bool) -> None:
    quotes = ok(client.multiquotes(symbols=[{"symbol": "INFY", "exchange": "NSE"},
                                            {"symbol": "NIFTY", "exchange": "NSE_INDEX"},
                                            {"symbol": "NOPE", "exchange": "NSE"}]))
    assert [r["symbol"] for r in quotes["results"]] == ["INFY", "NIFTY", "NOPE"]
    assert quotes["results"][0]["data"]["ltp"] > 0
    assert "error" in quotes["results"][2]
    assert ("mode" in quotes) == analyze

    depth = ok(client.depth(symbol="INFY", exchange="NSE"))["data"]
    assert len(depth["bids"]) == len(depth["asks"]) == 5
    assert depth["bids"][0]["price"] < depth["asks"][0]["price"]

    frame = client.instruments(exchange="NSE")
    assert isinstance(frame, pd.DataFrame), frame
    assert "INFY" in set(frame["symbol"])
    assert {"symbol", "brsymbol", "token", "lotsize", "tick_size", "instrumenttype"} <= set(frame.columns)

    margin = ok(client.margin(positions=[{"symbol": "INFY", "exchange": "NSE", "action": "BUY", "product": "CNC",
                                          "pricetype": "LIMIT", "quantity": 10, "price": 1500}]))
    assert margin["data"]["total_margin_required"] > 0

    intervals = ok(client.intervals())["data"]
    assert set(intervals) == {"seconds", "minutes", "hours", "days", "weeks", "months"}
    assert "1m" in intervals["minutes"]
    assert "D" in intervals["days"]

    start, end = weekdays_back(2)
    candles = client.history(symbol="INFY", exchange="NSE", interval="5m", start_date=start, end_date=end)
    assert isinstance(candles, pd.DataFrame), candles
    assert len(candles) > 0
    assert {"open", "high", "low", "close", "volume"} <= set(candles.columns)
    assert (candles["high"] >= candles[["open", "close"]].max(axis=1)).all()
    assert (candles["low"] <= candles[["open", "close"]].min(axis=1)).all()
    daily = client.history(symbol="INFY", exchange="NSE", interval="D", start_date=start, end_date=end)
    assert isinstance(daily, pd.DataFrame), daily
    assert 1 <= len(daily) <= 2


def test_sdk_market_data_in_analyze_mode(server):
    _user, client = sdk_client(server)
    check_market_data(client, analyze=True)


def test_sdk_market_data_in_live_mode(server, kite):
    user, client = sdk_client(server)
    connect_live_with_contract(user.id, kite)
    check_market_data(client, analyze=False)


@pytest.mark.parametrize("positions", [[], [{"symbol": "INFY"}]])
def test_sdk_margin_refusals_come_back_as_messages(server, positions):
    _user, client = sdk_client(server)
    answer = client.margin(positions=positions)
    assert answer["status"] == "error"
    assert answer["message"]
