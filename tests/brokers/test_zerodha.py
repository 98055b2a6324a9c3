"""The Zerodha adapter, driven over HTTP against the fake Kite server (tests/fakes/kite_server.py)."""

from __future__ import annotations

import datetime as dt
import inspect
import itertools
import logging
import socket
from decimal import Decimal
from urllib.parse import parse_qs, parse_qsl, urlsplit
from zoneinfo import ZoneInfo

import pytest
import requests

from brokers.base import BrokerError, ErrorKind, OrderRequest
from brokers.zerodha import KiteClient, ZerodhaBroker, mapping
from tests.fakes.kite_server import DEFAULT_INSTRUMENTS, INSTRUMENT_COLUMNS, RunningKite

IST = ZoneInfo("Asia/Kolkata")


def _login(zerodha: ZerodhaBroker, kite: RunningKite):
    return zerodha.complete_login({"status": "success", "request_token": kite.fake.issue_request_token()})


def _buy(symbol: str = "INFY", quantity: int = 2, **kw) -> OrderRequest:
    kw.setdefault("pricetype", "MARKET")
    kw.setdefault("product", "CNC")
    exchange = kw.pop("exchange", "NSE")
    action = kw.pop("action", "BUY")
    return OrderRequest(symbol=symbol, exchange=exchange, action=action, quantity=quantity, **kw)


# -- login -----------------------------------------------------------------------------------------


def test_login_url_is_kites_with_api_key_version_and_state():
    broker = ZerodhaBroker(api_key="abc123", api_secret="s3cr3t")
    url = broker.login_url(state="st-1/2")
    parts = urlsplit(url)
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == "https://kite.zerodha.com/connect/login"
    query = parse_qs(parts.query)
    assert query["v"] == ["3"]
    assert query["api_key"] == ["abc123"]
    assert parse_qs(query["redirect_params"][0]) == {"state": ["st-1/2"]}
    assert "s3cr3t" not in url
    assert "redirect_params" not in broker.login_url()


def test_missing_credentials_is_a_config_error():
    with pytest.raises(BrokerError) as info:
        ZerodhaBroker(api_key="", api_secret="")
    assert info.value.kind == "config"


def test_login_round_trip_through_the_login_page(zerodha, kite):
    # The browser follows login_url to Kite, signs in, and is redirected to our callback.
    answer = requests.get(zerodha.login_url(state="xyz"), allow_redirects=False, timeout=5)
    assert answer.status_code == 302
    location = urlsplit(answer.headers["Location"])
    assert location.path == "/zerodha/callback"
    callback_args = dict(parse_qsl(location.query))
    assert callback_args["state"] == "xyz"

    result = zerodha.complete_login(callback_args)

    assert result.broker_user_id == "AB1234"
    assert result.user_name == "Kite Tester"
    assert result.expires_at.tzinfo is not None
    assert result.expires_at > dt.datetime.now(dt.UTC)
    assert result.expires_at.astimezone(IST).time() == dt.time(6, 0)
    assert result.extra["email"] == "tester@example.com"
    assert result.extra["broker"] == "ZERODHA"
    for credential in ("access_token", "public_token", "refresh_token", "enctoken", "api_key"):
        assert credential not in result.extra
    assert result.access_token in kite.fake.access_tokens
    assert result.access_token not in repr(result)
    assert ("POST", "/session/token") in kite.fake.requests

    profile = zerodha.session(result.access_token).profile()
    assert profile.broker_user_id == "AB1234"
    assert profile.email == "tester@example.com"
    assert profile.extra["exchanges"] == ["NSE", "BSE", "NFO", "MCX"]


@pytest.mark.parametrize(
    ("login_at", "expires"),
    [
        (dt.datetime(2024, 3, 28, 10, 15, tzinfo=IST), dt.datetime(2024, 3, 29, 6, 0, tzinfo=IST)),
        (dt.datetime(2024, 3, 28, 5, 30, tzinfo=IST), dt.datetime(2024, 3, 28, 6, 0, tzinfo=IST)),
        (dt.datetime(2024, 3, 31, 23, 59, tzinfo=IST), dt.datetime(2024, 4, 1, 6, 0, tzinfo=IST)),
    ],
)
def test_token_expires_at_six_the_next_morning_ist(zerodha, kite, login_at, expires):
    kite.fake.clock = lambda: login_at
    result = _login(zerodha, kite)
    assert result.expires_at == expires
    assert result.extra["login_time"] == login_at.isoformat()


