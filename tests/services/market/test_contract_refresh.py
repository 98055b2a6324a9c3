"""The master contract's daily refresh from the broker (services.market.contract_refresh, wired to sessions by
services.runtime.contract_jobs): on time on trading days, once across workers, at a login when stale, a failure
alerted with the previous contract kept, and the outcome on the symbols page. SQLite and PostgreSQL, a
controlled clock (the refresh's and the import's), the fake Kite of tests/helpers/live.py."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import select

from database import db
from database.alert_db import Alert
from database.symbol import MasterContractStatus, SymToken
from services.market import contract_refresh, master_contract
from services.runtime import contract_jobs, scheduler
from tests.fakes.kite_server import DEFAULT_INSTRUMENTS
from tests.helpers import live as live_fixtures
from tests.helpers.accounts import client_for as signed_in
from tests.helpers.accounts import make_user
from tests.helpers.clock import Clock, local
from tests.helpers.live import connect_live

kite = live_fixtures.kite  # fixture: the app on a fake Kite

# November 2026: Friday the 20th, Saturday the 21st, Monday the 23rd, Tuesday the 24th (Guru Nanak Jayanti: NSE
# closed), Wednesday the 25th.
NEWCO = ("99000001", "387500", "NEWCO", "NEW COMPANY", "0", "", "0", "0.05", "1", "EQ", "NSE", "NSE")


@pytest.fixture
def clock(app, monkeypatch):
    """The refresh's and the import's time, Friday 20 Nov 2026 18:00 IST to start; refresh time 08:30."""
    fake = Clock(local(app, 2026, 11, 20, 18, 0))
    monkeypatch.setattr(contract_refresh, "utcnow", fake)
    monkeypatch.setattr(master_contract, "utcnow", fake)
    monkeypatch.setitem(app.config, "CONTRACT_REFRESH_TIME", "08:30")
    return fake


@pytest.fixture
def friday(app, kite, clock):
    """Alice connected to the fake Kite, its contract loaded on Friday evening; Kite's next dump lists NEWCO."""
    alice = make_user("alice", "admin")
    connect_live(alice.id, kite)
    master_contract.import_from_broker(contract_jobs.client_for("zerodha"), broker="zerodha")
    kite.fake.instruments = [*DEFAULT_INSTRUMENTS, NEWCO]
    return alice


def at(app, clock, day: int, hour: int, minute: int = 0):
    clock.now = local(app, 2026, 11, day, hour, minute)
    return clock.now


def dumps(kite) -> int:
    return kite.fake.calls_to("/instruments")


def has_newco() -> bool:
    db.session.rollback()
    return db.session.execute(select(SymToken.id).where(SymToken.symbol == "NEWCO")).first() is not None


def zerodha_status() -> MasterContractStatus:
    db.session.rollback()
    return db.session.execute(select(MasterContractStatus).where(MasterContractStatus.broker == "zerodha")).scalar()


def test_on_time_on_a_trading_day_and_once(app, kite, clock, friday):
    before = dumps(kite)
    assert contract_jobs.refresh_due(now=at(app, clock, 23, 8, 29)) is None  # not before the time
    assert dumps(kite) == before
    assert not has_newco()
    result = contract_jobs.refresh_due(now=at(app, clock, 23, 8, 30))
    assert result is not None
    assert result.broker == "zerodha"
    assert has_newco()
    assert dumps(kite) == before + 1
    assert zerodha_status().finished_at == local(app, 2026, 11, 23, 8, 30)
    assert contract_jobs.refresh_due(now=at(app, clock, 23, 8, 31)) is None  # once a day
    assert contract_jobs.refresh_due(now=at(app, clock, 23, 15, 0)) is None
    assert dumps(kite) == before + 1
    rec = contract_refresh.record()
    assert (rec["state"], rec["trigger"], rec["day"], rec["symbols"]) == ("done", "schedule", "2026-11-23",
                                                                          len(DEFAULT_INSTRUMENTS) + 1)


def test_not_on_a_weekend_or_a_holiday(app, kite, clock, friday):
    before = dumps(kite)
    assert contract_jobs.refresh_due(now=at(app, clock, 21, 9, 0)) is None  # Saturday
    assert contract_jobs.refresh_due(now=at(app, clock, 24, 9, 0)) is None  # NSE holiday (Tuesday)
    assert dumps(kite) == before
    assert not has_newco()
    assert contract_jobs.refresh_due(now=at(app, clock, 25, 8, 30)) is not None  # Wednesday
    assert has_newco()


