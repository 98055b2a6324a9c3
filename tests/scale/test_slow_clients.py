"""Slow clients cannot freeze the server: gunicorn through gunicorn.conf.py with the README's defaults
(one worker, 8 threads, the embedded SQLite database).

- 64 connections trickling their requests a byte at a time (half their headers, half a body) while
  a normal client calls the API: every call of the normal client is answered (gthread's own worker
  gives each trickling connection a thread, and 8 of them stop it);
- 64 clients that leave their connections open after a request that asked to close them: the same
  (gthread's lingering close blocks its main loop for 2 s per such connection);
- the worker that reads requests whole still speaks HTTP/1.1: a request sent slowly but whole,
  pipelined requests, a chunked body, `Expect: 100-continue`, a body over the limit (413 at once);
- a request still arriving after the worker's arrival timeout is answered 408 and closed.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time

import pytest
import requests

from tests.helpers.databases import sqlite_url
from tests.scale import conftest
from tests.scale.conftest import ROOT, Server, seed, server_env

pytestmark = pytest.mark.slow

SLOW = 64
CLIENT_TIMEOUT = 10.0  # seconds: a call not answered by then counts as a hang
CALLS = 20


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """The server as the README runs it (WEB_WORKERS=1, WEB_THREADS=8: the defaults), and a key."""
    folder = tmp_path_factory.mktemp("slow-clients")
    instance = str(folder / "instance")
    os.makedirs(instance)
    server = Server(server_env(sqlite_url(instance), instance, WEB_WORKERS="1", WEB_THREADS="8"),
                    str(folder / "gunicorn.log")).start()
    try:
        key = seed(server.env, {"symbols": 200, "users": [{"name": "trader"}]})["trader"]["keys"][0]["key"]
        yield server, key
    finally:
        if server.stop() != 0:
            pytest.fail(server.log())


def _address(server: Server) -> tuple[str, int]:
    host, port = server.base.removeprefix("http://").rsplit(":", 1)
    return host, int(port)


def _request(key: str, padding: int = 0) -> tuple[bytes, bytes]:
    """A ping's head and body; padded, a body long enough never to arrive whole while trickled (and a
    400 if it did)."""
    body = json.dumps({"apikey": key, **({"note": "x" * padding} if padding else {})}).encode()
    head = (b"POST /api/v1/ping HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n" % len(body))
    return head, body


class Trickling:
    """`count` connections sending their request one byte every `interval` s, on a thread of their own."""

    def __init__(self, address: tuple[str, int], key: str, count: int, interval: float = 0.5) -> None:
        self.interval = interval
        self.conns: list[tuple[socket.socket, bytes]] = []
        head, body = _request(key, padding=2000)
        for n in range(count):
            s = socket.create_connection(address, timeout=5)
            if n % 2:  # the headers at once, the body a byte at a time
                s.sendall(head)
                self.conns.append((s, body))
            else:  # the headers a byte at a time
                self.conns.append((s, head + body))
        self.closed_by_server = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        sent = 0
        while not self._stop.wait(self.interval):
            for s, rest in list(self.conns):
                try:
                    s.send(rest[sent : sent + 1])
                except OSError:
                    self.conns.remove((s, rest))
                    self.closed_by_server += 1
            sent += 1

    def __enter__(self) -> Trickling:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        for s, _rest in self.conns:
            s.close()


class Lingering:
    """`count` clients each sending, every `interval` s, a whole request that asks the server to close
    the connection once answered, then neither reading from it nor closing it (until the end)."""

    def __init__(self, address: tuple[str, int], count: int, interval: float = 0.5) -> None:
        self.address, self.count, self.interval = address, count, interval
        self.kept: list[socket.socket] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        request = b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
        while True:
            for _ in range(self.count):
                try:
                    s = socket.create_connection(self.address, timeout=5)
                    s.sendall(request)
                    self.kept.append(s)
                except OSError:
                    pass
            if self._stop.wait(self.interval):
                return

    def __enter__(self) -> Lingering:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)
        for s in self.kept:
            s.close()


def _normal_calls(server: Server, key: str) -> list[int | str]:
    """A client on fresh connections: the API call and the health check, CALLS times each."""
    outcomes: list[int | str] = []
    for _ in range(CALLS):
        for method, path, body in (("POST", "/api/v1/ping", {"apikey": key}), ("GET", "/health", None)):
            try:
                resp = requests.request(method, server.base + path, json=body, timeout=CLIENT_TIMEOUT,
                                        headers={"Connection": "close"})
                outcomes.append(resp.status_code)
            except requests.RequestException as exc:
                outcomes.append(type(exc).__name__)
    return outcomes


def test_trickling_connections_leave_other_clients_served(served):
    server, key = served
    with Trickling(_address(server), key, SLOW) as slow:
        time.sleep(2 * slow.interval)  # under way: every slow connection has sent some more
        outcomes = _normal_calls(server, key)
        held = len(slow.conns)
    print(f"\n{SLOW} trickling connections: {outcomes.count(200)} of {len(outcomes)} normal calls answered 200; "
          f"{held} slow connections still open at the end")
    assert outcomes == [200] * len(outcomes), outcomes


def test_connections_left_open_leave_other_clients_served(served):
    server, key = served
    with Lingering(_address(server), SLOW) as lingering:
        time.sleep(2 * lingering.interval)
        outcomes = _normal_calls(server, key)
        opened = len(lingering.kept)
    print(f"\n{opened} connections left open: {outcomes.count(200)} of {len(outcomes)} normal calls answered 200")
    assert opened >= 2 * SLOW
    assert outcomes == [200] * len(outcomes), outcomes


def _read_all(s: socket.socket) -> bytes:
    data = b""
    while chunk := s.recv(65536):
        data += chunk
    return data


def test_requests_read_whole_first_are_served_as_http_1_1(served):
    server, key = served
    address = _address(server)
    head, body = _request(key)
    with socket.create_connection(address, timeout=CLIENT_TIMEOUT) as s:  # slowly, but whole: answered
        request = head.replace(b"\r\n\r\n", b"\r\nConnection: close\r\n\r\n") + body
        for i in range(0, len(request), 16):
            s.sendall(request[i : i + 16])
            time.sleep(0.01)
        assert _read_all(s).startswith(b"HTTP/1.1 200 ")

    with socket.create_connection(address, timeout=CLIENT_TIMEOUT) as s:  # pipelined on one connection
        health = b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
        s.sendall(health + head + body + health.replace(b"\r\n\r\n", b"\r\nConnection: close\r\n\r\n"))
        answers = _read_all(s)
        assert answers.count(b"HTTP/1.1 200 ") == 3, answers[:500]

    chunked = requests.post(server.base + "/api/v1/ping", data=iter([b'{"apikey": ', json.dumps(key).encode(), b"}"]),
                            headers={"Content-Type": "application/json"}, timeout=CLIENT_TIMEOUT)
    assert chunked.status_code == 200, chunked.text

    with socket.create_connection(address, timeout=CLIENT_TIMEOUT) as s:  # the client waits for 100 Continue
        s.sendall(head.replace(b"\r\n\r\n", b"\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n"))
        assert s.recv(100).startswith(b"HTTP/1.1 100 Continue\r\n\r\n")
        s.sendall(body)
        assert b"HTTP/1.1 200 " in _read_all(s)

    with socket.create_connection(address, timeout=CLIENT_TIMEOUT) as s:  # over the 1 MiB limit: refused unread
        s.sendall(b"POST /api/v1/ping HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                  b"Content-Length: 5000000\r\n\r\n{")
        answer = _read_all(s)  # and the connection is closed, not kept waiting for the body
        assert answer.startswith(b"HTTP/1.1 413 ")
        assert json.loads(answer.split(b"\r\n\r\n", 1)[1])["status"] == "error"


QUICK_CONF = """
import runpy
globals().update({{k: v for k, v in runpy.run_path({conf!r}).items() if not k.startswith("__")}})


