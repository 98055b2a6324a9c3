"""gunicorn's configuration, the one definition of how Algobridge is served.

    gunicorn 'app:create_app()'                          # from the repository root: reads this file
    gunicorn -c gunicorn.conf.py 'app:create_app()'      # the same, from anywhere
    python app.py                                        # the same settings (app.main() loads this file)

Every value comes from the environment (or `.env`), parsed by config.py: WEB_WORKERS, WEB_THREADS,
WEB_TIMEOUT, WEB_GRACEFUL_TIMEOUT, WEB_KEEPALIVE, and WEB_BIND (default HOST:PORT). gunicorn's own
command-line options still override them.

- gthread workers: a request waiting on the broker or the database holds a thread, not a process;
  BufferingThreadWorker (below) gives a thread only a request that has arrived whole, so clients that
  send slowly, or leave their connections open, cannot take the threads (bench/slowclients.py).
- preload_app: the master builds the application once, so a pending migration (AUTO_MIGRATE) runs
  once, in the master, before any worker exists; the workers are forked from it and renew what a fork
  cannot share (pooled connections, the cache listener, the log writer's thread: app.after_fork).
- on_starting / on_exit: the WebSocket feed is started as the master's child and stopped with it.
- worker_exit: a worker stopping (SIGTERM, SIGINT, a timeout-free restart) flushes its log writer
  within what is left of the graceful timeout; rows it cannot write in time (the database is away)
  are spooled to `<instance>/spool/` and written at the next start. on_exit does the same for the
  master's own writer.
"""

from __future__ import annotations

import functools
import gc
import os
import re
import selectors
import signal
import socket
import sys
import time

_ROOT = os.path.dirname(os.path.abspath(__file__))
if _ROOT not in sys.path:  # `gunicorn -c /path/to/gunicorn.conf.py` from another folder
    sys.path.insert(0, _ROOT)

from dotenv import load_dotenv  # noqa: E402 - after the path fix above
from gunicorn import util  # noqa: E402
from gunicorn.http2 import negotiation  # noqa: E402
from gunicorn.workers.gthread import ThreadWorker  # noqa: E402

import config as _config  # noqa: E402 - not `config`: gunicorn would read it as its -c setting
from database import writer as _writer  # noqa: E402
from feed import process as _feed_process  # noqa: E402
from services.runtime import scheduler as _scheduler  # noqa: E402

load_dotenv(os.path.join(_ROOT, ".env"), override=False)  # as create_app() does
_settings = _config.server_settings()

wsgi_app = "app:create_app()"  # so that a bare `gunicorn` in the repository root serves the app
chdir = _ROOT
bind = [b.strip() for b in _settings["WEB_BIND"].split(",") if b.strip()] or [
    f"{_settings['HOST']}:{_settings['PORT']}"
]
workers = _settings["WEB_WORKERS"]
# worker_class: BufferingThreadWorker, at the end of this file (gthread that reads requests whole first)
threads = _settings["WEB_THREADS"]
timeout = _settings["WEB_TIMEOUT"]
graceful_timeout = _settings["WEB_GRACEFUL_TIMEOUT"]
keepalive = _settings["WEB_KEEPALIVE"]
preload_app = True
# gunicorn's control socket (gunicornc) defaults to one path per user: two instances on a host
# would fight over it. Each instance gets its own, in its instance folder.
control_socket = os.path.join(
    os.path.abspath(os.environ.get("INSTANCE_PATH") or os.path.join(_ROOT, "instance")), "gunicorn.ctl"
)
accesslog = None  # every request is in the traffic log already
errorlog = "-"

# A worker must finish flushing before the master's graceful timeout runs out and it is killed.
_FLUSH_MARGIN = 1.0


def _stop_signal_clock(worker) -> None:
    """Note when this worker was told to stop: the flush gets what is left of the grace period."""
    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT):
        previous = signal.getsignal(signum)

        def noted(sig, frame, _previous=previous):
            if getattr(worker, "algobridge_stop_at", None) is None:
                worker.algobridge_stop_at = time.monotonic()
            if callable(_previous):
                _previous(sig, frame)

        signal.signal(signum, noted)
    signal.siginterrupt(signal.SIGTERM, False)  # as gunicorn sets it: do not break a request's I/O


