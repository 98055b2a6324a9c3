"""Start-up and the symbol index: built on first use or after the first page (never by create_app),
lookups from the database while it builds, the deferred sample contract, fork safety."""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import textwrap
import threading

import pytest

from database import db
from services.market import master_contract as mc
from services.market import sample_contract, symbol_index
from tests.helpers import ROOT
from tests.helpers.databases import app_overrides, sqlite_url

TODAY = dt.date(2024, 3, 20)


def load(rows: int = 2000, rebuild: bool = True) -> None:
    mc.import_rows(sample_contract.generate(rows, today=TODAY), broker="sample", rebuild_index=rebuild)


def own_app(tmp_path, **overrides):
    from app import create_app

    return create_app(app_overrides(sqlite_url(str(tmp_path)), str(tmp_path), **overrides))


def close_app(application) -> None:
    application.extensions["algobridge.writer"].shutdown(timeout=5)
    application.extensions["algobridge.cache"].stop()
    with application.app_context():
        db.engine.dispose()


def test_lookups_from_the_database_answer_as_the_index_does(app):
    load()
    index = symbol_index.index()
    keys = []
    for r in index.records:
        for ex in {r.exchange, r.brexchange}:
            keys += [("symbol", ex, r.symbol), ("symbol", ex, r.symbol.lower()), ("brsymbol", ex, r.brsymbol),
                     ("brsymbol", ex.lower(), r.brsymbol.lower()), ("token", ex, r.token)]
    keys += [("symbol", "NSE", "NOSUCH"), ("token", "NFO", "0"), ("brsymbol", "XYZ", "INFY")]
    assert len(keys) > 10_000
    mismatched = [k for k in keys if symbol_index._db_find(*k) != index.find(*k)]
    assert mismatched == []
    assert symbol_index._db_find("brsymbol", "NSE", "NIFTY 50").symbol == "NIFTY"  # the broker's exchange


def test_lookups_ask_the_database_while_another_thread_builds_the_first_index(app):
    load()
    state = symbol_index._state()
    state.index = None
    state.lock.acquire()  # a build under way elsewhere (the start-up warm-up)
    try:
        assert symbol_index.get_oa_symbol("NIFTY 50", "NSE") == "NIFTY"
        assert symbol_index.get_symbol_info_bulk([("INFY", "NSE"), ("NOPE", "NSE")])[("NOPE", "NSE")] is None
        assert symbol_index.count() == 2000
        assert not symbol_index.is_built()
    finally:
        state.lock.release()
    assert symbol_index.get_token("INFY", "NSE")  # no build under way: this lookup builds the index
    assert symbol_index.is_built()
    assert symbol_index.count() == 2000


def test_create_app_leaves_the_index_to_first_use(tmp_path):
    application = own_app(tmp_path)
    try:
        with application.app_context():
            assert not symbol_index.is_built()
            load(rebuild=False)
            assert not symbol_index.is_built()
            assert symbol_index.search("NIFTY 50")[0].symbol == "NIFTY"
            assert symbol_index.is_built()
    finally:
        close_app(application)


def test_the_first_page_starts_the_sample_contract_and_the_index_in_the_background(tmp_path):
    application = own_app(tmp_path, SAMPLE_CONTRACT=True, SAMPLE_CONTRACT_ROWS=400, WARM_SYMBOL_INDEX=True)
    try:
        with application.app_context():
            assert mc.symbol_count() == 0  # nothing loaded at start
            db.session.rollback()
        client = application.test_client()
        response = client.get("/auth/login")
        assert response.status_code in (200, 302)  # the login page, or the first run's setup
        response.close()  # a server closes every response; the work starts then
        state = application.extensions["algobridge.startup"]
        thread = state["thread"]
        assert thread is not None
        assert state["pid"] == os.getpid()
        thread.join(timeout=120)
        assert not thread.is_alive()
        client.get("/auth/login").close()
        assert state["thread"] is thread  # once per process
        with application.app_context():
            assert symbol_index.is_built()
            assert symbol_index.count() == mc.symbol_count() >= 400
            assert symbol_index.search("INFY")[0].symbol == "INFY"
    finally:
        close_app(application)


def test_without_warm_up_or_sample_nothing_is_deferred(tmp_path):
    application = own_app(tmp_path, SAMPLE_CONTRACT=False, WARM_SYMBOL_INDEX=False)
    try:
        assert "algobridge.startup" not in application.extensions
        application.test_client().get("/auth/login").close()
        with application.app_context():
            assert not symbol_index.is_built()
    finally:
        close_app(application)


def test_a_child_forked_during_a_build_builds_its_own_index(app):
    load(rows=600)
    state = symbol_index._state()
    state.index = None
    state.lock.acquire()  # the parent is mid-build when it forks
    read_fd, write_fd = os.pipe()
    try:
        pid = os.fork()
        if pid == 0:  # the child
            code = 1
            try:
                signal.alarm(30)  # a lock inherited held would hang the child here
                with app.app_context():
                    token = symbol_index.get_token("INFY", "NSE")
                    os.write(write_fd, f"{token} {symbol_index.is_built()}\n".encode())
                code = 0
            finally:
                os._exit(code)
    finally:
        state.lock.release()
    os.close(write_fd)
    with os.fdopen(read_fd) as pipe:
        line = pipe.readline().split()
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert line == [symbol_index.get_token("INFY", "NSE"), "True"]


def test_a_fresh_start_migrates_in_a_child_and_keeps_alembic_out_of_the_server(tmp_path):
    # A process with no threads yet (a server's master) runs the migrations in a forked child, so
    # that alembic's modules and memory never reach the workers forked from it.
    script = textwrap.dedent(
        """
        import sys
        from app import create_app
        from database import db, schema
        from tests.helpers.databases import app_overrides, sqlite_url

        app = create_app(app_overrides(sqlite_url(sys.argv[1]), sys.argv[1]))
        with app.app_context():
            assert schema.current_revision(db.engine) == schema.head_revision()
        print("alembic" in sys.modules, flush=True)
        app.extensions["algobridge.writer"].shutdown(timeout=5)
        """
    )
    out = subprocess.run([sys.executable, "-c", script, str(tmp_path)], cwd=ROOT, capture_output=True, text=True,
                         timeout=120, check=False)
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.split() == ["False"]


def test_a_failed_migration_child_stops_start_up(tmp_path, monkeypatch):
    from services.runtime import startup

    calls = []
    monkeypatch.setattr(threading, "active_count", lambda: 1)  # pretend to be a fresh server master

    def boom() -> None:
        calls.append(os.getpid())
        raise RuntimeError("migration exploded")

    application = own_app(tmp_path)
    try:
        with pytest.raises(RuntimeError, match="boom failed in its child process"):
            startup.run_isolated(application, boom)
        assert calls == []  # it ran in the child, not here
    finally:
        close_app(application)
