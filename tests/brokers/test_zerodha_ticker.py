"""Zerodha's live stream: Kite's binary packets, and `KiteStream` over a real WebSocket against the
fake ticker (tests/fakes/kite_ticker.py): the modes, unsubscribe, a drop and the resubscribe, a
silent link, a refused session, and close. kiteconnect's own client reads the fake's packets too, so
the fake and our parser are both held to the reference implementation of the format."""

from __future__ import annotations

import datetime as dt
import socket
import threading
import time
from collections.abc import Callable, Iterator
from decimal import Decimal

import pytest

from brokers.base import BrokerClient, BrokerError, BrokerStream, DepthLevel, ErrorKind, StreamMode, StreamTick
from brokers.zerodha import ZerodhaBroker
from brokers.zerodha.ticker import KiteStream, in_reactor, parse_message, parse_packet
from tests.fakes.kite_ticker import (
    ACCESS_TOKEN,
    API_KEY,
    IST,
    FakeTicker,
    Instrument,
    RunningTicker,
    encode_message,
    encode_packet,
    running_ticker,
)

D = Decimal
INFY, SBIN, NIFTY = 408065, 779521, 256265  # NSE equities and the NIFTY 50 index (segment 9)
USDINR = 412675  # a CDS future (segment 3): four more decimals
RECEIVED = dt.datetime(2024, 4, 1, 4, 45, 30, tzinfo=dt.UTC)
AT = dt.datetime(2024, 4, 1, 10, 15, 0, tzinfo=IST)


def _infy(**changes) -> Instrument:
    fields = dict(
        token=INFY, ltp="1500.5", ltq=10, average_price="1498.25", volume=123456, total_buy_quantity=5000,
        total_sell_quantity=7000, open="1490", high="1510.05", low="1480.1", close="1495", ltt=AT, oi=0,
        timestamp=AT + dt.timedelta(seconds=1), bids=((10, "1500.45", 2), (20, "1500.4", 3)),
        asks=((5, "1500.55", 1), (7, "1500.6", 2), (9, "1500.65", 4)),
    )  # fmt: skip
    return Instrument(**{**fields, **changes})


def _nifty() -> Instrument:
    return Instrument(NIFTY, "22010.35", open="21950", high="22050.5", low="21900.25", close="21990", timestamp=AT)


# -- the binary format -----------------------------------------------------------------------------


def test_a_full_packet_reads_to_exact_decimals_aware_times_and_the_book():
    tick = parse_packet(encode_packet(_infy(oi=4200), "full"), RECEIVED)
    assert tick == StreamTick(
        token=str(INFY), ltp=D("1500.50"), mode=StreamMode.DEPTH, ltq=10, average_price=D("1498.25"), volume=123456,
        total_buy_quantity=5000, total_sell_quantity=7000, open=D("1490.00"), high=D("1510.05"), low=D("1480.10"),
        close=D("1495.00"), ltt=AT, oi=4200, timestamp=AT + dt.timedelta(seconds=1),
        bids=(DepthLevel(D("1500.45"), 10, 2), DepthLevel(D("1500.40"), 20, 3)),
        asks=(DepthLevel(D("1500.55"), 5, 1), DepthLevel(D("1500.60"), 7, 2), DepthLevel(D("1500.65"), 9, 4)),
    )  # fmt: skip
    assert (tick.upper_circuit, tick.lower_circuit) == (None, None)  # Kite's packets carry no circuits


def test_quote_and_ltp_packets_carry_their_fields_and_the_arrival_time():
    quote = parse_packet(encode_packet(_infy(), "quote"), RECEIVED)
    assert len(encode_packet(_infy(), "quote")) == 44
    assert (quote.mode, quote.ltp, quote.close, quote.volume, quote.ltt, quote.bids) == (
        StreamMode.QUOTE, D("1500.50"), D("1495.00"), 123456, None, ())  # fmt: skip
    assert quote.timestamp == RECEIVED
    ltp = parse_packet(encode_packet(_infy(), "ltp"), RECEIVED)
    assert ltp == StreamTick(token=str(INFY), ltp=D("1500.50"), timestamp=RECEIVED)


