"""Live mode end to end: the app on the fake Kite (REST) and the fake Kite ticker (tests/fakes/kite_ticker.py,
Kite's binary protocol over a real WebSocket, reached through ZERODHA_TICKER_URL), a real feed server, and the
`openalgo` SDK's own feed client of a live-mode user: OpenAlgo's market_data carrying what the fake sent, a drop
and the resubscribe, one upstream subscription per instrument, and a session that goes and comes back."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator

import openalgo
import pytest
from websockets.sync.client import connect

from database import db
from database.user_db import User
from services.accounts import broker_login
from tests.fakes.kite_ticker import IST, FakeTicker, Instrument, RunningTicker, running_ticker
from tests.feed.conftest import running_feed, wait_for
from tests.helpers.api import user_with_key
from tests.helpers.live import connect_live, connect_live_with_contract, kite  # noqa: F401 - a fixture

INFY, SBIN = 408065, 779521  # the fake Kite's instrument tokens (its master contract)
AT = dt.datetime(2024, 4, 1, 10, 15, 0, tzinfo=IST)
WAIT_S = 20


def _ms(moment: dt.datetime) -> int:
    return int(moment.timestamp() * 1000)


@pytest.fixture
def ticker(app, kite) -> Iterator[RunningTicker]:  # noqa: F811 - the fixture imported above
    """The fake ticker, with the app's ZERODHA_TICKER_URL pointed at it (restored after)."""
    fake = FakeTicker()
    fake.add(Instrument(INFY, "1500.5", ltq=10, average_price="1498.25", volume=123456, total_buy_quantity=5000,
                        total_sell_quantity=7000, open="1490", high="1510.05", low="1480.1", close="1495", ltt=AT,
                        oi=4200, timestamp=AT + dt.timedelta(seconds=1), bids=((10, "1500.45", 2), (20, "1500.4", 3)),
                        asks=((5, "1500.55", 1), (7, "1500.6", 2))),
             Instrument(SBIN, "812.35", close="800", timestamp=AT))
    saved = app.config["ZERODHA_TICKER_URL"]
    with running_ticker(fake) as running:
        app.config["ZERODHA_TICKER_URL"] = running.url
        broker_login.reset_brokers()
        try:
            yield running
        finally:
            app.config["ZERODHA_TICKER_URL"] = saved
            broker_login.reset_brokers()


def _login(user_id: int, kite, ticker: RunningTicker) -> None:  # noqa: F811 - the fixture's value
    """The user's Kite login through the real token exchange; the fake ticker accepts the tokens it issued."""
    connect_live(user_id, kite)
    ticker.fake.access_tokens.update(kite.fake.access_tokens)


def _sdk(feed, key: str):
    """An SDK feed client, connected, that also keeps every frame it receives (the SDK drops status frames)."""
    client = openalgo.api(api_key=key, host="http://127.0.0.1:1", ws_url=feed.url)
    assert client.connect() is True
    frames: list[dict] = []
    sdk_on_message = client.ws.on_message

    def on_message(ws, message):
        frames.append(json.loads(message))
        sdk_on_message(ws, message)

    client.ws.on_message = on_message
    client.frames = frames
    return client


def _latest(frames: list[dict], symbol: str, mode: int, since: int = 0) -> dict | None:
    found = [f for f in frames[since:] if f.get("type") == "market_data" and (f["symbol"], f["mode"]) == (symbol, mode)]
    return found[-1] if found else None


def _publish_until(ticker: RunningTicker, condition, what: str):
    """Publish the fake's market until `condition` holds (a publish may race a subscription)."""
    return wait_for(lambda: ticker.fake.publish() is not None and condition(), what)


