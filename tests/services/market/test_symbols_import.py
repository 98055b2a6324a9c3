"""Master contract import on SQLite and PostgreSQL: atomic replace, status, lookups, other processes."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
import textwrap
import threading
import time

import pytest
from sqlalchemy import func, select

from database import db
from database.symbol import MasterContractStatus, SymToken
from services.market import master_contract as mc
from services.market import sample_contract, symbol_index
from tests.helpers import ROOT

TODAY = dt.date(2024, 3, 20)


def contract(marker: str, rows: int = 3000) -> list[dict[str, str]]:
    """A sample contract plus one equity named by `marker`, which tells the contracts apart."""
    out = list(sample_contract.generate(rows, today=TODAY))
    out.append({**out[30], "tradingsymbol": marker, "name": f"{marker} LIMITED", "instrument_token": "99999901"})
    return out


def db_count() -> int:
    db.session.rollback()
    n = db.session.execute(select(func.count()).select_from(SymToken)).scalar_one()
    db.session.rollback()
    return n


def test_import_loads_contract_status_and_lookups(app):
    result = mc.import_rows(contract("OLDCO"), broker="zerodha", source="test")
    assert result.rows_mapped == 3001
    assert result.rows_skipped == 0
    assert db_count() == 3001
    symbol_index.reload()
    assert symbol_index.get_token("OLDCO", "NSE") == "99999901"
    assert symbol_index.get_br_symbol("NIFTY", "NSE_INDEX") == "NIFTY 50"
    assert symbol_index.get_symbol("256265", "NSE_INDEX") == "NIFTY"
    assert symbol_index.get_oa_symbol("NIFTY24MARFUT", "NFO") == "NIFTY28MAR24FUT"
    assert symbol_index.get_brexchange("NIFTY", "NSE_INDEX") == "NSE"
    info = symbol_index.get_symbol_info("NIFTY28MAR24FUT", "NFO")
    assert info.lotsize == 25
    assert info.expiry == dt.date(2024, 3, 28)
    assert symbol_index.get_tokens_bulk([("INFY", "NSE"), ("NOPE", "NSE")]) == {("INFY", "NSE"): info_token("INFY"),
                                                                          ("NOPE", "NSE"): None}
    assert symbol_index.search("OLDCO")[0].symbol == "OLDCO"
    status = mc.get_status("zerodha")
    assert status["state"] == "done"
    assert status["rows_done"] == 3001
    assert status["rows_total"] == 3001
    assert status["started_at"].tzinfo is not None
    assert status["finished_at"] >= status["started_at"]


def info_token(symbol: str) -> str:
    return symbol_index.get_symbol_info(symbol, "NSE").token


def test_unmapped_rows_are_counted_and_reported(app):
    rows = contract("OLDCO", 500) + [{"tradingsymbol": "X", "instrument_token": "1", "exchange": "NSEIX"}]
    result = mc.import_rows(rows)
    assert result.rows_skipped == 1
    assert result.skipped_by_reason == {"unknown exchange NSEIX": 1}
    assert mc.get_status("zerodha")["rows_skipped"] == 1


def test_failed_import_leaves_old_contract_answering(app):
    mc.import_rows(contract("OLDCO"))
    symbol_index.reload()
    with pytest.raises(mc.ContractImportError, match="injected failure"):
        mc.import_rows(contract("NEWCO", 25_000), _fail_after=10_000)  # fails half-way through the load
    assert db_count() == 3001
    assert db.session.execute(select(SymToken.symbol).where(SymToken.symbol == "NEWCO")).first() is None
    symbol_index.reload()
    assert symbol_index.get_token("OLDCO", "NSE") == "99999901"
    assert symbol_index.get_token("NEWCO", "NSE") is None
    status = mc.get_status("zerodha")
    assert status["state"] == "failed"
    assert "injected failure" in status["error"]
    # and the next import works
    mc.import_rows(contract("NEWCO"))
    symbol_index.reload()
    assert symbol_index.get_token("NEWCO", "NSE")
    assert symbol_index.get_token("OLDCO", "NSE") is None


def test_import_that_maps_nothing_keeps_the_contract(app):
    mc.import_rows(contract("OLDCO", 200))
    with pytest.raises(mc.ContractImportError, match="could be mapped"):
        mc.import_rows([{"tradingsymbol": "X", "instrument_token": "1", "exchange": "??"}])
    assert db_count() == 201


def test_second_import_refused_while_one_runs(app):
    mc._write_status("zerodha", state="running", started_at=mc.utcnow(), rows_done=0, rows_total=0)
    with pytest.raises(mc.ImportBusyError):
        mc.import_rows(contract("OLDCO", 100))
    mc.import_rows(contract("OLDCO", 100), force=True)
    assert mc.get_status("zerodha")["state"] == "done"


def test_search_during_import_is_never_empty_or_mixed(app):
    """While a big import holds its transaction open, readers see the old contract, whole."""
    mc.import_rows(contract("OLDCO"))
    symbol_index.reload()
    flask_app = app
    in_load = threading.Event()
    release = threading.Event()
    errors: list[BaseException] = []

    def progress(done: int, total: int) -> None:
        # Hold the load half-way: the transaction has deleted the old rows and written new ones.
        if total == 20_001 and 0 < done < total and not in_load.is_set():
            in_load.set()
            release.wait(30)

    def run_import() -> None:
        try:
            with flask_app.app_context():
                mc.import_rows(contract("NEWCO", 20_000), progress=progress)
        except BaseException as exc:  # noqa: BLE001 - reported to the test thread below
            errors.append(exc)

    t = threading.Thread(target=run_import)
    t.start()
    try:
        assert in_load.wait(60), "the import never reached its load"
        for _ in range(50):
            old = symbol_index.search("OLDCO")
            assert [r.symbol for r in old] == ["OLDCO"]
            assert symbol_index.search("NEWCO") == []
            assert len(symbol_index.search("NIFTY")) == 50
        assert db_count() == 3001  # a database reader sees the previous contract too
        status = mc.get_status("zerodha")
        assert status["state"] == "running"
        assert status["rows_done"] > 0
    finally:
        release.set()
        t.join(60)
    assert not errors, errors
    index = symbol_index.reload()
    assert len(index) == 20_001
    assert [r.symbol for r in symbol_index.search("NEWCO")] == ["NEWCO"]
    assert symbol_index.search("OLDCO") == []


def test_index_swap_is_atomic_under_concurrent_searches(app):
    """Searches racing a rebuild see the old index or the new one, never an empty or partial one."""
    mc.import_rows(contract("OLDCO"))
    symbol_index.reload()
    stop = threading.Event()
    bad: list[str] = []

    def searcher() -> None:
        with app.app_context():
            while not stop.is_set():
                # One snapshot answers the three questions, as one search() call is answered.
                snapshot = symbol_index.index()
                old = [r.symbol for r in snapshot.search("OLDCO")]
                new = [r.symbol for r in snapshot.search("NEWCO")]
                if len(snapshot.search("NIFTY")) != 50 or (old and new) or not (old or new):
                    bad.append(f"old={old} new={new}")
                time.sleep(0.0005)  # let the importing thread have the GIL too (it took 40 s on SQLite)

    threads = [threading.Thread(target=searcher) for _ in range(2)]
    for th in threads:
        th.start()
    try:
        mc.import_rows(contract("NEWCO"))
        symbol_index.reload()
        time.sleep(0.2)
    finally:
        stop.set()
        for th in threads:
            th.join(10)
    assert not bad, bad[:3]


CHILD = textwrap.dedent(
    """
    import json, sys, time
    sys.path.insert(0, {root!r})
    from app import create_app
    from services.market import symbol_index
    app = create_app(json.loads({overrides!r}))
    with app.app_context():
        print("ready", symbol_index.get_token("OLDCO", "NSE"), flush=True)
        sys.stdin.readline()  # the parent imports the new contract now
        deadline = time.time() + 10
        while time.time() < deadline:
            if symbol_index.get_token("NEWCO", "NSE"):
                break
            time.sleep(0.05)
        print("after", symbol_index.get_token("NEWCO", "NSE"), symbol_index.get_token("OLDCO", "NSE"),
              round(time.time() - float(sys.argv[1]), 2) if len(sys.argv) > 1 else "", flush=True)
    """
)


@pytest.mark.slow
def test_lookups_in_a_second_process_see_the_new_contract(app):
    from tests.helpers.databases import app_overrides

    mc.import_rows(contract("OLDCO"))
    overrides = app_overrides(app.config["SQLALCHEMY_DATABASE_URI"], app.instance_path, AUTO_MIGRATE=False,
                              REDIS_URL=app.config.get("REDIS_URL", ""))
    script = CHILD.format(root=ROOT, overrides=json.dumps(overrides))
    child = subprocess.Popen([sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        first = child.stdout.readline().split()
        assert first == ["ready", "99999901"], (first, child.stderr.read() if child.poll() is not None else "")
        mc.import_rows(contract("NEWCO"))
        child.stdin.write("go\n")
        child.stdin.flush()
        after = child.stdout.readline().split()
        assert after[:3] == ["after", "99999901", "None"], after
    finally:
        child.kill()
        child.communicate(timeout=10)  # reaps the process and closes its pipes


def test_status_row_is_one_per_broker(app):
    mc.import_rows(contract("OLDCO", 100), broker="zerodha")
    mc.import_rows(contract("OLDCO", 100), broker="zerodha")
    n = db.session.execute(select(func.count()).select_from(MasterContractStatus)).scalar_one()
    assert n == 1


def test_ensure_sample_contract_is_idempotent(app):
    first = mc.ensure_sample_contract(rows=2000)
    assert first is not None
    assert first.rows_mapped == 2000
    assert mc.ensure_sample_contract(rows=2000) is None
    assert db_count() == 2000
    symbol_index.reload()
    assert symbol_index.search("RELIANCE")[0].symbol == "RELIANCE"


def test_cli_sample_import_and_status(app, runner, tmp_path):
    from cli.symbols import symbols_cli

    path = tmp_path / "instruments.csv"
    out = runner.invoke(symbols_cli, ["sample", "--rows", "800", "--out", str(path)])
    assert out.exit_code == 0, out.output
    assert "wrote 800 instruments" in out.output
    with open(path, "a") as f:
        f.write("1,1,ODD,ODD,0,,0,0.05,1,EQ,NSEIX,NSEIX\n")
    out = runner.invoke(symbols_cli, ["import", "--broker", "zerodha", str(path)])
    assert out.exit_code == 0, out.output
    assert "mapped 800 symbols, skipped 1 of 801 rows" in out.output
    assert "unknown exchange NSEIX" in out.output
    out = runner.invoke(symbols_cli, ["status"])
    assert out.exit_code == 0, out.output
    assert "symbols loaded: 800" in out.output
    assert "zerodha: done" in out.output
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b\n1,2\n")
    out = runner.invoke(symbols_cli, ["import", str(bad)])
    assert out.exit_code != 0
    assert "not a Zerodha instruments CSV" in out.output
