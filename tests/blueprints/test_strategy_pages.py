"""Strategy pages: create, edit, activate, delete, symbol mappings; owners only; viewers read-only; audit."""

from __future__ import annotations

import json
import re

import pytest
from sqlalchemy import select

from database import db
from database.audit_db import AuditEvent
from database.enums import Role
from database.strategy_db import Strategy, StrategySymbolMapping
from services.market import symbol_index
from tests.helpers.accounts import csrf_token, pages_env, post_form, sign_in
from tests.helpers.api import load_symbols


@pytest.fixture(autouse=True)
def _env(app, monkeypatch):
    yield from pages_env(monkeypatch)


@pytest.fixture
def symbols(app):
    load_symbols()


def strategies_of(user_id: int) -> list[Strategy]:
    db.session.rollback()
    return list(db.session.scalars(select(Strategy).where(Strategy.user_id == user_id)))


def audit_actions() -> list[str]:
    db.session.rollback()
    return [e.action for e in db.session.scalars(select(AuditEvent).where(AuditEvent.target_type == "strategy")
                                                 .order_by(AuditEvent.id))]


NEW = {"name": "Nifty breakout", "platform": "tradingview", "mode": "LONG", "is_intraday": "y",
       "start_time": "09:20", "end_time": "15:00", "squareoff_time": "15:15"}


def create(client, **overrides):
    return post_form(client, "/strategy/new", {**NEW, **overrides}, follow_redirects=True)


def shown_webhook_id(resp, path: str = "strategy") -> str:
    """The webhook id a page shows whole (once: after creation or rotation)."""
    match = re.search(rf"http://localhost/{path}/webhook/([0-9a-f]{{32}})", resp.get_data(as_text=True))
    assert match, "the page shows the whole webhook URL"
    return match.group(1)


def test_create_shows_the_webhook_url_once_and_a_tradingview_alert(client):
    user = sign_in(client)
    resp = create(client)
    assert resp.status_code == 200  # the page the creation redirected to (POST/redirect/GET) shows the URL once
    assert resp.headers["Cache-Control"] == "no-store"
    (s,) = strategies_of(user.id)
    assert (s.name, s.platform, s.mode, s.is_active, s.is_intraday) == ("Nifty breakout", "tradingview", "LONG",
                                                                       True, True)
    assert (s.start_time.strftime("%H:%M"), s.end_time.strftime("%H:%M"), s.squareoff_time.strftime("%H:%M")) == (
        "09:20", "15:00", "15:15")
    webhook_id = shown_webhook_id(resp)
    assert "Copy its webhook URL now" in resp.get_data(as_text=True)
    assert (s.webhook_prefix, len(s.webhook_hash)) == (webhook_id[:6], 64)
    assert webhook_id not in s.webhook_hash

    page = client.get(f"/strategy/{s.id}")  # from now on: its first characters only
    assert page.status_code == 200
    assert page.headers["Cache-Control"] == "no-store"
    html = page.get_data(as_text=True)
    assert webhook_id not in html
    assert f"http://localhost/strategy/webhook/{webhook_id[:6]}…" in html
    alert = re.search(r'<pre id="alert-json">(.*?)</pre>', html, re.S).group(1)
    alert = json.loads(alert.replace("&#34;", '"').replace("&quot;", '"'))
    assert alert == {"symbol": "{{ticker}}", "action": "{{strategy.order.action}}"}
    assert audit_actions() == ["strategy.create"]

    listing = client.get("/strategy").get_data(as_text=True)
    assert "Nifty breakout" in listing


def test_both_mode_alert_has_position_size_and_chartink_gets_its_own_url(client):
    user = sign_in(client)
    create(client, name="Both ways", mode="BOTH")
    shown = create(client, name="Scanner", platform="chartink", mode="LONG")
    webhook_id = shown_webhook_id(shown, "chartink")
    assert f'"webhook_url": "http://localhost/chartink/webhook/{webhook_id}"' in shown.get_data(as_text=True).replace(
        "&#34;", '"')
    by_name = {s.name: s for s in strategies_of(user.id)}
    html = client.get(f"/strategy/{by_name['Both ways'].id}").get_data(as_text=True)
    assert "{{strategy.position_size}}" in html
    html = client.get(f"/strategy/{by_name['Scanner'].id}").get_data(as_text=True)
    assert f"/chartink/webhook/{webhook_id[:6]}…" in html
    assert webhook_id not in html
    assert "COVER" in html


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"name": "x"}, "Field must be between 3 and 100 characters long."),
        ({"name": "bad<name>"}, "A name has 3 to 100 characters"),
        ({"start_time": "15:00", "end_time": "10:00"}, "The start time must be before the end time."),
        ({"squareoff_time": "14:00"}, "The square-off time must be at or after the end time."),
        ({"end_time": ""}, "An intraday strategy needs a start, an end and a square-off time."),
        ({"mode": "SIDEWAYS"}, "Not a valid choice"),
    ],
)
def test_invalid_strategy_forms_are_refused_with_a_message(client, overrides, message):
    user = sign_in(client)
    resp = create(client, **overrides)
    assert resp.status_code == 400
    assert message in resp.get_data(as_text=True)
    assert strategies_of(user.id) == []


