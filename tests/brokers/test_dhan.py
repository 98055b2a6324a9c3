"""The Dhan adapter, driven over HTTP against the fake DhanHQ v2 server (tests/fakes/dhan_server.py)."""

from __future__ import annotations

import datetime as dt
import logging
import socket
from collections.abc import Iterator
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from brokers.base import BrokerError, DepthLevel, ErrorKind, MarginOrder, OrderRequest
from brokers.dhan import DhanBroker, DhanClient, mapping
from brokers.registry import get_broker_class
from services.market import master_contract
from tests.fakes.dhan_server import CLIENT_ID, RunningDhan, running_dhan

IST = ZoneInfo("Asia/Kolkata")
TOKENS = {("NSE", "INFY"): "1594", ("NSE", "ABB"): "13", ("NSE", "NIFTY"): "IDX_I:13",
          ("NFO", "NIFTY-Dec2030-FUT"): "35001", ("BSE", "RELIANCE"): "500325"}


@pytest.fixture
def dhan() -> Iterator[RunningDhan]:
    with running_dhan() as server:
        yield server


@pytest.fixture
def broker(dhan: RunningDhan) -> Iterator[DhanBroker]:
    adapter = DhanBroker(root=dhan.url, instruments_url=dhan.instruments_url, timeout=5, quotes_per_second=0,
                         data_per_second=0)
    yield adapter
    adapter.close()


def _login(broker: DhanBroker, dhan: RunningDhan, **kw):
    return broker.complete_login({"client_id": CLIENT_ID, "access_token": dhan.fake.issue_token(**kw)})


@pytest.fixture
def client(broker: DhanBroker, dhan: RunningDhan) -> DhanClient:
    return broker.session(_login(broker, dhan).access_token)


def _order(symbol: str = "INFY", exchange: str = "NSE", quantity: int = 2, **kw) -> OrderRequest:
    kw.setdefault("token", TOKENS.get((exchange, symbol), ""))
    kw.setdefault("product", "CNC")
    return OrderRequest(symbol=symbol, exchange=exchange, action=kw.pop("action", "BUY"), quantity=quantity, **kw)


def _last_body(dhan: RunningDhan, method: str, path: str):
    return next(body for m, p, body in reversed(dhan.fake.bodies) if m == method and p == path)


# -- discovery and login ---------------------------------------------------------------------------


def test_discovered_as_a_form_login_with_client_id_and_token():
    cls = get_broker_class("dhan")
    assert cls is DhanBroker
    assert cls.display_name == "Dhan"
    assert cls.login_kind == "form"
    assert cls.config_keys == {"root": "DHAN_ROOT_URL", "instruments_url": "DHAN_INSTRUMENTS_URL"}
    fields = {f.name: f.kind for f in DhanBroker().form_fields()}
    assert fields == {"client_id": "text", "access_token": "password"}


def test_login_checks_the_token_with_the_profile_and_keeps_its_validity(broker, dhan, caplog):
    caplog.set_level(logging.DEBUG)
    token = dhan.fake.issue_token(valid_for=dt.timedelta(hours=5))
    result = broker.complete_login({"client_id": f" {CLIENT_ID} ", "access_token": token})
    assert result.broker_user_id == CLIENT_ID
    assert result.access_token == f"{CLIENT_ID}:{token}"
    # The profile's tokenValidity (minute precision), earlier than Dhan's 24 hours.
    expected = dhan.fake.tokens[token].replace(second=0, microsecond=0)
    assert result.expires_at == expected
    assert result.extra["dataPlan"] == "Active"
    assert token not in repr(result)
    assert token not in str(result.extra)
    headers = dhan.fake.headers_seen[-1]
    assert headers["Access-Token"] == token
    assert headers["Client-Id"] == CLIENT_ID
    assert dhan.fake.calls["/profile"] == 1
    assert token not in caplog.text


def test_login_validity_is_at_most_a_day(broker, dhan):
    result = _login(broker, dhan, valid_for=dt.timedelta(days=30))
    assert result.expires_at <= dt.datetime.now(dt.UTC) + dt.timedelta(hours=24)


