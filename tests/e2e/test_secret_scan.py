"""After a full scenario, no plaintext secret is anywhere it could be read back.

The scenario, through the pages and the API as a trader would: set up the admin (/setup), sign out and
in again, connect the paper broker, connect Zerodha against the fake Kite server (an access token is
stored), create an API key on /apikey, place orders through the API (analyze mode, then live at the fake
Kite), set up a strategy and fire its webhook, and open every page of the navigation.

Then it looks for the API key, the Zerodha access token, the Zerodha api secret, the user's password and
the strategy's webhook id, in: every column of every table (the raw stored values, so an encrypted column
shows its ciphertext), the SQLite file itself (with its WAL), every file of the instance folder (logs, spool,
dead letters; not secrets.json, which holds the server's own keys), the captured log records and stderr, the
cookies (raw and the decoded session), and every page rendered on the way, except the two answers that show
a new API key and a new webhook URL once. None may appear. Every secret is generated for this run, so
nothing left by another test can match.
"""

from __future__ import annotations

import json
import logging
import os
import re
import secrets
from urllib.parse import parse_qs, urlparse

import pytest
from sqlalchemy import text

from database import Base, db
from database.auth_db import BrokerSession
from services.accounts import broker_login
from tests.fakes.kite_server import running_kite
from tests.helpers.accounts import csrf_token, login, logout, post_form, use_test_hasher

PAGES = ["/dashboard", "/orderbook", "/tradebook", "/positions", "/holdings", "/roundtrips", "/strategy", "/logs/api",
         "/logs/traffic", "/logs/latency", "/logs/system", "/logs/alerts", "/logs/audit", "/symbols", "/broker",
         "/apikey", "/settings", "/users"]
SERVER_KEYS_FILE = "secrets.json"


class Recorder:
    """A test client's answers and Set-Cookie headers, kept for the scan."""

    def __init__(self, client):
        self.client = client
        self.pages: list[tuple[str, bytes]] = []
        self.set_cookies: list[str] = []
        self.exempt: set[int] = set()  # indexes of answers allowed to hold a secret (the key shown once)
        original = client.open

        def open_and_record(*args, **kwargs):
            resp = original(*args, **kwargs)
            path = args[0] if args and isinstance(args[0], str) else kwargs.get("path", "?")
            self.pages.append((f"{kwargs.get('method', 'GET')} {path} -> {resp.status_code}", resp.get_data()))
            self.set_cookies.extend(resp.headers.getlist("Set-Cookie"))
            return resp

        client.open = open_and_record

    def exempt_last(self) -> None:
        self.exempt.add(len(self.pages) - 1)


@pytest.fixture
def kite(app, monkeypatch):
    settings = {"api_key": "kk" + secrets.token_hex(6), "api_secret": "ks" + secrets.token_urlsafe(18)}
    with running_kite(**settings) as server:
        for key, value in {"ZERODHA_API_KEY": settings["api_key"], "ZERODHA_API_SECRET": settings["api_secret"],
                           "ZERODHA_ROOT_URL": server.url, "ZERODHA_LOGIN_URL": server.login_url}.items():
            monkeypatch.setitem(app.config, key, value)
        for name in ("API_RATE_LIMIT", "ORDER_RATE_LIMIT", "SMART_ORDER_RATE_LIMIT", "WEBHOOK_RATE_LIMIT"):
            if name in app.config:
                monkeypatch.setitem(app.config, name, "10000 per second")
        broker_login.reset_brokers()
        server.api_secret = settings["api_secret"]
        yield server
        broker_login.reset_brokers()


