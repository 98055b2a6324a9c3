"""Housekeeping that must happen on time, not only at the next read: analyze-mode MIS square-off,
intraday strategy square-off, the end of broker sessions, and the embedded sample contract's daily
regeneration (new weekly expiries, chains centred on the day's simulated prices).

One thread per process (SCHEDULER_INTERVAL seconds). Every job is idempotent and takes the same
locks as the requests that would otherwise do it lazily, so several workers running it at once
close a position once. Each job commits its own units of work (database.unit); a job that only adds
and flushes (broker session expiry) runs in a unit opened here. A job that fails is logged; its
app context ends with it, and the next job starts on a fresh session.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from flask import Flask

from database.types import utcnow
from database.unit import unit_of_work
from services.accounts import broker_login
from services.logs import retention as log_retention
from services.market import master_contract
from services.runtime import contract_jobs
from services.strategies import webhooks
from services.trading import approvals, portfolio, risk
from services.trading.paper import account as paper

log = logging.getLogger("algobridge.scheduler")


def run_once(app: Flask, since: Any, until: Any = None) -> Any:
    """Run every job once for the time (`since`, `until`]; returns `until`, the next `since`."""
    until = until or utcnow()
    jobs = (
        ("MIS square-off", lambda: paper.square_off_due(now=until)),
        ("portfolio snapshots", lambda: portfolio.snapshot_due(since, until)),
        ("strategy square-off", lambda: webhooks.squareoff_due(since, until)),
        ("broker session expiry", lambda: _in_unit(broker_login.expire_due)),
        ("risk limits", lambda: risk.evaluate_due(now=until)),  # P&L limits between ticks (issue #19)
        ("approval expiry", lambda: approvals.expire_due(now=until)),  # queued orders not decided in time
        ("log purge", lambda: log_retention.purge_due(now=until)),  # daily, once across workers
        ("sample contract refresh", lambda: master_contract.refresh_sample_contract(now=until)),  # daily
        ("master contract refresh", lambda: contract_jobs.refresh_due(now=until)),  # trading days at its time
    )
    for name, job in jobs:
        with app.app_context():
            try:
                job()
            except Exception:
                log.exception("scheduled %s failed; it runs again next time", name)
    return until


def _in_unit(job: Callable[[], Any]) -> Any:
    with unit_of_work():
        return job()


def start(app: Flask) -> threading.Thread | None:
    if not app.config["SCHEDULER_ENABLED"]:
        return None
    interval = app.config["SCHEDULER_INTERVAL"]

    def loop() -> None:
        since = utcnow()
        stop = app.extensions["algobridge.scheduler_stop"]
        while not stop.wait(interval):
            since = run_once(app, since)

    app.extensions["algobridge.scheduler_stop"] = threading.Event()
    thread = threading.Thread(target=loop, name="algobridge-scheduler", daemon=True)
    thread.start()
    app.extensions["algobridge.scheduler"] = thread
    return thread


def pause_in_this_process(app: Flask) -> None:
    """Stop this process's scheduler thread but keep it registered, so that processes forked from
    this one start their own (app.after_fork). gunicorn's master calls it: the workers do the
    housekeeping, and the master stays small and never touches the database after start."""
    stop = app.extensions.get("algobridge.scheduler_stop")
    if stop is not None:
        stop.set()