@pytest.mark.parametrize(("fields", "kind"), [
    ({"client_id": CLIENT_ID, "access_token": "not-a-token"}, ErrorKind.TOKEN),
    ({"client_id": "1000000001", "access_token": None}, ErrorKind.TOKEN),  # a valid token, another client id
    ({"client_id": "", "access_token": "x"}, ErrorKind.INPUT),
    ({"client_id": "10000/../x", "access_token": "abc"}, ErrorKind.INPUT),
    ({"client_id": CLIENT_ID, "access_token": "a:b"}, ErrorKind.INPUT),
])
def test_refused_logins(broker, dhan, fields, kind):
    if fields["access_token"] is None:
        fields = {**fields, "access_token": dhan.fake.issue_token()}
    with pytest.raises(BrokerError) as info:
        broker.complete_login(fields)
    assert info.value.kind is kind
    if kind is ErrorKind.INPUT:
        assert dhan.fake.calls_to("/") == 0  # refused before Dhan was asked


def test_an_expired_token_is_a_token_error(client, dhan):
    assert client.funds().availablecash == Decimal("100000.0")
    dhan.fake.expire_all()
    with pytest.raises(BrokerError) as info:
        client.funds()
    assert info.value.kind is ErrorKind.TOKEN
    assert info.value.is_session_error
    assert info.value.status == 401


def test_a_session_needs_a_stored_client_id_and_token(broker):
    for stored in ("", "justatoken", ":tok", "1000:"):
        with pytest.raises(BrokerError) as info:
            broker.session(stored)
        assert info.value.kind is ErrorKind.TOKEN


def test_logout_asks_nothing_of_dhan(broker, dhan):
    broker.logout(f"{CLIENT_ID}:tok")
    assert dhan.fake.calls_to("/") == 0


def test_no_token_in_repr_or_logs(client, dhan, caplog):
    caplog.set_level(logging.DEBUG)
    token = client._access_token
    client.place_order(_order())
    dhan.fake.fail_next(500, "DH-908", "Internal server error")
    with pytest.raises(BrokerError):
        client.orderbook()
    assert token not in repr(client)
    assert token not in caplog.text


# -- orders ----------------------------------------------------------------------------------------


def test_market_order_is_placed_by_security_id_and_fills(client, dhan):
    result = client.place_order(_order(tag="strategy one!"))
    body = _last_body(dhan, "POST", "/orders")
    assert body["dhanClientId"] == CLIENT_ID
    assert body["securityId"] == "1594"
    assert body["exchangeSegment"] == "NSE_EQ"
    assert (body["transactionType"], body["productType"], body["orderType"], body["validity"]) == (
        "BUY", "CNC", "MARKET", "DAY")
    assert body["quantity"] == 2
    assert body["price"] == 0
    assert body["triggerPrice"] == 0
    assert body["correlationId"] == "strategy one"
    order = client.order_status(result.orderid)
    assert order.status == "complete"
    assert order.filled_quantity == 2
    assert order.average_price == Decimal("1500.5")
    assert order.broker_status == "TRADED"
    assert (order.symbol, order.exchange, order.product, order.pricetype) == ("INFY", "NSE", "CNC", "MARKET")
    assert order.timestamp.tzinfo is not None


@pytest.mark.parametrize(("ours", "theirs"), [(("MIS", "LIMIT"), ("INTRADAY", "LIMIT")),
                                          (("NRML", "SL"), ("MARGIN", "STOP_LOSS")),
                                          (("NRML", "SL-M"), ("MARGIN", "STOP_LOSS_MARKET"))])
def test_products_and_price_types_map_both_ways(client, dhan, ours, theirs):
    product, pricetype = ours
    result = client.place_order(_order("NIFTY-Dec2030-FUT", "NFO", 75, product=product, pricetype=pricetype,
                                       action="SELL",
                                       price=Decimal("24000") if pricetype != "SL-M" else 0,
                                       trigger_price=Decimal("23990.5") if pricetype != "LIMIT" else 0))
    body = _last_body(dhan, "POST", "/orders")
    assert (body["productType"], body["orderType"], body["exchangeSegment"]) == (*theirs, "NSE_FNO")
    order = client.order_status(result.orderid)
    assert (order.product, order.pricetype, order.status) == (product, pricetype, "open")


def test_modify_and_cancel_an_open_order(client, dhan):
    orderid = client.place_order(_order(pricetype="LIMIT", price=Decimal("1400"))).orderid
    client.modify_order(orderid, _order(quantity=3, pricetype="LIMIT", price=Decimal("1410.5")))
    body = _last_body(dhan, "PUT", f"/orders/{orderid}")
    assert body["orderId"] == orderid
    assert body["dhanClientId"] == CLIENT_ID
    assert body["quantity"] == 3
    order = client.order_status(orderid)
    assert (order.quantity, order.price, order.status) == (3, Decimal("1410.5"), "open")
    assert client.cancel_order(orderid).orderid == orderid
    assert client.order_status(orderid).status == "cancelled"
    with pytest.raises(BrokerError) as info:
        client.cancel_order(orderid)
    assert info.value.kind is ErrorKind.ORDER