def test_index_packets_have_their_own_layout():
    full = parse_packet(encode_packet(_nifty(), "full"), RECEIVED)
    assert len(encode_packet(_nifty(), "full")) == 32
    assert (full.mode, full.ltp, full.open, full.high, full.low, full.close, full.timestamp) == (
        StreamMode.QUOTE, D("22010.35"), D("21950.00"), D("22050.50"), D("21900.25"), D("21990.00"), AT)  # fmt: skip
    quote = parse_packet(encode_packet(_nifty(), "quote"), RECEIVED)
    assert (len(encode_packet(_nifty(), "quote")), quote.high, quote.timestamp) == (28, D("22050.50"), RECEIVED)


def test_prices_scale_by_segment_and_may_be_negative():
    assert parse_packet(encode_packet(Instrument(USDINR, "83.4525"), "ltp"), RECEIVED).ltp == D("83.4525000")
    bcd = (1 << 8) | 6
    assert parse_packet(encode_packet(Instrument(bcd, "83.4525"), "ltp"), RECEIVED).ltp == D("83.4525")
    # Prices are signed int32 (MCX crude settled below zero once); kiteconnect's reader takes them unsigned.
    assert parse_packet(encode_packet(Instrument(INFY, "-37.63"), "ltp"), RECEIVED).ltp == D("-37.63")


def test_a_message_holds_many_packets_and_odd_ones_are_skipped():
    packets = [encode_packet(_infy(), "ltp"), b"\x00" * 12, encode_packet(_nifty(), "full")]
    ticks = parse_message(encode_message(packets), RECEIVED)
    assert [(t.token, t.mode) for t in ticks] == [(str(INFY), StreamMode.LTP), (str(NIFTY), StreamMode.QUOTE)]
    assert parse_message(b"\x00", RECEIVED) == []  # the heartbeat
    cut = encode_message([encode_packet(_infy(), "ltp"), encode_packet(_infy(), "full")])[:40]
    assert [t.mode for t in parse_message(cut, RECEIVED)] == [StreamMode.LTP]


# -- the stream ------------------------------------------------------------------------------------


