"""The log pages: every page for admin, trader and viewer; who sees whose rows; keyset paging;
filters; secrets redacted on display; latency percentiles and the chart data; alert acknowledgement."""

from __future__ import annotations

import datetime as dt
import json
import re

import pytest
from sqlalchemy import select

from database import db
from database.alert_db import Alert
from database.apilog_db import ApiLog
from database.audit_db import AuditEvent
from database.latency_db import OrderLatency
from database.systemlog_db import SystemLog
from database.traffic_db import TrafficLog
from database.types import utcnow
from services.logs import reading as log_service
from tests.helpers.accounts import client_for, csrf_token, one_user_per_role

PAGES = ["/logs/api", "/logs/traffic", "/logs/latency", "/logs/system", "/logs/alerts", "/logs/audit"]


@pytest.fixture
def people(app):
    return one_user_per_role()


def traffic_rows(n, user_id, start=None, path="/p"):
    start = start or utcnow() - dt.timedelta(hours=1)
    db.session.add_all([TrafficLog(created_at=start + dt.timedelta(seconds=i), method="GET", path=f"{path}{i}",
                                   status_code=404 if i % 10 == 0 else 200, duration_ms=1.5, user_id=user_id,
                                   client_ip="10.0.0.1") for i in range(n)])
    db.session.commit()


def text(resp):
    assert resp.status_code == 200, resp.status_code
    return resp.get_data(as_text=True)


@pytest.mark.parametrize("role", ["admin", "trader", "viewer"])
def test_every_page_renders_for_every_role(app, people, role):
    c = client_for(app, f"{role}1")
    for url in PAGES:
        resp = c.get(url)
        if url == "/logs/system" and role != "admin":
            assert resp.status_code == 403
            assert "403" in resp.get_data(as_text=True)
            continue
        body = text(resp)
        assert 'class="subnav"' in body
        assert ("System log" in body) == (role == "admin")


def test_anonymous_is_sent_to_sign_in(app, client):
    for url in PAGES:
        resp = client.get(url)
        assert resp.status_code == 302
        assert "/auth/login" in resp.headers["Location"]


def test_admin_sees_everyone_trader_only_their_own(app, people):
    traffic_rows(3, people["trader"].id, path="/mine")
    traffic_rows(3, people["viewer"].id, path="/theirs")
    admin_page = text(client_for(app, "admin1").get("/logs/traffic"))
    assert "/mine0" in admin_page
    assert "/theirs0" in admin_page
    trader_page = text(client_for(app, "trader1").get("/logs/traffic"))
    assert "/mine0" in trader_page
    assert "/theirs0" not in trader_page


def _older(page: str) -> str | None:
    """The cursor of the page's "Older" link, None when there is none."""
    match = re.search(r'href="/logs/traffic\?before=(\d+)&amp;path=/p"\s*>Older', page)
    return match.group(1) if match else None


def test_traffic_pages_with_a_keyset_cursor(app, people):
    traffic_rows(120, people["trader"].id)
    c = client_for(app, "trader1")
    first = text(c.get("/logs/traffic?path=/p"))
    assert first.count('<td data-label="Path" class="path">') == 50
    assert "/p119<" in first
    assert "/p70<" in first
    assert "/p69<" not in first
    assert "Newest" not in first
    cursor = _older(first)
    assert cursor, "the Older link keeps the filter and carries a cursor"
    second = text(c.get(f"/logs/traffic?before={cursor}&path=/p"))
    assert "/p69<" in second
    assert "/p20<" in second
    assert "/p70<" not in second
    assert "Newest" in second
    third = text(c.get(f"/logs/traffic?before={_older(second)}&path=/p"))
    assert third.count('<td data-label="Path" class="path">') == 20
    assert "/p19<" in third
    assert "/p0<" in third
    assert _older(third) is None
    assert "End of the log" in third