def test_an_order_beyond_the_funds_is_rejected_with_dhans_reason(client):
    orderid = client.place_order(_order(quantity=500, pricetype="LIMIT", price=Decimal("1500"))).orderid
    order = client.order_status(orderid)
    assert order.status == "rejected"
    assert "Margin" in order.status_message


@pytest.mark.parametrize("orderid", ["../fundlimit", "12a", "", "1" * 30])
def test_order_ids_not_shaped_like_dhans_never_reach_dhan(client, dhan, orderid):
    before = dhan.fake.calls_to("/")
    for call in (client.cancel_order, client.order_status, lambda o: client.modify_order(o, _order())):
        with pytest.raises(BrokerError) as info:
            call(orderid)
        assert info.value.kind is ErrorKind.INPUT
    assert dhan.fake.calls_to("/") == before


def test_an_order_without_a_security_id_or_on_an_index_is_refused_locally(client, dhan):
    for order in (_order(token=""), _order("NIFTY", "NSE"), _order(exchange="NSEX", token="1")):
        with pytest.raises(BrokerError) as info:
            client.place_order(order)
        assert info.value.kind is ErrorKind.INPUT
    assert dhan.fake.calls_to("/orders") == 0


def test_an_unknown_order_is_an_input_error(client):
    with pytest.raises(BrokerError) as info:
        client.order_status("999999")
    assert info.value.kind is ErrorKind.INPUT


def test_unknown_statuses_are_open_and_logged(caplog):
    assert mapping.order_status("SOMETHING_NEW") == "open"
    assert "SOMETHING_NEW" in caplog.text
    assert [mapping.order_status(s) for s in ("TRANSIT", "PART_TRADED", "EXPIRED", "REJECTED")] == [
        "open", "open", "cancelled", "rejected"]


# -- books and funds -------------------------------------------------------------------------------


def test_books_after_a_fill(client, dhan):
    client.place_order(_order("NIFTY-Dec2030-FUT", "NFO", 75, product="MIS", action="SELL"))
    [order] = client.orderbook()
    assert (order.symbol, order.exchange, order.action, order.status) == ("NIFTY-Dec2030-FUT", "NFO", "SELL",
                                                                           "complete")
    [trade] = client.tradebook()
    assert (trade.orderid, trade.quantity, trade.average_price, trade.product) == (
        order.orderid, 75, Decimal("24100.0"), "MIS")
    [position] = client.positions()
    assert (position.symbol, position.exchange, position.product, position.quantity) == (
        "NIFTY-Dec2030-FUT", "NFO", "MIS", -75)
    assert position.average_price == Decimal("24100.0")
    assert position.ltp == Decimal("24100.00")


def test_position_ltp_follows_from_the_unrealised_profit():
    row = {"tradingSymbol": "INFY", "exchangeSegment": "NSE_EQ", "productType": "INTRADAY", "netQty": -10,
           "buyAvg": 0, "sellAvg": 1500, "realizedProfit": 12.5, "unrealizedProfit": 50, "multiplier": 1}
    position = mapping.to_position(row)
    assert (position.quantity, position.average_price, position.ltp, position.pnl) == (
        -10, Decimal(1500), Decimal("1495.00"), Decimal("62.5"))
    assert position.product == "MIS"


def test_holdings_and_funds(client, dhan):
    [holding] = client.holdings()
    assert (holding.symbol, holding.exchange, holding.quantity, holding.average_price, holding.ltp) == (
        "INFY", "NSE", 10, Decimal("1400.0"), Decimal("1500.5"))
    assert holding.pnl == Decimal("1005.00")
    assert dhan.fake.calls["/marketfeed/ltp"] == 1  # Dhan's holdings carry no price
    dhan.fake.data_enabled = False
    [holding] = client.holdings()
    assert (holding.quantity, holding.ltp, holding.pnl) == (10, Decimal(0), Decimal(0))
    dhan.fake.holdings_rows = []
    assert client.holdings() == []  # Dhan's DH-1111 "no holdings"
    funds = client.funds()
    assert (funds.availablecash, funds.collateral, funds.utiliseddebits) == (
        Decimal("100000.0"), Decimal("5000.0"), Decimal("15202.0"))


