"""A process forked after create_app() (gunicorn's workers under --preload or `python app.py`)
gets its own log writer and cache listener: its log rows land and invalidations reach it."""

from __future__ import annotations

import os
import time

from sqlalchemy import func, select

from database import cache, db, writer
from database.apilog_db import ApiLog


def test_a_forked_child_writes_logs_and_hears_invalidations(app):
    read_fd, write_fd = os.pipe()
    cache.set("fork", "k", "v")
    pid = os.fork()
    if pid == 0:  # the child
        status = 1
        try:
            with app.app_context():
                writer.enqueue(ApiLog, {"api_type": "forked", "status_code": 200})
                flushed = writer.current().flush(timeout=10)
                cache.set("fork", "k", "v")
                os.write(write_fd, b"ready\n")
                deadline = time.time() + 5
                while time.time() < deadline and cache.get("fork", "k") is not None:
                    time.sleep(0.01)
                gone = cache.get("fork", "k") is None
                os.write(write_fd, f"{flushed} {gone}\n".encode())
                status = 0
        finally:
            os._exit(status)
    with os.fdopen(read_fd) as pipe:
        assert pipe.readline().strip() == "ready"
        time.sleep(0.3)
        cache.invalidate("fork", "k")
        flushed, gone = pipe.readline().split()
    os.close(write_fd)
    _pid, status = os.waitpid(pid, 0)
    assert status == 0
    assert (flushed, gone) == ("True", "True")
    with db.engine.connect() as conn:
        n = conn.execute(select(func.count()).select_from(ApiLog).where(ApiLog.api_type == "forked")).scalar()
    assert n == 1