def test_positional_strategy_needs_no_hours_and_names_are_unique_per_user(client):
    user = sign_in(client)
    data = {k: v for k, v in NEW.items() if k != "is_intraday"}
    assert post_form(client, "/strategy/new", data).status_code == 302
    (s,) = strategies_of(user.id)
    assert s.is_intraday is False
    assert s.start_time is None
    assert s.squareoff_time is None
    resp = post_form(client, "/strategy/new", data)
    assert resp.status_code == 400
    assert "You already have a strategy named" in resp.get_data(as_text=True)


def test_edit_activate_deactivate_and_delete_with_confirmation(client):
    user = sign_in(client)
    create(client)
    (s,) = strategies_of(user.id)
    sid = s.id
    form_page = client.get(f"/strategy/{sid}/edit").get_data(as_text=True)
    assert 'value="Nifty breakout"' in form_page
    assert 'value="09:20"' in form_page

    resp = post_form(client, f"/strategy/{sid}/edit", {**NEW, "name": "Renamed", "mode": "BOTH",
                                                        "start_time": "09:30"})
    assert resp.status_code == 302
    (s,) = strategies_of(user.id)
    assert (s.name, s.mode, s.start_time.strftime("%H:%M")) == ("Renamed", "BOTH", "09:30")

    view = f"/strategy/{sid}"
    assert post_form(client, f"{view}/deactivate", form_url=view).status_code == 302
    assert strategies_of(user.id)[0].is_active is False
    assert "Activate" in client.get(view).get_data(as_text=True)
    assert post_form(client, f"{view}/activate", form_url=view).status_code == 302
    assert strategies_of(user.id)[0].is_active is True

    old_hash = strategies_of(user.id)[0].webhook_hash
    rotated = post_form(client, f"{view}/rotate", form_url=view, follow_redirects=True)
    assert rotated.status_code == 200
    assert rotated.headers["Cache-Control"] == "no-store"
    new_id = shown_webhook_id(rotated)  # the new URL, shown this once
    after = strategies_of(user.id)[0]
    assert (after.webhook_hash != old_hash, after.webhook_prefix) == (True, new_id[:6])
    assert new_id not in client.get(view).get_data(as_text=True)

    confirm = client.get(f"{view}/delete")
    assert confirm.status_code == 200
    assert "Delete “Renamed”?" in confirm.get_data(as_text=True)
    assert strategies_of(user.id)  # a GET deletes nothing
    resp = post_form(client, f"{view}/delete")
    assert resp.status_code == 302
    assert resp.location == "/strategy"
    assert strategies_of(user.id) == []
    assert client.get(view).status_code == 404
    assert audit_actions() == ["strategy.create", "strategy.update", "strategy.deactivate", "strategy.activate",
                               "strategy.rotate_webhook", "strategy.delete"]
    db.session.rollback()
    deleted = db.session.scalars(select(AuditEvent).where(AuditEvent.action == "strategy.delete")).one()
    assert deleted.before["name"] == "Renamed"
    assert deleted.after is None
    assert deleted.user_id == user.id


def test_actions_without_a_csrf_token_are_refused(client):
    user = sign_in(client)
    create(client)
    (s,) = strategies_of(user.id)
    assert client.post(f"/strategy/{s.id}/delete").status_code == 400
    assert client.post(f"/strategy/{s.id}/deactivate").status_code == 400
    assert strategies_of(user.id)[0].is_active is True


def mappings_of(strategy_id: int) -> list[tuple]:
    db.session.rollback()
    return [(m.symbol, m.exchange, m.quantity, m.product) for m in db.session.scalars(
        select(StrategySymbolMapping).where(StrategySymbolMapping.strategy_id == strategy_id)
        .order_by(StrategySymbolMapping.symbol))]