def test_bad_checksum_is_refused_with_kites_message(kite):
    wrong_secret = ZerodhaBroker(api_key=kite.fake.api_key, api_secret="not-the-secret", root=kite.url)
    token = kite.fake.issue_request_token()
    with pytest.raises(BrokerError) as info:
        wrong_secret.complete_login({"request_token": token})
    assert info.value.kind in ("token", "input")
    assert info.value.status == 403
    assert str(info.value) == "Invalid `checksum`."
    assert not kite.fake.access_tokens


def test_request_token_works_once(zerodha, kite):
    token = kite.fake.issue_request_token()
    zerodha.complete_login({"request_token": token})
    with pytest.raises(BrokerError) as info:
        zerodha.complete_login({"request_token": token})
    assert info.value.kind == "token"
    assert "invalid or has expired" in str(info.value)


@pytest.mark.parametrize("args", [{}, {"status": "success"}, {"status": "cancelled", "request_token": "abc"}])
def test_a_callback_without_a_successful_login_is_refused_before_calling_kite(zerodha, kite, args):
    with pytest.raises(BrokerError) as info:
        zerodha.complete_login(args)
    assert info.value.kind == "input"
    assert kite.fake.requests == []


def test_requests_carry_kites_auth_and_version_headers(client, kite):
    client.profile()
    headers = kite.fake.request_headers[-1]
    assert headers["X-Kite-Version"] == "3"
    token = next(iter(kite.fake.access_tokens))
    assert headers["Authorization"] == f"token {kite.fake.api_key}:{token}"


# -- sessions that end -----------------------------------------------------------------------------


def test_expired_token_is_a_token_error(client, kite):
    client.profile()
    kite.fake.expire_all()
    with pytest.raises(BrokerError) as info:
        client.orderbook()
    error = info.value
    assert error.kind == ErrorKind.TOKEN
    assert error.is_session_error
    assert error.status == 403
    assert str(error) == "Incorrect `api_key` or `access_token`."


def test_token_expires_when_the_clock_passes_six(client, kite):
    kite.fake.clock = lambda: dt.datetime.now(IST) + dt.timedelta(days=1)
    with pytest.raises(BrokerError) as info:
        client.funds()
    assert info.value.kind == "token"


def test_unknown_token_is_a_token_error(zerodha):
    with pytest.raises(BrokerError) as info:
        zerodha.session("made-up-token").positions()
    assert info.value.kind == "token"


def test_logout_invalidates_the_token_at_kite(zerodha, kite):
    result = _login(zerodha, kite)
    client = zerodha.session(result.access_token)
    client.profile()

    zerodha.logout(result.access_token)

    assert ("DELETE", "/session/token") in kite.fake.requests
    assert result.access_token not in kite.fake.access_tokens
    with pytest.raises(BrokerError) as info:
        client.profile()
    assert info.value.kind == "token"
    # Logging out of a session that already ended is not an error.
    zerodha.logout(result.access_token)


def test_logout_reports_network_failures(kite):
    broker = ZerodhaBroker(api_key=kite.fake.api_key, api_secret=kite.fake.api_secret, root=_closed_port_url())
    with pytest.raises(BrokerError) as info:
        broker.logout("some-token")
    assert info.value.kind == "network"


def test_no_secret_or_token_is_logged(zerodha, kite, caplog):
    caplog.set_level(logging.DEBUG, logger="algobridge")
    result = _login(zerodha, kite)
    client = zerodha.session(result.access_token)
    client.place_order(_buy())
    kite.fake.expire_all()
    with pytest.raises(BrokerError):
        client.orderbook()
    zerodha.logout(result.access_token)
    ours = [record for record in caplog.records if record.name.startswith("algobridge")]
    text = "\n".join(record.getMessage() for record in ours)
    assert "Zerodha login completed for AB1234" in text
    assert "already ended" in text  # the expired session could not be invalidated
    assert result.access_token not in text
    assert kite.fake.api_secret not in text


