"""The strategy page's "Send a test alert": the sample alert through the webhook's own path, always in analyze mode,
the outcome shown on the page (accepted, or the refusal's message); webhook URLs on PUBLIC_URL with a hint when
they are on a loopback address; copy buttons for the webhook URL and the alert JSON."""

from __future__ import annotations

import html
import re

import pytest
from sqlalchemy import select

from database import db
from database.enums import Role
from database.order_db import Order, Signal
from database.strategy_db import Strategy
from services.accounts import settings as user_settings
from services.strategies import webhooks
from tests.helpers.accounts import pages_env, post_form, sign_in
from tests.helpers.api import load_symbols
from tests.helpers.clock import local


@pytest.fixture(autouse=True)
def _env(app, monkeypatch):
    yield from pages_env(monkeypatch)


@pytest.fixture
def symbols(app):
    load_symbols()


STRATEGY = {"name": "Test me", "platform": "tradingview", "mode": "LONG", "start_time": "09:20", "end_time": "15:00",
            "squareoff_time": "15:15"}


def new_strategy(client, user, *, mapped: bool = True, **overrides) -> int:
    """A strategy (positional unless `is_intraday` is given) with RELIANCE on NSE mapped; its id."""
    resp = post_form(client, "/strategy/new", {**STRATEGY, **overrides})
    assert resp.status_code == 302, resp.get_data(as_text=True)
    db.session.rollback()
    name = overrides.get("name", STRATEGY["name"])
    (sid,) = db.session.scalars(select(Strategy.id).where(Strategy.user_id == user.id, Strategy.name == name))
    client.get(resp.headers["Location"])  # the page that shows the webhook URL once
    if mapped:
        view = f"/strategy/{sid}"
        added = post_form(client, f"{view}/mappings", {"symbol": "RELIANCE", "exchange": "NSE", "quantity": "3",
                                                       "product": "MIS"}, form_url=view)
        assert added.status_code == 302, added.get_data(as_text=True)
    return sid


def send_test(client, sid: int):
    view = f"/strategy/{sid}"
    resp = post_form(client, f"{view}/test-alert", form_url=view)
    assert resp.status_code == 302
    assert resp.headers["Location"].endswith(f"{view}#test-alert")
    return html.unescape(client.get(view).get_data(as_text=True))


def test_a_test_alert_places_an_analyze_order_even_in_live_mode(app, client, symbols):
    user = sign_in(client)
    sid = new_strategy(client, user)
    user_settings.set_analyze(user.id, False)  # live mode, without a broker: a real alert would be refused
    page = send_test(client, sid)
    assert "Test alert (BUY RELIANCE, analyze mode) accepted" in page
    db.session.rollback()
    (order,) = db.session.scalars(select(Order).where(Order.user_id == user.id))
    assert (str(order.mode), order.symbol, order.quantity, order.strategy) == ("analyze", "RELIANCE", 3, "Test me")
    (signal,) = db.session.scalars(select(Signal).where(Signal.strategy_id == sid))
    assert (str(signal.status), signal.symbol, order.signal_id) == ("accepted", "RELIANCE", signal.id)
    # the page shows the alert it sends
    assert '"symbol": "RELIANCE"' in page
    assert '"action": "BUY"' in page


def test_refusals_are_shown_with_their_message(app, client, symbols, monkeypatch):
    user = sign_in(client)
    sid = new_strategy(client, user, mapped=False)
    page = html.unescape(client.get(f"/strategy/{sid}").get_data(as_text=True))
    assert "Map a symbol below first" in page
    assert f'action="/strategy/{sid}/test-alert"' not in page
    page = send_test(client, sid)
    assert "refused (400): Map a symbol to this strategy first" in page

    sid = new_strategy(client, user, name="Intraday one", is_intraday="y")
    monkeypatch.setattr(webhooks, "now", lambda: local(app, 2026, 3, 10, 20, 30))  # an evening
    page = send_test(client, sid)
    assert re.search(r"Test alert \(BUY RELIANCE, analyze mode\) refused \(400\): Outside trading hours: entry "
                     r"orders are not allowed after the end time 15:00 \(exchange time\)\. A test alert keeps the "
                     r"strategy's hours", page)
    monkeypatch.setattr(webhooks, "now", lambda: local(app, 2026, 3, 10, 10, 30))
    assert "Test alert (BUY RELIANCE, analyze mode) accepted" in send_test(client, sid)

    post_form(client, f"/strategy/{sid}/deactivate", form_url=f"/strategy/{sid}")
    page = send_test(client, sid)
    assert "refused (400)" in page
    assert "inactive" in page
    db.session.rollback()
    assert len(db.session.scalars(select(Order).where(Order.user_id == user.id)).all()) == 1


