"""/calendar: the market calendar for admins: the year's holidays (shipped and edited, marked), today's
sessions, adding and removing edits with CSRF-checked forms; other roles are refused."""

from __future__ import annotations

import datetime as dt

import pytest

from services.market import calendar
from tests.helpers.accounts import (
    client_for,
    csrf_token,
    one_user_per_role,
    post_form,
)


@pytest.fixture
def people(app):
    return one_user_per_role()


def test_the_page_lists_the_shipped_year(app, people):
    resp = client_for(app, "admin1").get("/calendar?year=2026")
    assert resp.status_code == 200
    body = resp.get_data(as_text=True)
    assert "Market calendar 2026" in body
    assert "Mon 26 Jan 2026" in body
    assert "Republic Day" in body
    assert "MCX 17:00–23:55" in body  # an evening session on an equity holiday
    assert '<span class="badge">shipped</span>' in body
    assert 'id="today"' in body
    assert "No edit in 2026." in body
    assert 'href="/calendar/"' in body  # the admins' link in the top bar


def test_an_unknown_year_shows_a_known_one(app, people):
    resp = client_for(app, "admin1").get("/calendar?year=1999")
    assert resp.status_code == 200
    assert "Market calendar 202" in resp.get_data(as_text=True)


@pytest.mark.parametrize("role", ["trader", "viewer"])
def test_only_admins(app, people, role):
    c = client_for(app, f"{role}1")
    assert c.get("/calendar").status_code == 403
    assert 'href="/calendar/"' not in c.get("/dashboard").get_data(as_text=True)
    token = csrf_token(c, "/dashboard")
    resp = c.post("/calendar/entries", data={"csrf_token": token, "day": "2026-12-01", "kind": "holiday",
                                             "exchanges": ["NSE"], "description": "x"})
    assert resp.status_code == 403
    assert calendar.entries(2026) == []


def test_anonymous_is_sent_to_sign_in(client):
    assert client.get("/calendar").status_code in (302, 401)


def test_add_and_remove_an_edit(app, people):
    c = client_for(app, "admin1")
    resp = post_form(c, "/calendar/entries", {"day": "2026-11-08", "kind": "special_session",
                                              "exchanges": ["NSE", "BSE"], "start": "18:00", "end": "19:00",
                                              "description": "Muhurat trading"}, form_url="/calendar?year=2026")
    assert resp.status_code == 302, resp.get_data(as_text=True)
    assert resp.headers["Location"].endswith("/calendar/?year=2026")
    (entry,) = calendar.entries(2026)
    assert (entry["kind"], entry["exchanges"], entry["created_by_name"]) == ("special_session", ["NSE", "BSE"],
                                                                              "admin1")
    assert calendar.session("NSE", dt.date(2026, 11, 8)).special

    page = c.get("/calendar?year=2026").get_data(as_text=True)
    assert "Added: Sun 08 Nov 2026 special session for NSE, BSE." in page
    assert '<span class="badge badge-analyze">edited</span>' in page
    assert f'id="remove-{entry["id"]}"' in page
    assert "admin1, " in page

    assert c.post(f"/calendar/entries/{entry['id']}/remove").status_code == 400  # no CSRF token
    resp = post_form(c, f"/calendar/entries/{entry['id']}/remove", form_url="/calendar?year=2026")
    assert resp.status_code == 302
    assert calendar.entries(2026) == []
    assert calendar.session("NSE", dt.date(2026, 11, 8)) is None
    resp = post_form(c, f"/calendar/entries/{entry['id']}/remove", form_url="/calendar?year=2026")
    assert resp.status_code == 404


@pytest.mark.parametrize(("data", "message"), [
    ({"day": "2026-12-01", "kind": "special_session", "exchanges": ["NSE"], "description": "x"},
     "needs a start and an end"),
    ({"day": "2026-12-01", "kind": "special_session", "exchanges": ["NSE"], "start": "9am", "end": "10:00",
      "description": "x"}, "start must be a time of day written HH:MM"),
    ({"day": "2026-12-01", "kind": "holiday", "description": "x"}, "name at least one exchange"),
    ({"day": "2030-12-02", "kind": "holiday", "exchanges": ["NSE"], "description": "x"},
     "no market calendar for 2030"),
    ({"day": "", "kind": "holiday", "exchanges": ["NSE"], "description": "x"}, "Give the date."),
    ({"day": "2026-12-01", "kind": "holiday", "exchanges": ["NSE"], "description": ""}, "Say what the day is."),
    ({"day": "2026-12-01", "kind": "holiday", "exchanges": ["NYSE"], "description": "x"}, "is not a valid choice"),
])
def test_bad_input_is_shown_on_the_page(app, people, data, message):
    c = client_for(app, "admin1")
    resp = post_form(c, "/calendar/entries", data, form_url="/calendar")
    assert resp.status_code == 400
    assert message in resp.get_data(as_text=True)
    assert calendar.entries(2026) == []
