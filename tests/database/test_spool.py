"""The log writer's spool after a crash: a torn or corrupt line is skipped with a warning and the
other rows are written; a replay interrupted part-way (the process died, or shut down) resumes at
the next start, every row written exactly once. Both backends (the `app` fixture)."""

from __future__ import annotations

import fcntl
import glob
import logging
import os
import subprocess
import sys
import time

from sqlalchemy import select
from sqlalchemy.exc import OperationalError

from database import db
from database.apilog_db import ApiLog
from database.types import utcnow
from database.writer import LogWriter
from tests.database.test_writer import TABLES

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _spool_rows(spool: str, numbers: range) -> str:
    """A spool file as a shutdown writes it, with a row for each number (api_logs, request {"n": i})."""
    rows = [("api_logs", {"api_type": "placeorder", "status_code": 200, "request": {"n": i}, "created_at": utcnow()})
            for i in numbers]
    LogWriter(db.engine, TABLES, spool_dir=spool)._spool(rows, "writer")  # never started: no thread
    (path,) = glob.glob(os.path.join(spool, "writer-*.jsonl"))
    return path


def _numbers() -> list[int]:
    """The "n" of every api_logs row, sorted: a row written twice shows up twice."""
    with db.engine.connect() as conn:
        return sorted(r["n"] for r in conn.execute(select(ApiLog.request)).scalars())


def _replay(spool: str, batch_size: int = 1000) -> LogWriter:
    writer = LogWriter(db.engine, TABLES, batch_size=batch_size, spool_dir=spool)
    writer.start()
    assert writer.flush(timeout=30)
    writer.shutdown()
    return writer


def _warnings(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "algobridge.writer" and r.levelno == logging.WARNING]


def test_a_torn_last_line_is_skipped_with_a_warning_and_the_other_rows_written(app, tmp_path, caplog):
    spool = str(tmp_path / "spool")
    path = _spool_rows(spool, range(5))
    with open(path, "ab") as fh:
        fh.write(b'{"table": "api_logs", "row": {"api_type": "plac')  # the crash came mid-write
    caplog.set_level(logging.WARNING, logger="algobridge.writer")
    caplog.clear()  # the warning of the spooling itself

    writer = _replay(spool)  # the start does not raise

    assert _numbers() == [0, 1, 2, 3, 4]
    assert writer.written == 5
    (warning,) = _warnings(caplog)
    assert os.path.basename(path) in warning
    assert "line 6" in warning
    assert glob.glob(os.path.join(spool, "*")) == []


def test_a_corrupt_line_in_the_middle_is_skipped_and_the_rows_around_it_written(app, tmp_path, caplog):
    spool = str(tmp_path / "spool")
    path = _spool_rows(spool, range(6))
    with open(path, "rb") as fh:
        lines = fh.read().splitlines(keepends=True)
    lines[2:2] = [b'{"table": "api_logs", "row": {"api_ty\xff\xfe garbage\n',  # line 3: torn and bad UTF-8
                  b'{"table": "no_such_table", "row": {}}\n',  # line 4: whole, but not a row we write
                  b"\n"]  # line 5: blank, skipped silently
    with open(path, "wb") as fh:
        fh.write(b"".join(lines))
    caplog.set_level(logging.WARNING, logger="algobridge.writer")
    caplog.clear()  # the warning of the spooling itself

    _replay(spool, batch_size=2)  # batches that straddle the bad lines

    assert _numbers() == [0, 1, 2, 3, 4, 5]
    warnings = _warnings(caplog)
    assert len(warnings) == 2
    assert all(os.path.basename(path) in w for w in warnings)
    assert "line 3 " in warnings[0]
    assert "line 4 " in warnings[1]
    assert glob.glob(os.path.join(spool, "*")) == []


