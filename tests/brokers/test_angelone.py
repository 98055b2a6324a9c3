"""The Angel One adapter against the fake SmartAPI server: login, orders, books, market data, margin,
the instrument master, and SmartAPI's refusals as BrokerError kinds."""

from __future__ import annotations

import datetime as dt
import logging
import re
from collections.abc import Iterator
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from brokers.angelone import AngelOneBroker, AngelOneClient
from brokers.angelone import mapping as angel_mapping
from brokers.angelone.adapter import _json_array
from brokers.base import BrokerError, ErrorKind, MarginOrder, OrderRequest
from brokers.registry import get_broker_class
from services.market.master_contract import map_rows
from tests.fakes.angelone_server import PIN, RunningAngel, running_angel

IST = ZoneInfo("Asia/Kolkata")
ORDER_PATH = "/rest/secure/angelbroking/order"


@pytest.fixture
def angel() -> Iterator[RunningAngel]:
    with running_angel() as server:
        yield server


def make_broker(server: RunningAngel, **kw) -> AngelOneBroker:
    kw.setdefault("history_per_second", 0)
    return AngelOneBroker(api_key=server.fake.api_key, root=server.url, instruments_url=server.instruments_url,
                          timeout=5, **kw)


@pytest.fixture
def broker(angel: RunningAngel) -> Iterator[AngelOneBroker]:
    adapter = make_broker(angel)
    yield adapter
    adapter.close()


@pytest.fixture
def client(broker: AngelOneBroker, angel: RunningAngel) -> AngelOneClient:
    return broker.session(broker.complete_login(angel.fake.login_fields()).access_token)


def order(symbol="INFY-EQ", token="1594", **kw) -> OrderRequest:  # noqa: S107 - an instrument token
    values = {"exchange": "NSE", "action": "BUY", "quantity": 2, "pricetype": "MARKET", "product": "MIS", **kw}
    return OrderRequest(symbol=symbol, token=token, **values)


# -- discovery and login ---------------------------------------------------------------------------------


def test_the_registry_finds_the_adapter_with_its_form():
    cls = get_broker_class("angelone")
    assert (cls.name, cls.display_name, cls.login_kind) == ("angelone", "Angel One", "form")
    assert set(cls.config_keys.values()) == {"ANGELONE_API_KEY", "ANGELONE_ROOT_URL", "ANGELONE_INSTRUMENTS_URL"}
    fields = cls(api_key="k").form_fields()
    assert [(f.name, f.kind) for f in fields] == [("clientcode", "text"), ("pin", "password"), ("totp", "totp")]
    with pytest.raises(BrokerError) as info:
        cls(api_key="")
    assert info.value.kind is ErrorKind.CONFIG


@pytest.mark.parametrize(("moment", "expiry"), [
    (dt.datetime(2026, 12, 7, 0, 1, tzinfo=IST), dt.datetime(2026, 12, 8, 0, 0, tzinfo=IST)),
    (dt.datetime(2026, 12, 7, 23, 59, tzinfo=IST), dt.datetime(2026, 12, 8, 0, 0, tzinfo=IST)),
    (dt.datetime(2026, 12, 7, 19, 0, tzinfo=dt.UTC), dt.datetime(2026, 12, 9, 0, 0, tzinfo=IST)),  # 00:30 IST
])
def test_login_keeps_the_jwt_and_ends_at_midnight(angel, moment, expiry):
    adapter = make_broker(angel, clock=lambda: moment)
    try:
        result = adapter.complete_login({**angel.fake.login_fields(), "clientcode": " a123456 "})
    finally:
        adapter.close()
    assert result.access_token in angel.fake.sessions
    assert (result.broker_user_id, result.user_name) == ("A123456", "Angel Tester")
    assert result.expires_at == expiry
    assert "refreshToken" not in result.extra
    assert "feedToken" not in result.extra
    login = next(body for path, body in angel.fake.bodies if path.endswith("loginByPassword"))
    assert (login["clientcode"], login["password"], len(login["totp"])) == ("A123456", PIN, 6)
    headers = angel.fake.request_headers[0]
    assert headers["X-Privatekey"] == angel.fake.api_key
    assert (headers["X-Usertype"], headers["X-Sourceid"]) == ("USER", "WEB")