def test_traffic_filters(app, people):
    traffic_rows(30, people["trader"].id, path="/zz")
    c = client_for(app, "admin1")
    errors = text(c.get("/logs/traffic?status=4xx&path=/zz"))
    assert errors.count('<code>/zz') == 3
    assert text(c.get("/logs/traffic?method=POST&path=/zz")).count('<code>/zz') == 0
    assert text(c.get(f"/logs/traffic?user={people['viewer'].id}&path=/zz")).count('<code>/zz') == 0
    tomorrow = (dt.date.today() + dt.timedelta(days=2)).isoformat()
    assert text(c.get(f"/logs/traffic?from={tomorrow}&path=/zz")).count('<code>/zz') == 0
    # a bad filter is refused, not dropped (tests/blueprints/test_log_filters_fuzz.py)
    assert c.get("/logs/traffic?before=junk&path=/zz").status_code == 400
    assert c.get("/logs/traffic?status=nonsense&path=/zz").status_code == 400
    assert text(c.get("/logs/traffic?before=&status=&path=/zz")).count('<code>/zz') == 30


def test_api_log_filters_and_redaction(app, people):
    uid = people["trader"].id
    db.session.add_all([
        ApiLog(api_type="placeorder", user_id=uid, status_code=200, mode="analyze",
               request={"symbol": "INFY", "apikey": "SEKRET-KEY", "nested": {"password": "SEKRET-PW"}},
               response={"status": "success", "orderid": "OID-1", "access_token": "SEKRET-TOK"}),
        ApiLog(api_type="funds", user_id=uid, status_code=403, request={"x": "TCS"}, response={"status": "error"}),
    ])
    db.session.commit()
    c = client_for(app, "trader1")
    page = text(c.get("/logs/api"))
    assert "SEKRET" not in page
    assert "OID-1" in page
    assert "INFY" in page
    only_orders = text(c.get("/logs/api?type=placeorder"))
    assert "OID-1" in only_orders
    assert "TCS" not in only_orders
    errors = text(c.get("/logs/api?status=error"))
    assert "TCS" in errors
    assert "OID-1" not in errors
    found = text(c.get("/logs/api?q=oid-1"))
    assert "OID-1" in found
    assert "TCS" not in found
    assert "No API calls match" in text(c.get("/logs/api?q=100%25_"))
    assert "No API calls match" in text(client_for(app, "viewer1").get("/logs/api?type=placeorder"))


def latency(n, user_id, broker="paper", endpoint="placeorder", start_ms=1):
    db.session.add_all([OrderLatency(user_id=user_id, broker=broker, endpoint=endpoint, mode="analyze",
                                     total_ms=float(start_ms + i), broker_ms=0.5) for i in range(n)])
    db.session.commit()


def test_latency_percentiles_in_sql_on_both_databases(app, people):
    latency(100, people["trader"].id)  # 1..100 ms
    latency(10, people["trader"].id, broker="zerodha", endpoint="cancelorder", start_ms=1000)
    stats = log_service.latency_stats(None)
    overall = stats["overall"]
    assert overall["count"] == 110
    assert (overall["p50"], overall["p90"], overall["p99"]) == (55.0, 99.0, 1008.0)
    by_broker = {r["name"]: r for r in stats["by_broker"]}
    assert (by_broker["paper"]["p50"], by_broker["paper"]["p95"], by_broker["paper"]["p99"]) == (50.0, 95.0, 99.0)
    assert by_broker["zerodha"]["p50"] == 1004.0
    assert {r["name"] for r in stats["by_endpoint"]} == {"placeorder", "cancelorder"}
    assert sum(stats["histogram"]["counts"]) == 110
    hist = dict(zip(stats["histogram"]["labels"], stats["histogram"]["counts"], strict=True))
    assert hist["1000–2000 ms"] == 10
    assert hist["50–100 ms"] == 50
    assert hist["≥ 5000 ms"] == 0
    assert len(stats["timeline"]) == 110
    windowed = log_service.latency_stats(None, window=10)
    assert windowed["overall"]["count"] == 10
    assert windowed["overall"]["p50"] == 1004.0


