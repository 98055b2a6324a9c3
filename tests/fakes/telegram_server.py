"""A fake Telegram Bot API server (stdlib http.server on a thread) for driving the real client over real HTTP.

It speaks what Algobridge uses of the Bot API: `POST /bot<token>/<method>` with a JSON body, answered
`{"ok": true, "result": ...}` or `{"ok": false, "error_code": N, "description": ..., "parameters": {...}}`.
- a wrong token in the path: 401 Unauthorized;
- `sendMessage` and `answerCallbackQuery` are recorded (`messages`, `answers`);
- `getUpdates` serves the queued updates (`push_message`, `push_callback`) from `offset` on, forgetting the ones
  below it (confirmed), and waits up to `timeout` seconds (capped by `max_wait`) when there are none;
- `fail_next(method, times, retry_after)` answers 429 Too Many Requests with `retry_after`;
- `hold(method)` makes calls of that method wait until `release(method)`: a slow Telegram, without timing.

Use `running_telegram()` (a context manager) to serve it on 127.0.0.1 on a free port.
"""

from __future__ import annotations

import itertools
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tests.fakes.serving import serving

TOKEN = "123456:fake-bot-token"


class FakeTelegram:
    def __init__(self, token: str = TOKEN, max_wait: float = 0.5) -> None:
        self.token = token
        self.max_wait = max_wait
        self.cond = threading.Condition()
        self.updates: list[dict] = []
        self.messages: list[dict] = []
        self.answers: list[dict] = []
        self.calls: list[str] = []  # every method called, in order, failed ones too
        self.faults: dict[str, list[float]] = {}
        self.gates: dict[str, threading.Event] = {}
        self.waiting: dict[str, int] = {}  # calls held at a gate now
        self._update_ids = itertools.count(1000)
        self._message_ids = itertools.count(1)

    # -- the test's side --------------------------------------------------------------------------------------
    def push_message(self, chat_id: int, text: str, *, chat_type: str = "private", username: str = "alice_tg") -> int:
        uid = next(self._update_ids)
        chat = {"id": chat_id, "type": chat_type, "username": username, "first_name": "Alice"}
        self._push({"update_id": uid, "message": {"message_id": next(self._message_ids), "date": 0, "chat": chat,
                                                  "from": {"id": chat_id, "is_bot": False, "first_name": "Alice"},
                                                  "text": text}})
        return uid

    def push_callback(self, chat_id: int, data: str) -> int:
        uid = next(self._update_ids)
        self._push({"update_id": uid, "callback_query": {
            "id": f"cq{uid}", "from": {"id": chat_id, "is_bot": False, "first_name": "Alice"}, "chat_instance": "x",
            "data": data, "message": {"message_id": 1, "date": 0, "chat": {"id": chat_id, "type": "private"}}}})
        return uid

    def _push(self, update: dict) -> None:
        with self.cond:
            self.updates.append(update)
            self.cond.notify_all()

    def fail_next(self, method: str, times: int = 1, retry_after: float = 1) -> None:
        with self.cond:
            self.faults.setdefault(method, []).extend([retry_after] * times)

    def hold(self, method: str) -> None:
        self.gates[method] = threading.Event()

    def release(self, method: str) -> None:
        self.gates.pop(method).set()

    def wait_held(self, method: str, count: int = 1, timeout: float = 10) -> bool:
        """Wait until `count` calls of `method` are waiting at its gate."""
        with self.cond:
            return self.cond.wait_for(lambda: self.waiting.get(method, 0) >= count, timeout)

    def wait_messages(self, count: int, timeout: float = 10) -> list[dict]:
        with self.cond:
            self.cond.wait_for(lambda: len(self.messages) >= count, timeout)
            return list(self.messages)

    def texts(self, chat_id: int | None = None) -> list[str]:
        with self.cond:
            return [m["text"] for m in self.messages if chat_id is None or m["chat_id"] == chat_id]

    # -- the server's side ------------------------------------------------------------------------------------
    def handle(self, path: str, body: dict) -> tuple[int, dict]:
        prefix, _, method = path.lstrip("/").partition("/")
        if prefix != f"bot{self.token}":
            return 401, {"ok": False, "error_code": 401, "description": "Unauthorized"}
        gate = self.gates.get(method)
        if gate is not None:
            with self.cond:
                self.waiting[method] = self.waiting.get(method, 0) + 1
                self.cond.notify_all()
            gate.wait(30)
            with self.cond:
                self.waiting[method] -= 1
        with self.cond:
            self.calls.append(method)
            faults = self.faults.get(method)
            if faults:
                retry_after = faults.pop(0)
                return 429, {"ok": False, "error_code": 429, "description": f"Too Many Requests: retry after "
                             f"{retry_after}", "parameters": {"retry_after": retry_after}}
        handler = getattr(self, f"_ep_{method}", None)
        if handler is None:
            return 404, {"ok": False, "error_code": 404, "description": "Not Found"}
        return handler(body)

    def _ep_sendMessage(self, body: dict) -> tuple[int, dict]:  # noqa: N802 - the Bot API's method name
        if not isinstance(body.get("chat_id"), int) or not body.get("text"):
            return 400, {"ok": False, "error_code": 400, "description": "Bad Request: chat_id and text are needed"}
        with self.cond:
            self.messages.append({"chat_id": body["chat_id"], "text": body["text"],
                                  "reply_markup": body.get("reply_markup")})
            self.cond.notify_all()
            mid = next(self._message_ids)
        return 200, {"ok": True, "result": {"message_id": mid, "date": 0, "chat": {"id": body["chat_id"]},
                                            "text": body["text"]}}

    def _ep_answerCallbackQuery(self, body: dict) -> tuple[int, dict]:  # noqa: N802
        with self.cond:
            self.answers.append(body)
            self.cond.notify_all()
        return 200, {"ok": True, "result": True}

    def _ep_getUpdates(self, body: dict) -> tuple[int, dict]:  # noqa: N802
        offset = body.get("offset")
        timeout = min(float(body.get("timeout") or 0), self.max_wait)
        with self.cond:
            if isinstance(offset, int):
                self.updates = [u for u in self.updates if u["update_id"] >= offset]
            self.cond.wait_for(lambda: bool(self.updates), timeout)
            return 200, {"ok": True, "result": list(self.updates[:100])}


class _Handler(BaseHTTPRequestHandler):
    fake: FakeTelegram

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        length = int(self.headers.get("Content-Length") or 0)
        try:
            body = json.loads(self.rfile.read(length) or b"{}")
        except ValueError:
            body = None
        if not isinstance(body, dict):
            status, answer = 400, {"ok": False, "error_code": 400, "description": "Bad Request: not JSON"}
        else:
            status, answer = self.server.fake.handle(self.path, body)  # type: ignore[attr-defined]
        data = json.dumps(answer).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet
        pass


@contextmanager
def running_telegram(fake: FakeTelegram | None = None) -> Iterator[tuple[FakeTelegram, str]]:
    """Serve a FakeTelegram on 127.0.0.1; yields (fake, base URL for TELEGRAM_API_URL)."""
    fake = fake or FakeTelegram()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.daemon_threads = True
    server.fake = fake  # type: ignore[attr-defined]
    with serving(server, name="fake-telegram", poll_interval=0.05):
        try:
            yield fake, f"http://127.0.0.1:{server.server_address[1]}"
        finally:
            for gate in list(fake.gates.values()):
                gate.set()
