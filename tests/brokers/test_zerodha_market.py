"""Zerodha market data in live mode: depth, historical candles and basket margins, over HTTP against
the fake Kite (tests/fakes/kite_server.py), plus the broker interface's shared pieces."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from kiteconnect import exceptions as kite_exceptions

from brokers.base import (
    BrokerCandle,
    BrokerClient,
    BrokerError,
    BrokerMargin,
    DepthLevel,
    ErrorKind,
    MarginOrder,
    merge_candles,
    split_range,
)
from brokers.zerodha import KiteClient, mapping
from tests.fakes.kite_server import DEFAULT_INSTRUMENTS, IST, RunningKite, candle_series

UTC = dt.UTC
INFY, FUTURE, OPTION = "408065", "13238786", "12201986"  # instrument tokens of the fake's dump
D = Decimal
FIRST_WEEK = (dt.datetime(2024, 1, 1, tzinfo=IST), dt.datetime(2024, 1, 5, tzinfo=IST))


def _row(token: str) -> tuple[str, ...]:
    return next(row for row in DEFAULT_INSTRUMENTS if row[0] == token)


def _expected(token: str, minutes: int, start: dt.datetime, end: dt.datetime) -> list[tuple]:
    """What one unlimited request would answer: the fake's series, as (time, o, h, l, c, v, oi)."""
    return [
        (dt.datetime.strptime(c[0], "%Y-%m-%dT%H:%M:%S%z"), *(D(str(v)) for v in c[1:5]), c[5], c[6])
        for c in candle_series(_row(token), minutes, start, end)
    ]


def _as_tuples(candles: list[BrokerCandle]) -> list[tuple]:
    return [(c.timestamp, c.open, c.high, c.low, c.close, c.volume, c.oi) for c in candles]


@pytest.fixture
def history_calls(kite: RunningKite) -> list[dict[str, str]]:
    """The historical requests that reached the fake Kite, oldest first."""
    return kite.fake.history_requests


# -- depth -----------------------------------------------------------------------------------------


def test_quote_has_five_levels_of_depth_best_first(client, kite):
    infy = client.quotes([("NSE", "INFY")])[("NSE", "INFY")]

    assert [level.price for level in infy.bids] == [D("1500.45"), D("1500.4"), D("1500.35"), D("1500.3"), D("1500.25")]
    assert [level.price for level in infy.asks] == [D("1500.55"), D("1500.6"), D("1500.65"), D("1500.7"), D("1500.75")]
    assert infy.bids[0] == DepthLevel(D("1500.45"), 100, 3)
    assert infy.asks[4] == DepthLevel(D("1500.75"), 400, 6)
    assert (infy.bid, infy.ask) == (infy.bids[0].price, infy.asks[0].price)
    assert infy.bid < infy.ltp < infy.ask
    assert (infy.ltq, infy.total_buy_quantity, infy.total_sell_quantity) == (5, 4000, 3200)
    assert infy.total_buy_quantity >= sum(level.quantity for level in infy.bids)
    assert (infy.upper_circuit, infy.lower_circuit) == (D("1800.6"), D("1200.4"))
    assert kite.fake.calls["/quote"] == 1


def test_many_instruments_take_one_quote_call_per_500(client, kite):
    wanted = [("NSE", f"SYM{n}") for n in range(1100)] + [("NSE", "INFY"), ("NFO", "NIFTY24APRFUT")]
    quotes = client.quotes(wanted)
    assert set(quotes) == {("NSE", "INFY"), ("NFO", "NIFTY24APRFUT")}
    assert quotes[("NFO", "NIFTY24APRFUT")].bids[0].price == D("22099.95")
    assert kite.fake.calls["/quote"] == 3


def test_empty_depth_levels_and_missing_circuits_are_left_out():
    # Kite pads a thin book with zero levels, and sends 0 circuits for an index.
    empty = {"price": 0, "quantity": 0, "orders": 0}
    quote = mapping.to_quote(
        {
            "last_price": 10,
            "last_quantity": 7,
            "buy_quantity": 300,
            "sell_quantity": 0,
            "lower_circuit_limit": 0,
            "upper_circuit_limit": 0,
            "depth": {"buy": [{"price": 9.95, "quantity": 300, "orders": 4}, *[empty] * 4], "sell": [empty] * 5},
        }
    )
    assert quote.bids == (DepthLevel(D("9.95"), 300, 4),)
    assert quote.asks == ()
    assert (quote.bid, quote.ask) == (D("9.95"), D(0))
    assert (quote.ltq, quote.total_buy_quantity, quote.total_sell_quantity) == (7, 300, 0)
    assert quote.upper_circuit is None
    assert quote.lower_circuit is None