def when_ready(server) -> None:
    """The master only supervises: its scheduler thread (started by create_app) stops here, before
    any worker is forked; every worker starts its own (app.after_fork), and the jobs are idempotent.
    Without preload_app the master never built the application: nothing to stop."""
    if server.cfg.preload_app:
        _scheduler.pause_in_this_process(server.app.wsgi())  # the application preloaded (not built again)


def post_worker_init(worker) -> None:
    worker.algobridge_stop_at = None
    _stop_signal_clock(worker)


def _flush_writer(budget: float) -> None:
    try:
        log_writer = _writer.current()
    except RuntimeError:  # the application never loaded
        return
    log_writer.shutdown(timeout=max(1.0, min(float(_settings["WRITER_SHUTDOWN_TIMEOUT"]), budget)))


def worker_exit(server, worker) -> None:
    stop_at = getattr(worker, "algobridge_stop_at", None)
    elapsed = time.monotonic() - stop_at if stop_at is not None else 0.0
    _flush_writer(server.cfg.graceful_timeout - elapsed - _FLUSH_MARGIN)
    # The interpreter's last garbage collection walks every object of the worker (the symbol index
    # alone is millions): seconds per worker on a busy host, during which the master waits. Nothing
    # is left to collect that matters (the writer is flushed): exempt what exists from it.
    gc.freeze()


def on_starting(server) -> None:
    """The WebSocket feed (`python -m feed`) starts with the web server, as the master's child, unless it runs
    on its own (WEBSOCKET_WITH_WEB=false: deploy/systemd/algobridge-feed.service, compose's feed service)."""
    server.algobridge_feed = _feed_process.start(_settings)


def on_exit(server) -> None:
    _feed_process.stop(getattr(server, "algobridge_feed", None))
    _flush_writer(server.cfg.graceful_timeout)
    gc.freeze()  # as in worker_exit



# -- slow clients ----------------------------------------------------------------------------------
# What a worker holds of requests still arriving, all connections together; past it, a connection is
# handed to a thread as gthread does (the thread reads the rest).
ARRIVAL_BUDGET = 64 * 1024 * 1024
# The body a request may bring when the application sets no MAX_CONTENT_LENGTH of its own.
_UNLIMITED_BODY = 16 * 1024 * 1024
# A closed connection's lingering read (RFC 9112 9.6), as gthread's close_graceful: at most this long.
_LINGER = 2.0
_TIMEOUT_BODY = b'{"message": "the request did not arrive whole in time: send it again", "status": "error"}'
_TIMEOUT_ANSWER = (b"HTTP/1.1 408 Request Timeout\r\nConnection: close\r\nContent-Type: application/json\r\n"
                   b"Content-Length: %d\r\n\r\n%s" % (len(_TIMEOUT_BODY), _TIMEOUT_BODY))
WAITING, WHOLE, OVERSIZED = "waiting", "whole", "oversized"
_BARE_LF = re.compile(rb"(?<!\r)\n")
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")  # a field name (RFC 9110 5.1)