def _closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def test_unreachable_broker_is_a_network_error_without_the_url(kite):
    broker = ZerodhaBroker(api_key=kite.fake.api_key, api_secret=kite.fake.api_secret, root=_closed_port_url())
    with pytest.raises(BrokerError) as info:
        broker.session("tok-123").orderbook()
    assert info.value.kind == "network"
    assert "tok-123" not in str(info.value)
    assert "127.0.0.1" not in str(info.value)


# -- orders ----------------------------------------------------------------------------------------


def test_market_order_is_placed_with_market_protection(client, kite):
    result = client.place_order(_buy(quantity=3, tag="algo1"))
    order = kite.fake.latest(result.orderid)
    assert order["tradingsymbol"] == "INFY"
    assert order["exchange"] == "NSE"
    assert order["transaction_type"] == "BUY"
    assert order["quantity"] == 3
    assert order["order_type"] == "MARKET"
    assert order["product"] == "CNC"
    assert order["variety"] == "regular"
    assert order["validity"] == "DAY"
    assert order["market_protection"] == -1
    assert order["tag"] == "algo1"
    assert order["status"] == "COMPLETE"


def test_market_order_without_market_protection_is_refused(kite):
    broker = ZerodhaBroker(
        api_key=kite.fake.api_key,
        api_secret=kite.fake.api_secret,
        root=kite.url,
        market_protection=0,
    )
    client = broker.session(_login(broker, kite).access_token)
    with pytest.raises(BrokerError) as info:
        client.place_order(_buy())
    assert info.value.kind == "input"
    assert info.value.status == 400
    assert "market protection" in str(info.value)


def test_limit_and_stop_orders_send_their_prices(client, kite):
    limit = client.place_order(_buy(pricetype="LIMIT", price=Decimal("1490.05"), product="MIS"))
    stop = client.place_order(
        _buy(
            action="SELL",
            pricetype="SL",
            price=Decimal("1450"),
            trigger_price=Decimal("1455.5"),
            product="NRML",
            disclosed_quantity=1,
        )
    )
    stop_market = client.place_order(_buy(pricetype="SL-M", trigger_price="1550"))

    assert kite.fake.latest(limit.orderid)["price"] == 1490.05
    assert kite.fake.latest(limit.orderid)["status"] == "OPEN"
    sl = kite.fake.latest(stop.orderid)
    assert (sl["price"], sl["trigger_price"], sl["disclosed_quantity"]) == (1450, 1455.5, 1)
    assert sl["status"] == "TRIGGER PENDING"
    slm = kite.fake.latest(stop_market.orderid)
    assert (slm["trigger_price"], slm["market_protection"]) == (1550, -1)


def test_orderbook_maps_kite_orders_to_ours(client, kite):
    complete = client.place_order(_buy(quantity=2)).orderid
    open_ = client.place_order(_buy(pricetype="LIMIT", price="1400.5", product="MIS")).orderid
    trigger = client.place_order(_buy(pricetype="SL-M", trigger_price="1600", product="NRML")).orderid
    cancelled = client.place_order(_buy(pricetype="LIMIT", price="1300")).orderid
    client.cancel_order(cancelled)
    rejected = client.place_order(_buy(quantity=10_000, pricetype="LIMIT", price="1500")).orderid

    book = {order.orderid: order for order in client.orderbook()}

    assert {oid: book[oid].status for oid in book} == {
        complete: "complete",
        open_: "open",
        trigger: "trigger pending",
        cancelled: "cancelled",
        rejected: "rejected",
    }
    done = book[complete]
    assert (done.symbol, done.exchange, done.action) == ("INFY", "NSE", "BUY")
    assert (done.quantity, done.filled_quantity) == (2, 2)
    assert done.average_price == Decimal("1500.5")
    assert (done.pricetype, done.product) == ("MARKET", "CNC")
    assert done.timestamp is not None
    assert done.timestamp.tzinfo is not None
    assert done.timestamp.utcoffset() == dt.timedelta(hours=5, minutes=30)
    assert book[open_].price == Decimal("1400.5")
    assert book[open_].pending_quantity == 2
    assert book[open_].product == "MIS"
    assert book[trigger].trigger_price == Decimal("1600")
    assert book[trigger].pricetype == "SL-M"
    assert book[rejected].status_message.startswith("Insufficient funds")
    assert book[rejected].broker_status == "REJECTED"
    assert all(isinstance(o.price, Decimal) for o in book.values())


