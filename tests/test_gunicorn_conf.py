"""gunicorn.conf.py: the server's settings come from the environment, parsed strictly, and every
name gunicorn reads from the file is a valid setting (the multi-worker behaviour itself is tested
against a real gunicorn in tests/scale/)."""

from __future__ import annotations

import os
import runpy

import pytest
from gunicorn.config import Config
from gunicorn.workers.gthread import ThreadWorker

import config

CONF = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "gunicorn.conf.py")


def _load(monkeypatch, **env: str) -> dict:
    for name in config.SERVER_SETTINGS:
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return runpy.run_path(CONF)


def _as_gunicorn_reads_it(conf: dict) -> Config:
    cfg = Config()
    for name, value in conf.items():
        if name in cfg.settings:
            cfg.set(name, value)  # raises on a value gunicorn does not accept
    return cfg


def test_defaults(monkeypatch):
    cfg = _as_gunicorn_reads_it(_load(monkeypatch))
    assert cfg.bind == ["127.0.0.1:5000"]
    assert (cfg.workers, cfg.threads, cfg.worker_class_str) == (1, 8, "BufferingThreadWorker")
    assert issubclass(cfg.worker_class, ThreadWorker)  # gthread, reading requests whole first
    assert (cfg.timeout, cfg.graceful_timeout, cfg.keepalive) == (30, 30, 5)
    assert cfg.preload_app is True
    assert cfg.wsgi_app == "app:create_app()"


def test_settings_from_the_environment(monkeypatch):
    cfg = _as_gunicorn_reads_it(_load(monkeypatch, WEB_WORKERS="4", WEB_THREADS="2", WEB_TIMEOUT="60",
                                      WEB_GRACEFUL_TIMEOUT="45", WEB_KEEPALIVE="2",
                                      WEB_BIND="0.0.0.0:8000, unix:/run/algobridge.sock"))
    assert cfg.bind == ["0.0.0.0:8000", "unix:/run/algobridge.sock"]
    assert (cfg.workers, cfg.threads, cfg.timeout, cfg.graceful_timeout, cfg.keepalive) == (4, 2, 60, 45, 2)
    assert _as_gunicorn_reads_it(_load(monkeypatch, HOST="10.0.0.5", PORT="8080")).bind == ["10.0.0.5:8080"]


def test_each_instance_has_its_own_control_socket(monkeypatch, tmp_path):
    monkeypatch.setenv("INSTANCE_PATH", str(tmp_path))
    assert _as_gunicorn_reads_it(_load(monkeypatch)).control_socket == str(tmp_path / "gunicorn.ctl")


def test_a_malformed_setting_names_the_variable(monkeypatch):
    with pytest.raises(config.ConfigError, match="WEB_WORKERS"):
        _load(monkeypatch, WEB_WORKERS="four")
    with pytest.raises(config.ConfigError, match="WEB_GRACEFUL_TIMEOUT"):
        _load(monkeypatch, WEB_GRACEFUL_TIMEOUT="0")


def test_the_hooks_are_there(monkeypatch):
    cfg = _as_gunicorn_reads_it(_load(monkeypatch))
    for hook in ("worker_exit", "on_exit", "post_worker_init"):
        assert getattr(cfg, hook).__module__ != "gunicorn.config", f"{hook} is gunicorn's default"


def test_the_master_stops_its_scheduler_and_each_worker_runs_its_own(monkeypatch, tmp_path):
    """when_ready runs in gunicorn's master before it forks: the master's scheduler thread ends
    there (the master only supervises), and a process forked after that starts its own."""
    from types import SimpleNamespace

    from app import create_app

    conf = _load(monkeypatch)
    application = create_app({"INSTANCE_PATH": str(tmp_path), "SCHEDULER_ENABLED": True,
                              "SCHEDULER_INTERVAL": 1, "SAMPLE_CONTRACT": False})
    master_thread = application.extensions["algobridge.scheduler"]
    assert master_thread.is_alive()
    server = SimpleNamespace(cfg=SimpleNamespace(preload_app=True), app=SimpleNamespace(wsgi=lambda: application))
    conf["when_ready"](server)  # gunicorn's arbiter: its config, and the application it preloaded
    master_thread.join(timeout=5)
    assert not master_thread.is_alive()

    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # a worker
        status = 1
        try:
            thread = application.extensions["algobridge.scheduler"]
            os.write(write_fd, b"alive" if thread is not master_thread and thread.is_alive() else b"dead")
            status = 0
        finally:
            os._exit(status)
    os.close(write_fd)
    with os.fdopen(read_fd, "rb") as pipe:
        answer = pipe.read()
    assert os.waitpid(pid, 0)[1] == 0
    assert answer == b"alive"
    application.extensions["algobridge.scheduler_stop"].set()


# -- Arrival: when a request read by the worker's main loop is whole ------------------------------------
HEAD = b"POST /api/v1/ping HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"


def _arrival(monkeypatch, body_limit: int = 1000):
    return _load(monkeypatch)["Arrival"](deadline=0.0, head_limit=4096, body_limit=body_limit)


def _feed_bytewise(arrival, data: bytes) -> list[str]:
    return [arrival.feed(data[i : i + 1]) for i in range(len(data))]