def test_a_live_user_streams_kite_ticks_through_a_drop_and_unsubscribes_upstream(app, kite, ticker):  # noqa: F811
    user, _row, key = user_with_key("livefeed")
    connect_live_with_contract(user.id, kite)
    ticker.fake.access_tokens.update(kite.fake.access_tokens)
    with running_feed(app) as feed:
        first, second = _sdk(feed, key), _sdk(feed, key)
        assert first.subscribe_ltp([{"exchange": "NSE", "symbol": "SBIN"}])
        assert first.subscribe_quote([{"exchange": "NSE", "symbol": "INFY"}])
        assert first.subscribe_depth([{"exchange": "NSE", "symbol": "INFY"}])
        assert second.subscribe_ltp([{"exchange": "NSE", "symbol": "INFY"}])
        # one upstream subscription per instrument, in the richest mode asked (Kite's "full" for quote and depth)
        ticker.fake.wait(lambda f: f.subscriptions() == {SBIN: "ltp", INFY: "full"})
        live = f"live:{user.id}"
        assert feed.upstream == {(live, "SBIN", "NSE"): 1, (live, "INFY", "NSE"): 3}
        assert len(ticker.fake.connections) == 1
        _publish_until(ticker, lambda: all(_latest(c.frames, s, m) for c, s, m in [
            (first, "SBIN", 1), (first, "INFY", 2), (first, "INFY", 3), (second, "INFY", 1)]), "a tick in every mode")

        sbin = _latest(first.frames, "SBIN", 1)
        assert {k: sbin[k] for k in ("type", "symbol", "exchange", "mode", "broker")} == {
            "type": "market_data", "symbol": "SBIN", "exchange": "NSE", "mode": 1, "broker": "zerodha"}
        assert (sbin["data"]["ltp"], sbin["data"]["ltt"]) == (812.35, 0)  # Kite's LTP packet has no trade time
        assert sbin["data"]["timestamp"] > 0
        quote = {"ltp": 1500.5, "ltt": _ms(AT), "timestamp": _ms(AT) + 1000, "open": 1490.0, "high": 1510.05,
                 "low": 1480.1, "close": 1495.0, "volume": 123456, "last_trade_quantity": 10, "average_price": 1498.25,
                 "avg_trade_price": 1498.25, "total_buy_quantity": 5000, "total_sell_quantity": 7000, "oi": 4200,
                 "change": 5.5, "change_percent": round(5.5 / 1495 * 100, 4)}
        assert _latest(first.frames, "INFY", 2)["data"] == quote
        book = {side: [{"price": p, "quantity": q, "orders": o} for p, q, o in levels] for side, levels in
                (("buy", [(1500.45, 10, 2), (1500.4, 20, 3)]), ("sell", [(1500.55, 5, 1), (1500.6, 7, 2)]))}
        # Kite's packets carry no circuit limits
        assert _latest(first.frames, "INFY", 3)["data"] == {**quote, "upper_circuit": 0.0, "lower_circuit": 0.0,
                                                            "depth": book}
        assert _latest(second.frames, "INFY", 1)["data"] == {"ltp": 1500.5, "ltt": _ms(AT), "timestamp": _ms(AT) + 1000}
        # and what the SDK itself makes of them
        assert first.get_ltp()["ltp"]["NSE"]["SBIN"]["ltp"] == 812.35
        assert first.get_quotes()["quote"]["NSE"]["INFY"]["high"] == 1510.05
        assert first.get_depth()["depth"]["NSE"]["INFY"]["buyBook"]["1"]["price"] == 1500.45

        # a drop: both clients hear of it, the stream reconnects and subscribes again, ticks resume
        marks = len(first.frames), len(second.frames)
        ticker.fake.drop()
        for client, mark in zip((first, second), marks, strict=True):
            wait_for(lambda c=client, m=mark: [f["status"] for f in c.frames[m:] if f.get("type") == "status"][-2:]
                     == ["reconnecting", "connected"], "the drop and the reconnection reported")
        lost = next(f for f in first.frames[marks[0]:] if f.get("type") == "status")
        assert lost["status"] == "reconnecting"
        assert "lost" in lost["message"]
        ticker.fake.wait(lambda f: len(f.connections) == 2 and f.subscriptions() == {SBIN: "ltp", INFY: "full"})
        ticker.fake.set(INFY, ltp="1499.95")
        ticker.fake.set(SBIN, ltp="813")
        _publish_until(ticker, lambda: (_latest(first.frames, "INFY", 2, marks[0]) or {}).get("data", {}).get("ltp")
                       == 1499.95 and (_latest(first.frames, "SBIN", 1, marks[0]) or {}).get("data", {}).get("ltp")
                       == 813.0, "ticks after the resubscribe")
        assert _latest(first.frames, "INFY", 2, marks[0])["data"]["change"] == 4.95

        # unsubscribe: upstream follows the last client of each instrument, not the first
        assert first.unsubscribe_ltp([{"exchange": "NSE", "symbol": "SBIN"}])
        ticker.fake.wait(lambda f: f.subscriptions() == {INFY: "full"})
        assert ticker.fake.live()[-1].requests[-1] == {"a": "unsubscribe", "v": [SBIN]}
        assert first.unsubscribe_quote([{"exchange": "NSE", "symbol": "INFY"}])
        assert first.unsubscribe_depth([{"exchange": "NSE", "symbol": "INFY"}])
        wait_for(lambda: list(feed.upstream) == [(live, "INFY", "NSE")], "INFY kept for the other client")
        assert ticker.fake.subscriptions() == {INFY: "full"}
        second.disconnect()
        ticker.fake.wait(lambda f: f.subscriptions() == {})
        assert ticker.fake.live()[-1].requests[-1] == {"a": "unsubscribe", "v": [INFY]}
        wait_for(lambda: not feed.upstream, "no upstream left")
        first.disconnect()


