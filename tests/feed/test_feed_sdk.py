"""The `openalgo` SDK's own feed client, unchanged, against the real feed server: authentication, each
mode, unsubscribe, a bad key, 20 clients at once; and the protocol's answers to what the SDK never sends."""

from __future__ import annotations

import json
import threading

import openalgo
from websockets.sync.client import connect

from tests.feed.conftest import wait_for
from tests.helpers.api import user_with_key

INFY = [{"exchange": "NSE", "symbol": "INFY"}]


def sdk(feed, key: str):
    return openalgo.api(api_key=key, host="http://127.0.0.1:1", ws_url=feed.url)


def test_sdk_authenticates_and_streams_each_mode(app, feed):
    _user, _row, key = user_with_key("trader1")
    client = sdk(feed, key)
    assert client.connect() is True
    got: dict[int, list[dict]] = {1: [], 2: [], 3: []}
    assert client.subscribe_ltp(INFY, on_data_received=lambda m: got[1].append(m))
    assert client.subscribe_quote(INFY, on_data_received=lambda m: got[2].append(m))
    assert client.subscribe_depth(INFY, on_data_received=lambda m: got[3].append(m))
    wait_for(lambda: all(got.values()), "a tick in every mode")
    ltp = client.get_ltp()["ltp"]["NSE"]["INFY"]
    assert ltp["ltp"] > 0
    quote = client.get_quotes()["quote"]["NSE"]["INFY"]
    assert quote["high"] >= quote["ltp"] >= quote["low"] > 0
    depth = client.get_depth()["depth"]["NSE"]["INFY"]
    assert depth["buyBook"]["1"]["price"] < depth["sellBook"]["1"]["price"]
    assert got[3][-1]["data"]["depth"]["buy"][0]["quantity"] > 0
    # one upstream subscription for the three modes of one instrument
    assert feed.upstream == {("analyze", "INFY", "NSE"): 3}

    assert client.unsubscribe_ltp(INFY)
    assert client.unsubscribe_quote(INFY)
    assert client.unsubscribe_depth(INFY)
    wait_for(lambda: not feed.upstream, "the upstream dropped after the last unsubscribe")
    client.disconnect()


def test_a_bad_key_is_refused(app, feed):
    client = sdk(feed, "0" * 64)
    assert client.connect() is False
    client.disconnect()
    with connect(feed.url) as ws:
        ws.send(json.dumps({"action": "authenticate", "api_key": "nope"}))
        answer = json.loads(ws.recv(timeout=WAIT_S))
        assert answer["status"] == "error"
        assert answer["code"] == "AUTHENTICATION_ERROR"
        ws.send(json.dumps({"action": "subscribe", "symbol": "INFY", "exchange": "NSE", "mode": 1}))
        assert json.loads(ws.recv(timeout=WAIT_S))["code"] == "NOT_AUTHENTICATED"


WAIT_S = 20


def test_twenty_clients_at_once_share_one_upstream(app, feed):
    _user, _row, key = user_with_key("crowd")
    clients = [sdk(feed, key) for _ in range(20)]
    results = [None] * 20

    def run(i: int) -> None:
        results[i] = clients[i].connect() and clients[i].subscribe_ltp(INFY)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(results)
    wait_for(lambda: all(c.get_ltp()["ltp"].get("NSE", {}).get("INFY") for c in clients), "a tick to every client")
    assert list(feed.upstream) == [("analyze", "INFY", "NSE")]
    assert len(feed.wants[("analyze", "INFY", "NSE")][1]) == 20
    for c in clients:
        c.disconnect()
    wait_for(lambda: not feed.upstream and not feed.clients, "every client gone, upstream dropped")