@pytest.mark.parametrize(("change", "words"), [
    ({"pin": "0000"}, "Invalid Email Or Password"),
    ({"totp": "000000"}, "Invalid totp"),
    ({"clientcode": "Z999"}, "Invalid Email Or Password"),
])
def test_bad_credentials_are_input_errors(broker, angel, change, words):
    fields = {**angel.fake.login_fields(), **change}
    if "totp" in change and change["totp"] == angel.fake.current_totp():
        pytest.skip("the random code is today's code")
    with pytest.raises(BrokerError) as info:
        broker.complete_login(fields)
    assert (info.value.kind, info.value.message) == (ErrorKind.INPUT, words)
    assert not angel.fake.sessions


@pytest.mark.parametrize("fields", [{"clientcode": "A1", "pin": "1", "totp": "12345"},
                                    {"clientcode": "A1", "pin": "1", "totp": "abcdef"},
                                    {"clientcode": "", "pin": "1", "totp": "123456"}])
def test_malformed_forms_never_reach_the_broker(broker, angel, fields):
    with pytest.raises(BrokerError) as info:
        broker.complete_login(fields)
    assert info.value.kind is ErrorKind.INPUT
    assert angel.fake.calls_to("loginByPassword") == 0


def test_expired_token_is_a_token_error_and_logout_is_idempotent(broker, angel, client):
    assert client.profile().broker_user_id == "A123456"
    angel.fake.expire_all()
    with pytest.raises(BrokerError) as info:
        client.funds()
    assert (info.value.kind, info.value.status, info.value.is_session_error) == (ErrorKind.TOKEN, 401, True)
    broker.logout(client._access_token)  # already dead: fine

    other = broker.session(broker.complete_login(angel.fake.login_fields()).access_token)
    broker.logout(other._access_token)
    assert angel.fake.calls_to("logout") == 1
    with pytest.raises(BrokerError) as info:
        other.profile()
    assert info.value.kind is ErrorKind.TOKEN


def test_a_wrong_api_key_is_refused(angel):
    adapter = AngelOneBroker(api_key="wrong", root=angel.url, timeout=5)
    try:
        with pytest.raises(BrokerError) as info:
            adapter.complete_login(angel.fake.login_fields())
    finally:
        adapter.close()
    assert info.value.kind is ErrorKind.TOKEN
    assert info.value.status == 403


# -- orders ----------------------------------------------------------------------------------------------


def test_place_market_order_fills_and_shows_in_the_books(client, angel):
    result = client.place_order(order(tag="algo1"))
    sent = next(body for path, body in angel.fake.bodies if path.endswith("placeOrder"))
    assert sent == {"variety": "NORMAL", "tradingsymbol": "INFY-EQ", "symboltoken": "1594",
                    "transactiontype": "BUY", "exchange": "NSE", "ordertype": "MARKET", "producttype": "INTRADAY",
                    "duration": "DAY", "price": "0", "triggerprice": "0", "squareoff": "0", "stoploss": "0",
                    "quantity": "2", "ordertag": "algo1"}
    status = client.order_status(result.orderid)
    assert (status.status, status.filled_quantity, status.average_price) == ("complete", 2, Decimal("1500.5"))
    assert (status.symbol, status.exchange, status.product, status.pricetype) == ("INFY-EQ", "NSE", "MIS", "MARKET")
    assert status.timestamp is not None
    assert status.timestamp.tzinfo is not None
    assert status.tag == "algo1"
    trades = client.tradebook()
    assert [(t.orderid, t.quantity, t.average_price, t.product) for t in trades] == [
        (result.orderid, 2, Decimal("1500.5"), "MIS")]
    assert trades[0].timestamp is not None
    assert trades[0].timestamp.tzinfo is not None
    (position,) = client.positions()
    assert (position.symbol, position.quantity, position.product, position.average_price) == (
        "INFY-EQ", 2, "MIS", Decimal("1500.50"))
    assert (position.ltp, position.pnl) == (Decimal("1500.50"), Decimal(0))
    assert angel.fake.calls_to("order/v1/details/") == 1  # the status of an order placed here
    assert angel.fake.calls_to("getOrderBook") == 0


