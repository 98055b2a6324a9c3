"""Reading the logs for the log pages: keyset pages, filters, latency percentiles.

Every table pages newest first by id with a keyset cursor (`WHERE id < :before ORDER BY id DESC
LIMIT n`), never OFFSET: a page deep in a million rows costs what the first page costs. The filters
that narrow by user, status, client, level, broker or endpoint have a (column, id) index, so the
read stays an index range read. Filters that cannot be indexed (text in a JSON body, a path
fragment) read newest first until the page is full: they are as fast as matches are frequent.

Latency percentiles are computed in SQL over a bounded window, the most recent LATENCY_WINDOW
order calls that match the filters (the page says so): PostgreSQL's percentile_disc, and on
SQLite the same nearest-rank definition with row_number() over the window. Nothing loads the
window into Python.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Float, Text, case, cast, func, literal, or_, select, type_coerce
from sqlalchemy.dialects import postgresql
from sqlalchemy.sql import Select

from database import db
from database.alert_db import Alert
from database.apilog_db import ApiLog
from database.audit_db import AuditEvent
from database.latency_db import OrderLatency
from database.systemlog_db import SystemLog
from database.traffic_db import TrafficLog
from database.types import utcnow
from database.unit import unit_of_work

PAGE_SIZE = 50
LATENCY_WINDOW = 20_000  # about a second of SQL on SQLite, a fraction on PostgreSQL
TIMELINE_POINTS = 500
PERCENTILES = (50, 90, 95, 99)
# Histogram bucket upper edges in ms (the last bucket is open).
HISTOGRAM_EDGES = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000)


@dataclass
class Page:
    rows: list[Any]
    next_before: int | None  # the cursor of the next (older) page, None at the end
    before: int | None  # the cursor this page was read with


# -- filters, parsed strictly: None when empty, ValueError (its message says what is expected) when bad --
MAX_ID = 2**31 - 1  # the id columns are INTEGER: 32 bits on PostgreSQL, which refuses a larger operand
STATUS_CLASSES = ("ok", "error", "1xx", "2xx", "3xx", "4xx", "5xx")
_DAY = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def parse_cursor(value: str | None) -> int | None:
    """A row id (the `before` cursor, a user id): ASCII digits, 1 to MAX_ID."""
    if not value:
        return None
    if not (value.isascii() and value.isdigit() and len(value) <= 12 and 0 < int(value) <= MAX_ID):
        raise ValueError(f"must be a whole number from 1 to {MAX_ID}")
    return int(value)


def parse_day(value: str | None) -> dt.date | None:
    """A calendar day as YYYY-MM-DD (what a date input sends), any year from 0001 to 9999."""
    if not value:
        return None
    try:
        if _DAY.fullmatch(value):
            return dt.date.fromisoformat(value)
    except ValueError:
        pass
    raise ValueError("must be a date as YYYY-MM-DD, such as 2025-01-31")


def parse_status(value: str | None) -> str | None:
    """"ok" (< 400), "error" (>= 400), "1xx".."5xx" (any case), or an exact code from 100 to 599."""
    value = (value or "").strip().lower()
    if not value:
        return None
    if value in STATUS_CLASSES or (value.isascii() and value.isdigit() and len(value) == 3
                                   and 100 <= int(value) <= 599):
        return value
    raise ValueError("must be ok, error, 1xx to 5xx, or a status code from 100 to 599")


def _rows_of(model: Any) -> Select:
    return select(*model.__table__.columns)


def keyset(stmt: Select, id_col: Any, before: int | None, limit: int = PAGE_SIZE) -> Page:
    if before is not None:
        stmt = stmt.where(id_col < before)
    # Core rows, not ORM entities: a page is read-only, and skipping the identity map halves its cost.
    rows = db.session.execute(stmt.order_by(id_col.desc()).limit(limit + 1)).all()
    next_before = rows[limit - 1].id if len(rows) > limit else None
    return Page(rows[:limit], next_before, before)


def day_range(start: dt.date | None, end: dt.date | None, zone: str) -> tuple[dt.datetime | None, dt.datetime | None]:
    """[start 00:00, end+1 00:00) in the user's zone, as aware UTC datetimes. A bound that falls off
    the calendar (the day after 9999-12-31, or midnight of 0001-01-01 east of UTC) is no bound."""
    tz = ZoneInfo(zone)

    def midnight(day: dt.date, days: int = 0) -> dt.datetime | None:
        try:
            return dt.datetime.combine(day + dt.timedelta(days=days), dt.time(), tz).astimezone(dt.UTC)
        except OverflowError:
            return None

    return (midnight(start) if start else None), (midnight(end, 1) if end else None)


def _dates(stmt: Select, col: Any, lo: dt.datetime | None, hi: dt.datetime | None) -> Select:
    if lo is not None:
        stmt = stmt.where(col >= lo)
    if hi is not None:
        stmt = stmt.where(col < hi)
    return stmt


def _status(stmt: Select, col: Any, status: str | None) -> Select:
    """See parse_status (a bad value raises its ValueError)."""
    status = parse_status(status)
    if not status:
        return stmt
    if status == "ok":
        return stmt.where(col < 400)
    if status == "error":
        return stmt.where(col >= 400)
    if status.endswith("xx"):
        base = int(status[0]) * 100
        return stmt.where(col >= base, col < base + 100)
    return stmt.where(col == int(status))


def _own(stmt: Select, col: Any, user_id: int | None) -> Select:
    """user_id None: every user's rows (admins)."""
    return stmt if user_id is None else stmt.where(col == user_id)


