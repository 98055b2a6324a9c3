"""gunicorn's configuration, the one definition of how Algobridge is served.

    gunicorn 'app:create_app()'                          # from the repository root: reads this file
    gunicorn -c gunicorn.conf.py 'app:create_app()'      # the same, from anywhere
    python app.py                                        # the same settings (app.main() loads this file)

Every value comes from the environment (or `.env`), parsed by config.py: WEB_WORKERS, WEB_THREADS,
WEB_TIMEOUT, WEB_GRACEFUL_TIMEOUT, WEB_KEEPALIVE, and WEB_BIND (default HOST:PORT). gunicorn's own
command-line options still override them.

- gthread workers: a request waiting on the broker or the database holds a thread, not a process.
- preload_app: the master builds the application once, so a pending migration (AUTO_MIGRATE) runs
  once, in the master, before any worker exists; the workers are forked from it and renew what a fork
  cannot share (pooled connections, the cache listener, the log writer's thread: app.after_fork).
- worker_exit: a worker stopping (SIGTERM, SIGINT, a timeout-free restart) flushes its log writer
  within what is left of the graceful timeout; rows it cannot write in time (the database is away)
  are spooled to `<instance>/spool/` and written at the next start. on_exit does the same for the
  master's own writer.
"""

from __future__ import annotations

import gc
import os
import signal
import sys
import time

_ROOT = os.path.dirname(os.path.abspath(__file__))
if _ROOT not in sys.path:  # `gunicorn -c /path/to/gunicorn.conf.py` from another folder
    sys.path.insert(0, _ROOT)

from dotenv import load_dotenv  # noqa: E402 - after the path fix above

import config as _config  # noqa: E402 - not `config`: gunicorn would read it as its -c setting
from database import writer as _writer  # noqa: E402
from services.runtime import scheduler as _scheduler  # noqa: E402

load_dotenv(os.path.join(_ROOT, ".env"), override=False)  # as create_app() does
_settings = _config.server_settings()

wsgi_app = "app:create_app()"  # so that a bare `gunicorn` in the repository root serves the app
chdir = _ROOT
bind = [b.strip() for b in _settings["WEB_BIND"].split(",") if b.strip()] or [
    f"{_settings['HOST']}:{_settings['PORT']}"
]
workers = _settings["WEB_WORKERS"]
worker_class = "gthread"
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


def on_exit(server) -> None:
    _flush_writer(server.cfg.graceful_timeout)
    gc.freeze()  # as in worker_exit
