"""/symbols: master contract status, "download now" (admins, background thread, polled progress),
and the symbol search."""

from __future__ import annotations

import pytest

from blueprints import symbols as symbols_bp
from services.market import master_contract, symbol_index
from tests.helpers.accounts import csrf_token, isolated_client, login, make_user


@pytest.fixture
def people(app, monkeypatch):
    monkeypatch.setattr(symbols_bp, "SAMPLE_ROWS", 600)
    return {role: make_user(f"{role}1", role) for role in ("admin", "trader", "viewer")}


def client_for(app, username):
    c = isolated_client(app)
    assert login(c, username).status_code in (302, 303)
    return c


@pytest.mark.parametrize("role", ["admin", "trader", "viewer"])
def test_page_for_each_role(app, people, role):
    resp = client_for(app, f"{role}1").get("/symbols")
    assert resp.status_code == 200
    body = resp.get_data(as_text=True)
    assert "Master contract" in body
    assert "No live broker is connected" in body
    assert 'id="contract-progress"' in body
    assert "/static/js/symbols.js" in body
    assert ('id="download-now"' in body) == (role == "admin")


def test_download_now_loads_the_sample_contract_in_the_background(app, people):
    c = client_for(app, "admin1")
    assert c.post("/symbols/download").status_code == 400  # CSRF
    resp = c.post("/symbols/download", data={"csrf_token": csrf_token(c, "/symbols")})
    assert resp.status_code == 302
    symbols_bp.wait_for_downloads(timeout=120)
    status = c.get("/symbols/status.json").get_json()
    assert status["broker"] == "sample"
    assert status["state"] == "done"
    assert status["percent"] == 100
    assert status["running"] is False
    assert status["rows_done"] > 0
    assert master_contract.symbol_count() == status["rows_done"]
    page = c.get("/symbols").get_data(as_text=True)
    assert f"<strong>{status['rows_done']:,}</strong> symbols loaded" in page
    symbol_index.reload()
    found = c.get("/symbols?q=NIFTY&exchange=NFO").get_data(as_text=True)
    assert "<code>NIFTY" in found
    assert "No symbol matches" not in found
    assert "No symbol matches" in c.get("/symbols?q=ZZZZQQQ").get_data(as_text=True)


def test_only_admins_download(app, people):
    for who in ("trader1", "viewer1"):
        c = client_for(app, who)
        assert c.post("/symbols/download", data={"csrf_token": csrf_token(c, "/symbols")}).status_code == 403
    assert master_contract.get_status("sample")["state"] == "idle"


def test_status_json_shows_a_running_import(app, people):
    master_contract._set_progress("sample", state="running", rows_done=300, rows_total=600)
    try:
        status = client_for(app, "viewer1").get("/symbols/status.json").get_json()
    finally:
        master_contract._set_progress("sample", state="idle")
    assert status["running"] is True
    assert status["percent"] == 50
    assert (status["rows_done"], status["rows_total"]) == (300, 600)


def test_anonymous_is_sent_to_sign_in(app, client):
    assert client.get("/symbols/status.json").status_code in (302, 401)
