"""`/health`: is this instance able to serve? Database, migrations at head, Redis, log writer."""

from __future__ import annotations

from flask import Blueprint, current_app, jsonify
from sqlalchemy import text

from database import db, schema
from database import writer as log_writer

health_bp = Blueprint("health", __name__)


@health_bp.get("/health")
def health():
    checks: dict[str, dict] = {}
    ok = True
    try:
        db.session.execute(text("SELECT 1"))
        current = schema.current_revision(db.engine)
        head = schema.head_revision()
        checks["database"] = {"ok": True, "dialect": db.engine.dialect.name}
        checks["migrations"] = {"ok": current == head, "current": current, "head": head}
        ok = ok and current == head
    except Exception as exc:  # noqa: BLE001 - report, do not raise
        db.session.rollback()
        checks["database"] = {"ok": False, "error": type(exc).__name__}
        ok = False
    finally:
        db.session.remove()
    cache = current_app.extensions["algobridge.cache"]
    if cache._redis is not None:
        try:
            cache._redis.ping()
            checks["redis"] = {"ok": True}
        except Exception as exc:  # noqa: BLE001
            checks["redis"] = {"ok": False, "error": type(exc).__name__}
            ok = False
    else:
        checks["redis"] = {"ok": True, "configured": False}
    stats = log_writer.current().stats()
    checks["writer"] = {"ok": stats["alive"] or stats["enqueued"] == 0, "queued": stats["queued"],
                        "capacity": stats["capacity"], "written": stats["written"]}
    ok = ok and checks["writer"]["ok"]
    return jsonify(status="ok" if ok else "error", checks=checks), 200 if ok else 503
