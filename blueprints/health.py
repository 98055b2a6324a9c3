"""`/health`: can this process serve? The database (reachable, migrations at head, writable), the
instance folder (writable), Redis (when configured) and the background log writer (alive, queue
depth, retries, rows set aside).

200 with `"status": "ok"` when every check passes (with `"degraded": ["redis"]` while a configured Redis is
down: the API keeps serving without it); 503 with `"status": "error"` and a message naming
the failed checks otherwise, so a load balancer or an orchestrator can take the instance out of
rotation. Nothing here raises: an unreachable part is reported, with the error's class name only
(a message could carry a host or a user name); the write checks add the reason the database or the
operating system gave (`"attempt to write a readonly database"`, `"No space left on device"`),
never a path.

The write checks really write, so their result is reused for WRITE_CHECK_TTL seconds in each process:
a storm of probes costs one write check per process per second, not one per probe.
"""

from __future__ import annotations

import contextlib
import errno
import glob
import os
import sqlite3
import tempfile
import threading
import time

from flask import Blueprint, current_app, jsonify
from sqlalchemy import insert, text

from database import cache, db, schema
from database import writer as log_writer

health_bp = Blueprint("health", __name__)

WRITE_CHECK_TTL = 1.0  # seconds a process reuses its write checks' result
_LOCK_WAIT_MS = 250  # how long the database write check waits for a lock before it reports "busy"
_STATEMENT_MS = 1000  # PostgreSQL: the write check's statement_timeout
_PROBE_BYTES = b"\0" * 4096  # one filesystem block


def _database() -> tuple[dict, dict]:
    try:
        db.session.execute(text("SELECT 1"))
        current = schema.current_revision(db.engine)
        head = schema.head_revision()
        return ({"ok": True, "dialect": db.engine.dialect.name},
                {"ok": current == head, "current": current, "head": head})
    except Exception as exc:  # noqa: BLE001 - report, do not raise
        try:
            db.session.rollback()
        except Exception:  # noqa: BLE001, S110 - the connection is gone; the pool discards it
            pass
        return {"ok": False, "error": type(exc).__name__}, {"ok": False, "error": "database unreachable"}
    finally:
        db.session.remove()


def _folder_write(folder: str) -> dict:
    """Create, write, fsync and delete a small file in `folder`: what a full disk (ENOSPC), a
    read-only mount (EROFS) or lost permissions (EACCES) refuse. A few milliseconds (the fsync)."""
    path = None
    try:
        fd, path = tempfile.mkstemp(prefix=".health-", dir=folder)
        try:
            os.write(fd, _PROBE_BYTES)
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError as exc:
        code = errno.errorcode.get(exc.errno or 0, type(exc).__name__)
        return {"ok": False, "error": code, "reason": os.strerror(exc.errno) if exc.errno else code}
    finally:
        if path is not None:
            with contextlib.suppress(OSError):
                os.remove(path)
    return {"ok": True}


def _busy(orig: BaseException) -> bool:
    """The write lock was not ours within _LOCK_WAIT_MS: SQLITE_BUSY, or PostgreSQL's
    lock_not_available (lock_timeout) or query_canceled (statement_timeout)."""
    return (getattr(orig, "sqlite_errorcode", None) == sqlite3.SQLITE_BUSY
            or getattr(orig, "sqlstate", None) in ("55P03", "57014"))


def _reason(orig: BaseException) -> str | None:
    """The database's own words, without SQL, parameters or connection details."""
    diag = getattr(orig, "diag", None)  # psycopg: the primary message only
    if diag is not None:
        return diag.message_primary
    return str(orig) if isinstance(orig, sqlite3.Error) else None


def _sql_write(conn) -> None:
    """Insert a row in a transaction and roll it back.

    A real write on both databases: SQLite takes its write lock (BEGIN IMMEDIATE, held for tens of
    microseconds), PostgreSQL assigns a transaction id, may extend the table on disk, and refuses it
    on a read-only server or transaction. Nothing is left behind: the row is never committed, so no
    cache poller ever sees it (on PostgreSQL a dead tuple, vacuumed as usual). cache_generations is
    the table because it is tiny and in every schema; the namespace is one no cache uses, per process
    so that two processes do not queue on the same key. A commit would also prove that the commit
    itself reaches the disk, but a committed health row in a shared table is a side effect every
    second; the instance-folder check proves the bytes instead (where SQLite keeps its files).
    """
    with conn.begin() as tx:
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT set_config('lock_timeout', :lock, true), "
                              "set_config('statement_timeout', :stmt, true)"),
                         {"lock": f"{_LOCK_WAIT_MS}ms", "stmt": f"{_STATEMENT_MS}ms"})
        conn.execute(insert(cache.CacheGeneration.__table__).values(
            namespace=f"~health-{os.getpid()}", generation=0))
        tx.rollback()


