"""`flask calendar list/add-holiday/add-session/add-open/remove`: the market calendar from the command line."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select

from database import db
from database.audit_db import AuditEvent
from services.market import calendar


def run(runner, *args: str):
    return runner.invoke(args=["calendar", *args])


def test_list_a_year(runner):
    result = run(runner, "list", "--year", "2026")
    assert result.exit_code == 0, result.output
    assert "market calendar 2026 (Asia/Kolkata); weekends closed" in result.output
    assert "2026-01-26 Mon  TRADING_HOLIDAY  Republic Day  [shipped]" in result.output
    assert "    closed: NSE, BSE, NFO, BFO, CDS, BCD, MCX, NCDEX" in result.output
    assert "    open:   MCX 17:00-23:55" in result.output  # Holi, US standard time
    assert "edits (0):" in result.output


def test_list_defaults_to_the_current_year(runner, monkeypatch):
    monkeypatch.setattr(calendar, "current_year", lambda: 2027)
    result = run(runner, "list")
    assert result.exit_code == 0, result.output
    assert "market calendar 2027" in result.output
    assert "no holiday or special session: the regular week" in result.output


def test_add_list_and_remove(runner):
    result = run(runner, "add-holiday", "2026-12-01", "--exchanges", "nse,BSE", "--description", "Bandh (test)")
    assert result.exit_code == 0, result.output
    holiday_id = calendar.entries(2026)[0]["id"]
    assert f"added #{holiday_id}: 2026-12-01 holiday NSE,BSE  Bandh (test)" in result.output

    result = run(runner, "add-session", "2026-11-08", "--exchanges", "NSE,BSE,MCX", "--start", "18:00",
                 "--end", "19:15", "--description", "Muhurat trading")
    assert result.exit_code == 0, result.output
    assert "special_session NSE,BSE,MCX 18:00-19:15  Muhurat trading" in result.output

    result = run(runner, "add-open", "2026-01-26", "--exchanges", "MCX", "--description", "MCX open (test)")
    assert result.exit_code == 0, result.output

    assert calendar.session("NSE", dt.date(2026, 12, 1)) is None
    assert calendar.session("MCX", dt.date(2026, 1, 26)) is not None

    listing = run(runner, "list", "--year", "2026").output
    assert "2026-12-01 Tue  TRADING_HOLIDAY  Bandh (test)  [edited]" in listing
    assert "2026-11-08 Sun  SPECIAL_SESSION  Muhurat trading  [edited]" in listing
    assert "Republic Day  [shipped+edited]" in listing
    assert "edits (3):" in listing
    assert f"  #{holiday_id} 2026-12-01 holiday NSE,BSE  Bandh (test)  (by cli, " in listing

    result = run(runner, "remove", str(holiday_id))
    assert result.exit_code == 0, result.output
    assert f"removed #{holiday_id}: 2026-12-01 holiday NSE,BSE" in result.output
    assert calendar.session("NSE", dt.date(2026, 12, 1)) is not None
    db.session.rollback()
    actions = [(e.action, e.actor) for e in db.session.scalars(select(AuditEvent).order_by(AuditEvent.id))]
    assert actions == [("calendar.add", "cli")] * 3 + [("calendar.remove", "cli")]


@pytest.mark.parametrize(("args", "message"), [
    (("add-holiday", "2026-13-01", "--exchanges", "NSE", "--description", "x"), "is not a date written YYYY-MM-DD"),
    (("add-holiday", "2026-12-01", "--exchanges", "NYSE", "--description", "x"), "'NYSE' is not one of"),
    (("add-holiday", "2026-12-01", "--exchanges", "NSE_INDEX", "--description", "x"), "NSE_INDEX follows NSE"),
    (("add-holiday", "2030-12-02", "--exchanges", "NSE", "--description", "x"),
     "no market calendar for 2030: the calendar covers 2026, 2027"),
    (("add-holiday", "2026-12-01", "--exchanges", "NSE"), "Missing option '--description'"),
    (("add-session", "2026-12-01", "--exchanges", "NSE", "--start", "25:00", "--end", "19:00", "--description", "x"),
     "start must be a time of day written HH:MM"),
    (("add-session", "2026-12-01", "--exchanges", "NSE", "--start", "19:00", "--end", "18:00", "--description", "x"),
     "needs a start and an end, the start first"),
    (("remove", "404"), "no calendar edit has id 404"),
    (("list", "--year", "2030"), "no market calendar for 2030"),
])
def test_mistakes_are_refused_with_a_message(runner, args, message):
    result = run(runner, *args)
    assert result.exit_code != 0
    assert message in result.output
    assert calendar.entries(2026) == []


@pytest.mark.parametrize("entry_id", ["0", "99999999999999999999999", "-3"])
def test_removing_an_edit_that_cannot_exist_is_a_clear_error(runner, entry_id):
    result = run(runner, "remove", "--", entry_id)
    assert result.exit_code != 0
    assert "Traceback" not in result.output
    assert "no calendar edit has id" in result.output or "Invalid value" in result.output
