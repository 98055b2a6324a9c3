"""The `openalgo` SDK, unchanged, driving Algobridge on a real port in live mode through the Angel One adapter and
the fake SmartAPI: orders, books, funds, quotes, depth and history."""

from __future__ import annotations

import pandas as pd

from tests.helpers import angelone as angel_fixtures
from tests.helpers import sdk
from tests.helpers.angelone import connect_angel_with_contract
from tests.helpers.sdk import ok, sdk_client

server = sdk.server
angel = angel_fixtures.angel


def test_sdk_in_live_mode_through_angel_one(server, angel):
    user, client = sdk_client(server)
    connect_angel_with_contract(user.id, angel)

    orderid = ok(
        client.placeorder(
            strategy="sdk", symbol="SBIN", exchange="NSE", action="BUY", quantity=2, price_type="MARKET", product="MIS"
        )
    )["orderid"]
    assert angel.fake.orders[orderid]["symboltoken"] == "3045"
    status = ok(client.orderstatus(order_id=orderid, strategy="sdk"))["data"]
    assert (status["order_status"], status["symbol"]) == ("complete", "SBIN")
    orders = ok(client.orderbook())["data"]["orders"]
    assert [o["orderid"] for o in orders] == [orderid]
    assert [p["symbol"] for p in ok(client.positionbook())["data"]] == ["SBIN"]
    assert float(ok(client.funds())["data"]["availablecash"]) == 99725.05

    quotes = ok(
        client.multiquotes(
            symbols=[{"symbol": "SBIN", "exchange": "NSE"}, {"symbol": "NIFTY", "exchange": "NSE_INDEX"}]
        )
    )["results"]
    assert [q["data"]["ltp"] for q in quotes] == [800.0, 22000.0]
    depth = ok(client.depth(symbol="NIFTY30DEC2624000CE", exchange="NFO"))["data"]
    assert len(depth["bids"]) == len(depth["asks"]) == 5
    assert depth["bids"][0]["price"] < depth["asks"][0]["price"]

    candles = client.history(
        symbol="SBIN", exchange="NSE", interval="1h", start_date="2026-11-26", end_date="2026-11-27"
    )
    assert isinstance(candles, pd.DataFrame), candles
    assert len(candles) == 2 * 7  # two sessions of seven hourly candles (09:15 ... 15:15)
    assert (candles["high"] >= candles[["open", "close"]].max(axis=1)).all()