def _database_write() -> dict:
    """Can the database write? Busy (a long writer holds the lock) is ok, with a note: the instance
    is healthy and its writes wait their turn; taking it out of rotation would not help."""
    try:
        with db.engine.connect() as conn:
            if conn.dialect.name != "sqlite":
                _sql_write(conn)
            else:
                # Wait at most _LOCK_WAIT_MS for the write lock (not the configured DB_BUSY_TIMEOUT),
                # then give the pooled connection its own timeout back.
                raw = conn.connection.driver_connection
                configured = raw.execute("PRAGMA busy_timeout").fetchone()[0]
                raw.execute(f"PRAGMA busy_timeout = {_LOCK_WAIT_MS}")
                try:
                    _sql_write(conn)
                finally:
                    raw.execute(f"PRAGMA busy_timeout = {int(configured)}")
    except Exception as exc:  # noqa: BLE001 - report, do not raise
        orig = getattr(exc, "orig", None) or exc
        if _busy(orig):
            return {"ok": True, "busy": True}
        return {"ok": False, "error": type(orig).__name__, "reason": _reason(orig)}
    url = db.engine.url
    if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
        # Its journal grows in its own folder; the instance-folder check covers the usual place.
        folder = os.path.dirname(os.path.abspath(url.database))
        if folder != os.path.abspath(current_app.instance_path):
            return _folder_write(folder)
    return {"ok": True}


class _Recent:
    """The last write checks of this process and when they ran; the lock makes a storm wait for
    the one check in progress (at most about _STATEMENT_MS) instead of starting its own."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.at = 0.0
        self.checks: dict | None = None


def _write_checks(database_ok: bool) -> dict:
    recent = current_app.extensions.setdefault("algobridge.health", _Recent())
    with recent.lock:
        if recent.checks is None or time.monotonic() - recent.at >= WRITE_CHECK_TTL:
            recent.checks = {
                "database_write": _database_write() if database_ok else {"ok": False, "error": "database unreachable"},
                "instance_write": _folder_write(current_app.instance_path),
            }
            recent.at = time.monotonic()
        return recent.checks


def _redis() -> dict:
    """Redis down is not a reason to take the instance out: the API keeps serving on in-process limits and
    the database's cache counters until it is back. It is reported (`ok` true, `degraded` true)."""
    two_level = cache.current()
    if not two_level.uses_redis:
        return {"ok": True, "configured": False}
    try:
        two_level.ping_redis()
        return {"ok": True, "configured": True}
    except Exception as exc:  # noqa: BLE001
        return {"ok": True, "configured": True, "degraded": True, "error": type(exc).__name__}


def _writer() -> dict:
    stats = log_writer.current().stats()
    spool = os.path.join(current_app.instance_path, "spool")
    return {
        "ok": stats["alive"] or stats["enqueued"] == 0,
        "alive": stats["alive"],
        "queued": stats["queued"],
        "capacity": stats["capacity"],
        "written": stats["written"],
        "retries": stats["retries"],
        "spooled": stats["spooled"],
        "dead_lettered": stats["dead_lettered"],
        # Rows the database refused, kept on disk by any process of this instance.
        "dead_letter_files": len(glob.glob(os.path.join(spool, "deadletter-*.jsonl"))),
        "last_error": stats["last_error"] is not None,
    }


@health_bp.get("/health")
def health():
    database, migrations = _database()
    checks = {"database": database, "migrations": migrations, **_write_checks(database["ok"]),
              "redis": _redis(), "writer": _writer()}
    failed = [name for name, check in checks.items() if not check["ok"]]
    # Which process answered: behind a load balancer, or with several workers, says who is ill.
    if not failed:
        degraded = [name for name, check in checks.items() if check.get("degraded")]
        extra = {"degraded": degraded} if degraded else {}
        return jsonify(status="ok", pid=os.getpid(), checks=checks, **extra), 200
    message = "database unavailable, retry shortly" if not database["ok"] else f"failing: {', '.join(failed)}"
    return jsonify(status="error", message=message, pid=os.getpid(), checks=checks), 503