def _authenticated(url: str, key: str):
    ws = connect(url)
    ws.send(json.dumps({"action": "authenticate", "api_key": key}))
    assert json.loads(ws.recv(timeout=WAIT_S))["status"] == "success"
    return ws


def _next(ws, kind: str, wait: float = WAIT_S, **match) -> dict:
    while True:
        msg = json.loads(ws.recv(timeout=wait))
        if msg.get("type") == kind and all(msg.get(k) == v for k, v in match.items()):
            return msg


def _tick(ws, ticker: RunningTicker, **match) -> dict:
    """Publish the fake's market until a market_data frame matching `match` arrives."""
    for _ in range(WAIT_S * 5):
        ticker.fake.publish()
        try:
            return _next(ws, "market_data", wait=0.2, **match)
        except TimeoutError:
            continue
    raise AssertionError(f"no tick {match}")


def _subscribe(ws, symbol: str, mode: int) -> dict:
    ws.send(json.dumps({"action": "subscribe", "symbol": symbol, "exchange": "NSE", "mode": mode}))
    return _next(ws, "subscribe")


def test_a_session_that_goes_and_comes_back(app, kite, ticker):  # noqa: F811 - the fixture imported above
    user, _row, key = user_with_key("comeback")
    connect_live_with_contract(user.id, kite)
    broker_login.disconnect(db.session.get(User, user.id))  # live mode, no session
    with running_feed(app) as feed, _authenticated(feed.url, key) as ws:
        refused = _subscribe(ws, "INFY", 2)
        assert refused["status"] == "error"
        assert "session" in refused["subscriptions"][0]["message"].lower()
        assert feed.upstream == {}

        # logged in again, the same subscription reaches the broker
        _login(user.id, kite, ticker)
        assert _subscribe(ws, "INFY", 2)["status"] == "success"
        ticker.fake.wait(lambda f: f.subscriptions() == {INFY: "full"})
        assert _tick(ws, ticker, symbol="INFY")["data"]["ltp"] == 1500.5

        # the broker refuses the session at the reconnect: the stream ends and says so
        ticker.fake.access_tokens.clear()
        ticker.fake.drop()
        closed = _next(ws, "status", status="closed")
        assert "log in" in closed["message"].lower()

        # after a new login the next subscription opens a new stream, with everything still wanted
        _login(user.id, kite, ticker)
        assert _subscribe(ws, "SBIN", 1)["status"] == "success"
        ticker.fake.wait(lambda f: f.subscriptions() == {INFY: "full", SBIN: "ltp"})
        ticker.fake.set(INFY, ltp="1502")
        assert _tick(ws, ticker, symbol="INFY", mode=2)["data"]["ltp"] == 1502.0
