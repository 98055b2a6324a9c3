"""POST/redirect/GET: every form POST answers with a redirect, so pressing F5 on the page it lands on repeats a
GET and creates nothing. Each case posts a form, follows the redirect, GETs the page again (the refresh), and
counts what the POST made: one key, one strategy, one user... A secret made by the POST (a new API key, a new
webhook URL) is on the first GET only."""

from __future__ import annotations

import html
import re

import pytest
from sqlalchemy import func, select

from database import db
from database.alert_db import Alert
from database.audit_db import AuditEvent
from database.auth_db import ApiKey
from database.enums import Role
from database.strategy_db import Strategy, StrategySymbolMapping
from database.user_db import User
from services.market import calendar, master_contract, symbol_index
from tests.helpers.accounts import pages_env, post_form, sign_in


@pytest.fixture(autouse=True)
def _env(app, monkeypatch):
    yield from pages_env(monkeypatch)


def signed_in(app, username: str, role: Role = Role.TRADER):
    client = app.test_client()
    sign_in(client, username, role)
    return client


def post_redirect_get(client, url: str, data: dict | None = None, *, form_url: str | None = None
                      ) -> tuple[str, str]:
    """POST the form, follow its redirect, then GET that page again (F5): the two pages' text."""
    resp = post_form(client, url, data, form_url=form_url)
    assert resp.status_code in (302, 303), f"POST {url} answered {resp.status_code}, not a redirect"
    target = resp.headers["Location"]
    first = client.get(target)
    assert first.status_code == 200, target
    again = client.get(target)
    assert again.status_code == 200, target
    return html.unescape(first.get_data(as_text=True)), html.unescape(again.get_data(as_text=True))


def count(model, *where) -> int:
    db.session.rollback()
    return db.session.scalar(select(func.count()).select_from(model).where(*where))


def test_an_api_key_once_and_shown_once(app):
    client = signed_in(app, "trader1")
    first, again = post_redirect_get(client, "/apikey", {"name": "tradingview", "scopes": ["orders", "read"]})
    key = re.search(r'id="new-key">([0-9a-f]{64})<', first)
    assert key, "the new key is on the page the creation redirected to"
    assert '<button type="button" class="copy" data-copy-target="#new-key">' in first
    assert key.group(1) not in again
    assert 'id="new-key"' not in again
    assert count(ApiKey) == 1
    # a refused form re-renders with 400 and creates nothing
    resp = post_form(client, "/apikey", {"name": "", "scopes": ["read"]})
    assert resp.status_code == 400
    assert count(ApiKey) == 1


def test_a_strategy_its_url_its_mapping_once(app):
    master_contract.ensure_sample_contract(rows=2000)
    symbol_index.reload()
    client = signed_in(app, "trader1")
    data = {"name": "Breakout", "platform": "tradingview", "mode": "LONG", "is_intraday": "y",
            "start_time": "09:15", "end_time": "15:00", "squareoff_time": "15:15"}
    first, again = post_redirect_get(client, "/strategy/new", data)
    url = re.search(r'id="webhook-url">(http://[^<]+/strategy/webhook/[0-9a-f]{32})<', first)
    assert url, "the whole webhook URL is on the page the creation redirected to"
    assert url.group(1) not in again
    assert count(Strategy) == 1
    (sid, old_hash) = db.session.execute(select(Strategy.id, Strategy.webhook_hash)).one()

    view = f"/strategy/{sid}"
    first, again = post_redirect_get(client, f"{view}/rotate", form_url=view)
    new_url = re.search(r'id="webhook-url">(http://[^<]+/strategy/webhook/[0-9a-f]{32})<', first)
    assert new_url
    assert new_url.group(1) != url.group(1)
    assert new_url.group(1) not in again
    db.session.rollback()
    assert db.session.scalar(select(Strategy.webhook_hash)) != old_hash
    rotated = db.session.scalar(select(Strategy.webhook_hash))
    client.get(view)
    assert db.session.scalar(select(Strategy.webhook_hash)) == rotated  # a refresh rotates nothing

    post_redirect_get(client, f"{view}/mappings", {"symbol": "SBIN", "exchange": "NSE", "quantity": "1",
                                                   "product": "MIS"}, form_url=view)
    assert count(StrategySymbolMapping) == 1
    post_redirect_get(client, f"{view}/deactivate", form_url=view)
    assert count(Strategy, Strategy.is_active.is_(False)) == 1


def test_admin_forms(app):
    admin = signed_in(app, "admin1", Role.ADMIN)
    post_redirect_get(admin, "/users/new", {"username": "carol", "role": "viewer", "password": "long-enough-1",
                                            "confirm": "long-enough-1"})
    assert count(User, User.username == "carol") == 1

    post_redirect_get(admin, "/calendar/entries", {"day": "2026-11-08", "kind": "special_session",
                                                   "exchanges": ["NSE"], "start": "18:00", "end": "19:00",
                                                   "description": "Muhurat trading"},
                      form_url="/calendar?year=2026")
    assert len(calendar.entries(2026)) == 1


def test_settings_broker_orders_and_alerts(app):
    client = signed_in(app, "trader1")
    user_id = db.session.scalar(select(User.id).where(User.username == "trader1"))
    before = count(AuditEvent)
    first, _again = post_redirect_get(client, "/settings/mode", {"mode-mode": "live"}, form_url="/settings")
    assert "Live mode on" in first
    assert count(AuditEvent) == before + 1

    post_redirect_get(client, "/broker/disconnect", form_url="/broker")
    post_redirect_get(client, "/settings/mode", {"mode-mode": "analyze"}, form_url="/settings")
    post_redirect_get(client, "/orderbook/cancel-all", form_url="/orderbook")

    alert = Alert(user_id=user_id, kind="order_rejected", title="Order rejected")
    db.session.add(alert)
    db.session.commit()
    first, again = post_redirect_get(client, f"/logs/alerts/{alert.id}/ack", form_url="/logs/alerts")
    assert "acknowledged." in first
    assert "acknowledged." not in again  # the flash, once