class Recorder:
    """Ticks and statuses as the stream's thread delivers them, with a way to wait for them."""

    def __init__(self) -> None:
        self.ticks: list[StreamTick] = []
        self.statuses: list[tuple[str, str]] = []
        self.changed = threading.Condition()

    def on_tick(self, tick: StreamTick) -> None:
        with self.changed:
            self.ticks.append(tick)
            self.changed.notify_all()

    def on_status(self, status: str, text: str) -> None:
        with self.changed:
            self.statuses.append((status, text))
            self.changed.notify_all()

    def wait(self, predicate: Callable[[Recorder], bool], timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        with self.changed:
            while not predicate(self):
                remaining = deadline - time.monotonic()
                assert remaining > 0, f"not reached; statuses {self.statuses}, {len(self.ticks)} ticks"
                self.changed.wait(remaining)

    def kinds(self) -> list[str]:
        with self.changed:
            return [status for status, _ in self.statuses]

    def latest(self, token: int) -> StreamTick | None:
        with self.changed:
            return next((t for t in reversed(self.ticks) if t.token == str(token)), None)


@pytest.fixture
def ticker() -> Iterator[RunningTicker]:
    fake = FakeTicker()
    fake.add(_infy(), _nifty(), Instrument(SBIN, "812.35", close="800", timestamp=AT))
    with running_ticker(fake) as running:
        yield running


@pytest.fixture
def open_stream(ticker: RunningTicker) -> Iterator[Callable[..., tuple[KiteStream, Recorder]]]:
    streams: list[KiteStream] = []

    def open_(token: str = ACCESS_TOKEN, recorder: Recorder | None = None, on_tick=None, **options):
        recorder = recorder or Recorder()
        options = {"first_retry_delay": 0.05, "clock": lambda: RECEIVED, **options}
        on_tick = on_tick or recorder.on_tick
        stream = KiteStream(API_KEY, token, on_tick, recorder.on_status, root=ticker.url, **options)
        streams.append(stream)
        return stream, recorder

    yield open_
    for stream in streams:
        stream.close()


def _publish_until(ticker: RunningTicker, recorder: Recorder, predicate: Callable[[Recorder], bool]) -> None:
    """Publish until the stream has seen what `predicate` wants (a message may race a subscription)."""
    for _ in range(200):
        ticker.fake.publish()
        try:
            recorder.wait(predicate, timeout=0.1)
            return
        except AssertionError:
            continue
    recorder.wait(predicate, timeout=0)


def test_the_stream_connects_with_the_session_and_streams_each_mode(ticker, open_stream):
    stream, seen = open_stream()
    seen.wait(lambda r: "connected" in r.kinds())
    assert ticker.fake.handshakes == [{"api_key": API_KEY, "access_token": ACCESS_TOKEN, "x-kite-version": "3"}]

    stream.subscribe([str(INFY)], StreamMode.LTP)
    stream.subscribe([str(NIFTY)], StreamMode.QUOTE)
    stream.subscribe([str(SBIN)], StreamMode.DEPTH)
    # Kite's quote packet lacks open interest and the trade time: both higher modes ask for "full".
    ticker.fake.wait(lambda f: f.subscriptions() == {INFY: "ltp", NIFTY: "full", SBIN: "full"})
    _publish_until(ticker, seen, lambda r: all(r.latest(t) for t in (INFY, NIFTY, SBIN)))
    assert seen.latest(INFY) == StreamTick(token=str(INFY), ltp=D("1500.50"), timestamp=RECEIVED)
    assert (seen.latest(NIFTY).mode, seen.latest(NIFTY).close) == (StreamMode.QUOTE, D("21990.00"))
    assert (seen.latest(SBIN).mode, seen.latest(SBIN).ltp) == (StreamMode.DEPTH, D("812.35"))

    stream.subscribe([str(INFY)], StreamMode.DEPTH)  # again, in another mode: switched
    ticker.fake.wait(lambda f: f.subscriptions()[INFY] == "full")
    ticker.fake.set(INFY, ltp="1501.25")
    _publish_until(ticker, seen, lambda r: r.latest(INFY).ltp == D("1501.25"))
    assert seen.latest(INFY).bids[0] == DepthLevel(D("1500.45"), 10, 2)

    stream.unsubscribe([str(SBIN), str(SBIN), "779"])  # a token not streamed is ignored
    ticker.fake.wait(lambda f: SBIN not in f.subscriptions())
    conn = ticker.fake.live()[-1]
    assert conn.requests[-1] == {"a": "unsubscribe", "v": [SBIN]}


def test_a_drop_reconnects_with_backoff_and_resubscribes_everything(ticker, open_stream):
    stream, seen = open_stream()
    stream.subscribe([str(INFY), str(SBIN)], StreamMode.DEPTH)
    stream.subscribe([str(NIFTY)], StreamMode.LTP)
    stream.unsubscribe([str(SBIN)])
    wanted = {INFY: "full", NIFTY: "ltp"}
    ticker.fake.wait(lambda f: f.subscriptions() == wanted)
    _publish_until(ticker, seen, lambda r: r.latest(INFY) is not None)

    ticker.fake.drop()
    seen.wait(lambda r: r.kinds()[-2:] == ["reconnecting", "connected"])
    assert seen.kinds() == ["connected", "reconnecting", "connected"]
    assert "lost" in seen.statuses[1][1]
    ticker.fake.wait(lambda f: len(f.connections) == 2 and f.subscriptions() == wanted)

    ticker.fake.set(INFY, ltp="1499.95")
    _publish_until(ticker, seen, lambda r: r.latest(INFY).ltp == D("1499.95"))
    stream.subscribe([str(SBIN)], StreamMode.QUOTE)  # and the new connection takes new subscriptions
    ticker.fake.wait(lambda f: f.subscriptions() == {**wanted, SBIN: "full"})


def test_a_silent_connection_is_found_by_pings_and_replaced(ticker, open_stream):
    stream, seen = open_stream(ping_interval=0.5, ping_timeout=1.0)
    stream.subscribe([str(INFY)], StreamMode.QUOTE)
    ticker.fake.wait(lambda f: f.subscriptions() == {INFY: "full"})
    silenced = ticker.fake.live()
    ticker.fake.go_silent()  # the socket stays open, nothing comes back: prices would freeze
    ticker.fake.wait(lambda f: len(f.connections) > len(silenced) and f.subscriptions() == {INFY: "full"})
    ticker.fake.wait(lambda f: not any(conn.open for conn in silenced))  # the client let the dead one go
    seen.wait(lambda r: r.kinds()[-2:] == ["reconnecting", "connected"])
    assert any("ping" in text for status, text in seen.statuses if status == "reconnecting")
    _publish_until(ticker, seen, lambda r: r.latest(INFY) is not None)


def test_a_refused_session_closes_the_stream_without_retrying(ticker, open_stream):
    _, refused = open_stream(token="expired-token")
    refused.wait(lambda r: "closed" in r.kinds())
    assert refused.kinds() == ["closed"]
    assert "log in" in refused.statuses[0][1]
    # A good stream's whole life, long after a retry would have come (first retry: 0.05 s), adds none.
    good, seen = open_stream()
    good.subscribe([str(INFY)], StreamMode.LTP)
    ticker.fake.wait(lambda f: f.subscriptions() == {INFY: "ltp"})
    _publish_until(ticker, seen, lambda r: r.latest(INFY) is not None)
    assert [h["access_token"] for h in ticker.fake.handshakes] == ["expired-token", ACCESS_TOKEN]


def test_a_ticker_down_at_the_start_is_retried_until_it_answers():
    with socket.socket() as probe:  # a port with nothing behind it, for now
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    seen = Recorder()
    stream = KiteStream(API_KEY, ACCESS_TOKEN, seen.on_tick, seen.on_status, root=f"ws://127.0.0.1:{port}",
                        first_retry_delay=0.05)  # fmt: skip
    try:
        stream.subscribe([str(INFY)], StreamMode.LTP)
        seen.wait(lambda r: r.kinds().count("reconnecting") >= 2)
        assert "attempt" in seen.statuses[-1][1]
        fake = FakeTicker()
        fake.add(_infy())
        with running_ticker(fake, port=port) as ticker:
            fake.wait(lambda f: f.subscriptions() == {INFY: "ltp"})
            seen.wait(lambda r: r.kinds()[-1] == "connected")
            _publish_until(ticker, seen, lambda r: r.latest(INFY) is not None)
    finally:
        stream.close()
    seen.wait(lambda r: r.kinds()[-1] == "closed")


def test_close_while_retrying_reports_closed_once():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    seen = Recorder()
    stream = KiteStream(API_KEY, ACCESS_TOKEN, seen.on_tick, seen.on_status, root=f"ws://127.0.0.1:{port}",
                        first_retry_delay=0.05)  # fmt: skip
    seen.wait(lambda r: "reconnecting" in r.kinds())
    stream.close()
    seen.wait(lambda r: "closed" in r.kinds())
    assert seen.kinds()[-1] == "closed"
    assert seen.kinds().count("closed") == 1


def test_close_ends_the_connection_for_good(ticker, open_stream):
    stream, seen = open_stream()
    stream.subscribe([str(INFY)], StreamMode.LTP)
    ticker.fake.wait(lambda f: f.subscriptions() == {INFY: "ltp"})
    stream.close()
    stream.close()
    seen.wait(lambda r: "closed" in r.kinds())
    ticker.fake.wait(lambda f: not f.live())
    assert seen.kinds() == ["connected", "closed"]
    with pytest.raises(BrokerError) as error:
        stream.subscribe([str(INFY)], StreamMode.LTP)
    assert error.value.kind is ErrorKind.NETWORK
    assert len(ticker.fake.connections) == 1


def test_subscriptions_made_before_the_connection_opens_are_sent_when_it_does(ticker, open_stream):
    stream, seen = open_stream()
    stream.subscribe([str(NIFTY)], 3)  # a plain int mode is fine: StreamMode is an IntEnum
    ticker.fake.wait(lambda f: f.subscriptions() == {NIFTY: "full"})
    seen.wait(lambda r: r.kinds() == ["connected"])


def test_bad_subscriptions_are_refused_before_reaching_kite(ticker, open_stream):
    stream, _ = open_stream()
    for tokens, mode in ((["INFY"], 1), (["0"], 1), ([str(2**32)], 1), ([str(INFY)], 4), ([str(INFY)], 0)):
        with pytest.raises(BrokerError) as error:
            stream.subscribe(tokens, mode)
        assert error.value.kind is ErrorKind.INPUT
    stream.subscribe([str(t) for t in range(1, 3001)], StreamMode.LTP)
    with pytest.raises(BrokerError, match="3000"):
        stream.subscribe(["3001"], StreamMode.LTP)
    stream.subscribe(["1", "2"], StreamMode.QUOTE)  # already streamed: no new instrument, fine


def test_a_ticker_url_that_is_not_a_websocket_is_a_configuration_error():
    with pytest.raises(BrokerError) as error:
        KiteStream(API_KEY, ACCESS_TOKEN, print, print, root="https://ws.kite.trade")
    assert error.value.kind is ErrorKind.CONFIG


def test_a_failing_callback_or_a_text_message_does_not_stop_the_ticks(ticker, open_stream):
    failures = []
    seen = Recorder()

    def flaky(tick: StreamTick) -> None:
        if not failures:
            failures.append(tick)
            raise RuntimeError("consumer bug")
        seen.on_tick(tick)

    stream, _ = open_stream(recorder=seen, on_tick=flaky)
    stream.subscribe([str(INFY)], StreamMode.LTP)
    ticker.fake.wait(lambda f: f.subscriptions() == {INFY: "ltp"})
    ticker.fake.send_text({"type": "order", "data": {"order_id": "1", "status": "COMPLETE"}})
    ticker.fake.send_text({"type": "error", "data": "something Kite said"})
    ticker.fake.heartbeat()
    _publish_until(ticker, seen, lambda r: r.latest(INFY) is not None)
    assert len(failures) == 1
    assert seen.kinds() == ["connected"]


def test_kiteconnects_own_client_reads_the_fakes_packets_as_we_do(ticker):
    from kiteconnect import KiteTicker

    got: list[dict] = []
    arrived = threading.Event()
    kws = KiteTicker(API_KEY, ACCESS_TOKEN, root=ticker.url)
    kws.on_connect = lambda ws, _response: (ws.subscribe([INFY, NIFTY]), ws.set_mode(ws.MODE_FULL, [INFY, NIFTY]))
    kws.on_ticks = lambda _ws, ticks: (got.extend(ticks), arrived.set() if len(got) >= 2 else None)
    in_reactor(kws.connect, True)  # on the reactor's thread, which our streams share
    try:
        ticker.fake.wait(lambda f: f.subscriptions() == {INFY: "full", NIFTY: "full"})
        for _ in range(200):
            ticker.fake.publish()
            if arrived.wait(0.1):
                break
        theirs = {tick["instrument_token"]: tick for tick in got}
        ours = {int(t.token): t for t in parse_message(encode_message(
            [encode_packet(_infy(), "full"), encode_packet(_nifty(), "full")]), RECEIVED)}  # fmt: skip
    finally:
        in_reactor(kws.close)
    infy, mine = theirs[INFY], ours[INFY]
    assert (D(str(infy["last_price"])), infy["volume_traded"]) == (mine.ltp, mine.volume)
    assert [D(str(infy["ohlc"][k])) for k in ("open", "high", "low", "close")] == [
        mine.open, mine.high, mine.low, mine.close]  # fmt: skip
    assert D(str(infy["average_traded_price"])) == mine.average_price
    assert (infy["total_buy_quantity"], infy["total_sell_quantity"]) == (5000, 7000)
    assert [(D(str(level["price"])), level["quantity"], level["orders"]) for level in infy["depth"]["buy"][:2]] == [
        (level.price, level.quantity, level.orders) for level in mine.bids]  # fmt: skip
    assert infy["last_trade_time"].astimezone(dt.UTC) == mine.ltt  # theirs naive local time, ours aware
    nifty = theirs[NIFTY]
    assert (D(str(nifty["ohlc"]["high"])), D(str(nifty["last_price"]))) == (ours[NIFTY].high, ours[NIFTY].ltp)


# -- through the adapter ---------------------------------------------------------------------------


def test_a_kite_session_opens_its_stream_at_the_configured_ticker(ticker):
    broker = ZerodhaBroker(api_key=API_KEY, api_secret="secret", ticker_root=ticker.url)
    seen = Recorder()
    stream = broker.session(ACCESS_TOKEN).stream(seen.on_tick, seen.on_status)
    try:
        assert isinstance(stream, BrokerStream)
        stream.subscribe([str(INFY)], StreamMode.DEPTH)
        _publish_until(ticker, seen, lambda r: r.latest(INFY) is not None)
        assert seen.latest(INFY).mode is StreamMode.DEPTH
    finally:
        stream.close()
        broker.close()
    assert ZerodhaBroker(api_key="k", api_secret="s").ticker_root == "wss://ws.kite.trade"


def test_a_broker_without_a_stream_says_so():
    class Quiet(BrokerClient):
        name = "quiet"
        profile = place_order = modify_order = cancel_order = order_status = None
        orderbook = tradebook = positions = holdings = funds = quotes = instruments = None

    with pytest.raises(BrokerError) as error:
        Quiet().stream(lambda tick: None, lambda status, text: None)
    assert (error.value.kind, error.value.status) == (ErrorKind.UNSUPPORTED, 501)
