"""Log retention: `flask logs purge` and the daily purge job."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import func, select

from database import db
from database.apilog_db import ApiLog
from database.audit_db import AuditEvent
from database.latency_db import OrderLatency
from database.settings_db import Setting
from database.systemlog_db import SystemLog
from database.traffic_db import TrafficLog
from database.types import utcnow
from services.logs import retention as log_retention
from services.runtime import scheduler

MODELS = (ApiLog, TrafficLog, OrderLatency, SystemLog, AuditEvent)


def _row(model, created_at):
    common = {"created_at": created_at}
    if model is ApiLog:
        return ApiLog(api_type="ping", status_code=200, **common)
    if model is TrafficLog:
        return TrafficLog(method="GET", path="/", status_code=200, duration_ms=1.0, **common)
    if model is OrderLatency:
        return OrderLatency(broker="paper", endpoint="placeorder", mode="analyze", **common)
    if model is SystemLog:
        return SystemLog(level="WARNING", logger="algobridge", message="m", **common)
    return AuditEvent(actor="cli", action="x", **common)


def seed(old: int = 5, new: int = 2, days_old: int = 40) -> None:
    now = utcnow()
    for model in MODELS:
        db.session.add_all([_row(model, now - dt.timedelta(days=days_old, minutes=i)) for i in range(old)])
        db.session.add_all([_row(model, now - dt.timedelta(days=1, minutes=i)) for i in range(new)])
    db.session.commit()


def counts() -> dict[str, int]:
    db.session.rollback()
    return {m.__tablename__: db.session.scalar(select(func.count()).select_from(m)) for m in MODELS}


def test_purge_deletes_old_log_rows_in_batches_and_keeps_the_audit_trail(app, runner):
    seed()
    result = runner.invoke(args=["logs", "purge", "--older-than", "30d", "--batch-size", "2"])
    assert result.exit_code == 0, result.output
    assert counts() == {"api_logs": 2, "traffic_logs": 2, "order_latency": 2, "system_logs": 2, "audit_events": 7}
    assert "traffic_logs: 2 rows deleted so far" in result.output  # a line per batch
    assert "traffic_logs: 4 rows deleted so far" in result.output
    assert "traffic_logs: 5 deleted" in result.output
    assert "done: 20 rows deleted" in result.output


def test_purge_with_audit_flag_and_hours(app, runner):
    seed(days_old=2)
    result = runner.invoke(args=["logs", "purge", "--older-than", "36h", "--include-audit"])
    assert result.exit_code == 0, result.output
    assert set(counts().values()) == {2}


def test_purge_refuses_a_bad_age(app, runner):
    result = runner.invoke(args=["logs", "purge", "--older-than", "soon"])
    assert result.exit_code != 0
    assert "30d" in result.output


def test_purge_without_age_uses_the_retention_setting(app, runner, monkeypatch):
    seed(days_old=10)
    monkeypatch.setitem(app.config, "LOG_RETENTION_DAYS", 30)
    assert "done: 0 rows" in runner.invoke(args=["logs", "purge"]).output
    db.session.add(Setting(user_id=None, key=log_retention.RETENTION_KEY, value=7))
    db.session.commit()
    assert "done: 20 rows" in runner.invoke(args=["logs", "purge"]).output


@pytest.mark.parametrize("days", ["x", "1.5", "-3"])
def test_parse_age_rejects_nonsense(days):
    with pytest.raises(ValueError, match="not an age"):
        log_retention.parse_age(days)


def test_daily_purge_runs_once_a_day(app, monkeypatch):
    seed()
    monkeypatch.setitem(app.config, "LOG_RETENTION_DAYS", 30)
    now = utcnow()
    first = log_retention.purge_due(now=now)
    assert first == {"api_logs": 5, "traffic_logs": 5, "order_latency": 5, "system_logs": 5}
    seed()
    assert log_retention.purge_due(now=now) is None  # done today, by any worker
    assert counts()["traffic_logs"] == 9
    assert log_retention.purge_due(now=now + dt.timedelta(days=1))["traffic_logs"] == 5


def test_retention_zero_keeps_everything(app, monkeypatch):
    seed()
    monkeypatch.setitem(app.config, "LOG_RETENTION_DAYS", 0)
    assert log_retention.purge_due() is None
    assert counts()["traffic_logs"] == 7


def test_scheduler_runs_the_purge(app, monkeypatch):
    seed()
    monkeypatch.setitem(app.config, "LOG_RETENTION_DAYS", 30)
    scheduler.run_once(app, utcnow() - dt.timedelta(seconds=30))
    assert counts()["traffic_logs"] == 2