def test_position_pnl_from_the_traded_amounts():
    row = {"tradingsymbol": "SBIN-EQ", "exchange": "NSE", "producttype": "INTRADAY", "netqty": "-2",
           "avgnetprice": "805.00", "buyamount": "2400.00", "sellamount": "4010.00", "ltp": "790.00"}
    position = angel_mapping.to_position(row)
    assert (position.quantity, position.pnl) == (-2, Decimal("30.00"))  # 4010 - 2400 - 2 x 790
    assert angel_mapping.to_position({**row, "pnl": "12.5"}).pnl == Decimal("12.5")
    assert angel_mapping.to_position({**row, "ltp": ""}).pnl == 0


@pytest.mark.parametrize(("pricetype", "product", "variety", "ordertype", "producttype"), [
    ("SL", "CNC", "STOPLOSS", "STOPLOSS_LIMIT", "DELIVERY"),
    ("SL-M", "NRML", "STOPLOSS", "STOPLOSS_MARKET", "CARRYFORWARD"),
])
def test_stop_loss_orders_go_with_their_variety_and_cancel(client, angel, pricetype, product, variety, ordertype,
                                                           producttype):
    placed = client.place_order(order(pricetype=pricetype, product=product, price=Decimal("1490"),
                                      trigger_price=Decimal("1495")))
    row = angel.fake.orders[placed.orderid]
    assert (row["variety"], row["ordertype"], row["producttype"]) == (variety, ordertype, producttype)
    assert row["triggerprice"] == 1495.0
    assert row["price"] == (1490.0 if pricetype == "SL" else 0.0)
    assert client.order_status(placed.orderid).status == "trigger pending"
    assert client.cancel_order(placed.orderid).orderid == placed.orderid
    assert angel.fake.orders[placed.orderid]["orderstatus"] == "cancelled"
    assert client.order_status(placed.orderid).status == "cancelled"


def test_orders_placed_elsewhere_are_found_in_the_book(broker, angel, client):
    placed = client.place_order(order(pricetype="SL-M", trigger_price=Decimal("1495")))
    other = make_broker(angel)  # another process: it did not place the order
    try:
        session = other.session(client._access_token)
        assert session.order_status(placed.orderid).status == "trigger pending"
        assert angel.fake.calls_to("getOrderBook") == 1
        session.cancel_order(placed.orderid)  # with the variety read from the book
    finally:
        other.close()
    assert angel.fake.orders[placed.orderid]["orderstatus"] == "cancelled"
    assert angel.fake.calls_to("getOrderBook") == 2


def test_modify_a_limit_order(client, angel):
    placed = client.place_order(order(pricetype="LIMIT", price=Decimal("1400")))
    assert client.order_status(placed.orderid).status == "open"
    client.modify_order(placed.orderid, order(pricetype="LIMIT", price=Decimal("1450.5"), quantity=5))
    row = angel.fake.orders[placed.orderid]
    assert (row["price"], row["quantity"], row["orderstatus"]) == (1450.5, "5", "open")
    modify = next(body for path, body in angel.fake.bodies if path.endswith("modifyOrder"))
    assert modify["orderid"] == placed.orderid
    assert modify["symboltoken"] == "1594"
    client.modify_order(placed.orderid, order(pricetype="LIMIT", price=Decimal("1600"), quantity=5))
    assert client.order_status(placed.orderid).status == "complete"
    with pytest.raises(BrokerError) as info:  # a filled order cannot change
        client.cancel_order(placed.orderid)
    assert info.value.kind is ErrorKind.ORDER


def test_refusals_map_to_kinds(client, angel):
    with pytest.raises(BrokerError) as info:
        client.place_order(order(token="3045"))  # INFY-EQ is not token 3045
    assert (info.value.kind, info.value.status, info.value.message) == (ErrorKind.INPUT, 400, "Symbol Not Found")
    with pytest.raises(BrokerError) as info:
        client.order_status("999999999")
    assert (info.value.kind, info.value.status) == (ErrorKind.INPUT, 404)
    with pytest.raises(BrokerError) as info:
        client.cancel_order("999999999")
    assert (info.value.kind, info.value.status) == (ErrorKind.INPUT, 404)
    angel.fake.fail_next(ORDER_PATH, code="AB2000", message="RMS: Margin Exceeds")
    with pytest.raises(BrokerError) as info:
        client.place_order(order())
    assert info.value.kind is ErrorKind.ORDER
    angel.fake.fail_next(ORDER_PATH, code="AB1006", message="Client Is Block For Trading")
    with pytest.raises(BrokerError) as info:
        client.place_order(order())
    assert info.value.kind is ErrorKind.PERMISSION
    angel.fake.fail_next(ORDER_PATH, status=403, body=b"Access denied because of exceeding rate limit",
                         content_type="text/plain")
    with pytest.raises(BrokerError) as info:
        client.orderbook()
    assert info.value.kind is ErrorKind.RATE_LIMIT
    angel.fake.fail_next(ORDER_PATH, status=502, body=b"<html>Bad gateway</html>", content_type="text/html")
    with pytest.raises(BrokerError) as info:
        client.orderbook()
    assert info.value.kind is ErrorKind.NETWORK
    angel.fake.fail_next(ORDER_PATH, body=b"not json", content_type="text/plain")
    with pytest.raises(BrokerError) as info:
        client.orderbook()
    assert (info.value.kind, info.value.status) == (ErrorKind.BROKER, 502)


