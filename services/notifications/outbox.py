"""The outbox: Telegram calls queued in memory and made by one sender thread per process, like the log writer
(database/writer.py), so that a slow or failing Telegram never holds up whoever has something to say.

- `put()` never blocks: the queue is bounded, and a full queue drops the message with a log line (a message
  is worth less than the caller's time);
- a failed call is tried again with backoff (Telegram's `retry_after` on a 429), up to `tries` times, then
  dropped with a log line; a call Telegram refuses outright (a blocked bot, an unknown chat) is dropped at once;
- the thread starts on the first `put()` of each process (a fork starts afresh) and is a daemon: messages
  still queued at exit are lost, by design.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
from collections.abc import Callable
from typing import Any

from services.notifications.telegram_api import TelegramError

log = logging.getLogger("algobridge.telegram")

__all__ = ["Outbox"]


class Outbox:
    def __init__(self, call: Callable[[str, dict], Any], *, maxsize: int = 1000, tries: int = 5,
                 backoff: float = 1.0, max_wait: float = 60.0) -> None:
        self.call = call
        self.tries = tries
        self.backoff = backoff
        self.max_wait = max_wait  # the longest pause between two tries, whatever retry_after says
        self.queue: queue.Queue = queue.Queue(maxsize=maxsize)
        self.sent = 0
        self.dropped = 0
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._pid: int | None = None
        self._idle = threading.Condition()
        self._busy = 0  # messages taken from the queue and not done with yet

    # -- the callers' side --------------------------------------------------------------------------------
    def put(self, method: str, params: dict) -> bool:
        """Queue one call; False (and logged) when the queue is full."""
        self._ensure_thread()
        try:
            self.queue.put_nowait((method, params))
        except queue.Full:
            self.dropped += 1
            log.warning("Telegram outbox full (%d queued): %s dropped", self.queue.maxsize, method)
            return False
        return True

    def flush(self, timeout: float) -> bool:
        """Wait until every queued call is done with (sent or dropped); False on timeout."""
        with self._idle:
            return self._idle.wait_for(lambda: self.queue.unfinished_tasks == 0, timeout=timeout)

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        try:
            self.queue.put_nowait(None)  # wake the sender
        except queue.Full:
            pass
        thread = getattr(self, "_thread", None)
        if thread is not None and self._pid == os.getpid():
            thread.join(timeout)

    # -- the sender -----------------------------------------------------------------------------------------
    def _ensure_thread(self) -> None:
        pid = os.getpid()
        if self._pid == pid:
            return
        with self._lock:
            if self._pid == pid:
                return
            if self._pid is not None:  # forked: the parent's queue and thread did not come along as such
                self.queue = queue.Queue(maxsize=self.queue.maxsize)
                self._stop = threading.Event()
            self._thread = threading.Thread(target=self._run, name="algobridge-telegram-outbox", daemon=True)
            self._pid = pid
            self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                item = self.queue.get(timeout=0.5)
            except queue.Empty:
                continue
            try:
                if item is not None:
                    self._deliver(*item)
            except Exception:  # never let the thread die
                log.exception("Telegram %s failed", item[0] if item else "call")
            finally:
                self.queue.task_done()
                with self._idle:
                    self._idle.notify_all()

    def _deliver(self, method: str, params: dict) -> None:
        for attempt in range(1, self.tries + 1):
            try:
                self.call(method, params)
                self.sent += 1
                return
            except TelegramError as exc:
                if not exc.retryable or attempt == self.tries:
                    self.dropped += 1
                    log.warning("Telegram %s dropped after %d tries: %s", method, attempt, exc)
                    return
                wait = exc.retry_after if exc.retry_after is not None else self.backoff * 2 ** (attempt - 1)
                if self._stop.wait(min(wait, self.max_wait)):
                    return