def _scenario(app, rec: Recorder, kite, password: str, skipped: list[str]) -> dict[str, str]:
    from services.market import symbol_index
    from services.market.master_contract import ensure_sample_contract

    client = rec.client
    ensure_sample_contract(rows=500)
    symbol_index.reload()

    resp = post_form(client, "/setup", {"username": "admin", "password": password, "confirm": password})
    assert resp.status_code == 302, resp.get_data(as_text=True)[:500]
    logout(client)
    assert login(client, "admin", password).status_code == 302

    # Brokers: the built-in paper one, then Zerodha through its redirect login.
    resp = post_form(client, "/broker/connect/paper", form_url="/broker")
    assert resp.status_code in (200, 302), resp.status_code
    resp = post_form(client, "/broker/connect/zerodha", form_url="/broker")
    assert resp.status_code == 302, resp.status_code
    assert resp.headers["Location"].startswith(kite.login_url), resp.status_code
    state = parse_qs(urlparse(resp.headers["Location"]).query)["redirect_params"][0].split("=", 1)[1]
    request_token = kite.fake.issue_request_token()
    resp = client.get(f"/zerodha/callback?request_token={request_token}&action=login&status=success&state={state}")
    assert resp.status_code == 302, resp.get_data(as_text=True)[:500]
    db.session.rollback()
    token = db.session.scalars(db.select(BrokerSession).where(BrokerSession.broker == "zerodha")).one().access_token
    assert token
    assert token in kite.fake.access_tokens

    # An API key, shown once on the page that creates it.
    resp = post_form(client, "/apikey", {"name": "scan", "scopes": ["orders", "read", "data"]})
    assert resp.status_code == 302  # POST/redirect/GET: the key is shown on the page the redirect leads to
    resp = client.get(resp.headers["Location"])
    assert resp.status_code == 200
    rec.exempt_last()
    match = re.search(r'<code class="secret" id="new-key">([^<]+)</code>', resp.get_data(as_text=True))
    assert match, "the new key is shown once"
    key = match.group(1)

    # Orders through the API: analyze mode, then live (the fake Kite), then back.
    order = {"apikey": key, "strategy": "Scan", "exchange": "NSE", "symbol": "INFY", "action": "BUY",
             "quantity": 1, "pricetype": "MARKET", "product": "MIS"}
    api = [("placeorder", order), ("placesmartorder", {**order, "position_size": 2}), ("orderbook", {"apikey": key}),
           ("funds", {"apikey": key}), ("ping", {"apikey": key}), ("analyzer/toggle", {"apikey": key, "mode": False}),
           ("placeorder", {**order, "pricetype": "LIMIT", "price": "1500"}), ("orderbook", {"apikey": key}),
           ("positionbook", {"apikey": key}), ("funds", {"apikey": key}),
           ("analyzer/toggle", {"apikey": key, "mode": True}),
           ("placeorder", {**order, "apikey": key[:-1] + ("A" if key[-1] != "A" else "B")})]  # a wrong key
    answers = {}
    for name, body in api:
        resp = client.post(f"/api/v1/{name}", json=body)
        assert resp.status_code < 500, (name, resp.get_json())
        answers.setdefault(name, []).append(resp.status_code)
    assert answers["placeorder"][0] == 200
    assert answers["analyzer/toggle"] == [200, 200]
    assert answers["placeorder"][-1] == 403

    # A strategy and its webhook.
    resp = post_form(client, "/strategy/new", {"name": "Scan strategy", "platform": "tradingview", "mode": "LONG",
                                              "start_time": "09:20", "end_time": "15:00", "squareoff_time": "15:15"})
    assert resp.status_code == 302, resp.get_data(as_text=True)[:500]
    resp = client.get(resp.headers["Location"])
    assert resp.status_code == 200, resp.get_data(as_text=True)[:500]
    rec.exempt_last()  # the page that shows the new webhook URL once
    page = resp.get_data(as_text=True)
    webhook = re.search(r'id="webhook-url">[^<]*/strategy/webhook/([0-9a-f]{32})<', page)
    assert webhook, "the new strategy's page shows its webhook URL once"
    webhook_id = webhook.group(1)
    view = re.search(r'action="(/strategy/\d+)/mappings"', page)
    assert view, "the new strategy's page has the mapping form"
    view = view.group(1)
    resp = post_form(client, f"{view}/mappings", {"symbol": "RELIANCE", "exchange": "NSE", "quantity": "1",
                                                  "product": "MIS"}, form_url=view)
    assert resp.status_code == 302, resp.get_data(as_text=True)[:500]
    resp = client.post(f"/strategy/webhook/{webhook_id}", json={"symbol": "RELIANCE", "action": "BUY"})
    assert resp.status_code == 200, resp.get_json()

    # Every page of the navigation that exists yet.
    for page in PAGES:
        status = client.get(page, follow_redirects=True).status_code
        if status != 200:
            skipped.append(f"{page} ({status})")
    assert len(skipped) < len(PAGES) // 2, f"most pages did not answer: {skipped}"
    csrf_token(client, "/apikey")  # the key list after creation

    return {"API key": key, "Zerodha access token": token, "Zerodha api secret": kite.api_secret,
            "password": password, "webhook id": webhook_id}


def _find(secrets_by_name: dict[str, str], haystack: str | bytes, where: str, found: list[str]) -> None:
    for name, secret in secrets_by_name.items():
        needle = secret.encode() if isinstance(haystack, bytes) else secret
        if needle in haystack:
            found.append(f"{name} in {where}")