def test_the_scheduler_runs_it_and_a_restart_later_that_morning_catches_up(app, kite, clock, friday):
    before = dumps(kite)
    scheduler.run_once(app, since=at(app, clock, 23, 8, 19), until=at(app, clock, 23, 8, 20))
    assert dumps(kite) == before
    # the process was down from 08:20 to 10:45: its first run after the time refreshes
    scheduler.run_once(app, since=at(app, clock, 23, 10, 44), until=at(app, clock, 23, 10, 45))
    assert has_newco()
    assert dumps(kite) == before + 1
    scheduler.run_once(app, since=at(app, clock, 23, 10, 45), until=at(app, clock, 23, 10, 46))
    assert dumps(kite) == before + 1


def test_two_workers_at_once_download_once(app, kite, clock, friday):
    now = at(app, clock, 23, 8, 30)
    before = dumps(kite)
    both_due = threading.Barrier(2, timeout=30)
    results: list = []

    def worker() -> None:
        def client(broker):  # both have decided the refresh is due before either claims it
            found = contract_jobs.client_for(broker)
            both_due.wait()
            return found

        with app.app_context():
            try:
                results.append(contract_refresh.run_scheduled(client, now=now))
            finally:
                db.session.remove()

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(results) == 2
    assert sum(r is not None for r in results) == 1
    assert dumps(kite) == before + 1
    assert has_newco()


def test_the_sample_contract_is_left_to_its_own_refresh(app, kite, clock):
    master_contract.ensure_sample_contract(rows=300, now=clock.now)
    alice = make_user("alice")
    connect_live(alice.id, kite)  # a session, but no broker contract loaded
    before = dumps(kite)
    assert contract_jobs.refresh_due(now=at(app, clock, 23, 8, 30)) is None
    assert dumps(kite) == before
    assert contract_refresh.record() == {}


def test_no_session_waits_for_a_login(app, kite, clock, friday, monkeypatch):
    from services.accounts import broker_login

    broker_login.disconnect(friday)
    assert contract_jobs.refresh_due(now=at(app, clock, 23, 8, 30)) is None
    assert contract_refresh.record()["state"] == "waiting"
    assert "waiting" in contract_refresh.outcome()["text"].lower()
    # the login that follows downloads it (at login: the scheduler's processes only)
    monkeypatch.setitem(app.config, "SCHEDULER_ENABLED", True)
    at(app, clock, 23, 9, 5)
    connect_live(friday.id, kite)
    contract_jobs.wait_for_login_refreshes()
    assert has_newco()
    assert contract_refresh.record()["trigger"] == "login"


def test_a_login_refreshes_a_contract_older_than_the_trading_day(app, kite, clock, friday, monkeypatch):
    bob = make_user("bob")
    before = dumps(kite)
    at(app, clock, 21, 10, 0)  # Saturday: Friday's contract is the trading day's
    monkeypatch.setitem(app.config, "SCHEDULER_ENABLED", True)
    connect_live(bob.id, kite)
    contract_jobs.wait_for_login_refreshes()
    assert dumps(kite) == before
    assert not has_newco()
    monkeypatch.setitem(app.config, "SCHEDULER_ENABLED", False)  # processes without the scheduler: never
    at(app, clock, 23, 7, 0)
    connect_live(bob.id, kite)
    contract_jobs.wait_for_login_refreshes()
    assert dumps(kite) == before
    monkeypatch.setitem(app.config, "SCHEDULER_ENABLED", True)
    connect_live(bob.id, kite)  # Monday 07:00, before the refresh time: Friday's is older than today
    contract_jobs.wait_for_login_refreshes()
    assert has_newco()
    assert dumps(kite) == before + 1
    assert zerodha_status().finished_at == local(app, 2026, 11, 23, 7, 0)
    connect_live(bob.id, kite)  # current now
    contract_jobs.wait_for_login_refreshes()
    assert dumps(kite) == before + 1