CHILD = """
import os, sys
sys.path.insert(0, {root!r})
from sqlalchemy import create_engine
from database import Base, import_models, json_dumps
from database.writer import WRITTEN_TABLES, LogWriter

import_models()
url, spool = sys.argv[1], sys.argv[2]
engine = create_engine(url, json_serializer=json_dumps,
                       connect_args={{"timeout": 30}} if url.startswith("sqlite") else {{}})
calls = []
real_insert = LogWriter._insert

def insert_then_die(self, batch):
    calls.append(len(batch))
    if len(calls) == 2:
        os._exit(17)  # the process dies while it writes the second batch, the first committed
    real_insert(self, batch)

LogWriter._insert = insert_then_die
writer = LogWriter(engine, {{n: Base.metadata.tables[n] for n in WRITTEN_TABLES}}, batch_size=50, spool_dir=spool)
writer.start()
writer.flush(timeout=60)
sys.exit(0)  # not reached
"""


def test_a_replay_cut_short_by_the_process_dying_resumes_at_the_next_start_without_duplicates(app, tmp_path):
    spool = str(tmp_path / "spool")
    path = _spool_rows(spool, range(120))
    child = subprocess.run([sys.executable, "-c", CHILD.format(root=ROOT), app.config["DATABASE_URL"], spool],
                           cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert child.returncode == 17, child.stderr

    assert _numbers() == list(range(50))  # the first batch was committed before the death
    assert os.path.exists(path + ".replaying")  # the rest is still on disk, with how far it got
    assert os.path.exists(path + ".replaying.pos")

    writer = _replay(spool, batch_size=50)

    assert writer.written == 70
    assert _numbers() == list(range(120))  # every row, each once
    assert glob.glob(os.path.join(spool, "*")) == []


def test_a_replay_stopped_by_shutdown_with_the_database_away_resumes_at_the_next_start(app, tmp_path):
    spool = str(tmp_path / "spool")
    path = _spool_rows(spool, range(120))
    writer = LogWriter(db.engine, TABLES, batch_size=50, spool_dir=spool)
    real_insert = writer._insert
    calls = []

    def insert_then_fail(batch):
        calls.append(len(batch))
        if len(calls) > 1:  # the database goes away after the first batch
            raise OperationalError("INSERT INTO api_logs", {}, Exception("the server is gone"))
        real_insert(batch)

    writer._insert = insert_then_fail
    writer.start()
    deadline = time.monotonic() + 10
    while writer.retries == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    writer.shutdown(timeout=0.2)

    assert writer.written == 50
    assert writer.spooled == 0  # not spooled again: the rows stay in their file
    assert _numbers() == list(range(50))
    assert os.path.exists(path + ".replaying")
    assert os.path.exists(path + ".replaying.pos")

    _replay(spool, batch_size=50)

    assert _numbers() == list(range(120))
    assert glob.glob(os.path.join(spool, "*")) == []


def test_a_spool_file_another_process_is_replaying_is_left_to_it(app, tmp_path):
    spool = str(tmp_path / "spool")
    path = _spool_rows(spool, range(10))
    with open(path, "rb") as held:
        fcntl.flock(held, fcntl.LOCK_EX)  # another open of the file: conflicts like another process
        _replay(spool)
        assert _numbers() == []
        assert glob.glob(os.path.join(spool, "*")) == [path]
    _replay(spool)  # its replayer ended without finishing: the next start takes it up
    assert _numbers() == list(range(10))
    assert glob.glob(os.path.join(spool, "*")) == []


def test_a_marker_left_without_its_file_is_removed(app, tmp_path):
    """A replay that ended between removing its file and removing the file's marker."""
    spool = tmp_path / "spool"
    spool.mkdir()
    (spool / "writer-1-2.jsonl.replaying.pos").write_text('{"offset": 10, "line": 1}')
    (spool / "writer-1-2.jsonl.replaying.pos.tmp").write_text('{"offset": 20')
    _replay(str(spool))
    assert list(spool.iterdir()) == []