def test_a_viewer_cannot_send_one_and_nobody_sends_another_users(app, client, symbols):
    owner = sign_in(client, "owner1")
    sid = new_strategy(client, owner)
    other = app.test_client()
    sign_in(other, "viewer1", Role.VIEWER)
    assert post_form(other, f"/strategy/{sid}/test-alert", form_url="/settings").status_code == 403
    third = app.test_client()
    sign_in(third, "trader2")
    assert post_form(third, f"/strategy/{sid}/test-alert", form_url="/settings").status_code == 404
    db.session.rollback()
    assert db.session.scalars(select(Signal)).all() == []


def webhook_url_shown(page: str) -> str:
    match = re.search(r'<code class="secret" id="webhook-url">([^<]+)</code>', page)
    assert match, "the whole webhook URL is shown once"
    return match.group(1)


def test_webhook_urls_use_public_url_and_warn_on_loopback(app, client, monkeypatch):
    user = sign_in(client)
    resp = post_form(client, "/strategy/new", STRATEGY, follow_redirects=True)
    page = html.unescape(resp.get_data(as_text=True))
    # no PUBLIC_URL: the address the page was opened at (the test client's http://localhost), a loopback one
    assert webhook_url_shown(page).startswith("http://localhost/strategy/webhook/")
    assert "TradingView cannot reach localhost: set PUBLIC_URL" in page
    # copy buttons: the URL (shown once) and the alert JSON
    assert '<button type="button" class="copy" data-copy-target="#webhook-url">' in page
    assert '<button type="button" class="copy" data-copy-target="#alert-json">' in page
    assert "js/copy.js" in page

    monkeypatch.setitem(app.config, "PUBLIC_URL", "https://algo.example.com")
    db.session.rollback()
    (sid,) = db.session.scalars(select(Strategy.id).where(Strategy.user_id == user.id))
    view = f"/strategy/{sid}"
    resp = post_form(client, f"{view}/rotate", form_url=view, follow_redirects=True)
    page = html.unescape(resp.get_data(as_text=True))
    url = webhook_url_shown(page)
    assert re.fullmatch(r"https://algo\.example\.com/strategy/webhook/[0-9a-f]{32}", url)
    assert "set PUBLIC_URL" not in page
    # the masked URL of later visits is on PUBLIC_URL too
    later = html.unescape(client.get(view).get_data(as_text=True))
    assert f"https://algo.example.com/strategy/webhook/{url.rsplit('/', 1)[1][:6]}…" in later


def test_the_loopback_check():
    from blueprints.strategy import loopback_host

    for base in ("http://127.0.0.1:5000", "http://localhost:5000", "http://[::1]:5000", "http://127.1.2.3",
                 "http://app.localhost"):
        assert loopback_host(base), base
    for base in ("https://algo.example.com", "http://192.168.1.20:5000", "http://10.0.0.5", "http://[2001:db8::1]"):
        assert loopback_host(base) is None, base


def test_sample_alerts_follow_the_platform_and_mode(app, client, symbols):
    user = sign_in(client)
    new_strategy(client, user, name="Both", mode="BOTH")
    db.session.rollback()
    (both,) = db.session.scalars(select(Strategy).where(Strategy.name == "Both"))
    assert webhooks.sample_alert(both) == {"symbol": "RELIANCE", "exchange": "NSE", "action": "BUY",
                                           "position_size": 3}
    both.mode, both.platform = "SHORT", "chartink"
    alert = webhooks.sample_alert(both)
    assert (alert["stocks"], alert["alert_name"]) == ("RELIANCE", "Test SHORT")
    db.session.rollback()
