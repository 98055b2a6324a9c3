"""The master contract downloaded again from the broker every trading morning, and at a broker login when it
is older than the trading day.

A broker publishes its instrument list once a day before the session (new weekly expiries, strikes, lot
changes); a contract kept from an earlier day lacks them. Two triggers:

- the scheduled job (`run_scheduled`, services.runtime.scheduler through services.runtime.contract_jobs): on
  a trading day (the NSE calendar, services.market.calendar) from CONTRACT_REFRESH_TIME (exchange time), the
  first run at or after that time (a restart later in the morning catches up) downloads the contract of the
  broker whose contract is loaded, through an active session of any user of that broker (the instruments
  call needs one: the caller hands a function that opens it). With the sample contract loaded, nothing: the
  sample has its own daily refresh (master_contract.refresh_sample_contract). With no session of that broker,
  the refresh waits for one (the login trigger below, or a later run that finds a session);
- a broker login (`refresh_at_login`, on a thread of its own: the login answer does not wait), when the
  loaded contract is not that broker's or was loaded before the current trading day.

Once across workers and hosts: an attempt is claimed in a unit of work on one global settings row
(`master_contract.refresh`: the row is locked on PostgreSQL, SQLite's write lock is taken as the unit opens),
which records the attempt and its outcome for the symbols page: running, done (when, how many symbols),
failed (why), or waiting (for a session). A claim left "running" for LEASE (a crashed worker) is taken over.

A failed download keeps the previous contract (master_contract's import is atomic), puts the broker's import
status row back to the contract that is still loaded (the sample contract's refresh reads which contract is
loaded from those rows, and must not take a failed broker download for "the sample is loaded"), and raises an
alert for the admins (`contract_refresh_failed`). A failed morning refresh is tried again RETRY_AFTER later,
MAX_ATTEMPTS times a day.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from flask import current_app
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

import config as config_module
from database import cache, db
from database.alert_db import Alert
from database.enums import ImportState
from database.settings_db import Setting
from database.symbol import MasterContractStatus
from database.types import utcnow
from database.unit import unit_of_work
from services.market import calendar, master_contract

log = logging.getLogger("algobridge.symbols")

SETTING_KEY = "master_contract.refresh"
LEASE = dt.timedelta(hours=1)  # a claim "running" for longer is a crashed refresh, taken over
RETRY_AFTER = dt.timedelta(minutes=30)
MAX_ATTEMPTS = 3  # scheduled attempts a day (a login tries whenever the contract is stale)
CALENDAR_EXCHANGE = "NSE"  # whose sessions make a trading day
NO_CONTRACT = ("paper", master_contract.SAMPLE_BROKER)  # no contract of their own to download

SCHEDULE = "schedule"
LOGIN = "login"

RUNNING, DONE, FAILED, WAITING = "running", "done", "failed", "waiting"

# A function that opens a client of `broker` through an active session (None when there is none).
ClientFor = Callable[[str], Any]


@dataclass(frozen=True)
class Loaded:
    """The loaded contract: the broker of the last import that succeeded, and when it finished."""

    broker: str
    finished_at: dt.datetime


# -- settings, the calendar ----------------------------------------------------------------------------------
def refresh_time() -> dt.time | None:
    """CONTRACT_REFRESH_TIME (exchange time), None when empty (no automatic refresh)."""
    raw = (current_app.config.get("CONTRACT_REFRESH_TIME") or "").strip()
    return config_module.parse_time_of_day(raw) if raw else None


def at_login_enabled() -> bool:
    """Whether a broker login refreshes a stale contract: a refresh time is set and this process runs the
    background housekeeping (SCHEDULER_ENABLED)."""
    return bool(current_app.config.get("SCHEDULER_ENABLED")) and refresh_time() is not None


def _zone() -> Any:
    return config_module.exchange_tz(current_app.config)


def exchange_date(moment: dt.datetime) -> dt.date:
    return calendar.local_date(moment)


def is_trading_day(day: dt.date) -> bool:
    """Whether NSE has a session on `day` (a regular weekday outside the years the calendar ships)."""
    return calendar.is_trading_day(CALENDAR_EXCHANGE, day)


def trading_day_of(day: dt.date) -> dt.date:
    """The trading day a contract must be from on `day`: `day` itself on a trading day, else the last one
    before it (a contract of Friday is current on Saturday)."""
    for back in range(calendar.SEARCH_DAYS + 1):
        candidate = day - dt.timedelta(days=back)
        if is_trading_day(candidate):
            return candidate
    return day


def due_at(day: dt.date) -> dt.datetime | None:
    """The moment (UTC) of `day`'s refresh, None when no refresh time is set."""
    at = refresh_time()
    return None if at is None else dt.datetime.combine(day, at, tzinfo=_zone()).astimezone(dt.UTC)