class QuickArrivalWorker(BufferingThreadWorker):
    arrival_timeout = 1.0


worker_class = QuickArrivalWorker
"""


def test_a_request_still_arriving_after_the_timeout_is_answered_408(tmp_path, monkeypatch, start_server):
    conf = tmp_path / "quick.conf.py"
    conf.write_text(QUICK_CONF.format(conf=os.path.join(ROOT, "gunicorn.conf.py")))
    monkeypatch.setattr(conftest, "GUNICORN_CONF", str(conf))
    instance = str(tmp_path / "instance")
    os.makedirs(instance)
    server = start_server(server_env(sqlite_url(instance), instance, WEB_WORKERS="1", WEB_THREADS="8"))
    with socket.create_connection(_address(server), timeout=CLIENT_TIMEOUT) as s:
        s.sendall(b"POST /api/v1/ping HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 10\r\n\r\n{")
        answer = _read_all(s)  # the worker's loop ends it within a second or so of the timeout
    assert answer.startswith(b"HTTP/1.1 408 "), answer
    assert json.loads(answer.split(b"\r\n\r\n", 1)[1]) == {
        "status": "error", "message": "the request did not arrive whole in time: send it again"}
    with socket.create_connection(_address(server), timeout=CLIENT_TIMEOUT) as s:  # nothing sent: closed quietly
        assert _read_all(s) == b""
    assert requests.get(server.base + "/health", timeout=CLIENT_TIMEOUT).status_code == 200
