"""User preferences and global settings changed from /settings.

Every change is one unit of work that writes the `settings` row, a new `config_versions` snapshot
of the effective configuration (the non-secret configuration, every global setting and every
user's settings) and an `audit_events` row, and commits once.

Keys:
  - `display_timezone` (per user): the zone times are shown in; default EXCHANGE_TIMEZONE;
  - `analyze_mode` (per user): set_analyze below (the same as the API's
    analyzer/toggle); this module opens the unit, adds the snapshot, and that use case joins it;
  - `log_retention_days` (global, admins): see services.logs.retention.
"""

from __future__ import annotations

import functools
import logging
import zoneinfo
from typing import Any

from flask import current_app
from sqlalchemy import func, select, text

from database import cache, db
from database.audit_db import AuditEvent
from database.settings_db import ConfigVersion, Setting
from database.unit import unit_of_work
from database.user_db import User

log = logging.getLogger("algobridge.settings")

SETTING_KEY = "analyze_mode"
CACHE_NS = "analyze_mode"

TIMEZONE_KEY = "display_timezone"
RETENTION_KEY = "log_retention_days"
MAX_RETENTION_DAYS = 3650
# Configuration worth a snapshot: what changes behaviour, never a secret or a credential.
SNAPSHOT_CONFIG = ("EXCHANGE_TIMEZONE", "SESSION_EXPIRY_TIME", "LOG_RETENTION_DAYS", "MIS_SQUAREOFF_TIME",
                   "ANALYZE_STARTING_FUNDS", "MIS_LEVERAGE", "NRML_LEVERAGE", "ANALYZE_MARKET_HOURS",
                   "ANALYZE_CHARGES", "ANALYZE_BROKERAGE_PER_ORDER", "ANALYZE_BROKERAGE_PERCENT",
                   "ANALYZE_BROKERAGE_DELIVERY", "API_RATE_LIMIT",
                   "ORDER_RATE_LIMIT", "SMART_ORDER_RATE_LIMIT", "WEBHOOK_RATE_LIMIT", "LOGIN_RATE_LIMIT",
                   "SCHEDULER_ENABLED", "TRUST_PROXY_HEADERS", "TRUSTED_PROXIES", "LOGIN_LOCKOUT_FAILURES",
                   "LOGIN_LOCKOUT_WINDOW", "LOGIN_LOCKOUT_MAX")
_VERSION_LOCK = 72150003


class SettingsError(ValueError):
    """A value that cannot be stored; the message says why."""


@functools.cache
def timezones() -> tuple[str, ...]:
    return tuple(sorted(z for z in zoneinfo.available_timezones() if "/" in z or z == "UTC"))


def default_timezone() -> str:
    return current_app.config.get("EXCHANGE_TIMEZONE") or "UTC"


def user_timezone(user_id: int | None) -> str:
    """The zone the user reads times in (one query: a page that needs it more than once keeps it)."""
    value = None
    if user_id is not None:
        value = db.session.scalar(select(Setting.value).where(Setting.user_id == user_id,
                                                               Setting.key == TIMEZONE_KEY))
    return value if isinstance(value, str) and value in timezones() else default_timezone()


def user_settings(user_id: int) -> dict[str, Any]:
    rows = db.session.execute(select(Setting.key, Setting.value).where(Setting.user_id == user_id))
    return {key: value for key, value in rows}


def global_value(key: str) -> Any:
    return db.session.scalar(select(Setting.value).where(Setting.user_id.is_(None), Setting.key == key))


def recent_versions(limit: int = 10) -> list[ConfigVersion]:
    """The latest snapshots of the configuration, newest first."""
    return list(db.session.scalars(select(ConfigVersion).order_by(ConfigVersion.version.desc()).limit(limit)))


def snapshot() -> dict[str, Any]:
    """The effective configuration as it stands in this unit of work."""
    db.session.flush()
    config = {k: str(current_app.config.get(k)) for k in SNAPSHOT_CONFIG}
    global_settings: dict[str, Any] = {}
    users: dict[str, dict[str, Any]] = {}
    for user_id, key, value in db.session.execute(select(Setting.user_id, Setting.key, Setting.value)):
        if user_id is None:
            global_settings[key] = value
        else:
            users.setdefault(str(user_id), {})[key] = value
    return {"config": config, "global": global_settings, "users": users}


def _lock_versions() -> None:
    """Serialise writers of config_versions (its version numbers are consecutive). Inside a unit opened
    with write=True, which takes SQLite's write lock; on PostgreSQL an advisory lock, held to its end."""
    if db.session.get_bind().dialect.name == "postgresql":
        db.session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _VERSION_LOCK})