# -- market data -----------------------------------------------------------------------------------


def test_quotes_and_depth_by_segment_and_security_id(client, dhan):
    pairs = [("NSE", "INFY"), ("NSE", "ABB"), ("NSE", "NIFTY"), ("NSE", "NOTOKEN")]
    quotes = client.quotes(pairs, TOKENS)
    assert set(quotes) == {("NSE", "INFY"), ("NSE", "ABB"), ("NSE", "NIFTY")}
    body = _last_body(dhan, "POST", "/marketfeed/quote")
    assert body == {"NSE_EQ": [1594, 13], "IDX_I": [13]}
    # NSE_EQ 13 and IDX_I 13 are different instruments.
    assert quotes[("NSE", "ABB")].ltp == Decimal("5400.0")
    assert quotes[("NSE", "NIFTY")].ltp == Decimal("24000.0")
    infy = quotes[("NSE", "INFY")]
    assert len(infy.bids) == len(infy.asks) == 5
    assert infy.bids[0] == DepthLevel(Decimal("1500.45"), 100, 3)
    assert infy.bid == Decimal("1500.45")
    assert infy.ask == Decimal("1500.55")
    assert (infy.prev_close, infy.volume, infy.ltq, infy.total_buy_quantity) == (Decimal("1495.5"), 123456, 5, 4000)
    assert infy.upper_circuit == Decimal("1800.6")
    assert infy.timestamp.tzinfo is not None
    nifty = quotes[("NSE", "NIFTY")]
    assert nifty.bids == ()
    assert nifty.upper_circuit is None


def test_quotes_go_a_thousand_instruments_a_request(client, dhan):
    pairs = [("NSE", f"S{n}") for n in range(1500)]
    tokens = {pair: str(100000 + n) for n, pair in enumerate(pairs)}
    tokens[pairs[-1]] = "1594"
    quotes = client.quotes(pairs, tokens)
    assert list(quotes) == [pairs[-1]]
    assert dhan.fake.calls["/marketfeed/quote"] == 2


def test_without_a_data_subscription_market_data_is_a_permission_error(client, dhan):
    dhan.fake.data_enabled = False
    with pytest.raises(BrokerError) as info:
        client.quotes([("NSE", "INFY")], TOKENS)
    assert info.value.kind is ErrorKind.PERMISSION


def test_intraday_history_in_pieces_of_ninety_days(client, dhan):
    end = dt.datetime(2026, 11, 27, 15, 30, tzinfo=IST)
    start = end - dt.timedelta(days=200)
    candles = client.history("NSE", "INFY", "1594", "1h", start, end)
    assert dhan.fake.calls["/charts/intraday"] == 3
    body = _last_body(dhan, "POST", "/charts/intraday")
    assert (body["securityId"], body["exchangeSegment"], body["instrument"], body["interval"]) == (
        "1594", "NSE_EQ", "EQUITY", "60")
    stamps = [c.timestamp for c in candles]
    assert stamps == sorted(set(stamps))
    assert start <= stamps[0]
    assert stamps[-1] <= end
    assert all(c.timestamp.astimezone(IST).time() >= dt.time(9, 15) for c in candles)
    assert all(c.low <= min(c.open, c.close) and c.high >= max(c.open, c.close) for c in candles)


def test_daily_history_includes_the_last_day(client, dhan):
    start, end = dt.datetime(2026, 11, 23, tzinfo=IST), dt.datetime(2026, 11, 27, 10, 0, tzinfo=IST)
    candles = client.history("NFO", "NIFTY-Dec2030-FUT", "35001", "D", start, end, oi=True)
    assert [c.timestamp.date() for c in candles] == [dt.date(2026, 11, d) for d in range(23, 28)]
    assert all(c.oi > 0 for c in candles)
    body = _last_body(dhan, "POST", "/charts/historical")
    assert (body["fromDate"], body["toDate"], body["instrument"], body["oi"]) == (
        "2026-11-23", "2026-11-28", "FUTIDX", True)


def test_index_history_and_unsupported_intervals(client, dhan):
    end = dt.datetime(2026, 11, 27, 15, 30, tzinfo=IST)
    candles = client.history("NSE", "NIFTY", "IDX_I:13", "5m", end - dt.timedelta(hours=2), end)
    assert candles
    assert _last_body(dhan, "POST", "/charts/intraday")["exchangeSegment"] == "IDX_I"
    for interval in ("3m", "W", "25m"):
        with pytest.raises(BrokerError) as info:
            client.history("NSE", "INFY", "1594", interval, end - dt.timedelta(days=1), end)
        assert info.value.kind is ErrorKind.INPUT
    assert set(client.HISTORY_INTERVALS) == {"1m", "5m", "15m", "1h", "D"}


