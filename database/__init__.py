"""The data layer: one SQLAlchemy engine per application, shared by every domain module.

`db` is the only Flask-SQLAlchemy object in the process; every model derives from `Base`, whose
metadata carries a naming convention so that every constraint has a name (Alembic batch mode on
SQLite, and downgrades, depend on it).  Engine options come from the configuration (see
`engine_options`); SQLite connections get WAL, synchronous=NORMAL, foreign keys and a busy timeout.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import sqlite3
import threading
from decimal import Decimal
from typing import Any

import orjson
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import MetaData, Table, event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase

NAMING_CONVENTION = {
    "pk": "pk_%(table_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


db = SQLAlchemy(model_class=Base)

# The order in which setup_environment() calls each module's init_db(): settings and users first,
# because later modules may read settings or refer to users.
DOMAIN_MODULES = (
    "settings_db",
    "user_db",
    "auth_db",
    "session_db",
    "symbol",
    "strategy_db",
    "order_db",
    "portfolio_db",
    "apilog_db",
    "traffic_db",
    "latency_db",
    "audit_db",
    "alert_db",
    "systemlog_db",
    "calendar_db",
    "history_db",
    "risk_db",
    "telegram_db",
)


def import_models() -> None:
    """Import every domain module so that all models are registered on `Base.metadata`."""
    for name in DOMAIN_MODULES:
        importlib.import_module(f"database.{name}")
    importlib.import_module("database.cache")


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def upsert(table: Table, dialect_name: str):
    """An INSERT of `table` that takes ON CONFLICT clauses, in the dialect's own construct (PostgreSQL
    and SQLite spell them alike, but each dialect has its own `insert`)."""
    return (postgresql.insert if dialect_name == "postgresql" else sqlite.insert)(table)


def json_dumps(value: Any) -> str:
    """JSON for JSON columns: orjson (several times faster than json on the log path), with
    Decimals as strings so money keeps its digits. What orjson refuses (an integer beyond 64
    bits, as a hostile request body may carry) goes through the standard encoder instead."""
    try:
        return orjson.dumps(value, default=_json_default, option=orjson.OPT_NON_STR_KEYS).decode()
    except TypeError:
        return json.dumps(value, default=str)


def is_sqlite_url(url: str) -> bool:
    return url.startswith("sqlite")


def engine_options(config: dict[str, Any]) -> dict[str, Any]:
    """SQLAlchemy engine options from the application config.

    Pool sizing does not apply to SQLite (SQLAlchemy picks its own pool for a file database and
    rejects some of these arguments), so they are only passed for server databases.
    """
    options: dict[str, Any] = {"pool_pre_ping": True, "json_serializer": json_dumps}
    if is_sqlite_url(config["SQLALCHEMY_DATABASE_URI"]):
        options["connect_args"] = {"timeout": config["DB_BUSY_TIMEOUT"], "check_same_thread": False}
    else:
        options.update(
            pool_size=config["DB_POOL_SIZE"],
            max_overflow=config["DB_MAX_OVERFLOW"],
            pool_timeout=config["DB_POOL_TIMEOUT"],
            pool_recycle=config["DB_POOL_RECYCLE"],
        )
        if config["SQLALCHEMY_DATABASE_URI"].startswith("postgresql"):
            # Fail fast when the server is down instead of hanging a request on TCP (the request
            # answers 503); keepalives notice a server that vanished without closing the socket.
            options["connect_args"] = {"connect_timeout": config["DB_CONNECT_TIMEOUT"], "keepalives": 1,
                                       "keepalives_idle": 30, "keepalives_interval": 10, "keepalives_count": 3}
    return options


@event.listens_for(Engine, "connect")
def _sqlite_on_connect(dbapi_connection: Any, _record: Any) -> None:
    if not isinstance(dbapi_connection, sqlite3.Connection):
        return
    # Hand transaction control to SQLAlchemy (see _sqlite_on_begin): pysqlite's own implicit
    # BEGIN breaks SAVEPOINT and leaves SELECTs outside the transaction.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    try:
        # busy_timeout itself comes from the driver's `timeout` connect argument (engine_options).
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
    finally:
        cursor.close()


_SQLITE_WRITES = ("INSERT", "UPDATE", "DELETE", "REPLACE", "SAVEPOINT", "CREATE", "DROP", "ALTER")


@event.listens_for(Engine, "before_cursor_execute")
def _sqlite_before_execute(conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
    """SQLite: open the transaction with BEGIN IMMEDIATE right before the first write.

    In WAL mode a transaction that read first and writes later fails at once with SQLITE_BUSY if
    another connection (the log writer, another thread) committed in between: its snapshot is
    stale and busy_timeout does not apply. Starting the transaction at the first write, with the
    write lock, makes it wait its turn instead. Reads before that run in autocommit, each on a
    fresh snapshot; a use case that must read and write atomically opens its unit with
    `unit_of_work(write=True)` (database.unit), which calls write_unit() first.
    """
    if conn.dialect.name != "sqlite":
        return
    raw = conn.connection.driver_connection
    if raw.in_transaction:
        return
    if statement.lstrip()[:9].upper().startswith(_SQLITE_WRITES):
        raw.execute("BEGIN IMMEDIATE")


_SQLITE_TURN = threading.Lock()


def _new_turn_after_fork() -> None:
    global _SQLITE_TURN
    _SQLITE_TURN = threading.Lock()  # a fork may happen while another thread holds it


os.register_at_fork(after_in_child=_new_turn_after_fork)


@contextlib.contextmanager
def sqlite_write_turn(dialect_name: str):
    """Queue the threads of this process that write SQLite (the log writer, paper orders) on one lock.

    SQLite has one writer at a time, and a connection waiting for the write lock polls for it with
    sleeps that grow to 100 ms (busy_timeout), so the lock often sits free while the waiters sleep.
    Threads queued here are woken the moment the one before them lets go. The caller opens and ends
    its transaction inside. Other processes still meet at SQLite's own lock. No-op on PostgreSQL,
    where writers meet at row locks.
    """
    if dialect_name != "sqlite":
        yield
        return
    with _SQLITE_TURN:
        yield


def write_unit(session: Any = None) -> None:
    """Declare that the current unit of work will write, before it reads what it will change.

    On SQLite it takes the write lock now (BEGIN IMMEDIATE), so what the unit reads next cannot
    change under it and its first write cannot fail on a stale snapshot. Earlier reads of the unit
    (e.g. loading the signed-in user) ran in autocommit, so this works at any point before the
    unit's first write. On PostgreSQL it does nothing: use row or advisory locks there. Use cases
    reach it through `database.unit.unit_of_work(write=True)`.
    """
    session = session or db.session()
    connection = session.connection()
    if connection.dialect.name != "sqlite":
        return
    raw = connection.connection.driver_connection
    if not raw.in_transaction:
        raw.execute("BEGIN IMMEDIATE")
