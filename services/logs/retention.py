"""Log retention: delete log rows older than the retention period, in batches.

Purged: api_logs, traffic_logs, order_latency, system_logs; audit_events only when asked (the audit
trail is kept forever by default). Used by `flask logs purge --older-than 30d` and by the daily job
of services.runtime.scheduler (`purge_due`).

The retention period is the global setting `log_retention_days` (changed by an admin on /settings),
or LOG_RETENTION_DAYS when it was never set; 0 keeps logs forever.

Each batch is its own short unit of work (`DELETE ... WHERE id IN (SELECT id ... LIMIT n)`), so a
purge of millions of rows never holds a lock for long; the log writer's inserts go on between
batches. Deleting by a cutoff is idempotent: two workers purging at once delete each row once.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from collections.abc import Callable

from flask import current_app
from sqlalchemy import delete, select, text
from sqlalchemy.exc import IntegrityError

from database import db
from database.apilog_db import ApiLog
from database.audit_db import AuditEvent
from database.latency_db import OrderLatency
from database.settings_db import Setting
from database.systemlog_db import SystemLog
from database.traffic_db import TrafficLog
from database.types import utcnow
from database.unit import unit_of_work

log = logging.getLogger("algobridge.retention")

LOG_MODELS = (ApiLog, TrafficLog, OrderLatency, SystemLog)
RETENTION_KEY = "log_retention_days"
LAST_PURGE_KEY = "log_purge_last_day"
BATCH_SIZE = 10_000
_ADVISORY_KEY = 72150002
_AGE = re.compile(r"^\s*(\d+)\s*([dhw]?)\s*$", re.IGNORECASE)


def parse_age(value: str) -> dt.timedelta:
    """"30d", "12h", "2w" or a plain number of days -> a timedelta; ValueError otherwise."""
    match = _AGE.match(value or "")
    if not match:
        raise ValueError(f"{value!r} is not an age: use e.g. 30d, 12h or 2w")
    n, unit = int(match.group(1)), (match.group(2) or "d").lower()
    return {"d": dt.timedelta(days=n), "h": dt.timedelta(hours=n), "w": dt.timedelta(weeks=n)}[unit]


def retention_days() -> int:
    """The effective retention in days (0 = keep forever): the global setting, else the config."""
    value = db.session.scalar(select(Setting.value).where(Setting.user_id.is_(None), Setting.key == RETENTION_KEY))
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    return int(current_app.config.get("LOG_RETENTION_DAYS", 30))


def purge(older_than: dt.timedelta, *, include_audit: bool = False, batch_size: int = BATCH_SIZE,
          progress: Callable[[str, int], None] | None = None, now: dt.datetime | None = None) -> dict[str, int]:
    """Delete rows created before now - `older_than`; returns the rows deleted per table.
    `progress(table, deleted_so_far)` is called after every batch. Each batch is a unit of its own:
    call it outside any unit."""
    cutoff = (now or utcnow()) - older_than
    models = LOG_MODELS + ((AuditEvent,) if include_audit else ())
    deleted: dict[str, int] = {}
    for model in models:
        table = model.__table__
        total = 0
        while True:
            ids = (select(table.c.id).where(table.c.created_at < cutoff).order_by(table.c.created_at)
                   .limit(batch_size))
            with unit_of_work() as session:
                n = session.execute(delete(table).where(table.c.id.in_(ids.scalar_subquery()))).rowcount
            total += n
            if progress is not None and n:
                progress(table.name, total)
            if n < batch_size:
                break
        deleted[table.name] = total
    return deleted


def purge_due(now: dt.datetime | None = None) -> dict[str, int] | None:
    """The daily purge: at most once per UTC day across every worker and host; None when it was
    not this call's turn (already done today, another worker at it, or retention is 0)."""
    now = now or utcnow()
    days = retention_days()
    if days <= 0:
        return None
    if not _claim_day(now.date().isoformat()):
        return None
    deleted = purge(dt.timedelta(days=days), now=now)
    if any(deleted.values()):
        log.info("purged logs older than %d days: %s", days, deleted)
    return deleted


def _claim_day(today: str) -> bool:
    """Mark `today` as purged, in a unit of its own; False when it already was (or another worker is
    at it)."""
    try:
        # SQLite: BEGIN IMMEDIATE, one worker at a time from here to the commit.
        with unit_of_work(write=True) as session:
            if session.get_bind().dialect.name == "postgresql":
                got = session.execute(text("SELECT pg_try_advisory_xact_lock(:k)"), {"k": _ADVISORY_KEY}).scalar()
                if not got:
                    return False
            row = session.scalars(
                select(Setting).where(Setting.user_id.is_(None), Setting.key == LAST_PURGE_KEY)
            ).first()
            if row is not None and row.value == today:
                return False
            if row is None:
                session.add(Setting(user_id=None, key=LAST_PURGE_KEY, value=today))
            else:
                row.value = today
    except IntegrityError:  # another worker inserted the marker first
        return False
    return True