@pytest.mark.parametrize(("exchange", "symbol", "kind"), [
    ("NFO", "NIFTY-Dec2030-24000-CE", "OPTIDX"), ("NFO", "INFY-Dec2030-FUT", "FUTSTK"),
    ("NFO", "INFY-Dec2030-1500-PE", "OPTSTK"), ("BFO", "SENSEX-Dec2030-80000-CE", "OPTIDX"),
    ("MCX", "CRUDEOIL-Dec2030-FUT", "FUTCOM"), ("CDS", "USDINR-Dec2030-FUT", "FUTCUR"), ("BSE", "RELIANCE", "EQUITY"),
])
def test_instrument_kinds_of_history_requests(exchange, symbol, kind):
    assert mapping.instrument_kind(exchange, symbol, "1") == kind


def _leg(symbol, exchange, action, quantity, product="NRML", **kw) -> MarginOrder:
    token = TOKENS.get((exchange, symbol), kw.pop("token", ""))
    return MarginOrder(exchange=exchange, symbol=symbol, action=action, quantity=quantity, product=product,
                       pricetype=kw.pop("pricetype", "MARKET"), token=token, **kw)


def test_margin_of_one_order_is_dhans_single_order_calculator(client, dhan):
    margin = client.basket_margin([_leg("INFY", "NSE", "BUY", 10, "CNC", pricetype="LIMIT", price=Decimal("1500"))])
    assert (margin.total, margin.benefit) == (Decimal("15000.0"), Decimal(0))
    body = _last_body(dhan, "POST", "/margincalculator")
    assert (body["dhanClientId"], body["securityId"], body["exchangeSegment"], body["productType"]) == (
        CLIENT_ID, "1594", "NSE_EQ", "CNC")
    assert body["price"] == 1500
    assert dhan.fake.calls["/margincalculator/multi"] == 0
    with pytest.raises(BrokerError):
        client.basket_margin([])


def test_margin_of_a_basket_is_priced_together_with_the_hedge_benefit(client, dhan):
    legs = [_leg("NIFTY-Dec2030-FUT", "NFO", "BUY", 75),
            _leg("NIFTY-Dec2030-24000-CE", "NFO", "SELL", 75, token="35002")]
    margin = client.basket_margin(legs)
    assert dhan.fake.calls["/margincalculator/multi"] == 1
    body = _last_body(dhan, "POST", "/margincalculator/multi")
    assert (body["dhanClientId"], body["includePosition"]) == (CLIENT_ID, True)
    assert [leg["securityId"] for leg in body["scripList"]] == ["35001", "35002"]
    span = Decimal("180750") + Decimal("180000")  # the future's value and the sold call's notional, 10 % each
    assert margin.benefit == (span * Decimal("0.7")).quantize(Decimal("0.01"))
    assert margin.span == span - margin.benefit
    assert margin.total == span + Decimal("54225") + Decimal("36000") - margin.benefit


def test_without_the_multi_calculator_the_legs_are_added_up(client, dhan):
    dhan.fake.fail_next(404, "DH-910", "Not found", path="/margincalculator/multi")
    margin = client.basket_margin([_leg("NIFTY-Dec2030-FUT", "NFO", "BUY", 75),
                                   _leg("INFY", "NSE", "BUY", 10, "CNC", pricetype="LIMIT", price=Decimal("1500"))])
    assert dhan.fake.calls["/margincalculator"] == 2
    assert (margin.span, margin.exposure, margin.benefit) == (Decimal("180750.0"), Decimal("54225.0"), Decimal(0))
    assert margin.total == Decimal("234975.0") + Decimal("15000")


# -- instruments -----------------------------------------------------------------------------------