def test_bad_messages_get_answers_and_the_server_stays_up(app, feed):
    _user, _row, key = user_with_key("fuzzer")
    with connect(feed.url) as ws:
        ws.send(json.dumps({"action": "authenticate", "api_key": key}))
        assert json.loads(ws.recv(timeout=WAIT_S))["status"] == "success"
        for bad, code in [("{not json", "INVALID_JSON"), ("[1, 2]", "INVALID_JSON"), ('{"x": 1}', "INVALID_ACTION"),
                          ('{"action": "fly"}', "INVALID_ACTION"),
                          ('{"action": "subscribe", "symbols": "INFY"}', "INVALID_PARAMETERS")]:
            ws.send(bad)
            answer = json.loads(ws.recv(timeout=WAIT_S))
            assert (answer["status"], answer["code"]) == ("error", code), bad
        ws.send(json.dumps({"action": "subscribe", "request_id": "r1", "mode": 9,
                            "symbols": [{"symbol": "INFY", "exchange": "NSE"}]}))
        answer = json.loads(ws.recv(timeout=WAIT_S))
        assert answer["status"] == "error"
        assert answer["subscriptions"][0]["code"] == "INVALID_MODE"
        ws.send(json.dumps({"action": "subscribe", "request_id": "r2", "mode": "LTP",
                            "symbols": [{"symbol": "INFY", "exchange": "NSE"}, {"symbol": "NOPE", "exchange": "NSE"}]}))
        answer = json.loads(ws.recv(timeout=WAIT_S))
        assert answer["request_id"] == "r2"
        assert answer["status"] == "partial"
        assert [s["status"] for s in answer["subscriptions"]] == ["success", "error"]
        ws.send(json.dumps({"action": "ping", "request_id": "p"}))
        while (msg := json.loads(ws.recv(timeout=WAIT_S)))["type"] == "market_data":
            pass
        assert msg["type"] == "pong"


def test_limits_per_key(app, feed, monkeypatch):
    feed.max_conns, feed.max_subs = 1, 1
    _user, _row, key = user_with_key("limited")
    with connect(feed.url) as first, connect(feed.url) as second:
        first.send(json.dumps({"action": "authenticate", "api_key": key}))
        assert json.loads(first.recv(timeout=WAIT_S))["status"] == "success"
        second.send(json.dumps({"action": "authenticate", "api_key": key}))
        assert json.loads(second.recv(timeout=WAIT_S))["code"] == "LIMIT_EXCEEDED"
        first.send(json.dumps({"action": "subscribe", "mode": 1, "symbols": [
            {"symbol": "INFY", "exchange": "NSE"}, {"symbol": "SBIN", "exchange": "NSE"}]}))
        while (answer := json.loads(first.recv(timeout=WAIT_S)))["type"] != "subscribe":
            pass
        assert [s["status"] for s in answer["subscriptions"]] == ["success", "error"]


def test_a_slow_client_is_dropped_once_whatever_it_subscribed(app, feed):
    """Every instrument and mode of a batch finds the same slow client behind: it is closed with 4008 and counted
    once, and no frame is written to it after it was found behind."""
    from feed.server import SLOW_CLIENT

    _user, _row, key = user_with_key("slowpoke")
    with connect(feed.url) as ws:
        ws.send(json.dumps({"action": "authenticate", "api_key": key}))
        assert json.loads(ws.recv(timeout=WAIT_S))["status"] == "success"
        for mode in ("LTP", "QUOTE"):
            ws.send(json.dumps({"action": "subscribe", "mode": mode, "symbols": [
                {"symbol": "INFY", "exchange": "NSE"}, {"symbol": "SBIN", "exchange": "NSE"}]}))
            while json.loads(ws.recv(timeout=WAIT_S))["type"] != "subscribe":
                pass
        feed.buffer_limit = -1  # from the next batch on, any connection counts as behind
        assert _close_code(ws) == SLOW_CLIENT
    assert feed.dropped_slow == 1  # four subscriptions, one client, one drop


def _close_code(ws) -> int | None:
    """Read until the server closes the connection; its close code."""
    from websockets.exceptions import ConnectionClosed

    while True:
        try:
            ws.recv(timeout=WAIT_S)
        except ConnectionClosed as exc:
            return exc.rcvd.code if exc.rcvd is not None else None