# -- what is loaded, what was done ---------------------------------------------------------------------------
def loaded_contract() -> Loaded | None:
    """The contract in `sym_tokens`: the broker whose import succeeded last (master_contract.loaded_status)."""
    status = master_contract.loaded_status()
    return None if status is None else Loaded(status.broker, status.finished_at)


def loaded_broker() -> str | None:
    """`loaded_contract()`'s broker, cached (namespace "symbols", which every import invalidates; 30 s at most
    behind a status row changed without an import): what a live venue checks its broker against."""
    return cache.get_or_load("symbols", "loaded_broker", lambda: getattr(loaded_contract(), "broker", None), ttl=30)


def record() -> dict[str, Any]:
    """The last refresh attempt and its outcome ({} before the first)."""
    value = db.session.execute(
        select(Setting.value).where(Setting.user_id.is_(None), Setting.key == SETTING_KEY)).scalar()
    return dict(value) if isinstance(value, dict) else {}


def _time(value: Any) -> dt.datetime | None:
    return dt.datetime.fromisoformat(value) if value else None


def _running(rec: dict[str, Any], now: dt.datetime) -> bool:
    started = _time(rec.get("started_at"))
    return rec.get("state") == RUNNING and started is not None and now - started < LEASE


def _scheduled_broker(now: dt.datetime, rec: dict[str, Any]) -> str | None:
    """The broker whose contract the scheduled refresh should download at `now`, or None."""
    today = exchange_date(now)
    at = due_at(today)
    if at is None or now < at or not is_trading_day(today):
        return None
    loaded = loaded_contract()
    if loaded is None or loaded.broker in NO_CONTRACT or loaded.finished_at >= at:
        return None  # the sample's own refresh does it; or it was downloaded since today's refresh time
    if _running(rec, now):
        return None
    if rec.get("state") == FAILED and rec.get("day") == today.isoformat():
        finished = _time(rec.get("finished_at"))
        if int(rec.get("attempts") or 0) >= MAX_ATTEMPTS or (finished is not None and now - finished < RETRY_AFTER):
            return None
    return loaded.broker


def stale_for(broker: str, now: dt.datetime) -> bool:
    """Whether a login to `broker` at `now` should download its contract: another contract is loaded (the
    sample, another broker's), or this one was loaded before the current trading day."""
    loaded = loaded_contract()
    if loaded is None or loaded.broker != broker:
        return True
    return exchange_date(loaded.finished_at) < trading_day_of(exchange_date(now))


# -- the two triggers ----------------------------------------------------------------------------------------
def run_scheduled(client_for: ClientFor, now: dt.datetime | None = None) -> master_contract.ImportResult | None:
    """The daily job (every scheduler run of every worker): download the loaded broker's contract when it is
    due (above) and this call wins the claim; None otherwise. `client_for(broker)` opens a client through an
    active session of that broker, or answers None (the refresh then waits for one)."""
    now = now or utcnow()
    broker = _scheduled_broker(now, record())
    if broker is None:
        return None
    try:
        client = client_for(broker)
    except Exception as exc:  # noqa: BLE001 - a misconfigured broker: a failed refresh, said so
        client, error = None, exc
    else:
        error = None
    if client is None and error is None:
        _note_waiting(broker, now)
        return None
    if not _claim(broker, SCHEDULE, now, lambda rec: _scheduled_broker(now, rec) == broker):
        return None
    return _download(broker, lambda: _raise(error) if error is not None else client, now)