def test_symbol_mappings_are_checked_against_the_symbol_master(client, symbols):
    user = sign_in(client)
    create(client)
    (s,) = strategies_of(user.id)
    view = f"/strategy/{s.id}"

    def add(**data):
        return post_form(client, f"{view}/mappings", {"symbol": "RELIANCE", "exchange": "NSE", "quantity": "5",
                                                      "product": "MIS", **data}, form_url=view)

    assert add(symbol="reliance").status_code == 302
    assert add(symbol="SBIN", quantity="10", product="CNC").status_code == 302
    assert mappings_of(s.id) == [("RELIANCE", "NSE", 5, "MIS"), ("SBIN", "NSE", 10, "CNC")]
    html = client.get(view).get_data(as_text=True)
    assert "RELIANCE" in html
    assert "SBIN" in html

    resp = add(symbol="NOSUCHCO")
    assert resp.status_code == 400
    assert "Symbol NOSUCHCO not found in exchange NSE" in resp.get_data(as_text=True)
    resp = add()
    assert resp.status_code == 400
    assert "already mapped" in resp.get_data(as_text=True)
    resp = add(symbol="TCS", product="NRML")
    assert resp.status_code == 400
    assert "Product NRML is not available on NSE" in resp.get_data(as_text=True)
    resp = add(symbol="TCS", quantity="0")
    assert resp.status_code == 400
    future = next(i for i in symbol_index.search("NIFTY", exchange="NFO", limit=200)
                  if i.instrumenttype == "FUT" and i.lotsize > 1)
    resp = add(symbol=future.symbol, exchange="NFO", product="NRML", quantity=str(future.lotsize + 1))
    assert resp.status_code == 400
    assert "multiple of its lot size" in resp.get_data(as_text=True)
    assert add(symbol=future.symbol, exchange="NFO", product="NRML",
               quantity=str(future.lotsize * 2)).status_code == 302
    assert len(mappings_of(s.id)) == 3

    db.session.rollback()
    mapping_id = db.session.scalars(select(StrategySymbolMapping.id).where(
        StrategySymbolMapping.strategy_id == s.id, StrategySymbolMapping.symbol == "SBIN")).one()
    resp = post_form(client, f"{view}/mappings/{mapping_id}/delete", form_url=view)
    assert resp.status_code == 302
    assert [m[0] for m in mappings_of(s.id)] == sorted(["RELIANCE", future.symbol])
    assert audit_actions() == ["strategy.create", "strategy.mapping_add", "strategy.mapping_add",
                               "strategy.mapping_add", "strategy.mapping_remove"]


def test_other_users_strategies_are_not_found(app, symbols):
    owner_client, other_client = app.test_client(), app.test_client()
    owner = sign_in(owner_client, "owner1")
    webhook_id = shown_webhook_id(create(owner_client))
    (s,) = strategies_of(owner.id)
    view = f"/strategy/{s.id}"
    post_form(owner_client, f"{view}/mappings", {"symbol": "SBIN", "exchange": "NSE", "quantity": "1",
                                                 "product": "MIS"}, form_url=view)
    (mapping_id,) = [m.id for m in db.session.scalars(select(StrategySymbolMapping))]

    sign_in(other_client, "admin2", Role.ADMIN)  # not even an admin sees another user's strategies
    assert "Nifty breakout" not in other_client.get("/strategy").get_data(as_text=True)
    assert webhook_id[:6] not in other_client.get("/strategy").get_data(as_text=True)
    for url in (view, f"{view}/edit", f"{view}/delete"):
        assert other_client.get(url).status_code == 404, url
    token = csrf_token(other_client, "/strategy/new")
    for url in (f"{view}/edit", f"{view}/delete", f"{view}/deactivate", f"{view}/rotate", f"{view}/mappings",
                f"{view}/mappings/{mapping_id}/delete"):
        data = {**NEW, "symbol": "TCS", "exchange": "NSE", "quantity": "1", "product": "MIS", "csrf_token": token}
        assert other_client.post(url, data=data).status_code == 404, url
    (after,) = strategies_of(owner.id)
    assert (after.name, after.is_active, after.webhook_hash) == ("Nifty breakout", True, s.webhook_hash)
    assert len(mappings_of(s.id)) == 1


def test_viewers_can_look_but_not_change(app, client):
    trader_client = app.test_client()
    sign_in(trader_client, "trader9")
    viewer = sign_in(client, "viewer1", Role.VIEWER)
    assert client.get("/strategy").status_code == 200
    assert "New strategy" not in client.get("/strategy").get_data(as_text=True)
    assert client.get("/strategy/new").status_code == 403
    token = csrf_token(client, "/strategy")  # the sign-out form of the top bar
    assert client.post("/strategy/new", data={**NEW, "csrf_token": token}).status_code == 403
    assert strategies_of(viewer.id) == []


def test_anonymous_visitors_go_to_sign_in(client):
    resp = client.get("/strategy")
    assert resp.status_code == 302
    assert "/auth/login" in resp.location
    resp = client.get("/strategy/new")
    assert resp.status_code == 302
    assert "/auth/login" in resp.location


@pytest.mark.parametrize(("hours", "start", "end", "squareoff"), [
    (None, "09:15", "15:00", "15:15"),          # NSE's session, the default
    ("NFO", "09:15", "15:00", "15:15"),
    ("CDS", "09:00", "16:30", "16:45"),
    ("MCX", "09:00", "23:15", "23:30"),
    ("NOPE", "09:15", "15:00", "15:15"),        # not an exchange: NSE's
])
def test_a_new_strategy_defaults_to_its_exchanges_session(client, hours, start, end, squareoff):
    sign_in(client)
    html = client.get("/strategy/new" + (f"?hours={hours}" if hours else "")).get_data(as_text=True)
    for name, value in (("start_time", start), ("end_time", end), ("squareoff_time", squareoff)):
        assert re.search(rf'name="{name}"[^>]*value="{value}"', html), (name, value)
    assert f"<strong>{hours if hours in ('NFO', 'CDS', 'MCX') else 'NSE'}</strong>" in html