# -- history ---------------------------------------------------------------------------------------


def test_one_day_of_minute_candles_in_one_call(client, kite, history_calls):
    start = dt.datetime(2024, 1, 1, tzinfo=IST)  # a Monday
    candles = client.history("NSE", "INFY", INFY, "1m", start, start + dt.timedelta(hours=23, minutes=59))

    assert len(candles) == 375  # 09:15 to 15:29
    assert candles[0].timestamp == dt.datetime(2024, 1, 1, 9, 15, tzinfo=IST)
    assert candles[-1].timestamp == dt.datetime(2024, 1, 1, 15, 29, tzinfo=IST)
    assert all(c.timestamp.utcoffset() == dt.timedelta(hours=5, minutes=30) for c in candles)
    assert all(b.timestamp - a.timestamp == dt.timedelta(minutes=1) for a, b in zip(candles, candles[1:], strict=False))
    assert all(c.low <= min(c.open, c.close) <= max(c.open, c.close) <= c.high for c in candles)
    assert all(isinstance(c.close, Decimal) and c.volume > 0 and c.oi == 0 for c in candles)
    assert _as_tuples(candles) == _expected(INFY, 1, start, start + dt.timedelta(hours=23, minutes=59))
    assert kite.fake.calls_to("/instruments/historical/") == 1
    assert history_calls[0] == {
        "token": INFY,
        "interval": "minute",
        "from": "2024-01-01 00:00:00",
        "to": "2024-01-01 23:59:00",
        "continuous": "0",
        "oi": "0",
    }


def test_times_are_sent_to_kite_in_ist_whatever_their_zone(client, history_calls):
    start = dt.datetime(2024, 1, 2, 3, 45, tzinfo=UTC)  # 09:15 IST
    candles = client.history("NSE", "INFY", INFY, "15m", start, start + dt.timedelta(minutes=30))
    assert (history_calls[0]["from"], history_calls[0]["to"]) == ("2024-01-02 09:15:00", "2024-01-02 09:45:00")
    assert [c.timestamp for c in candles] == [start + dt.timedelta(minutes=m) for m in (0, 15, 30)]
    assert history_calls[0]["interval"] == "15minute"


@pytest.mark.parametrize(
    ("ours", "kites"),
    [("1m", "minute"), ("3m", "3minute"), ("5m", "5minute"), ("10m", "10minute"), ("15m", "15minute"),
     ("30m", "30minute"), ("1h", "60minute"), ("D", "day")],
)
def test_each_interval_maps_to_kites(client, history_calls, ours, kites):
    assert ours in KiteClient.HISTORY_INTERVALS
    start = dt.datetime(2024, 1, 3, 9, 15, tzinfo=IST)
    candles = client.history("NSE", "INFY", INFY, ours, start, start + dt.timedelta(hours=1))
    assert history_calls[-1]["interval"] == kites
    assert candles, ours


def test_day_candles_skip_weekends_and_carry_open_interest(client, history_calls):
    start, end = dt.datetime(2024, 4, 1, tzinfo=IST), dt.datetime(2024, 4, 14, tzinfo=IST)
    candles = client.history("NFO", "NIFTY24APRFUT", FUTURE, "D", start, end, oi=True)
    assert [c.timestamp.date() for c in candles] == [
        dt.date(2024, 4, d) for d in (1, 2, 3, 4, 5, 8, 9, 10, 11, 12)
    ]
    assert all(c.timestamp.time() == dt.time(0, 0) for c in candles)
    assert all(c.oi > 0 for c in candles)
    assert history_calls[0]["oi"] == "1"
    without = client.history("NFO", "NIFTY24APRFUT", FUTURE, "D", start, end)
    assert [c.oi for c in without] == [0] * 10


def test_a_long_range_is_asked_in_pieces_kite_allows_without_gaps_or_doubles(client, kite, history_calls):
    start = dt.datetime(2023, 6, 1, 9, 0, tzinfo=IST)
    end = start + dt.timedelta(days=210)
    candles = client.history("NSE", "INFY", INFY, "5m", start, end)

    assert len(history_calls) == 3  # Kite serves at most 100 days of 5-minute candles a request
    assert kite.fake.calls_to("/instruments/historical/") == 3
    ranges = [(dt.datetime.fromisoformat(c["from"]), dt.datetime.fromisoformat(c["to"])) for c in history_calls]
    assert all(last - first <= dt.timedelta(days=100) for first, last in ranges)
    assert ranges[0][0] == start.replace(tzinfo=None)
    assert ranges[-1][1] == end.replace(tzinfo=None)
    assert all(b[0] - a[1] == dt.timedelta(seconds=1) for a, b in zip(ranges, ranges[1:], strict=False))
    assert _as_tuples(candles) == _expected(INFY, 5, start, end)
    assert len({c.timestamp for c in candles}) == len(candles)


