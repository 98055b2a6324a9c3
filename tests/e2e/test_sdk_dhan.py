"""The `openalgo` SDK, unchanged, driving Algobridge on a real port in live mode through the Dhan adapter (the
fake DhanHQ v2 server behind it): orders, books, funds, quotes, depth, margin, instruments and history."""

from __future__ import annotations

import pandas as pd

from tests.helpers import dhan as dhan_fixtures
from tests.helpers import sdk
from tests.helpers.clock import weekdays_back
from tests.helpers.dhan import connect_dhan_with_contract
from tests.helpers.sdk import ok, sdk_client

server = sdk.server
dhan = dhan_fixtures.dhan


def test_sdk_in_live_mode_on_dhan(server, dhan):
    user, client = sdk_client(server, "sdkdhan")
    connect_dhan_with_contract(user.id, dhan)

    placed = ok(client.placeorder(strategy="SDK", symbol="NIFTY26DEC30FUT", action="SELL", exchange="NFO",
                                  price_type="MARKET", product="NRML", quantity=75))
    assert dhan.fake.orders[placed["orderid"]]["securityId"] == "35001"
    assert ok(client.orderstatus(order_id=placed["orderid"], strategy="SDK"))["data"]["order_status"] == "complete"
    limit = ok(client.placeorder(strategy="SDK", symbol="INFY", action="BUY", exchange="NSE", price_type="LIMIT",
                                 product="MIS", quantity=1, price="1400"))
    ok(client.modifyorder(order_id=limit["orderid"], strategy="SDK", symbol="INFY", action="BUY", exchange="NSE",
                          price_type="LIMIT", product="MIS", quantity=2, price="1401"))
    assert dhan.fake.orders[limit["orderid"]]["price"] == 1401
    ok(client.cancelorder(order_id=limit["orderid"], strategy="SDK"))
    assert dhan.fake.orders[limit["orderid"]]["orderStatus"] == "CANCELLED"

    book = ok(client.orderbook())["data"]["orders"]
    assert {o["symbol"] for o in book} == {"NIFTY26DEC30FUT", "INFY"}
    positions = ok(client.positionbook())["data"]
    assert [(p["symbol"], p["exchange"], int(p["quantity"])) for p in positions] == [("NIFTY26DEC30FUT", "NFO", -75)]
    assert int(ok(client.openposition(strategy="SDK", symbol="NIFTY26DEC30FUT", exchange="NFO",
                                      product="NRML"))["quantity"]) == -75
    assert ok(client.tradebook())["data"][0]["symbol"] == "NIFTY26DEC30FUT"
    assert ok(client.holdings())["data"]["holdings"][0]["symbol"] == "INFY"
    assert float(ok(client.funds())["data"]["availablecash"]) == 100000.0

    quotes = ok(client.multiquotes(symbols=[{"symbol": "INFY", "exchange": "NSE"},
                                            {"symbol": "NIFTY", "exchange": "NSE_INDEX"},
                                            {"symbol": "SENSEX26DEC3080000CE", "exchange": "BFO"}]))
    assert [r["data"]["ltp"] for r in quotes["results"]] == [1500.5, 24000.0, 300.0]
    depth = ok(client.depth(symbol="INFY", exchange="NSE"))["data"]
    assert len(depth["bids"]) == len(depth["asks"]) == 5
    assert depth["bids"][0]["price"] < depth["asks"][0]["price"]
    margin = ok(client.margin(positions=[{"symbol": "INFY", "exchange": "NSE", "action": "BUY", "product": "CNC",
                                          "pricetype": "LIMIT", "quantity": 10, "price": 1500}]))
    assert margin["data"]["total_margin_required"] == 15000.0

    frame = client.instruments(exchange="NFO")
    assert isinstance(frame, pd.DataFrame), frame
    assert {"NIFTY26DEC30FUT", "NIFTY26DEC3024000CE", "NIFTY26DEC3024000PE"} <= set(frame["symbol"])

    start, end = weekdays_back(2)
    candles = client.history(symbol="INFY", exchange="NSE", interval="5m", start_date=start, end_date=end)
    assert isinstance(candles, pd.DataFrame), candles
    assert len(candles) > 0
    assert (candles["high"] >= candles[["open", "close"]].max(axis=1)).all()
    daily = client.history(symbol="NIFTY", exchange="NSE_INDEX", interval="D", start_date=start, end_date=end)
    assert isinstance(daily, pd.DataFrame), daily
    assert 1 <= len(daily) <= 2