# -- pages -----------------------------------------------------------------------------------------
def api_logs(user_id: int | None, *, before: int | None = None, api_type: str | None = None,
             status: str | None = None, lo: dt.datetime | None = None, hi: dt.datetime | None = None,
             q: str | None = None, limit: int = PAGE_SIZE) -> Page:
    stmt = _own(_rows_of(ApiLog), ApiLog.user_id, user_id)
    if api_type:
        stmt = stmt.where(ApiLog.api_type == api_type)
    stmt = _dates(_status(stmt, ApiLog.status_code, status), ApiLog.created_at, lo, hi)
    if q:
        pattern = f"%{_escape(q.lower())}%"
        stmt = stmt.where(or_(func.lower(cast(ApiLog.request, Text)).like(pattern, escape="\\"),
                              func.lower(cast(ApiLog.response, Text)).like(pattern, escape="\\")))
    return keyset(stmt, ApiLog.id, before, limit)


def traffic(user_id: int | None, *, before: int | None = None, status: str | None = None,
            method: str | None = None, path: str | None = None, ip: str | None = None,
            for_user: int | None = None, lo: dt.datetime | None = None, hi: dt.datetime | None = None,
            limit: int = PAGE_SIZE) -> Page:
    stmt = _own(_rows_of(TrafficLog), TrafficLog.user_id, user_id)
    if for_user is not None:
        stmt = stmt.where(TrafficLog.user_id == for_user)
    if method:
        stmt = stmt.where(TrafficLog.method == method.upper())
    if path:
        stmt = stmt.where(TrafficLog.path.like(f"%{_escape(path)}%", escape="\\"))
    if ip:
        stmt = stmt.where(TrafficLog.client_ip == ip)
    stmt = _dates(_status(stmt, TrafficLog.status_code, status), TrafficLog.created_at, lo, hi)
    return keyset(stmt, TrafficLog.id, before, limit)


def system_logs(*, before: int | None = None, level: str | None = None, q: str | None = None,
                limit: int = PAGE_SIZE) -> Page:
    stmt = _rows_of(SystemLog)
    if level:
        stmt = stmt.where(SystemLog.level == level.upper())
    if q:
        stmt = stmt.where(func.lower(SystemLog.message).like(f"%{_escape(q.lower())}%", escape="\\"))
    return keyset(stmt, SystemLog.id, before, limit)


def alerts(user_id: int | None, *, before: int | None = None, state: str | None = None,
           kind: str | None = None, limit: int = PAGE_SIZE) -> Page:
    stmt = _own(_rows_of(Alert), Alert.user_id, user_id)
    if kind:
        stmt = stmt.where(Alert.kind == kind)
    if state == "open":
        stmt = stmt.where(Alert.is_acknowledged.is_(False))
    elif state == "acknowledged":
        stmt = stmt.where(Alert.is_acknowledged.is_(True))
    return keyset(stmt, Alert.id, before, limit)


def acknowledge_alert(alert_id: int, actor_id: int, *, admin: bool) -> Alert | None:
    """Mark an alert acknowledged (idempotent); None when it is not there or not the actor's. One unit."""
    with unit_of_work():
        alert = db.session.get(Alert, alert_id)
        if alert is None or (not admin and alert.user_id != actor_id):
            return None
        if not alert.is_acknowledged:
            alert.is_acknowledged = True
            alert.acknowledged_at = utcnow()
            alert.acknowledged_by = actor_id
    return alert


def audit(user_id: int | None, *, before: int | None = None, action: str | None = None,
          limit: int = PAGE_SIZE) -> Page:
    stmt = _own(_rows_of(AuditEvent), AuditEvent.user_id, user_id)
    if action:
        stmt = stmt.where(AuditEvent.action.like(f"{_escape(action)}%", escape="\\"))
    return keyset(stmt, AuditEvent.id, before, limit)


def latency_rows(user_id: int | None, *, before: int | None = None, broker: str | None = None,
                 endpoint: str | None = None, limit: int = PAGE_SIZE) -> Page:
    return keyset(_latency_filter(_rows_of(OrderLatency), user_id, broker, endpoint, None, None),
                  OrderLatency.id, before, limit)


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