class Arrival:
    """One request arriving on a connection: whether it has arrived whole yet.

    `feed(data)` answers WAITING until the head and the whole body (Content-Length bytes, or chunks up
    to the last one and its trailer fields) are in, then WHOLE; OVERSIZED when the head is longer
    than gunicorn's parser takes or the body larger than the application takes (either refuses the
    request without reading on). What it cannot make sense of is WHOLE: the parser answers it (400).
    """

    __slots__ = ("buf", "deadline", "head_limit", "body_limit", "body_at", "length", "chunk_at", "chunked_total",
                 "expects_continue", "continued")

    def __init__(self, deadline: float, head_limit: int, body_limit: int) -> None:
        self.buf = bytearray()
        self.deadline, self.head_limit, self.body_limit = deadline, head_limit, body_limit
        self.body_at = -1  # where the body starts, once the head is in
        self.length = 0  # Content-Length; -1: chunked
        self.chunk_at = 0  # chunked: where the next chunk-size line starts
        self.chunked_total = 0
        self.expects_continue = False
        self.continued = False

    def feed(self, data: bytes) -> str:
        self.buf += data
        if self.body_at < 0:
            verdict = self._head()
            if verdict is not None:
                return verdict
        if self.length >= 0:
            return WHOLE if len(self.buf) - self.body_at >= self.length else WAITING
        return self._chunks()

    def _head(self) -> str | None:
        buf = self.buf
        start = len(buf) - len(buf.lstrip(b"\r\n"))  # empty lines before a request line are ignored
        end = buf.find(b"\r\n\r\n", start)
        if _BARE_LF.search(buf, start, end if end >= 0 else len(buf)):
            return WHOLE  # the parser refuses a line not ended by CRLF
        if end < 0:
            return OVERSIZED if len(buf) > self.head_limit else WAITING
        self.body_at = end + 4
        request_line, *lines = bytes(buf[start:end]).decode("latin-1").split("\r\n")
        fields: dict[str, list[str]] = {}
        for line in lines:
            name, colon, value = line.partition(":")
            if not colon or not _TOKEN.fullmatch(name):
                return WHOLE  # a folded line, a name with spaces: the parser refuses them
            fields.setdefault(name.lower(), []).append(value.strip(" \t"))
        coding = ",".join(fields.get("transfer-encoding", ())).replace(" ", "").lower()
        lengths = fields.get("content-length", ["0"])
        if "transfer-encoding" in fields:
            if "content-length" in fields or not coding.endswith("chunked") or request_line.endswith("/1.0"):
                return WHOLE  # framing the parser refuses
            self.length, self.chunk_at = -1, self.body_at
        else:
            if len(lengths) > 1 or not (lengths[0].isascii() and lengths[0].isdigit()):
                return WHOLE
            self.length = int(lengths[0])
            if self.length > self.body_limit:
                return OVERSIZED  # the application answers 413 without reading it
        self.expects_continue = any(v.lower() == "100-continue" for v in fields.get("expect", ()))
        return None

    def _chunks(self) -> str:
        buf, at = self.buf, self.chunk_at
        while True:
            eol = buf.find(b"\r\n", at)
            if eol < 0:
                return WHOLE if len(buf) - at > 1024 else WAITING  # a size line that long: the parser's error
            try:
                size = int(bytes(buf[at:eol]).split(b";", 1)[0].strip() or b"?", 16)
            except ValueError:
                return WHOLE
            if size == 0:  # the last chunk, then trailer fields up to an empty line
                done = buf.startswith(b"\r\n", eol + 2) or buf.find(b"\r\n\r\n", eol) >= 0
                return WHOLE if done else WAITING
            self.chunked_total += size
            if self.chunked_total > self.body_limit:
                return OVERSIZED
            after = eol + 2 + size + 2
            if after > len(buf):
                return WAITING
            at = self.chunk_at = after


