"""The `openalgo` SDK, unchanged, against Algobridge on a real port: every call traders make from
Python works and answers in OpenAlgo's shapes (analyze mode, on SQLite and PostgreSQL)."""

from __future__ import annotations

import pytest

from tests.helpers import sdk
from tests.helpers.sdk import ok, sdk_client

server = sdk.server


@pytest.fixture
def client(server):
    return sdk_client(server)[1]


def test_sdk_end_to_end(client):
    # status and data
    pong = ok(client._make_request("ping", {"apikey": client.api_key}))  # the SDK has no ping() helper
    assert pong["data"] == {"message": "pong", "broker": "paper"}
    status = ok(client.analyzerstatus())
    assert status["data"]["mode"] == "analyze"
    assert status["data"]["analyze_mode"] is True
    assert isinstance(status["data"]["total_logs"], int)
    quote = ok(client.quotes(symbol="INFY", exchange="NSE"))
    assert set(quote["data"]) == {"open", "high", "low", "ltp", "ask", "bid", "prev_close", "volume", "oi"}
    found = ok(client.search(query="INFY", exchange="NSE"))
    assert found["message"] == f"Found {len(found['data'])} matching symbols"
    assert found["data"]
    info = ok(client.symbol(symbol="INFY", exchange="NSE"))
    assert info["data"]["symbol"] == "INFY"
    assert info["data"]["lotsize"] >= 1

    # orders
    placed = ok(client.placeorder(strategy="SDK", symbol="INFY", action="BUY", exchange="NSE",
                                  price_type="MARKET", product="MIS", quantity=2))
    assert placed["mode"] == "analyze"
    assert placed["orderid"]
    state = ok(client.orderstatus(order_id=placed["orderid"], strategy="SDK"))
    assert set(state["data"]) == {"action", "average_price", "exchange", "order_status", "orderid", "price",
                                  "pricetype", "product", "quantity", "symbol", "timestamp", "trigger_price"}
    assert state["data"]["order_status"] == "complete"
    pos = ok(client.openposition(strategy="SDK", symbol="INFY", exchange="NSE", product="MIS"))
    assert int(pos["quantity"]) == 2

    smart = ok(client.placesmartorder(strategy="SDK", symbol="INFY", action="BUY", exchange="NSE",
                                      price_type="MARKET", product="MIS", quantity=0, position_size=5))
    assert smart["orderid"]
    assert int(ok(client.openposition(strategy="SDK", symbol="INFY", exchange="NSE", product="MIS"))["quantity"]) == 5
    matched = ok(client.placesmartorder(strategy="SDK", symbol="INFY", action="BUY", exchange="NSE",
                                        price_type="MARKET", product="MIS", quantity=0, position_size=5))
    assert matched["message"] == "Positions Already Matched. No Action needed."

    basket = ok(client.basketorder(strategy="SDK", orders=[
        {"symbol": "TCS", "exchange": "NSE", "action": "BUY", "quantity": 1, "pricetype": "MARKET", "product": "MIS"},
        {"symbol": "SBIN", "exchange": "NSE", "action": "SELL", "quantity": 1, "pricetype": "MARKET",
         "product": "MIS"},
    ]))
    assert [r["symbol"] for r in basket["results"]] == ["TCS", "SBIN"]
    assert all(r["status"] == "success" and r["orderid"] for r in basket["results"])

    split = ok(client.splitorder(strategy="SDK", symbol="ITC", action="BUY", exchange="NSE", quantity=5,
                                 splitsize=2, price_type="MARKET", product="MIS"))
    assert split["split_size"] == 2
    assert split["total_quantity"] == 5
    assert [r["quantity"] for r in split["results"]] == [2, 2, 1]
    assert [r["order_num"] for r in split["results"]] == [1, 2, 3]

    # a resting limit order: modify, cancel, cancel all
    limit = ok(client.placeorder(strategy="SDK", symbol="INFY", action="BUY", exchange="NSE", price_type="LIMIT",
                                 product="MIS", quantity=1, price="1"))
    assert ok(client.orderstatus(order_id=limit["orderid"]))["data"]["order_status"] == "open"
    modified = ok(client.modifyorder(order_id=limit["orderid"], strategy="SDK", symbol="INFY", action="BUY",
                                     exchange="NSE", price_type="LIMIT", product="MIS", quantity=2, price="2"))
    assert modified["orderid"] == limit["orderid"]
    cancelled = ok(client.cancelorder(order_id=limit["orderid"], strategy="SDK"))
    assert cancelled["orderid"] == limit["orderid"]
    assert ok(client.orderstatus(order_id=limit["orderid"]))["data"]["order_status"] == "cancelled"
    second = ok(client.placeorder(strategy="SDK", symbol="INFY", action="BUY", exchange="NSE", price_type="LIMIT",
                                  product="MIS", quantity=1, price="1"))
    all_cancel = ok(client.cancelallorder(strategy="SDK"))
    assert all_cancel["canceled_orders"] == [second["orderid"]]
    assert all_cancel["failed_cancellations"] == []
    assert all_cancel["message"] == "Canceled 1 orders. Failed to cancel 0 orders."

    # books
    book = ok(client.orderbook())
    assert set(book["data"]) == {"orders", "statistics"}
    assert set(book["data"]["statistics"]) == {"total_buy_orders", "total_sell_orders", "total_completed_orders",
                                               "total_open_orders", "total_rejected_orders"}
    assert {o["orderid"] for o in book["data"]["orders"]} >= {placed["orderid"], limit["orderid"]}
    for row in book["data"]["orders"]:
        assert set(row) == {"action", "symbol", "exchange", "orderid", "product", "quantity", "price", "pricetype",
                            "order_status", "trigger_price", "timestamp"}
    trades = ok(client.tradebook())
    assert trades["data"]
    # OpenAlgo's fields, and analyze mode's P&L of each fill: gross, its charges, net (docs/api.md)
    assert set(trades["data"][0]) == {"action", "symbol", "exchange", "orderid", "product",
                                      "quantity", "average_price", "timestamp", "trade_value",
                                      "realized_pnl", "charges", "net_pnl"}
    positions = ok(client.positionbook())
    assert any(p["symbol"] == "INFY" for p in positions["data"])
    assert set(positions["data"][0]) == {"symbol", "exchange", "product", "quantity", "average_price", "ltp", "pnl",
                                         "gross_pnl", "charges"}
    holdings = ok(client.holdings())
    assert set(holdings["data"]) == {"holdings", "statistics"}
    assert set(holdings["data"]["statistics"]) == {"totalholdingvalue", "totalinvvalue", "totalprofitandloss",
                                                   "totalpnlpercentage"}
    funds = ok(client.funds())
    assert set(funds["data"]) == {"availablecash", "collateral", "m2mrealized", "m2munrealized", "utiliseddebits"}
    for value in funds["data"].values():
        assert isinstance(value, str)
        assert len(value.split(".")[1]) == 2

    closed = ok(client.closeposition(strategy="SDK"))
    assert closed["message"] == "All Open Positions Squared Off"
    assert int(ok(client.openposition(strategy="SDK", symbol="INFY", exchange="NSE", product="MIS"))["quantity"]) == 0

    # analyzer toggle round trip
    live = ok(client.analyzertoggle(mode=False))
    assert live["data"]["mode"] == "live"
    assert live["data"]["message"] == "Analyzer mode switched to live"
    refused = client.placeorder(strategy="SDK", symbol="INFY", action="BUY", exchange="NSE", quantity=1)
    assert refused["status"] == "error"
    assert refused["code"] == 403
    back = ok(client.analyzertoggle(mode=True))
    assert back["data"]["analyze_mode"] is True


def test_sdk_errors_come_back_as_messages(client):
    bad = client.placeorder(strategy="SDK", symbol="NOSUCH", action="BUY", exchange="NSE", quantity=1)
    assert bad["status"] == "error"
    assert bad["code"] == 404
    assert "NOSUCH" in bad["message"]
    invalid = client.placeorder(strategy="SDK", symbol="INFY", action="HOLD", exchange="NSE", quantity=1)
    assert invalid["status"] == "error"
    assert invalid["code"] == 400
    assert "action" in invalid["message"]