def test_day_candles_at_a_seam_come_once(client, history_calls):
    # Day candles are asked by date: a piece ending at 10:59:59 and the next starting at 11:00 on
    # the same day both answer that day's candle.
    start = dt.datetime(2012, 1, 2, 11, 0, tzinfo=IST)
    end = dt.datetime(2024, 3, 28, 11, 0, tzinfo=IST)
    candles = client.history("NSE", "INFY", INFY, "D", start, end)
    assert len(history_calls) == 3
    assert _as_tuples(candles) == _expected(INFY, 0, start, end)
    assert candles == sorted(candles, key=lambda c: c.timestamp)


def test_a_range_over_kites_limit_is_refused_by_kite(zerodha, kite):
    # What the chunking avoids: the fake, like Kite, refuses 61 days of minutes in one request.
    result = zerodha.complete_login({"request_token": kite.fake.issue_request_token()})
    raw = zerodha.kite(result.access_token)
    with pytest.raises(kite_exceptions.InputException) as info:
        raw.historical_data(INFY, "2024-01-01 00:00:00", "2024-03-02 00:00:00", "minute")
    assert info.value.code == 400
    assert "max limit" in str(info.value)


def test_unknown_instrument_token_is_an_input_error(client, kite):
    with pytest.raises(BrokerError) as info:
        client.history("NSE", "NOSUCH", "999999", "D", *FIRST_WEEK)
    assert (info.value.kind, info.value.status, str(info.value)) == (ErrorKind.INPUT, 400, "invalid token")


@pytest.mark.parametrize(
    ("token", "interval", "start", "end"),
    [
        ("../user/profile", "D", dt.datetime(2024, 1, 1, tzinfo=IST), dt.datetime(2024, 1, 2, tzinfo=IST)),
        ("", "D", dt.datetime(2024, 1, 1, tzinfo=IST), dt.datetime(2024, 1, 2, tzinfo=IST)),
        (INFY, "2h", dt.datetime(2024, 1, 1, tzinfo=IST), dt.datetime(2024, 1, 2, tzinfo=IST)),
        (INFY, "D", dt.datetime(2024, 1, 2, tzinfo=IST), dt.datetime(2024, 1, 1, tzinfo=IST)),
    ],
)
def test_bad_requests_never_reach_kite(client, kite, token, interval, start, end):
    with pytest.raises(BrokerError) as info:
        client.history("NSE", "INFY", token, interval, start, end)
    assert info.value.kind is ErrorKind.INPUT
    assert kite.fake.calls_to("/instruments/historical") == 0


def test_history_with_an_expired_session_is_a_session_error(client, kite):
    kite.fake.expire_all()
    with pytest.raises(BrokerError) as info:
        client.history("NSE", "INFY", INFY, "D", *FIRST_WEEK)
    assert info.value.is_session_error
    assert (info.value.kind, info.value.status) == (ErrorKind.TOKEN, 403)


def test_history_without_the_data_subscription_is_a_permission_error(client, kite):
    kite.fake.historical_data_enabled = False
    with pytest.raises(BrokerError) as info:
        client.history("NSE", "INFY", INFY, "D", *FIRST_WEEK)
    assert (info.value.kind, info.value.status) == (ErrorKind.PERMISSION, 403)
    assert not info.value.is_session_error


@pytest.mark.parametrize(
    ("status", "error_type", "kind"),
    [
        (502, "NetworkException", ErrorKind.NETWORK),
        (503, "NetworkException", ErrorKind.NETWORK),
        (429, "NetworkException", ErrorKind.RATE_LIMIT),
        (500, "GeneralException", ErrorKind.BROKER),
        (400, "InputException", ErrorKind.INPUT),
    ],
)
def test_kite_error_bodies_become_kinds(client, kite, status, error_type, kind):
    kite.fake.fail_next(status, error_type, "Kite says no", path="/instruments/historical")
    with pytest.raises(BrokerError) as info:
        client.history("NSE", "INFY", INFY, "D", *FIRST_WEEK)
    assert (info.value.kind, info.value.status, str(info.value)) == (kind, status, "Kite says no")