class BufferingThreadWorker(ThreadWorker):
    """gunicorn's gthread worker, except that a request reaches a thread only once it has arrived whole.

    gthread gives a connection to a thread at its first byte, and the thread reads the request with
    blocking reads: a client trickling its headers or body a byte at a time holds a thread as long as
    it likes, and WEB_THREADS of them (8) stop the worker (bench/slowclients.py). Here the main loop
    reads arriving requests, non-blocking, beside its other connections, and hands each to a thread
    with its bytes once Arrival says it is whole; one still arriving `arrival_timeout` seconds after
    its connection (kept alive: after its first byte) is answered 408 and closed. gthread's lingering
    read of a closed connection blocks its main loop for up to 2 s (clients that do not close stop the
    worker too): the loop does that read beside its other connections instead. TLS, HTTP/2 and uwsgi
    connections are served as gthread serves them.
    """

    arrival_timeout = 30.0

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.arriving: dict = {}  # TConn -> Arrival
        self.arriving_bytes = 0
        self.lingering: dict = {}  # socket -> when to close it
        self.unread_bodies: set = set()  # TConns answered without their body read: closed, not drained
        self.stopping_at: float | None = None
        self.body_limit = _UNLIMITED_BODY
        cfg = self.cfg
        field = cfg.limit_request_field_size or 65536
        self.head_limit = (cfg.limit_request_line or 65536) + 2 + (cfg.limit_request_fields or 100) * (field + 2) + 2

    def run(self) -> None:
        limit = getattr(getattr(self, "wsgi", None), "config", {}).get("MAX_CONTENT_LENGTH")
        if limit:
            self.body_limit = int(limit)
        super().run()

    def enqueue_req(self, conn) -> None:
        if (self.cfg.is_ssl or getattr(self.cfg, "protocol", "http") != "http"
                or negotiation.prior_knowledge_allowed(self.cfg, conn.client)):
            super().enqueue_req(conn)
            return
        deadline = time.monotonic() + self.arrival_timeout
        arrival = self.arriving[conn] = Arrival(deadline, self.head_limit, self.body_limit)
        conn.sock.setblocking(False)
        # Bytes a client pipelined behind its last request are in the parser already.
        held = conn.parser.unreader.take_buffered() if conn.parser is not None else b""
        if held and self._feed(conn, arrival, held):
            self._dispatch(conn)
            return
        self.poller.register(conn.sock, selectors.EVENT_READ, functools.partial(self._readable, conn))
        self._readable(conn, conn.sock)  # often in already (a kept-alive client's next request): no wait for a poll

    def _readable(self, conn, _sock) -> None:
        try:
            data = conn.sock.recv(65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if data and not self._feed(conn, self.arriving[conn], data):
            return
        self.poller.unregister(conn.sock)
        if data:
            self._dispatch(conn)
        else:  # the client went away
            self._forget(conn)
            self.nr_conns -= 1
            conn.close()

    def _feed(self, conn, arrival: Arrival, data: bytes) -> bool:
        """Whether the request is ready for a thread: whole, to be refused unread, or over the budget."""
        verdict = arrival.feed(data)
        self.arriving_bytes += len(data)
        if verdict == OVERSIZED:
            self.unread_bodies.add(conn)
        if verdict != WAITING or self.arriving_bytes > ARRIVAL_BUDGET:
            return True
        if arrival.expects_continue and not arrival.continued:
            arrival.continued = True  # the client waits for this before its body (the thread sends another)
            try:
                conn.sock.send(b"HTTP/1.1 100 Continue\r\n\r\n")
            except OSError:
                pass
        return False

    def _forget(self, conn) -> bytes:
        arrival = self.arriving.pop(conn)
        self.arriving_bytes -= len(arrival.buf)
        return bytes(arrival.buf)

    def _dispatch(self, conn) -> None:
        fs = self.tpool.submit(self._handle_arrived, conn, self._forget(conn))
        fs.add_done_callback(lambda fut: self.method_queue.defer(self.finish_request, conn, fut))

    def _handle_arrived(self, conn, data: bytes):
        conn.data_ready = True  # no wait for a first byte: the bytes are here
        conn.sock.setblocking(True)
        conn.init()
        conn.parser.unreader.unread(data)
        return self.handle(conn)

    def _keepalive_after(self, conn, keepalive):
        if conn in self.unread_bodies:  # answered without reading its body: close rather than drain it
            self.unread_bodies.discard(conn)
            return False
        return super()._keepalive_after(conn, keepalive)

    def finish_request(self, conn, fs) -> None:
        try:
            closing = not fs.cancelled() and fs.result() is False
        except Exception:  # noqa: BLE001 - gthread's own handling closes it
            closing = False
        if not closing:
            super().finish_request(conn, fs)
            return
        self.unread_bodies.discard(conn)
        self.nr_conns -= 1
        self._close_lingering(conn.sock)

    def _close_lingering(self, sock) -> None:
        """gthread's graceful close reads what the client still sends for up to 2 s, blocking the
        main loop meanwhile: here the loop does that read beside its other connections."""
        try:
            sock.shutdown(socket.SHUT_WR)
            sock.setblocking(False)
            self.poller.register(sock, selectors.EVENT_READ, self._linger_readable)
        except (OSError, ValueError, KeyError):
            util.close(sock)
            return
        self.lingering[sock] = time.monotonic() + _LINGER

    def _linger_readable(self, sock) -> None:
        try:
            if sock.recv(65536):
                return
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            pass
        self._end_lingering(sock)

    def _end_lingering(self, sock) -> None:
        self.lingering.pop(sock, None)
        try:
            self.poller.unregister(sock)
        except (KeyError, ValueError, OSError):
            pass
        util.close(sock)

    def murder_pending(self) -> None:
        """Run by gthread's loop about once a second: also end the arrivals out of time (a stopping
        worker gives them _LINGER more at most), and the lingering reads."""
        super().murder_pending()
        now = time.monotonic()
        if not self.alive and self.stopping_at is None:
            self.stopping_at = now + _LINGER
        for conn, arrival in list(self.arriving.items()):
            if now < arrival.deadline and (self.stopping_at is None or now < self.stopping_at):
                continue
            self.poller.unregister(conn.sock)
            if self._forget(conn).strip():
                try:
                    conn.sock.send(_TIMEOUT_ANSWER)
                except OSError:
                    pass
            self.nr_conns -= 1
            self._close_lingering(conn.sock)
        for sock, until in list(self.lingering.items()):
            if now >= until:
                self._end_lingering(sock)


worker_class = BufferingThreadWorker