def test_a_login_replaces_the_sample_contract(app, kite, clock, monkeypatch):
    master_contract.ensure_sample_contract(rows=300, now=clock.now)
    monkeypatch.setitem(app.config, "SCHEDULER_ENABLED", True)
    alice = make_user("alice")
    at(app, clock, 21, 10, 0)  # Saturday: the sample is current, but not this broker's
    connect_live(alice.id, kite)
    contract_jobs.wait_for_login_refreshes()
    assert contract_refresh.loaded_contract().broker == "zerodha"
    assert master_contract.symbol_count() == len(DEFAULT_INSTRUMENTS)


@pytest.mark.parametrize("failure", ["refused", "unusable"])
def test_a_failing_broker_raises_an_alert_and_keeps_the_contract(app, kite, clock, failure):
    # the sample contract first (a fresh install), then Kite's: the sample's refresh must not take a failed
    # download for "the sample is loaded"
    master_contract.ensure_sample_contract(rows=300, now=at(app, clock, 19, 18, 0))
    alice = make_user("alice", "admin")
    connect_live(alice.id, kite)
    at(app, clock, 20, 18, 0)
    master_contract.import_from_broker(contract_jobs.client_for("zerodha"), broker="zerodha")
    count = master_contract.symbol_count()
    if failure == "refused":  # before any row
        kite.fake.instruments = [*DEFAULT_INSTRUMENTS, NEWCO]
        kite.fake.fail_next(503, "NetworkException", "Instruments are being updated", path="/instruments")
        reason = "Instruments are being updated"
    else:  # a dump of which nothing maps: the import itself fails (and marks its status row failed)
        kite.fake.instruments = [(*row[:10], "XX", "XX") for row in [*DEFAULT_INSTRUMENTS, NEWCO]]
        reason = "could be mapped"

    assert contract_jobs.refresh_due(now=at(app, clock, 23, 8, 30)) is None
    assert not has_newco()
    assert master_contract.symbol_count() == count
    status = zerodha_status()
    assert (status.state.value, status.finished_at) == ("done", local(app, 2026, 11, 20, 18, 0))
    alerts = db.session.scalars(select(Alert).where(Alert.kind == "contract_refresh_failed")).all()
    assert len(alerts) == 1
    assert alerts[0].user_id is None
    assert reason in alerts[0].message
    assert contract_refresh.record()["state"] == "failed"
    assert master_contract.refresh_sample_contract(now=clock.now) is None
    assert contract_refresh.loaded_contract().broker == "zerodha"

    # tried again 30 minutes later, not sooner
    before = dumps(kite)
    assert contract_jobs.refresh_due(now=at(app, clock, 23, 8, 45)) is None
    assert dumps(kite) == before
    kite.fake.instruments = [*DEFAULT_INSTRUMENTS, NEWCO]
    assert contract_jobs.refresh_due(now=at(app, clock, 23, 9, 1)) is not None
    assert has_newco()


def test_the_symbols_page_shows_the_outcome(app, kite, clock, friday):
    page = signed_in(app, "alice")
    kite.fake.fail_next(500, "GeneralException", "Instruments are unavailable", path="/instruments")
    contract_jobs.refresh_due(now=at(app, clock, 23, 8, 30))
    html = page.get("/symbols").get_data(as_text=True)
    assert 'data-state="failed"' in html
    assert "Instruments are unavailable" in html
    assert "The previous contract is kept." in html
    contract_jobs.refresh_due(now=at(app, clock, 23, 9, 1))
    html = page.get("/symbols").get_data(as_text=True)
    assert 'data-state="done"' in html
    assert "Refreshed today at 09:01 from zerodha" in html
    assert "every trading day at 08:30 exchange time" in html


def test_the_refresh_time_setting(tmp_path):
    from config import ConfigError, load_config

    assert load_config(str(tmp_path), environ={})["CONTRACT_REFRESH_TIME"] == "08:30"
    assert load_config(str(tmp_path), environ={"CONTRACT_REFRESH_TIME": " 9:05"})["CONTRACT_REFRESH_TIME"] == "09:05"
    assert load_config(str(tmp_path), environ={"CONTRACT_REFRESH_TIME": " "})["CONTRACT_REFRESH_TIME"] == ""
    with pytest.raises(ConfigError, match="CONTRACT_REFRESH_TIME"):
        load_config(str(tmp_path), environ={"CONTRACT_REFRESH_TIME": "8.30am"})