def test_a_failing_piece_fails_the_whole_history(client, kite):
    # The second of three pieces fails: no half series comes back as if it were whole.
    kite.fake.fail_next(503, "NetworkException", "Request failed", path="/instruments/historical", after=1)
    start = dt.datetime(2023, 6, 1, tzinfo=IST)
    with pytest.raises(BrokerError) as info:
        client.history("NSE", "INFY", INFY, "5m", start, start + dt.timedelta(days=210))
    assert info.value.kind is ErrorKind.NETWORK
    assert kite.fake.calls_to("/instruments/historical/") == 2


def test_a_malformed_candle_is_a_broker_error(client, kite):
    kite.fake.fail_next(200, body=b'{"status": "success", "data": {"candles": [["2024-01-01T09:15:00+0530", 1]]}}')
    with pytest.raises(BrokerError) as info:
        client.history("NSE", "INFY", INFY, "D", *FIRST_WEEK)
    assert (info.value.kind, info.value.status) == (ErrorKind.BROKER, 502)


def test_candles_are_read_from_kites_time_format():
    candle = mapping.to_candle(
        {"date": "2024-01-01T09:15:00+0530", "open": 1, "high": 2.5, "low": 0.95, "close": 2, "volume": 10, "oi": 7}
    )
    assert candle == BrokerCandle(dt.datetime(2024, 1, 1, 9, 15, tzinfo=IST), D(1), D("2.5"), D("0.95"), D(2), 10, 7)
    assert candle.timestamp.tzinfo is not None
    # A time without a zone is Kite's: IST.
    naive = mapping.to_candle({"date": dt.datetime(2024, 1, 1, 9, 15), "open": 1, "high": 1, "low": 1, "close": 1})
    assert naive.timestamp == dt.datetime(2024, 1, 1, 3, 45, tzinfo=UTC)
    assert naive.volume == naive.oi == 0


# -- basket margins --------------------------------------------------------------------------------


def test_margin_of_a_delivery_buy(client, kite):
    margin = client.basket_margin([MarginOrder("NSE", "INFY", "BUY", 10, "CNC", "MARKET")])
    assert margin == BrokerMargin(total=D("15005"), span=D(0), exposure=D(0), option_premium=D(0), benefit=D(0))
    query, body = kite.fake.basket_requests[-1]
    assert query["consider_positions"] == "true"
    assert body == [
        {
            "exchange": "NSE",
            "tradingsymbol": "INFY",
            "transaction_type": "BUY",
            "variety": "regular",
            "product": "CNC",
            "order_type": "MARKET",
            "quantity": 10,
            "price": 0,
            "trigger_price": 0,
        }
    ]
    assert kite.fake.calls["/margins/basket"] == 1


def test_a_hedged_basket_gets_the_spread_benefit(client):
    short_call = MarginOrder("NFO", "NIFTY2442522000CE", "SELL", 50, "NRML", "LIMIT", price=D("150"))
    long_future = MarginOrder("NFO", "NIFTY24APRFUT", "BUY", 50, "NRML", "MARKET")
    alone = [client.basket_margin([leg]) for leg in (short_call, long_future)]
    together = client.basket_margin([short_call, long_future])

    # The fake's rules: SPAN 10 % of the notional (strike or price), exposure 2 % (option) or 3 %
    # (future); a hedged underlying needs 30 % of its SPAN.
    assert alone[0] == BrokerMargin(total=D("132000"), span=D("110000"), exposure=D("22000"))
    assert alone[1] == BrokerMargin(total=D("143650"), span=D("110500"), exposure=D("33150"))
    assert together == BrokerMargin(
        total=D("121300"), span=D("66150"), exposure=D("55150"), option_premium=D(0), benefit=D("154350")
    )
    assert together.total + together.benefit == alone[0].total + alone[1].total


def test_a_bought_option_needs_its_premium(client):
    margin = client.basket_margin([MarginOrder("NFO", "NIFTY2442522000CE", "BUY", 50, "NRML", "LIMIT", "150.25")])
    assert (margin.total, margin.option_premium, margin.span) == (D("7512.5"), D("7512.5"), D(0))


def test_margin_for_an_unknown_contract_is_an_input_error(client):
    with pytest.raises(BrokerError) as info:
        client.basket_margin([MarginOrder("NFO", "NIFTY24APR99999CE", "BUY", 50, "NRML", "MARKET")])
    assert (info.value.kind, info.value.status) == (ErrorKind.INPUT, 400)


def test_an_empty_basket_never_reaches_kite(client, kite):
    with pytest.raises(BrokerError) as info:
        client.basket_margin([])
    assert info.value.kind is ErrorKind.INPUT
    assert kite.fake.calls_to("/margins") == 0