@pytest.mark.parametrize(
    "kite_status",
    [
        "PUT ORDER REQ RECEIVED",
        "VALIDATION PENDING",
        "OPEN PENDING",
        "MODIFY VALIDATION PENDING",
        "MODIFY PENDING",
        "CANCEL PENDING",
        "AMO REQ RECEIVED",
    ],
)
def test_interim_statuses_are_open(client, kite, kite_status):
    orderid = client.place_order(_buy(pricetype="LIMIT", price="1400")).orderid
    kite.fake.set_status(orderid, kite_status)
    order = client.order_status(orderid)
    assert order.status == "open"
    assert order.broker_status == kite_status


def test_order_status_reads_the_latest_history_entry(client, kite):
    orderid = client.place_order(_buy()).orderid
    assert len(kite.fake.order_history[orderid]) > 1
    assert client.order_status(orderid).status == "complete"
    assert ("GET", f"/orders/{orderid}") in kite.fake.requests


def test_unknown_order_status_is_an_input_error(client):
    with pytest.raises(BrokerError) as info:
        client.order_status("999")
    assert info.value.kind == "input"
    assert "order_id" in str(info.value)


def test_modify_changes_an_open_order(client, kite):
    orderid = client.place_order(_buy(pricetype="LIMIT", price="1400")).orderid
    result = client.modify_order(orderid, _buy(quantity=5, pricetype="LIMIT", price="1410.25"))
    assert result.orderid == orderid
    order = kite.fake.latest(orderid)
    assert (order["quantity"], order["price"], order["status"]) == (5, 1410.25, "OPEN")
    assert kite.fake.requests[-1] == ("PUT", f"/orders/regular/{orderid}")

    client.modify_order(orderid, _buy(quantity=5, pricetype="MARKET"))
    assert client.order_status(orderid).status == "complete"


def test_modify_a_completed_order_is_an_order_error(client):
    orderid = client.place_order(_buy()).orderid
    with pytest.raises(BrokerError) as info:
        client.modify_order(orderid, _buy(pricetype="LIMIT", price="1"))
    assert info.value.kind == "order"
    assert "cannot be modified" in str(info.value)


def test_cancel_an_open_order(client, kite):
    orderid = client.place_order(_buy(pricetype="LIMIT", price="1400")).orderid
    assert client.cancel_order(orderid).orderid == orderid
    assert kite.fake.requests[-1] == ("DELETE", f"/orders/regular/{orderid}")
    assert client.order_status(orderid).status == "cancelled"
    with pytest.raises(BrokerError) as info:
        client.cancel_order(orderid)
    assert info.value.kind == "order"


def test_order_for_an_unknown_instrument_is_refused(client):
    with pytest.raises(BrokerError) as info:
        client.place_order(_buy(symbol="NOSUCHSTOCK"))
    assert info.value.kind == "input"
    assert info.value.status == 400
    assert "does not exist" in str(info.value)


@pytest.mark.parametrize(
    ("status", "error_type", "kind"),
    [
        (400, "MarginException", "order"),  # unknown to the client library: GeneralException
        (400, "HoldingException", "order"),
        (500, "OrderException", "order"),
        (429, "NetworkException", "rate_limit"),
        (503, "NetworkException", "network"),
        (502, "DataException", "broker"),
        (500, "GeneralException", "broker"),
        (403, "PermissionException", "permission"),
    ],
)
def test_kite_error_types_become_kinds_on_order_calls(client, kite, status, error_type, kind):
    kite.fake.fail_next(status, error_type, "Kite says no", path="/orders")
    with pytest.raises(BrokerError) as info:
        client.place_order(_buy())
    assert (info.value.kind, info.value.status, str(info.value)) == (kind, status, "Kite says no")