def refresh_at_login(broker: str, open_client: Callable[[], Any], now: dt.datetime | None = None,
                     ) -> master_contract.ImportResult | None:
    """After a login to `broker` (on a thread of its own): download its contract when the loaded one is stale
    for it (`stale_for`) and no refresh is running. `open_client()` opens the client of the new session."""
    now = now or utcnow()
    if broker in NO_CONTRACT or not stale_for(broker, now):
        return None
    if not _claim(broker, LOGIN, now, lambda rec: not _running(rec, now) and stale_for(broker, now)):
        return None
    return _download(broker, open_client, now)


def _raise(exc: BaseException) -> Any:
    raise exc


# -- claim, download, outcome --------------------------------------------------------------------------------
def _write_record(session: Any, update: Callable[[dict[str, Any]], bool | None]) -> dict[str, Any] | None:
    """In the caller's write unit `session`: read the record with its row locked, let `update` change it in
    place, and store it (adding the row before the first). Answers the record stored, or None when `update`
    answered False (nothing stored)."""
    row = session.scalars(select(Setting).where(Setting.user_id.is_(None), Setting.key == SETTING_KEY)
                          .with_for_update()).first()
    rec = dict(row.value) if row is not None and isinstance(row.value, dict) else {}
    if update(rec) is False:
        return None
    if row is None:
        session.add(Setting(user_id=None, key=SETTING_KEY, value=rec))
    else:
        row.value = rec
    return rec


def _claim(broker: str, trigger: str, now: dt.datetime, still_due: Callable[[dict[str, Any]], bool]) -> bool:
    """Take the refresh for this call: in one unit of work, with the settings row locked, check that it is still
    due and mark it running. False when another worker has it, or did it meanwhile."""
    today = exchange_date(now).isoformat()

    def take(rec: dict[str, Any]) -> bool:
        if not still_due(rec):
            return False
        attempts = int(rec.get("attempts") or 0) + 1 if rec.get("day") == today else 1
        rec.update(state=RUNNING, broker=broker, trigger=trigger, day=today, attempts=attempts,
                   started_at=now.isoformat(), finished_at=None, error=None, symbols=None)
        return True

    try:
        with unit_of_work(write=True) as session:  # SQLite: BEGIN IMMEDIATE, one writer from here to the commit
            return _write_record(session, take) is not None
    except IntegrityError:  # another worker inserted the row first: it has the refresh
        return False


def _note_waiting(broker: str, now: dt.datetime) -> None:
    """Say on the symbols page that the due refresh waits for a session of `broker` (written once a day)."""
    today = exchange_date(now).isoformat()
    rec = record()
    if rec.get("state") == WAITING and rec.get("day") == today and rec.get("broker") == broker:
        return

    def wait(rec: dict[str, Any]) -> bool:
        if _running(rec, now):
            return False
        rec.update(state=WAITING, broker=broker, trigger=SCHEDULE, day=today, started_at=now.isoformat(),
                   finished_at=None, error=None, symbols=None)
        return True

    try:
        with unit_of_work(write=True) as session:
            if _write_record(session, wait) is None:
                return
    except IntegrityError:
        return
    log.info("the master contract refresh of %s waits for a %s session", today, broker)


def _status_values(broker: str) -> dict[str, Any] | None:
    """The broker's import status row while it describes a loaded contract (done), to put back after a
    failed download."""
    row = db.session.execute(select(MasterContractStatus).where(MasterContractStatus.broker == broker)).scalar()
    if row is None or row.state != ImportState.DONE:
        return None
    return {"state": row.state, "rows_done": row.rows_done, "rows_total": row.rows_total,
            "rows_skipped": row.rows_skipped, "source": row.source, "error": None, "started_at": row.started_at,
            "finished_at": row.finished_at}


def _download(broker: str, open_client: Callable[[], Any], now: dt.datetime) -> master_contract.ImportResult | None:
    """Download and load `broker`'s contract (the claim is this call's), and record the outcome."""
    previous = _status_values(broker)
    db.session.rollback()  # the import opens its own units: nothing of this session's reads stays open
    try:
        result = master_contract.import_from_broker(open_client(), broker=broker)
    except master_contract.ImportBusyError as exc:  # a download from the symbols page or the CLI: it does it
        _finish(broker, now, state=WAITING, error=str(exc))
        return None
    except Exception as exc:  # noqa: BLE001 - any failure keeps the previous contract, recorded and alerted
        reason = str(exc) or type(exc).__name__
        log.error("master contract refresh from %s failed: %s", broker, reason)
        _finish(broker, now, state=FAILED, error=reason, previous=previous)
        return None
    _finish(broker, now, state=DONE, symbols=result.rows_mapped)
    return result


