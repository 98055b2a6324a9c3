"""The pages' money and time filters (blueprints/formatting.py): pure functions, plus their registration
in the app's Jinja environment and the favicon (no 404 on any page)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from flask import Flask, render_template_string

from blueprints import formatting
from blueprints.formatting import group_indian, inr, short_id, xdate, xtime

ROOT = Path(__file__).resolve().parents[2]
IST = ZoneInfo("Asia/Kolkata")
NY = ZoneInfo("America/New_York")


@pytest.mark.parametrize(("digits", "grouped"), [
    ("0", "0"), ("999", "999"), ("1000", "1,000"), ("99999", "99,999"), ("100000", "1,00,000"),
    ("12345678", "1,23,45,678"), ("1234567890", "1,23,45,67,890"),
])
def test_indian_grouping(digits, grouped):
    assert group_indian(digits) == grouped


@pytest.mark.parametrize(("value", "text"), [
    (12345678.9, "₹1,23,45,678.90"),
    (Decimal("1234.5"), "₹1,234.50"),
    (-1234.5, "-₹1,234.50"),
    (0, "₹0.00"),
    (-0.001, "₹0.00"),  # rounds to zero: no "-₹0.00"
    (0.005, "₹0.01"),  # half up, as the exchange's contract notes
    ("250.125", "₹250.13"),
    (100000, "₹1,00,000.00"),
])
def test_inr(value, text):
    assert inr(value) == text


def test_inr_variants_and_non_numbers():
    assert inr(1234.5, sign=False) == "1,234.50"
    assert inr(-1234.5, sign=False) == "-1,234.50"
    assert inr(42, plus=True) == "+₹42.00"
    assert inr(-42, plus=True) == "-₹42.00"
    assert inr(0, plus=True) == "₹0.00"
    for bad in (None, "", "abc", True, float("nan"), float("inf"), object()):
        assert inr(bad) == "–"


def test_xtime_in_the_exchange_zone_24_hour_labelled():
    moment = dt.datetime(2026, 12, 7, 8, 35, 9, tzinfo=dt.UTC)  # 14:05:09 in India
    assert xtime(moment, zone=IST) == "07 Dec 14:05:09 IST"
    assert xtime(moment, "full", zone=IST) == "07 Dec 2026 14:05:09 IST"
    assert xtime(moment, "time", zone=IST) == "14:05:09 IST"
    assert xtime(moment, "minute", zone=IST) == "07 Dec 14:05 IST"
    assert xtime(moment, "hm", zone=IST) == "14:05 IST"
    # A naive datetime is UTC (the database's convention); an unknown style is the short one.
    assert xtime(moment.replace(tzinfo=None), "nonsense", zone=IST) == "07 Dec 14:05:09 IST"
    # Another zone's label comes from the zone, not a constant.
    assert xtime(moment, zone=NY) == "07 Dec 03:35:09 EST"
    assert xtime(None) == "–"


def test_xdate_days_and_moments_past_midnight():
    assert xdate(dt.date(2026, 12, 7)) == "07 Dec 2026"
    assert xdate(dt.date(2026, 12, 7), "day") == "Mon 07 Dec 2026"
    # 20:00 UTC on the 6th is already the 7th in India.
    assert xdate(dt.datetime(2026, 12, 6, 20, 0, tzinfo=dt.UTC), zone=IST) == "07 Dec 2026"
    assert xtime(dt.date(2026, 12, 7)) == "07 Dec 2026"
    assert xdate(None) == "–"


def test_short_id():
    assert short_id("ABC123") == "ABC123"
    assert short_id("1234567890123456") == "…123456"
    assert short_id(None) == ""


def make_app(zone: str) -> Flask:
    """A bare Flask app with the project's static folder and the filters (app.py calls register the same way)."""
    application = Flask("formatting-test", root_path=str(ROOT))
    application.config["EXCHANGE_TIMEZONE"] = zone
    formatting.register(application)
    return application


def test_filters_read_exchange_timezone():
    template = "{{ m|xtime }} {{ d|xdate('day') }} {{ 1234567|inr }} {{ x|short_id }}"
    moment = dt.datetime(2026, 12, 7, 8, 35, 9, tzinfo=dt.UTC)
    with make_app("Asia/Kolkata").test_request_context("/"):
        text = render_template_string(template, m=moment, d=dt.date(2026, 12, 7), x="260112000001234")
    assert text == "07 Dec 14:05:09 IST Mon 07 Dec 2026 ₹12,34,567.00 …001234"
    with make_app("America/New_York").test_request_context("/"):
        assert render_template_string("{{ m|xtime('hm') }}", m=moment) == "03:35 EST"


def test_favicon_is_served():
    client = make_app("Asia/Kolkata").test_client()
    with client.get("/static/favicon.svg") as svg, client.get("/favicon.ico") as ico:
        assert svg.status_code == 200
        assert b"<svg" in svg.data
        assert ico.status_code == 200
        assert ico.mimetype == "image/svg+xml"
        assert ico.data == svg.data


def test_xtime_of_a_book_time_string():
    assert xtime("07-Dec-2026 14:05:09", zone=IST) == "07 Dec 14:05:09 IST"
    assert xtime("07-Dec-2026 14:05:09", "time", zone=IST) == "14:05:09 IST"
    assert xtime("not a time", zone=IST) == "not a time"
    assert xtime("", zone=IST) == "–"