def test_unclassified_error_on_a_read_is_a_broker_error(client, kite):
    kite.fake.fail_next(400, "MarginException", "odd", path="/portfolio")
    with pytest.raises(BrokerError) as info:
        client.positions()
    assert info.value.kind == "broker"


def test_a_non_json_answer_is_a_broker_error(client, kite):
    kite.fake.fail_next(502, body=b"<html>" + b"Bad gateway " * 100 + b"</html>", content_type="text/html")
    with pytest.raises(BrokerError) as info:
        client.holdings()
    assert info.value.kind == "broker"
    assert len(str(info.value)) <= 300


def test_a_malformed_answer_is_a_broker_error(client, kite):
    kite.fake.fail_next(200, body=b'{"status": "success", "data": [{"no": "fields"}]}')
    with pytest.raises(BrokerError) as info:
        client.orderbook()
    assert info.value.kind == "broker"


# -- books -----------------------------------------------------------------------------------------


def test_tradebook(client):
    orderid = client.place_order(_buy(quantity=2)).orderid
    (trade,) = client.tradebook()
    assert trade.orderid == orderid
    assert trade.tradeid
    assert (trade.symbol, trade.exchange, trade.action, trade.product) == ("INFY", "NSE", "BUY", "CNC")
    assert trade.quantity == 2
    assert trade.average_price == Decimal("1500.5")
    assert trade.trade_value == Decimal("3001.0")
    assert trade.timestamp is not None
    assert trade.timestamp.tzinfo is not None


def test_positions_are_the_net_book_signed(client):
    client.place_order(_buy("INFY", quantity=3, product="MIS"))
    client.place_order(_buy("INFY", quantity=1, product="MIS", action="SELL"))
    client.place_order(_buy("SBIN", quantity=4, product="MIS", action="SELL"))

    positions = {p.symbol: p for p in client.positions()}

    infy = positions["INFY"]
    assert (infy.exchange, infy.product, infy.quantity) == ("NSE", "MIS", 2)
    assert infy.average_price == Decimal("1500.5")
    assert infy.ltp == Decimal("1500.5")
    assert infy.pnl == Decimal(0)
    sbin = positions["SBIN"]
    assert sbin.quantity == -4
    assert sbin.average_price == Decimal("800")


def test_holdings(client):
    (holding,) = client.holdings()
    assert (holding.symbol, holding.exchange, holding.product) == ("INFY", "NSE", "CNC")
    assert holding.quantity == 10
    assert holding.average_price == Decimal("1400")
    assert holding.ltp == Decimal("1500.5")
    assert holding.pnl == Decimal("1005")
    assert holding.invested_value == Decimal("14000")
    assert holding.pnl_percent.quantize(Decimal("0.01")) == Decimal("7.18")


def test_funds_add_up_the_enabled_segments(client, kite):
    funds = client.funds()
    assert funds.availablecash == Decimal("199725.05")
    assert funds.collateral == Decimal("5000")
    assert funds.m2mrealized == Decimal("761.7")
    assert funds.m2munrealized == Decimal("-120.5")
    assert funds.utiliseddebits == Decimal("145706.55")

    kite.fake.margins["commodity"]["enabled"] = False
    assert client.funds().availablecash == Decimal("99725.05")


def test_quotes(client, kite):
    quotes = client.quotes([("NSE", "INFY"), ("NFO", "NIFTY24APRFUT"), ("NSE", "NOSUCH")])
    assert set(quotes) == {("NSE", "INFY"), ("NFO", "NIFTY24APRFUT")}
    infy = quotes[("NSE", "INFY")]
    assert infy.ltp == Decimal("1500.5")
    assert (infy.bid, infy.ask) == (Decimal("1500.45"), Decimal("1500.55"))
    assert (infy.open, infy.high, infy.low) == (Decimal("1490.5"), Decimal("1520.5"), Decimal("1470.5"))
    assert infy.prev_close == Decimal("1495.5")
    assert (infy.volume, infy.oi) == (123456, 0)
    assert infy.timestamp is not None
    assert infy.timestamp.tzinfo is not None
    assert quotes[("NFO", "NIFTY24APRFUT")].oi == 4500
    assert kite.fake.requests[-1] == ("GET", "/quote")