def _new_version(user_id: int | None, comment: str) -> ConfigVersion:
    number = (db.session.scalar(select(func.max(ConfigVersion.version))) or 0) + 1
    row = ConfigVersion(version=number, created_by=user_id, snapshot=snapshot(), comment=comment[:500])
    db.session.add(row)
    return row


def _change(actor: Any, user_id: int | None, key: str, value: Any, default: Any, ip: str | None) -> bool:
    """Write one setting with its snapshot and audit row: one unit of work. False when nothing changed
    (nothing is written then)."""
    cond = Setting.user_id.is_(None) if user_id is None else Setting.user_id == user_id
    with unit_of_work(write=True):
        _lock_versions()
        row = db.session.scalars(select(Setting).where(cond, Setting.key == key)).first()
        before = None if row is None else row.value
        if before == value:
            return False
        if row is None:
            db.session.add(Setting(user_id=user_id, key=key, value=value, updated_by=actor.id))
        else:
            row.value = value
            row.updated_by = actor.id
        target = ("user", str(user_id)) if user_id is not None else ("settings", "global")
        db.session.add(AuditEvent(user_id=actor.id, actor=actor.username, action="settings.update",
                                  target_type=target[0], target_id=target[1], ip=ip,
                                  before={key: before if before is not None else default}, after={key: value}))
        version = _new_version(actor.id, f"{key} = {value}")
    log.info("%s set %s (config version %s)", actor.username, key, version.version)
    return True


def set_timezone(actor: Any, zone: str, *, ip: str | None = None) -> bool:
    if zone not in timezones():
        raise SettingsError(f"{zone!r} is not a time zone name (e.g. Asia/Kolkata, UTC)")
    return _change(actor, actor.id, TIMEZONE_KEY, zone, default_timezone(), ip)


def set_retention_days(actor: Any, days: int, *, ip: str | None = None) -> bool:
    if isinstance(days, bool) or not isinstance(days, int) or not 0 <= days <= MAX_RETENTION_DAYS:
        raise SettingsError(f"log retention must be a whole number of days from 0 to {MAX_RETENTION_DAYS}")
    return _change(actor, None, RETENTION_KEY, days, current_app.config.get("LOG_RETENTION_DAYS"), ip)


# -- the trading mode (analyze or live), per user ------------------------------------------------------
def is_analyze(user_id: int) -> bool:
    """The user's mode: analyze unless switched to live. Cached; switching invalidates."""
    entry = cache.get_or_load(CACHE_NS, str(user_id), lambda: {"analyze": _load_analyze(user_id)})
    return bool(entry["analyze"])


def _load_analyze(user_id: int) -> bool:
    value = db.session.scalar(select(Setting.value).where(Setting.user_id == user_id, Setting.key == SETTING_KEY))
    return True if value is None else bool(value)


def set_analyze(user_id: int, analyze: bool, *, ip: str | None = None) -> None:
    """Switch the user's mode; audited; one unit."""
    analyze = bool(analyze)
    with unit_of_work():
        row = db.session.scalars(select(Setting).where(Setting.user_id == user_id, Setting.key == SETTING_KEY)).first()
        before = True if row is None else bool(row.value)
        if row is None:
            db.session.add(Setting(user_id=user_id, key=SETTING_KEY, value=analyze, updated_by=user_id))
        else:
            row.value = analyze
            row.updated_by = user_id
        actor = db.session.scalar(select(User.username).where(User.id == user_id)) or "api"
        db.session.add(AuditEvent(user_id=user_id, actor=actor, action="analyzer.toggle", target_type="user",
                                  target_id=str(user_id), ip=ip, before={SETTING_KEY: before},
                                  after={SETTING_KEY: analyze}))
        db.session.flush()
        cache.invalidate(CACHE_NS, str(user_id), session=db.session)
    log.info("user %s switched to %s mode", user_id, "analyze" if analyze else "live")


def set_analyze_mode(actor: Any, analyze: bool, *, ip: str | None = None) -> bool:
    """The API's analyzer/toggle (set_analyze), plus the config snapshot, in one unit."""
    analyze = bool(analyze)
    if is_analyze(actor.id) == analyze:
        return False
    with unit_of_work(write=True):
        _lock_versions()
        row = _new_version(actor.id, f"analyze_mode = {analyze}")
        row.snapshot["users"].setdefault(str(actor.id), {})[SETTING_KEY] = analyze  # the state after
        set_analyze(actor.id, analyze, ip=ip)  # the setting and its audit row, joining this unit
    return True
