"""`/health`: can this process serve? The database (reachable, migrations at head), Redis (when
configured) and the background log writer (alive, queue depth, retries, rows set aside).

200 with `"status": "ok"` when every check passes; 503 with `"status": "error"` and a message naming
the failed checks otherwise, so a load balancer or an orchestrator can take the instance out of
rotation. Nothing here raises: an unreachable part is reported, with the error's class name only
(a message could carry a host or a user name).
"""

from __future__ import annotations

import glob
import os

from flask import Blueprint, current_app, jsonify
from sqlalchemy import text

from database import cache, db, schema
from database import writer as log_writer

health_bp = Blueprint("health", __name__)


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


def _redis() -> dict:
    two_level = cache.current()
    if not two_level.uses_redis:
        return {"ok": True, "configured": False}
    try:
        two_level.ping_redis()
        return {"ok": True, "configured": True}
    except Exception as exc:  # noqa: BLE001
        return {"ok": False, "configured": True, "error": type(exc).__name__}


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
    checks = {"database": database, "migrations": migrations, "redis": _redis(), "writer": _writer()}
    failed = [name for name, check in checks.items() if not check["ok"]]
    # Which process answered: behind a load balancer, or with several workers, says who is ill.
    if not failed:
        return jsonify(status="ok", pid=os.getpid(), checks=checks), 200
    message = "database unavailable, retry shortly" if not database["ok"] else f"failing: {', '.join(failed)}"
    return jsonify(status="error", message=message, pid=os.getpid(), checks=checks), 503