def test_latency_page_has_the_chart_contract(app, people):
    c = client_for(app, "trader1")
    empty = text(c.get("/logs/latency"))
    assert "No order calls" in empty
    latency(1, people["trader"].id)
    page = text(c.get("/logs/latency"))
    assert '<canvas id="latency-histogram"' in page
    assert '<canvas id="latency-timeline"' in page
    assert "/static/vendor/chart.umd.min.js" in page
    assert "/static/js/latency.js" in page
    data = json.loads(re.search(r'<script type="application/json" id="latency-data">(.*?)</script>', page, re.S)
                      .group(1))
    assert sum(data["histogram"]["counts"]) == 1
    assert data["timeline"]["values"] == [1.0]
    assert f"most recent {log_service.LATENCY_WINDOW:,} order calls" in page
    # another user's calls are not in a trader's statistics
    assert "No order calls" in text(client_for(app, "viewer1").get("/logs/latency"))


def test_alert_acknowledgement(app, people):
    mine = Alert(user_id=people["trader"].id, kind="order_rejected", title="Order rejected")
    theirs = Alert(user_id=people["viewer"].id, kind="order_rejected", title="Viewer alert")
    db.session.add_all([mine, theirs])
    db.session.commit()
    mine_id, theirs_id = mine.id, theirs.id
    c = client_for(app, "trader1")
    page = text(c.get("/logs/alerts"))
    assert "Order rejected" in page
    assert "Viewer alert" not in page
    assert "Acknowledge" in page
    assert c.post(f"/logs/alerts/{mine_id}/ack").status_code == 400  # no CSRF token
    token = csrf_token(c, "/logs/alerts")
    assert c.post(f"/logs/alerts/{theirs_id}/ack", data={"csrf_token": token}).status_code == 404
    resp = c.post(f"/logs/alerts/{mine_id}/ack", data={"csrf_token": token})
    assert resp.status_code == 302
    db.session.rollback()
    acked = db.session.get(Alert, mine_id)
    assert acked.is_acknowledged
    assert acked.acknowledged_by == people["trader"].id
    assert "acknowledged." in text(c.get("/logs/alerts"))  # the flash, once
    assert "Order rejected" not in text(c.get("/logs/alerts"))
    assert "Order rejected" in text(c.get("/logs/alerts?state=acknowledged"))
    viewer = client_for(app, "viewer1")
    assert "Acknowledge" not in text(viewer.get("/logs/alerts"))
    vtoken = csrf_token(viewer, "/logs/alerts")
    assert viewer.post(f"/logs/alerts/{theirs_id}/ack", data={"csrf_token": vtoken}).status_code == 403
    admin = client_for(app, "admin1")
    assert "Viewer alert" in text(admin.get("/logs/alerts"))
    atoken = csrf_token(admin, "/logs/alerts")
    assert admin.post(f"/logs/alerts/{theirs_id}/ack", data={"csrf_token": atoken}).status_code == 302


def test_system_log_and_audit(app, people):
    db.session.add_all([SystemLog(level="ERROR", logger="algobridge.x", message="disk full", traceback="Trace!"),
                        SystemLog(level="WARNING", logger="algobridge.y", message="slow broker"),
                        AuditEvent(user_id=people["trader"].id, actor="trader1", action="settings.update",
                                   before={"token": "SEKRET"}, after={"display_timezone": "UTC"}),
                        AuditEvent(user_id=people["admin"].id, actor="admin1", action="user.create")])
    db.session.commit()
    admin = client_for(app, "admin1")
    errors = text(admin.get("/logs/system?level=error"))
    assert "disk full" in errors
    assert "slow broker" not in errors
    assert "Trace!" in errors
    assert "user.create" in text(admin.get("/logs/audit"))
    trader_audit = text(client_for(app, "trader1").get("/logs/audit?action=settings"))
    assert "settings.update" in trader_audit
    assert "user.create" not in trader_audit
    assert "SEKRET" not in trader_audit
    assert "display_timezone" in trader_audit


def test_times_are_shown_in_the_users_zone(app, people):
    from database.settings_db import Setting

    at = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
    db.session.add(TrafficLog(created_at=at, method="GET", path="/x", status_code=200, duration_ms=1,
                              user_id=people["trader"].id))
    db.session.add(Setting(user_id=people["trader"].id, key="display_timezone", value="America/New_York"))
    db.session.commit()
    page = text(client_for(app, "trader1").get("/logs/traffic"))
    assert "01 Jan 2026 22:04:05 EST" in page
    assert "America/New_York" in page
    assert db.session.scalar(select(TrafficLog.id)) is not None
