"""/settings: analyze mode, time zone, session expiry display, the two-factor sign-in link, log retention;
every change writes the setting, a config_versions snapshot and the audit trail."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from sqlalchemy import func, select

from database import db
from database.audit_db import AuditEvent
from database.settings_db import ConfigVersion, Setting
from services.accounts import two_factor
from services.logs import retention as log_retention
from services.trading import venues
from tests.helpers.accounts import client_for, csrf_token, one_user_per_role


@pytest.fixture
def people(app):
    return one_user_per_role()


def post(c, url, data):
    return c.post(url, data={**data, "csrf_token": csrf_token(c, "/settings")})


def versions() -> list[ConfigVersion]:
    db.session.rollback()
    return list(db.session.scalars(select(ConfigVersion).order_by(ConfigVersion.version)))


def audits(action: str) -> list[AuditEvent]:
    return list(db.session.scalars(select(AuditEvent).where(AuditEvent.action == action)))


@pytest.mark.parametrize(("role", "mode_form", "retention_form"),
                         [("admin", True, True), ("trader", True, False), ("viewer", False, False)])
def test_page_for_each_role(app, people, role, mode_form, retention_form):
    body = client_for(app, f"{role}1").get("/settings").get_data(as_text=True)
    assert "Session expiry" in body
    assert "03:00" in body
    assert "Asia/Kolkata" in body
    assert ('action="/settings/mode"' in body) == mode_form
    assert ('action="/settings/retention"' in body) == retention_form
    assert 'action="/settings/timezone"' in body


def test_switching_to_live_is_the_api_toggle_plus_a_snapshot(app, people):
    uid = people["trader"].id
    c = client_for(app, "trader1")
    assert venues.is_analyze(uid)
    resp = post(c, "/settings/mode", {"mode-mode": "live"})
    assert resp.status_code == 302
    assert venues.is_analyze(uid) is False
    row = db.session.scalar(select(Setting).where(Setting.user_id == uid, Setting.key == venues.SETTING_KEY))
    assert row.value is False
    (version,) = versions()
    assert version.version == 1
    assert version.created_by == uid
    assert version.snapshot["users"][str(uid)][venues.SETTING_KEY] is False
    (event,) = audits("analyzer.toggle")
    assert event.before == {"analyze_mode": True}
    assert event.after == {"analyze_mode": False}
    assert "live" in c.get("/settings").get_data(as_text=True)
    # the same choice again changes nothing
    post(c, "/settings/mode", {"mode-mode": "live"})
    assert len(versions()) == 1
    post(c, "/settings/mode", {"mode-mode": "analyze"})
    assert venues.is_analyze(uid)
    assert [v.version for v in versions()] == [1, 2]


def test_viewer_cannot_switch_modes_or_set_retention(app, people):
    c = client_for(app, "viewer1")
    assert post(c, "/settings/mode", {"mode-mode": "live"}).status_code == 403
    assert post(c, "/settings/retention", {"ret-days": "5"}).status_code == 403
    t = client_for(app, "trader1")
    assert post(t, "/settings/retention", {"ret-days": "5"}).status_code == 403
    assert versions() == []


def test_time_zone_preference(app, people):
    uid = people["viewer"].id
    c = client_for(app, "viewer1")
    assert post(c, "/settings/timezone", {"tz-timezone": "Mars/Olympus"}).status_code == 400
    assert post(c, "/settings/timezone", {"tz-timezone": "Europe/London"}).status_code == 302
    assert db.session.scalar(select(Setting.value).where(Setting.user_id == uid,
                                                          Setting.key == "display_timezone")) == "Europe/London"
    (version,) = versions()
    assert version.snapshot["users"][str(uid)]["display_timezone"] == "Europe/London"
    assert version.snapshot["config"]["EXCHANGE_TIMEZONE"] == "Asia/Kolkata"
    assert not any("SECRET" in k or "PEPPER" in k for k in version.snapshot["config"])
    (event,) = audits("settings.update")
    assert event.before == {"display_timezone": "Asia/Kolkata"}
    assert event.after == {"display_timezone": "Europe/London"}
    assert "now Europe/London" in c.get("/settings").get_data(as_text=True)


def test_admin_sets_log_retention(app, people):
    c = client_for(app, "admin1")
    assert post(c, "/settings/retention", {"ret-days": "-1"}).status_code == 400
    assert post(c, "/settings/retention", {"ret-days": "7"}).status_code == 302
    assert log_retention.retention_days() == 7
    assert post(c, "/settings/retention", {"ret-days": "0"}).status_code == 302
    assert log_retention.retention_days() == 0
    assert [v.snapshot["global"]["log_retention_days"] for v in versions()] == [7, 0]
    assert len(audits("settings.update")) == 2
    page = c.get("/settings").get_data(as_text=True)
    assert "Configuration versions" in page
    assert "log_retention_days = 0" in page


def test_changes_need_a_csrf_token(app, people):
    c = client_for(app, "admin1")
    assert c.post("/settings/timezone", data={"tz-timezone": "UTC"}).status_code == 400
    assert db.session.scalar(select(func.count()).select_from(ConfigVersion)) == 0


def _two_factor_section(c) -> str:
    body = c.get("/settings").get_data(as_text=True)
    match = re.search(r'<section class="card" id="two-factor">(.*?)</section>', body, re.S)
    assert match, "the settings page has a two-factor section"
    return " ".join(match.group(1).split())


def test_two_factor_section_says_whether_it_is_on_and_links_to_its_page(app, people):
    c = client_for(app, "trader1")
    section = _two_factor_section(c)
    assert '<span class="status idle">off</span> — <a href="/auth/two-factor/setup">set up</a>' in section
    assert "turn off" not in section

    # Enrolled through the service, at a fixed time (the code is the one the app shows then).
    now = dt.datetime(2026, 3, 10, 5, 30, 10, tzinfo=dt.UTC)
    enrolment = two_factor.start_enrolment(people["trader"], now=now)
    two_factor.confirm_enrolment(people["trader"], enrolment.token, two_factor.code_at(enrolment.secret, now), now=now)
    section = _two_factor_section(c)
    assert '<span class="status ok">on</span> — <a href="/auth/two-factor/setup">turn off</a>' in section
    assert "set up" not in section
    assert "Turn two-factor sign-in off" in c.get("/auth/two-factor/setup").get_data(as_text=True)
    # Another user's page speaks of their own account.
    assert ">set up</a>" in _two_factor_section(client_for(app, "viewer1"))