def test_quotes_are_fetched_in_batches_of_500(client, kite):
    wanted = [("NSE", f"SYM{n}") for n in range(501)] + [("NSE", "INFY")]
    quotes = client.quotes(wanted)
    assert list(quotes) == [("NSE", "INFY")]
    assert kite.fake.requests.count(("GET", "/quote")) == 2
    assert client.quotes([]) == {}


# -- instruments -----------------------------------------------------------------------------------


def test_instruments_stream_the_csv_as_dicts(client, kite):
    kite.fake.extra_instruments = 20_000
    rows = client.instruments()
    assert inspect.isgenerator(rows)

    first = next(rows)
    assert tuple(first) == INSTRUMENT_COLUMNS
    assert first == dict(zip(INSTRUMENT_COLUMNS, DEFAULT_INSTRUMENTS[0], strict=True))
    rest = list(rows)
    assert 1 + len(rest) == len(DEFAULT_INSTRUMENTS) + 20_000
    by_symbol = {row["tradingsymbol"]: row for row in rest}
    assert by_symbol["BHARTIARTL"]["name"] == "BHARTI AIRTEL, LTD"
    option = by_symbol["NIFTY2442522000CE"]
    assert (option["expiry"], option["strike"], option["lot_size"]) == ("2024-04-25", "22000", "50")
    assert (option["instrument_type"], option["segment"], option["exchange"]) == (
        "CE",
        "NFO-OPT",
        "NFO",
    )
    assert all(isinstance(value, str) for value in option.values())


def test_instruments_can_be_abandoned_midway(client, kite):
    kite.fake.extra_instruments = 5_000
    rows = client.instruments()
    assert len(list(itertools.islice(rows, 3))) == 3
    rows.close()
    # The connection went back to (or out of) the pool: the session still works.
    assert client.profile().broker_user_id == "AB1234"


def test_instruments_with_a_dead_session_fail_at_the_call(client, kite):
    kite.fake.expire_all()
    with pytest.raises(BrokerError) as info:
        client.instruments()
    assert info.value.kind == "token"


# -- pure mappings ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kite_status", "ours"),
    [
        ("OPEN", "open"),
        ("COMPLETE", "complete"),
        ("CANCELLED", "cancelled"),
        ("CANCELLED AMO", "cancelled"),
        ("REJECTED", "rejected"),
        ("TRIGGER PENDING", "trigger pending"),
        ("OPEN PENDING", "open"),
        ("VALIDATION PENDING", "open"),
        ("PUT ORDER REQ RECEIVED", "open"),
    ],
)
def test_order_status_mapping(kite_status, ours):
    assert mapping.order_status(kite_status) == ours


def test_unknown_status_is_open_and_logged(caplog):
    with caplog.at_level(logging.WARNING, logger="algobridge.broker"):
        assert mapping.order_status("SOMETHING NEW") == "open"
    assert "SOMETHING NEW" in caplog.text


@pytest.mark.parametrize(
    ("kite_product", "ours"),
    [("MIS", "MIS"), ("NRML", "NRML"), ("CNC", "CNC"), ("MTF", "CNC"), ("CO", "MIS")],
)
def test_product_mapping(kite_product, ours):
    assert mapping.product(kite_product) == ours


def test_quote_skips_empty_depth_levels():
    empty = {"price": 0, "quantity": 0, "orders": 0}
    quote = mapping.to_quote(
        {
            "last_price": 10,
            "depth": {"buy": [empty, {"price": 9.95}], "sell": [empty] * 5},
        }
    )
    assert (quote.bid, quote.ask) == (Decimal("9.95"), Decimal(0))


def test_client_repr_has_no_token(client):
    assert isinstance(client, KiteClient)
    token = client._access_token
    assert token not in repr(client)


@pytest.mark.parametrize("orderid", ["../user/profile", "1/2", "", "1 2", "x" * 65])
def test_order_ids_that_are_not_ids_never_reach_kite(client, kite, orderid):
    for call in (client.order_status, client.cancel_order):
        with pytest.raises(BrokerError) as info:
            call(orderid)
        assert info.value.kind == "input"
    assert kite.fake.requests[-1] == ("POST", "/session/token")