def test_the_instrument_list_maps_to_openalgo_symbols(client):
    mapped, skipped, read = master_contract.map_rows(client.instruments())
    by_symbol = {(r[0], r[3]): r for r in mapped}
    assert read == 14
    assert not skipped
    assert by_symbol[("INFY", "NSE")][5] == "1594"
    assert by_symbol[("RELIANCE", "BSE")][2] == "RELIANCE INDUSTRIES, LTD"
    assert by_symbol[("NIFTY", "NSE_INDEX")][5] == "IDX_I:13"
    assert ("SENSEX", "BSE_INDEX") in by_symbol
    fut = by_symbol[("NIFTY26DEC30FUT", "NFO")]
    assert (fut[1], fut[6], fut[8], fut[10]) == ("NIFTY-Dec2030-FUT", dt.date(2030, 12, 26), 75, Decimal("0.1"))
    ce = by_symbol[("NIFTY26DEC3024000CE", "NFO")]
    assert (ce[1], ce[7], ce[9]) == ("NIFTY-Dec2030-24000-CE", Decimal("24000"), "CE")
    assert ("NIFTY26DEC3024000PE", "NFO") in by_symbol
    assert ("SENSEX26DEC3080000CE", "BFO") in by_symbol
    assert ("CRUDEOIL18DEC30FUT", "MCX") in by_symbol
    assert ("USDINR27DEC30FUT", "CDS") in by_symbol
    assert by_symbol[("USDINR27DEC30FUT", "CDS")][10] == Decimal("0.0025")


def test_the_detailed_list_is_refused_as_a_configuration_error(broker, dhan, tmp_path):
    dhan.fake.fail_next(200, path="/api-data/", content_type="text/csv",
                        body=b"EXCH_ID,SEGMENT,SECURITY_ID,ISIN,INSTRUMENT\nNSE,E,1594,INE009A01021,EQUITY\n")
    with pytest.raises(BrokerError) as info:
        list(broker.session(f"{CLIENT_ID}:t").instruments())
    assert info.value.kind is ErrorKind.CONFIG


def test_an_unreachable_instrument_list_is_a_broker_error(broker, dhan):
    dhan.fake.fail_next(404, path="/api-data/", body=b"<html>not found</html>", content_type="text/html")
    with pytest.raises(BrokerError):
        broker.session(f"{CLIENT_ID}:t").instruments()


# -- errors ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(("status", "code", "kind"), [
    (401, "DH-901", ErrorKind.TOKEN), (403, "DH-902", ErrorKind.PERMISSION), (400, "DH-903", ErrorKind.PERMISSION),
    (429, "DH-904", ErrorKind.RATE_LIMIT), (400, "DH-905", ErrorKind.INPUT), (400, "DH-906", ErrorKind.ORDER),
    (400, "DH-907", ErrorKind.INPUT), (500, "DH-908", ErrorKind.BROKER), (502, "DH-909", ErrorKind.NETWORK),
    (400, "DH-910", ErrorKind.BROKER), (400, "807", ErrorKind.TOKEN), (429, "805", ErrorKind.RATE_LIMIT),
    (400, "806", ErrorKind.PERMISSION), (400, "813", ErrorKind.INPUT),
])
def test_dhans_error_codes_map_to_kinds(client, dhan, status, code, kind):
    dhan.fake.fail_next(status, code, f"message of {code}")
    with pytest.raises(BrokerError) as info:
        client.positions()
    assert info.value.kind is kind
    assert info.value.status == status
    assert code in str(info.value)


def test_an_unreadable_answer_is_a_broker_error(client, dhan):
    dhan.fake.fail_next(502, body=b"<html>Bad gateway</html>", content_type="text/html")
    with pytest.raises(BrokerError) as info:
        client.orderbook()
    assert info.value.kind is ErrorKind.BROKER
    dhan.fake.fail_next(200, body=b'{"unexpected": true}')
    with pytest.raises(BrokerError) as info:
        client.orderbook()
    assert info.value.kind is ErrorKind.BROKER
    assert info.value.status == 502


def test_an_unclassified_refusal_of_an_order_is_an_order_error(client, dhan):
    dhan.fake.fail_next(400, "", "Order rejected", path="/orders")
    with pytest.raises(BrokerError) as info:
        client.place_order(_order())
    assert info.value.kind is ErrorKind.ORDER


def test_an_unreachable_dhan_is_a_network_error_without_the_url(caplog):
    caplog.set_level(logging.DEBUG)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    broker = DhanBroker(root=f"http://127.0.0.1:{port}/v2", timeout=2)
    try:
        with pytest.raises(BrokerError) as info:
            broker.session(f"{CLIENT_ID}:secret-token-value").funds()
    finally:
        broker.close()
    assert info.value.kind is ErrorKind.NETWORK
    assert str(port) not in str(info.value)
    assert "secret-token-value" not in caplog.text