@pytest.mark.parametrize("orderid", ["../getRMS", "1 OR 1", "", "x" * 40])
def test_malformed_order_ids_never_reach_the_broker(client, angel, orderid):
    for call in (client.cancel_order, client.order_status,
                 lambda o: client.modify_order(o, order(pricetype="LIMIT", price=Decimal(1)))):
        with pytest.raises(BrokerError) as info:
            call(orderid)
        assert info.value.kind is ErrorKind.INPUT
    assert angel.fake.calls_to("order/v1") == 0


def test_an_order_without_a_token_never_reaches_the_broker(client, angel):
    with pytest.raises(BrokerError) as info:
        client.place_order(order(token=""))
    assert info.value.kind is ErrorKind.INPUT
    assert angel.fake.calls_to("placeOrder") == 0


def test_network_failures_are_network_errors_without_secrets(angel, caplog):
    adapter = AngelOneBroker(api_key="secret-key-123", root="http://127.0.0.1:9", timeout=2)
    caplog.set_level(logging.DEBUG)
    try:
        with pytest.raises(BrokerError) as info:
            adapter.session("jwt-secret-token").funds()
    finally:
        adapter.close()
    assert info.value.kind is ErrorKind.NETWORK
    assert "jwt-secret-token" not in caplog.text
    assert "secret-key-123" not in caplog.text
    assert "jwt-secret-token" not in str(info.value)


def test_no_secret_in_logs_or_reprs(broker, angel, caplog):
    caplog.set_level(logging.DEBUG)
    fields = angel.fake.login_fields()
    session = broker.session(broker.complete_login(fields).access_token)
    session.place_order(order())
    angel.fake.expire_all()
    with pytest.raises(BrokerError):
        session.positions()
    token = session._access_token
    for text in (caplog.text, repr(session), repr(broker)):
        assert token not in text
        assert angel.fake.api_key not in text
        assert not re.search(rf"\b({fields['totp']}|{PIN})\b", text)


# -- books and funds -------------------------------------------------------------------------------------


def test_empty_books_holdings_and_funds(client):
    assert client.orderbook() == []
    assert client.tradebook() == []
    assert client.positions() == []
    (holding,) = client.holdings()
    assert (holding.symbol, holding.quantity, holding.product, holding.pnl) == ("INFY-EQ", 10, "CNC", Decimal(1005))
    funds = client.funds()
    assert (funds.availablecash, funds.collateral, funds.m2mrealized, funds.m2munrealized, funds.utiliseddebits) == (
        Decimal("99725.05"), Decimal("5000.00"), Decimal("761.70"), Decimal("-120.50"), Decimal("145706.55"))


def test_unknown_statuses_are_open_and_logged(caplog):
    assert angel_mapping.order_status("validation pending") == "open"
    assert not caplog.records
    assert angel_mapping.order_status("Something New") == "open"
    assert "Something New" in caplog.text
    assert angel_mapping.order_status("COMPLETE") == "complete"


# -- market data -----------------------------------------------------------------------------------------