def _database_values(conn) -> list[tuple[str, str]]:
    """(table.column, value as text) for every non-null stored value, as the database holds it."""
    out = []
    for table in Base.metadata.sorted_tables:
        names = [c.name for c in table.columns]
        cols = ", ".join(f'"{n}"' for n in names)
        for row in conn.execute(text(f'SELECT {cols} FROM "{table.name}"')):  # noqa: S608 - our own names
            for name, value in zip(names, row, strict=True):
                if value is None:
                    continue
                if isinstance(value, bytes | bytearray | memoryview):
                    value = bytes(value).decode("latin-1")
                elif isinstance(value, dict | list):
                    value = json.dumps(value, ensure_ascii=False)
                out.append((f"{table.name}.{name}", str(value)))
    return out


def _decoded_session(app, value: str) -> str:
    try:
        return json.dumps(app.session_interface.get_signing_serializer(app).loads(value), default=str)
    except Exception:  # noqa: BLE001 - not a session cookie
        return ""


def test_no_plaintext_secret_anywhere_after_a_full_scenario(app, kite, monkeypatch, caplog, capfd):
    use_test_hasher(monkeypatch)
    caplog.set_level(logging.DEBUG)
    logging.getLogger("urllib3").setLevel(logging.DEBUG)  # the most talkative logger a token could reach
    monkeypatch.setattr(logging.getLogger("urllib3"), "level", logging.DEBUG)
    password = "Pw-" + secrets.token_urlsafe(16)
    client = app.test_client()
    rec = Recorder(client)
    skipped: list[str] = []
    wanted = _scenario(app, rec, kite, password, skipped)
    assert app.extensions["algobridge.writer"].flush(timeout=30)
    found: list[str] = []

    # The database, as stored.
    db.session.rollback()
    with db.engine.connect() as conn:
        values = _database_values(conn)
    assert len(values) > 100, "the scenario wrote rows"
    for where, value in values:
        _find(wanted, value, f"the database ({where})", found)
    # The API log holds the calls, with the key removed (the scan above would catch it otherwise).
    assert any(w.startswith("api_logs.") for w, _v in values)

    # The files: the SQLite database with its WAL (free pages included), logs, spool, dead letters.
    scanned_files = 0
    for folder, _dirs, files in os.walk(app.instance_path):
        for name in files:
            if name == SERVER_KEYS_FILE and folder == app.instance_path:
                continue
            path = os.path.join(folder, name)
            with open(path, "rb") as fh:
                _find(wanted, fh.read(), f"the file {os.path.relpath(path, app.instance_path)}", found)
            scanned_files += 1
    if db.engine.dialect.name == "sqlite":
        assert any(f.endswith(".db") for _d, _s, fs in os.walk(app.instance_path) for f in fs)
    assert scanned_files > 0

    # Logs: the records (with their arguments) and what reached stderr/stdout.
    records = "\n".join(f"{r.name} {r.getMessage()} {r.exc_text or ''}" for r in caplog.records)
    _find(wanted, records, "the log records", found)
    out, err = capfd.readouterr()
    _find(wanted, out + err, "stdout/stderr", found)

    # Cookies: every Set-Cookie, the jar, and the session decoded.
    jar = [f"{c.key}={c.value}" for c in client._cookies.values()]  # noqa: SLF001
    for cookie in rec.set_cookies + jar:
        _find(wanted, cookie, "a cookie", found)
        value = cookie.split(";", 1)[0].split("=", 1)[-1]
        _find(wanted, _decoded_session(app, value), "the decoded session cookie", found)
    assert jar, "the browser holds a session cookie"

    # Every answer rendered on the way, but the one showing the new key once.
    for i, (label, body) in enumerate(rec.pages):
        if i in rec.exempt:
            continue
        _find(wanted, body, f"the answer to {label}", found)
    # The scan does see a secret where it is.
    assert wanted["API key"].encode() in rec.pages[min(rec.exempt)][1]
    assert wanted["webhook id"].encode() in rec.pages[max(rec.exempt)][1]

    with capfd.disabled():
        print(f"\nsecret scan [{db.engine.dialect.name}]: {len(values)} stored values, {scanned_files} files, "
              f"{len(caplog.records)} log records, {len(rec.pages)} answers; pages that did not answer 200 "
              f"(not scanned as pages): {skipped or 'none'}")
    assert not found, found