def _finish(broker: str, now: dt.datetime, *, state: str, error: str | None = None, symbols: int | None = None,
            previous: dict[str, Any] | None = None) -> None:
    finished = utcnow()

    def end(rec: dict[str, Any]) -> None:
        rec.update(state=state, broker=broker, finished_at=finished.isoformat(),
                   error=error[:2000] if error else None, symbols=symbols)
        if state == DONE:
            rec.update(refreshed_at=finished.isoformat(), refreshed_broker=broker)

    with unit_of_work(write=True) as session:
        rec = _write_record(session, end) or {}
        if state != FAILED:
            return
        if previous is not None:
            table = MasterContractStatus.__table__
            session.execute(table.update().where(table.c.broker == broker).values(**previous, updated_at=finished))
        kept = (f"The contract loaded {_when(previous['finished_at'], now)} is kept." if previous
                else "The previous contract is kept.")
        session.add(Alert(user_id=None, severity="warning", kind="contract_refresh_failed",
                          title=f"The {broker} master contract could not be downloaded",
                          message=f"The {'login' if rec.get('trigger') == LOGIN else 'daily'} refresh of the {broker}"
                                  f" master contract failed:"
                                  f" {rec['error']}. {kept} Download it from the Symbols page once the broker"
                                  " answers, or wait for the next try."))


# -- the symbols page ----------------------------------------------------------------------------------------
def _when(moment: dt.datetime | None, now: dt.datetime) -> str:
    """'today at 08:31', 'yesterday at 08:31' or 'on 04 Dec 2026 at 08:31' (exchange time)."""
    if moment is None:
        return "never"
    local = moment.astimezone(_zone())
    days = (exchange_date(now) - local.date()).days
    day = "today" if days == 0 else "yesterday" if days == 1 else f"on {local:%d %b %Y}"
    return f"{day} at {local:%H:%M}"


def outcome(now: dt.datetime | None = None) -> dict[str, Any]:
    """What the symbols page says about the daily refresh: `state` (running, done, failed, waiting, or idle
    before the first), `text` (one sentence), `error`, `last` ("refreshed today at 08:31 from zerodha", or
    None), `schedule` (when it runs)."""
    now = now or utcnow()
    rec = record()
    state = rec.get("state") or "idle"
    broker = rec.get("broker") or ""
    started, finished = _time(rec.get("started_at")), _time(rec.get("finished_at"))
    how = "at a login" if rec.get("trigger") == LOGIN else "on schedule"
    if state == RUNNING and not _running(rec, now):
        state, text = FAILED, f"The refresh from {broker} started {_when(started, now)} did not finish."
    elif state == RUNNING:
        text = f"Downloading the {broker} contract ({how}) since {_when(started, now)}."
    elif state == DONE:
        text = f"Refreshed {_when(finished, now)} from {broker} ({how}): {rec.get('symbols') or 0:,} symbols."
    elif state == FAILED:
        text = (f"The refresh from {broker} ({how}) failed {_when(finished, now)}: {rec.get('error')}."
                " The previous contract is kept.")
    elif state == WAITING:
        text = (f"Waiting since {_when(started, now)} for a {broker} session: the refresh runs at the next"
                f" {broker} login." if not rec.get("error")
                else f"The refresh from {broker} gave way to another download: {rec.get('error')}.")
    else:
        text = "No automatic refresh has run yet."
    refreshed = _time(rec.get("refreshed_at"))
    at = refresh_time()
    return {
        "state": state,
        "text": text,
        "error": rec.get("error") if state == FAILED else None,
        "last": (f"refreshed {_when(refreshed, now)} from {rec.get('refreshed_broker')}" if refreshed else None),
        "schedule": (f"every trading day at {at:%H:%M} exchange time, and at a broker login when older than the"
                     " trading day" if at else "off (CONTRACT_REFRESH_TIME is empty)"),
    }