def test_quotes_and_depth_by_token(client, angel):
    keys = {("NSE", "INFY-EQ"): "1594", ("NSE", "Nifty 50"): "99926000", ("NFO", "NIFTY30DEC2624000CE"): "35002",
            ("NSE", "NOPE-EQ"): "424242", ("NSE", "NOTOKEN-EQ"): ""}
    quotes = client.quotes(list(keys), keys)
    assert set(quotes) == {("NSE", "INFY-EQ"), ("NSE", "Nifty 50"), ("NFO", "NIFTY30DEC2624000CE")}
    infy = quotes[("NSE", "INFY-EQ")]
    assert (infy.ltp, infy.open, infy.prev_close, infy.volume) == (Decimal("1500.5"), Decimal("1490.5"),
                                                                   Decimal("1495.5"), 123456)
    assert (infy.bid, infy.ask) == (Decimal("1500.45"), Decimal("1500.55"))
    assert len(infy.bids) == len(infy.asks) == 5
    assert infy.bids[0].orders == 1
    assert (infy.total_buy_quantity, infy.ltq, infy.upper_circuit) == (50000, 25, Decimal("1650.55"))
    nifty = quotes[("NSE", "Nifty 50")]
    assert (nifty.bids, nifty.upper_circuit, nifty.volume) == ((), None, 0)
    assert quotes[("NFO", "NIFTY30DEC2624000CE")].oi == 250000
    sent = next(body for path, body in angel.fake.bodies if path.endswith("quote"))
    assert sent == {"mode": "FULL", "exchangeTokens": {"NSE": ["1594", "99926000", "424242"], "NFO": ["35002"]}}


def test_quotes_go_fifty_to_a_request(client, angel):
    keys = {("NSE", f"S{n}-EQ"): str(100000 + n) for n in range(120)}
    keys[("NSE", "INFY-EQ")] = "1594"
    quotes = client.quotes(list(keys), keys)
    assert list(quotes) == [("NSE", "INFY-EQ")]
    assert angel.fake.calls_to("market/v1/quote") == 3


def test_history_in_pieces_with_open_interest(client, angel):
    end = dt.datetime(2026, 11, 27, 15, 29, tzinfo=IST)  # a Friday
    start = end - dt.timedelta(days=32)
    candles = client.history("NFO", "NIFTY30DEC26FUT", "35001", "1m", start, end, oi=True)
    bodies = [b for p, b in angel.fake.bodies if p.endswith("getCandleData")]
    assert len(bodies) == 2
    assert {b["interval"] for b in bodies} == {"ONE_MINUTE"}
    assert bodies[0]["fromdate"] == "2026-10-26 15:29"
    assert angel.fake.calls_to("getOIData") == 2
    assert candles == sorted(candles, key=lambda c: c.timestamp)
    assert len({c.timestamp for c in candles}) == len(candles)
    assert all(start <= c.timestamp <= end for c in candles)
    assert candles[0].timestamp.tzinfo is not None
    assert candles[-1].oi > 0
    assert candles[-1].timestamp == end.replace(hour=15, minute=29)

    days = client.history("NSE", "INFY-EQ", "1594", "D", start, end)
    assert days[0].timestamp.date() == dt.date(2026, 10, 26)
    assert days[-1].timestamp.date() == dt.date(2026, 11, 27)
    assert all(c.oi == 0 for c in days)
    assert angel.fake.calls_to("getOIData") == 2  # not asked for


@pytest.mark.parametrize(("args", "kind"), [
    (("NSE", "INFY-EQ", "1594", "2h"), ErrorKind.INPUT),
    (("NSE", "INFY-EQ", "", "D"), ErrorKind.INPUT),
    (("NSE", "INFY-EQ", "../x", "D"), ErrorKind.INPUT),
    (("NCDEX", "X", "1", "D"), ErrorKind.INPUT),
    (("CDS", "USDINR29DEC26FUT", "8001", "D"), ErrorKind.INPUT),
    (("NSE", "NOPE", "424242", "D"), ErrorKind.INPUT),
])
def test_history_refusals(client, angel, args, kind):
    end = dt.datetime(2026, 11, 27, 15, 0, tzinfo=IST)
    with pytest.raises(BrokerError) as info:
        client.history(*args, end - dt.timedelta(days=3), end)
    assert info.value.kind is kind


def test_basket_margin(client, angel):
    legs = [MarginOrder(exchange="NFO", symbol="NIFTY30DEC26FUT", token="35001", action="SELL", quantity=75,
                        product="NRML", pricetype="MARKET"),
            MarginOrder(exchange="NFO", symbol="NIFTY30DEC2624000PE", token="35003", action="BUY", quantity=75,
                        product="NRML", pricetype="LIMIT", price=Decimal("120.75"))]
    margin = client.basket_margin(legs)
    assert margin.total > 0
    assert margin.span > 0
    assert margin.benefit > 0
    assert margin.option_premium == Decimal("9056.25")
    sent = next(body for path, body in angel.fake.bodies if path.endswith("batch"))
    assert sent["positions"][0] == {"exchange": "NFO", "qty": 75, "price": 0.0, "productType": "CARRYFORWARD",
                                    "token": "35001", "tradeType": "SELL", "orderType": "MARKET"}
    with pytest.raises(BrokerError) as info:
        client.basket_margin([])
    assert info.value.kind is ErrorKind.INPUT


