"""What the application does once its database is ready (called by setup_environment), and the
start-up work that waits until a process has served its first page.

Start-up itself stays short: the first page is what a person (or a health check) waits for. Two
things are deferred to a background thread of the process that serves: loading the offline
sample contract on a fresh install (SAMPLE_CONTRACT) and building the symbol index
(WARM_SYMBOL_INDEX). Deferring them to a served request rather than a timer keeps them out of a
pre-forking server's master process (gunicorn's never serves): the index is built once per worker,
where the lookups are, and no thread of the master is caught mid-work by a fork. Until the index is
built, point lookups ask the database (services.market.symbol_index) and a search waits for the build.
"""

from __future__ import annotations

import ctypes
import gc
import logging
import os
import sys
import threading
import traceback
from collections.abc import Callable

from flask import Flask, Response, current_app

from database import db
from services.market import symbol_index
from services.market.master_contract import ensure_sample_contract, refresh_sample_contract
from services.notifications import events as telegram_events
from services.runtime import scheduler

log = logging.getLogger("algobridge")

EXTENSION_KEY = "algobridge.startup"


def on_start(app: Flask) -> None:
    """Start the scheduler of on-time housekeeping (square-offs, session expiry), and arrange the
    deferred start-up work (above) for after the first response of each serving process."""

    symbol_index.init_db()
    scheduler.start(app)
    telegram_events.start(app)  # TELEGRAM_BOT_TOKEN set: the bot's poller, after each process's first response
    if app.config["SAMPLE_CONTRACT"] or app.config["WARM_SYMBOL_INDEX"]:
        if EXTENSION_KEY not in app.extensions:  # setup_environment may run twice (CLI, then serve)
            app.extensions[EXTENSION_KEY] = {"pid": None, "thread": None, "lock": threading.Lock()}
            # Straight into the list: on_start may run after the first request (a server that waited for
            # `flask db upgrade`: services.runtime.bootstrap.retry_setup), when app.after_request refuses.
            app.after_request_funcs.setdefault(None, []).append(_after_request)


def _after_request(response: Response) -> Response:
    state = current_app.extensions[EXTENSION_KEY]
    if state["pid"] != os.getpid():  # not started in this process yet (a fork starts afresh)
        app = current_app._get_current_object()  # type: ignore[attr-defined]
        response.call_on_close(lambda: start_deferred(app))  # once the page has been sent
    return response


def start_deferred(app: Flask) -> threading.Thread | None:
    """Start this process's deferred start-up work on a thread, once; returns the thread (None if
    it was started already)."""
    state = app.extensions[EXTENSION_KEY]
    pid = os.getpid()
    if state["pid"] == pid:
        return None
    with state["lock"]:
        if state["pid"] == pid:
            return None
        thread = threading.Thread(target=run_deferred, args=(app,), name="algobridge-startup", daemon=True)
        state["pid"], state["thread"] = pid, thread
    thread.start()
    return thread


def run_deferred(app: Flask) -> None:
    """The deferred work itself: the sample contract when the table is empty (or made again when it is
    the sample of an earlier day), then the index."""

    with app.app_context():
        try:
            if app.config["SAMPLE_CONTRACT"]:
                # Its import rebuilds this process's index and invalidates the others'.
                ensure_sample_contract(rows=app.config["SAMPLE_CONTRACT_ROWS"])
            # A sample contract left from an earlier day is made again for today before the index is built
            # (the scheduler would, a little later).
            refresh_sample_contract()
            if app.config["WARM_SYMBOL_INDEX"]:
                symbol_index.index()
        except Exception:  # the server keeps serving; lookups build or load on first use instead
            log.exception("deferred start-up work failed")
    release_memory()


def release_memory() -> None:
    """Hand the memory freed by one-off work (an import's rows, a replaced index) back to the
    system: CPython and glibc keep freed blocks for reuse, and a long-lived worker would carry
    them as resident memory for good. A no-op where the C library has no malloc_trim."""
    gc.collect()
    try:
        ctypes.CDLL(None).malloc_trim(0)
    except (OSError, AttributeError):  # not glibc
        pass


def run_isolated(app: Flask, work: Callable[[], None]) -> None:
    """Run `work` (in `app`'s context) in a forked child and wait for it, when this process has no
    other thread (a server's master at start: a fork is safe then); otherwise here. Whatever the
    work imports and allocates leaves with the child, so it never reaches the forked workers.
    Raises RuntimeError when the child fails (its traceback is on stderr)."""
    if not hasattr(os, "fork") or threading.active_count() > 1:
        work()
        return

    pid = os.fork()
    if pid == 0:  # the child: its own connections, then the work, then out without cleanup
        code = 1
        try:
            with app.app_context():
                db.engine.dispose(close=False)  # the parent's pooled connections stay the parent's
                work()
                db.engine.dispose()
            code = 0
        except BaseException:  # noqa: BLE001 - reported to the parent by the exit status

            traceback.print_exc()
        finally:
            sys.stderr.flush()
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{getattr(work, '__name__', 'start-up work')} failed in its child process (see above)")