# -- latency statistics ----------------------------------------------------------------------------
def _latency_filter(stmt: Select, user_id: int | None, broker: str | None, endpoint: str | None,
                    lo: dt.datetime | None, hi: dt.datetime | None) -> Select:
    stmt = _own(stmt, OrderLatency.user_id, user_id)
    if broker:
        stmt = stmt.where(OrderLatency.broker == broker)
    if endpoint:
        stmt = stmt.where(OrderLatency.endpoint == endpoint)
    return _dates(stmt, OrderLatency.created_at, lo, hi)


def _window(user_id, broker, endpoint, lo, hi, window: int):
    stmt = select(OrderLatency.id, OrderLatency.created_at, OrderLatency.total_ms, OrderLatency.broker,
                  OrderLatency.endpoint)
    stmt = _latency_filter(stmt, user_id, broker, endpoint, lo, hi)
    return stmt.order_by(OrderLatency.id.desc()).limit(window).subquery("w")


def _percentile_rows(w: Any, group: str | None) -> list[dict[str, Any]]:
    grp = w.c[group] if group else None
    dialect = db.session.get_bind().dialect.name
    if dialect == "postgresql":
        # One sort for every percentile: percentile_disc over an array of fractions returns an array.
        fractions = postgresql.array([literal(p / 100, Float) for p in PERCENTILES])
        picks = type_coerce(func.percentile_disc(fractions).within_group(w.c.total_ms), postgresql.ARRAY(Float))
        cols = [func.count().label("n"), func.avg(w.c.total_ms).label("mean"), func.max(w.c.total_ms).label("max")]
        cols.append(picks.label("picks"))
        stmt = select(*([grp.label("grp")] if grp is not None else []), *cols)
        if grp is not None:
            stmt = stmt.group_by(grp)
    else:
        part = [grp] if grp is not None else None
        ranked = select(
            *([grp.label("grp")] if grp is not None else []),
            w.c.total_ms,
            func.row_number().over(partition_by=part, order_by=w.c.total_ms).label("rn"),
            func.count().over(partition_by=part).label("n"),
        ).subquery("r")
        # nearest rank: the value at rank ceil(p * n / 100), in integer arithmetic
        cols = [ranked.c.n, func.avg(ranked.c.total_ms).label("mean"), func.max(ranked.c.total_ms).label("max")]
        cols += [func.max(case((ranked.c.rn == (p * ranked.c.n + 99) // 100, ranked.c.total_ms))).label(f"p{p}")
                 for p in PERCENTILES]
        stmt = select(*([ranked.c.grp] if grp is not None else []), *cols)
        stmt = stmt.group_by(*([ranked.c.grp] if grp is not None else []), ranked.c.n)
    out = []
    for row in db.session.execute(stmt).mappings():
        if not row["n"]:
            continue
        item = {"name": row.get("grp"), "count": int(row["n"]), "mean": float(row["mean"]),
                "max": float(row["max"])}
        values = row["picks"] if "picks" in row else [row[f"p{p}"] for p in PERCENTILES]
        item.update({f"p{p}": float(v) for p, v in zip(PERCENTILES, values, strict=True)})
        out.append(item)
    out.sort(key=lambda r: (-r["count"], str(r["name"])))
    return out


def latency_stats(user_id: int | None, *, broker: str | None = None, endpoint: str | None = None,
                  lo: dt.datetime | None = None, hi: dt.datetime | None = None,
                  window: int = LATENCY_WINDOW) -> dict[str, Any]:
    """Percentiles overall, per broker and per endpoint, a histogram and a timeline, over the most
    recent `window` order calls matching the filters."""
    w = _window(user_id, broker, endpoint, lo, hi, window)
    overall = _percentile_rows(w, None)
    bucket = case(*[(w.c.total_ms < edge, i) for i, edge in enumerate(HISTOGRAM_EDGES)],
                  else_=len(HISTOGRAM_EDGES))
    counts = {b: n for b, n in db.session.execute(select(bucket, func.count()).group_by(bucket))}
    labels, lower = [], 0
    for edge in HISTOGRAM_EDGES:
        labels.append(f"{lower}–{edge} ms")
        lower = edge
    labels.append(f"≥ {lower} ms")
    recent = select(w.c.created_at, w.c.total_ms, w.c.broker).order_by(w.c.id.desc()).limit(TIMELINE_POINTS)
    timeline = list(reversed(db.session.execute(recent).all()))
    return {
        "window": window,
        "overall": overall[0] if overall else None,
        "by_broker": _percentile_rows(w, "broker"),
        "by_endpoint": _percentile_rows(w, "endpoint"),
        "histogram": {"labels": labels, "counts": [int(counts.get(i, 0)) for i in range(len(labels))]},
        "timeline": [{"at": r.created_at, "ms": float(r.total_ms), "broker": r.broker} for r in timeline],
    }