def test_margin_with_an_expired_session_is_a_session_error(client, kite):
    kite.fake.expire_all()
    with pytest.raises(BrokerError) as info:
        client.basket_margin([MarginOrder("NSE", "INFY", "BUY", 1, "CNC", "MARKET")])
    assert info.value.is_session_error
    assert info.value.status == 403


def test_margin_when_kites_back_end_is_down_is_a_network_error(client, kite):
    kite.fake.fail_next(502, "NetworkException", "Gateway error", path="/margins/basket")
    with pytest.raises(BrokerError) as info:
        client.basket_margin([MarginOrder("NSE", "INFY", "BUY", 1, "CNC", "MARKET")])
    assert (info.value.kind, info.value.status) == (ErrorKind.NETWORK, 502)


def test_a_margin_answer_without_final_is_a_broker_error(client, kite):
    kite.fake.fail_next(200, body=b'{"status": "success", "data": {"initial": {"total": 1}}}', path="/margins")
    with pytest.raises(BrokerError) as info:
        client.basket_margin([MarginOrder("NSE", "INFY", "BUY", 1, "CNC", "MARKET")])
    assert info.value.kind is ErrorKind.BROKER


# -- the interface's shared pieces ----------------------------------------------------------------


def test_margin_orders_take_our_codes_and_refuse_bad_ones():
    order = MarginOrder("NSE", "INFY", "buy", 3, "mis", "sl-m", trigger_price="1490.5")
    assert (order.action, order.product, order.pricetype) == ("BUY", "MIS", "SL-M")
    assert (order.price, order.trigger_price) == (D(0), D("1490.5"))
    for bad in (
        {"action": "HOLD"},
        {"quantity": 0},
        {"quantity": True},
        {"product": "BO"},
        {"pricetype": "ICEBERG"},
        {"price": "-1"},
        {"symbol": ""},
    ):
        fields = {"exchange": "NSE", "symbol": "INFY", "action": "BUY", "quantity": 1, "product": "CNC",
                  "pricetype": "LIMIT", "price": "1"} | bad
        with pytest.raises(ValueError, match="must|required"):
            MarginOrder(**fields)


def test_a_candle_needs_an_aware_time():
    with pytest.raises(ValueError, match="timezone-aware"):
        BrokerCandle(dt.datetime(2024, 1, 1, 9, 15), D(1), D(1), D(1), D(1), 0)


def test_split_range_covers_the_range_in_pieces_no_longer_than_the_span():
    start = dt.datetime(2024, 1, 1, 9, 15, tzinfo=IST)
    end = start + dt.timedelta(days=130, seconds=5)
    pieces = list(split_range(start, end, dt.timedelta(days=60)))
    assert len(pieces) == 3
    assert pieces[0][0] == start
    assert pieces[-1][1] == end
    assert all(last - first < dt.timedelta(days=60) for first, last in pieces)
    assert all(b[0] - a[1] == dt.timedelta(seconds=1) for a, b in zip(pieces, pieces[1:], strict=False))
    assert list(split_range(start, start, dt.timedelta(days=1))) == [(start, start)]
    assert list(split_range(end, start, dt.timedelta(days=1))) == []


def test_merge_candles_sorts_and_keeps_one_per_time():
    t0 = dt.datetime(2024, 1, 1, 9, 15, tzinfo=IST)

    def candle(minute: int, close: str) -> BrokerCandle:
        return BrokerCandle(t0 + dt.timedelta(minutes=minute), D(1), D(9), D(1), D(close), 1)

    merged = merge_candles([[candle(1, "2"), candle(0, "1")], [candle(1, "3"), candle(2, "4")]])
    assert [(c.timestamp.minute, c.close) for c in merged] == [(15, D(1)), (16, D(3)), (17, D(4))]


class _Minimal(BrokerClient):
    """An adapter that implements only what is mandatory."""

    name = "minimal"
    profile = place_order = modify_order = cancel_order = order_status = None  # type: ignore[assignment]
    orderbook = tradebook = positions = holdings = funds = quotes = instruments = None  # type: ignore[assignment]


def test_history_and_margins_are_optional_for_an_adapter():
    client = _Minimal()
    assert client.HISTORY_INTERVALS == ()
    for call in (
        lambda: client.history("NSE", "INFY", "1", "D", dt.datetime(2024, 1, 1, tzinfo=UTC),
                               dt.datetime(2024, 1, 2, tzinfo=UTC)),
        lambda: client.basket_margin([MarginOrder("NSE", "INFY", "BUY", 1, "CNC", "MARKET")]),
    ):
        with pytest.raises(BrokerError) as info:
            call()
        assert (info.value.kind, info.value.status) == (ErrorKind.UNSUPPORTED, 501)