# -- the instrument master -------------------------------------------------------------------------------


def test_instruments_map_to_openalgo_symbols(client):
    rows = list(client.instruments())
    mapped, skipped, read = map_rows(rows)
    symbols = {(m[0], m[3]): m for m in mapped}
    assert {"SBIN", "INFY", "RELIANCE"} <= {s for s, e in symbols if e == "NSE"}
    assert symbols[("SBIN", "NSE")][1] == "SBIN-EQ"
    assert symbols[("SBIN", "NSE")][5] == "3045"
    assert symbols[("SBIN", "BSE")][1] == "SBIN"
    assert {("NIFTY", "NSE_INDEX"), ("BANKNIFTY", "NSE_INDEX"), ("SENSEX", "BSE_INDEX")} <= set(symbols)
    assert symbols[("NIFTY", "NSE_INDEX")][1] == "Nifty 50"
    fut = symbols[("NIFTY30DEC26FUT", "NFO")]
    assert (fut[1], fut[5], fut[6], fut[8], fut[10]) == ("NIFTY30DEC26FUT", "35001", dt.date(2026, 12, 30), 75,
                                                         Decimal("0.1"))
    ce = symbols[("NIFTY30DEC2624000CE", "NFO")]
    assert (ce[7], ce[9], ce[10]) == (Decimal(24000), "CE", Decimal("0.05"))
    assert ("NIFTY30DEC2624000PE", "NFO") in symbols
    assert symbols[("SBIN30DEC26812.5CE", "NFO")][7] == Decimal("812.5")
    assert ("SENSEX31DEC26FUT", "BFO") in symbols
    assert ("CRUDEOIL18DEC26FUT", "MCX") in symbols
    assert symbols[("USDINR29DEC26FUT", "CDS")][10] == Decimal("0.0025")
    # The NCO row (not one of our exchanges) is not passed on; the bad expiry is dropped by the adapter.
    assert read == len(rows) == 14
    assert not skipped


def test_segment_codes_of_the_documented_sample_row():
    row = {"token": "2885", "symbol": "RELIANCE-EQ", "name": "RELIANCE", "expiry": "", "strike": "-1.000000",
           "lotsize": "1", "instrumenttype": "", "exch_seg": "nse_cm", "tick_size": "5.000000"}
    assert angel_mapping.canonical_row(row)["exchange"] == "NSE"
    assert angel_mapping.canonical_row({**row, "exch_seg": "XYZ"}) is None


def test_instrument_list_failures(angel, broker):
    angel.fake.fail_next("/OpenAPI_File", status=404, body=b"Not found", content_type="text/plain")
    session = broker.session("unused")
    with pytest.raises(BrokerError) as info:
        session.instruments()
    assert info.value.kind is ErrorKind.BROKER
    angel.fake.fail_next("/OpenAPI_File", body=b'[{"token": "1", "symbol": "A-EQ"', content_type="application/json")
    with pytest.raises(BrokerError) as info:
        list(session.instruments())
    assert info.value.kind is ErrorKind.BROKER


def test_json_array_streaming_handles_cut_characters_and_tokens():
    text = '[{"name": "ÅNGEL", "n": 1} , {"name": "b", "n": [2, 3]}]'.encode()
    chunks = [text[i : i + 3] for i in range(0, len(text), 3)]
    assert list(_json_array(chunks)) == [{"name": "ÅNGEL", "n": 1}, {"name": "b", "n": [2, 3]}]
    assert list(_json_array([b"[]"])) == []
    with pytest.raises(ValueError, match="not a JSON array"):
        list(_json_array([b'{"a": 1}']))


def test_long_tags_are_cut_to_what_smartapi_takes(client, angel):
    placed = client.place_order(order(tag="strategy-with-a-very-long-name"))
    assert angel.fake.orders[placed.orderid]["ordertag"] == "strategy-with-a-ver"