def test_a_request_is_whole_with_its_last_byte(monkeypatch):
    conf = _load(monkeypatch)
    body = b'{"apikey": "k"}'
    for request in (b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n",
                    HEAD + b"Content-Length: %d\r\n\r\n%s" % (len(body), body),
                    b"\r\n" + HEAD + b"Content-Length: 0\r\n\r\n",  # an empty line before it is ignored
                    HEAD + b"Transfer-Encoding: chunked\r\n\r\n4\r\n{\"a\"\r\n3;x=1\r\n: 1\r\n1\r\n}\r\n0\r\n\r\n",
                    HEAD + b"Transfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\nTrailer-Field: 1\r\n\r\n"):
        verdicts = _feed_bytewise(_arrival(monkeypatch), request)
        assert verdicts[-1] == conf["WHOLE"], request
        assert set(verdicts[:-1]) == {conf["WAITING"]}, request
    arrival = _arrival(monkeypatch)  # all at once, and with the next request pipelined behind it
    assert arrival.feed(b"GET / HTTP/1.1\r\n\r\nGET /again HTTP/1.1\r\n") == conf["WHOLE"]


def test_what_the_parser_refuses_goes_to_it_at_once(monkeypatch):
    conf = _load(monkeypatch)
    for head in (b"Content-Length: 12\r\nContent-Length: 13\r\n", b"Content-Length: twelve\r\n",
                 b"Transfer-Encoding: chunked\r\nContent-Length: 3\r\n", b"Transfer-Encoding: gzip\r\n"):
        assert _arrival(monkeypatch).feed(HEAD + head + b"\r\n") == conf["WHOLE"], head
    assert _arrival(monkeypatch).feed(HEAD + b"Transfer-Encoding: chunked\r\n\r\nzz\r\n") == conf["WHOLE"]


def test_too_large_is_handed_over_unread(monkeypatch):
    """A body larger than the application takes is refused by it (413) without being read, and a head
    longer than gunicorn's limits by the parser: neither is waited for."""
    conf = _load(monkeypatch)
    assert _arrival(monkeypatch, 100).feed(HEAD + b"Content-Length: 101\r\n\r\n") == conf["OVERSIZED"]
    assert _arrival(monkeypatch, 100).feed(HEAD + b"Content-Length: 100\r\n\r\n") == conf["WAITING"]
    chunked = _arrival(monkeypatch, 100)
    assert chunked.feed(HEAD + b"Transfer-Encoding: chunked\r\n\r\n50\r\n" + b"x" * 80 + b"\r\n") == conf["WAITING"]
    assert chunked.feed(b"50\r\n") == conf["OVERSIZED"]
    assert _arrival(monkeypatch).feed(b"GET /" + b"a" * 5000) == conf["OVERSIZED"]


def test_an_expectation_of_100_continue_is_noted(monkeypatch):
    arrival = _arrival(monkeypatch)
    assert arrival.feed(HEAD + b"Expect: 100-continue\r\nContent-Length: 2\r\n\r\n") == "waiting"
    assert arrival.expects_continue
    assert arrival.feed(b"{}") == "whole"


H11 = b"POST /x HTTP/1.1\r\nHost: x\r\n"
ODD_REQUESTS = [H11 + head for head in (
    b"Transfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n", b"Content-Length: 3\r\nContent-Length: 3\r\n\r\n",
    b"Transfer-Encoding: gzip\r\n\r\n", b"Transfer-Encoding: chunked, gzip\r\n\r\n",
    b"Transfer-Encoding: gzip, chunked\r\n\r\n1\r\n", b"Transfer-Encoding: identity\r\nContent-Length: 3\r\n\r\n",
    b"Transfer-Encoding: \r\nContent-Length: 3\r\n\r\n", b"Content-Length: +3\r\n\r\n", b"Content-Length: 1_0\r\n\r\n",
    b"Content-Length: -1\r\n\r\n", b"Content-Length : 3\r\n\r\n", b"Content-Length:\t3\t\r\n\r\n",
    b"Content-Length: \r\n\r\n", b"X: 1\nContent-Length: 3\r\n\r\n", b"X: a\r\n b\r\nContent-Length: 3\r\n\r\n",
    b"X: a\x85Content-Length: 9\r\n\r\nabc", b"garbage\r\n\r\n", b"Transfer-Encoding: chunked\r\n\r\nzz\r\n",
    b"Transfer-Encoding: chunked\r\n\r\n3;a=b\r\nabc\r\n", b"Transfer-Encoding: Chunked\r\n\r\n3\r\nabc\r\n",
    b"Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n",
    b"Transfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\nX: 1\r\n\r\n", b"Content-Length: 2\r\n\r\n{}",
)] + [b"POST /x HTTP/1.1\nHost: x\nContent-Length: 3\n\n", b"POST /x HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n",
      b"\r\n\r\n" + H11 + b"\r\n"]


@pytest.mark.parametrize("request_bytes", ODD_REQUESTS)
def test_arrival_agrees_with_gunicorns_parser(monkeypatch, request_bytes):
    """Arrival says "whole" exactly when gunicorn's parser reads no further (it answers, or refuses,
    the request): "whole" too soon would leave a thread reading a slow client again, "waiting" too
    long would keep a malformed request waiting for the arrival timeout instead of its 400."""
    import socket

    from gunicorn.http.parser import RequestParser

    verdict = _arrival(monkeypatch).feed(request_bytes)
    ours, theirs = socket.socketpair()
    with ours, theirs:
        theirs.sendall(request_bytes)
        ours.settimeout(0.5)
        try:
            request = next(RequestParser(Config(), ours, ("127.0.0.1", 1)))
            if request.body is not None:
                request.body.read()
            reads_on = False
        except TimeoutError:
            reads_on = True
        except Exception:  # noqa: BLE001 - refused: the parser answers 400 without reading on
            reads_on = False
    assert verdict == ("waiting" if reads_on else "whole")
