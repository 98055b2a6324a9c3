"""The background writer for high-volume rows (API, traffic, latency and system logs).

Requests hand rows to `enqueue()` and go on; one thread per process inserts them in batches on its
own connection. The guarantees:
  - nothing is dropped: the queue is bounded and `enqueue()` blocks when it is full (back-pressure);
  - a database error never reaches the caller: the batch is retried with backoff until it is
    written; a row the database refuses outright (a constraint) is set aside in a dead-letter file,
    not lost;
  - at shutdown the queue is flushed; rows that still cannot be written within
    WRITER_SHUTDOWN_TIMEOUT are spooled to `<instance>/spool/` and replayed at the next start.
"""

from __future__ import annotations

import atexit
import datetime as dt
import glob
import json
import logging
import os
import queue
import threading
import time
from decimal import Decimal
from typing import Any

from flask import current_app, has_app_context
from sqlalchemy import Table
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import (
    DataError,
    IntegrityError,
    InterfaceError,
    OperationalError,
    ProgrammingError,
    SQLAlchemyError,
)
from sqlalchemy.sql import sqltypes

from database import Base, db, sqlite_write_turn

log = logging.getLogger("algobridge.writer")

_STOP = object()

#: What a NUL character becomes in a row written to PostgreSQL (see the module docstring).
NUL_MARK = "\ufffd"


def _without_nul(value: Any) -> Any:
    """`value` with NUL replaced by NUL_MARK in every string, recursively through dicts and lists."""
    if isinstance(value, str):
        return value.replace("\x00", NUL_MARK)
    if isinstance(value, dict):
        return {_without_nul(k): _without_nul(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_without_nul(v) for v in value]
    return value


def _text_guard(proc: Any) -> Any:
    """A bind processor for a PostgreSQL text column that replaces NUL first (a cheap `in` test)."""

    def process(value: Any) -> Any:
        if isinstance(value, str) and "\x00" in value:
            value = value.replace("\x00", NUL_MARK)
        return value if proc is None else proc(value)

    return process


def _json_guard(proc: Any, serializer: Any) -> Any:
    """A bind processor for a PostgreSQL JSON column whose encoded form never holds "\\u0000".

    The encoded text is searched for the escape; only when it is there is the value walked
    (`_without_nul`) and encoded again. psycopg 3 encodes late (the processor returns a Json wrapper
    whose `dumps` runs at adaptation), so its `dumps` is wrapped; a driver that gets text is checked
    at once."""
    if proc is None:  # the value is handed to the driver as it is (no such driver today)
        return None

    def process(value: Any) -> Any:
        out = proc(value)
        if isinstance(out, str):
            return proc(_without_nul(value)) if "\\u0000" in out else out
        if out is not None and hasattr(out, "obj") and hasattr(out, "dumps"):
            # None means the connection's dumps: the engine's json_serializer (orjson, Decimals
            # as strings), never the stdlib's, which is slower and refuses Decimal and datetime.
            dumps = out.dumps or serializer or json.dumps

            def clean_dumps(obj: Any) -> Any:
                text = dumps(obj)
                probe = text if isinstance(text, str) else bytes(text).decode("utf-8", "replace")
                return dumps(_without_nul(obj)) if "\\u0000" in probe else text

            out.dumps = clean_dumps
        return out

    return process


def _encode(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return {"__dt__": value.isoformat()}
    if isinstance(value, dt.date):
        return {"__date__": value.isoformat()}
    if isinstance(value, Decimal):
        return {"__dec__": str(value)}
    return str(value)  # spooling must never fail: keep the row, as text


def _decode(obj: dict[str, Any]) -> Any:
    if len(obj) == 1:
        if "__dt__" in obj:
            return dt.datetime.fromisoformat(obj["__dt__"])
        if "__date__" in obj:
            return dt.date.fromisoformat(obj["__date__"])
        if "__dec__" in obj:
            return Decimal(obj["__dec__"])
    return obj


class LogWriter:
    def __init__(self, engine: Engine, tables: dict[str, Table], *, queue_size: int = 50000,
                 batch_size: int = 1000, shutdown_timeout: float = 30.0, spool_dir: str | None = None,
                 linger: float = 0.0):
        self.engine = engine
        self.tables = tables  # name -> Table, the tables this writer may write
        self.queue_size = queue_size
        self.batch_size = batch_size
        self.linger = linger  # seconds the thread waits after a first row for more to join its batch
        self._hurry = threading.Event()  # set by flush() and shutdown(): write now, do not linger
        self.shutdown_timeout = shutdown_timeout
        self.spool_dir = spool_dir
        self._queue: queue.Queue = queue.Queue(maxsize=queue_size)
        self._thread: threading.Thread | None = None
        self._pid: int | None = None
        self._lock = threading.Lock()
        self._done = threading.Condition()
        self._conn: Connection | None = None
        self._statements: dict[tuple[str, tuple[str, ...]], tuple[str, Any]] = {}
        self._copies: dict[tuple[str, tuple[str, ...]], tuple[str, list[Any], list[Any]]] = {}
        self._stopping = False
        self._closed = False  # shut down: a late row goes straight to the spool (see enqueue)
        self._deadline: float | None = None
        self.enqueued = 0
        self.written = 0
        self.retries = 0
        self.batches = 0
        self.spooled = 0
        self.dead_lettered = 0
        self.last_error: str | None = None

    # -- lifecycle -------------------------------------------------------------------------------
    def start(self) -> None:
        with self._lock:
            pid = os.getpid()
            if self._pid == pid and self._thread is not None and self._thread.is_alive():
                return
            self._pid = pid
            self._stopping = False
            self._closed = False
            self._deadline = None
            self._thread = threading.Thread(target=self._run, name="algobridge-writer", daemon=True)
            self._thread.start()
            atexit.register(self.shutdown)
        self._replay_spool()

    def after_fork(self) -> None:
        """In a forked child: a queue, locks and a connection of its own (the parent's may have
        been in use at the fork), and its own thread."""
        self._lock = threading.Lock()
        self._done = threading.Condition()
        self._hurry = threading.Event()
        self._queue = queue.Queue(maxsize=self.queue_size)
        self._conn = None
        self._thread = None
        self._pid = None
        self.enqueued = self.written = self.spooled = self.dead_lettered = 0
        self.start()

    def shutdown(self, timeout: float | None = None) -> None:
        """Write everything queued; spool to disk what cannot be written in time. Idempotent."""
        thread = self._thread
        if thread is None or not thread.is_alive() or self._pid != os.getpid():
            return
        self._deadline = time.monotonic() + (self.shutdown_timeout if timeout is None else timeout)
        self._stopping = True
        self._hurry.set()
        self._queue.put(_STOP)
        thread.join()
        self._closed = True
        if self._conn is not None:
            try:
                self._conn.close()
            except SQLAlchemyError:
                pass
            self._conn = None

    def is_writer_thread(self) -> bool:
        return self._thread is not None and threading.get_ident() == self._thread.ident

    # -- the producer side -----------------------------------------------------------------------
    def enqueue(self, table: Any, row: dict[str, Any]) -> None:
        """Queue one row for `table` (a Table, a model class or a table name). Blocks when full."""
        name = table if isinstance(table, str) else getattr(table, "__tablename__", None) or table.name
        if name not in self.tables:
            raise ValueError(f"the writer does not write table {name!r}")
        if self._pid != os.getpid():
            self.after_fork()  # forked without the at-fork hook (a fork before create_app ran)
        elif self._closed:
            # Shut down (the process or its application is ending): a row logged this late goes to the
            # spool, replayed at the next start, instead of starting a writer nobody will stop again.
            with self._done:
                self.enqueued += 1
            self._spool([(name, row)], "writer")
            return
        elif self._thread is None or not self._thread.is_alive():
            self.start()
        self._queue.put((name, row))
        with self._done:
            self.enqueued += 1

    def flush(self, timeout: float = 30.0) -> bool:
        """Wait until every row queued before this call is in the database (or spooled)."""
        self._hurry.set()
        with self._done:
            target = self.enqueued
            return self._done.wait_for(lambda: self.written + self.spooled + self.dead_lettered >= target, timeout)

    def stats(self) -> dict[str, Any]:
        return {"queued": self._queue.qsize(), "capacity": self.queue_size, "enqueued": self.enqueued,
                "written": self.written, "batches": self.batches, "retries": self.retries,
                "spooled": self.spooled, "dead_lettered": self.dead_lettered, "last_error": self.last_error,
                "alive": bool(self._thread and self._thread.is_alive())}

    # -- the writer thread -----------------------------------------------------------------------
    def _run(self) -> None:
        while True:
            try:
                try:
                    # Once stopping, never block for good: rows may still trickle in after the
                    # stop marker, and the loop ends when the queue is found empty.
                    item = self._queue.get(timeout=0.1) if self._stopping else self._queue.get()
                except queue.Empty:
                    return
                batch = [] if item is _STOP else [item]
                if batch and self.linger and not self._stopping:
                    # Let the rows of the next few milliseconds join this batch: one transaction for
                    # them all, and the thread wakes once instead of at every row.
                    self._hurry.wait(self.linger)
                self._hurry.clear()
                while len(batch) < self.batch_size:
                    try:
                        nxt = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    if nxt is not _STOP:
                        batch.append(nxt)
                if batch:
                    self._write_with_retry(batch)
            except Exception:  # the thread must not die: log and go on
                log.exception("log writer loop error")

    def _write_with_retry(self, batch: list[tuple[str, dict[str, Any]]]) -> None:
        delay = 0.05
        while True:
            try:
                self._insert(batch)
                self._done_with(len(batch))
                return
            except Exception as exc:  # noqa: BLE001 - never raised: refused rows set aside, the rest retried
                self._reset_connection()
                self.last_error = str(getattr(exc, "orig", None) or exc).splitlines()[0][:500]
                if self._is_refusal(exc):
                    self._write_rows_one_by_one(batch)
                    return
                self.retries += 1
                if self.retries == 1 or self.retries % 50 == 0:
                    log.warning("log writer cannot write (%s); retrying", self.last_error)
                if self._deadline is not None and time.monotonic() > self._deadline:
                    self._spool(batch, "writer")
                    self._drain_to_spool()
                    return
                time.sleep(delay)
                delay = min(delay * 2, 1.0)

    def _write_rows_one_by_one(self, batch: list[tuple[str, dict[str, Any]]]) -> None:
        """Find the refused rows of a batch: each goes to the dead-letter file, the rest in."""
        for i, item in enumerate(batch):
            try:
                self._insert([item])
                self._done_with(1)
            except Exception as exc:  # noqa: BLE001
                self._reset_connection()
                if not self._is_refusal(exc):  # the database went away meanwhile: retry the rest
                    self._write_with_retry(batch[i:])
                    return
                log.error("log row refused by the database, set aside in the dead-letter file: %s",
                          str(getattr(exc, "orig", None) or exc).splitlines()[0])
                self._spool([item], "deadletter")

    def _is_refusal(self, exc: Exception) -> bool:
        """True when retrying the same rows can never succeed (a constraint, a value that cannot
        be converted); False for what can go away (the server is down or restarting, a lock, a
        table not migrated yet)."""
        dbapi = self.engine.dialect.loaded_dbapi
        if isinstance(exc, IntegrityError | DataError | dbapi.IntegrityError | dbapi.DataError):
            return True
        if isinstance(exc, ProgrammingError | dbapi.ProgrammingError):
            # Only a table that is not there yet (a migration still running) can go away.
            text = str(getattr(exc, "orig", None) or exc).lower()
            return not ("no such table" in text or "does not exist" in text)
        transient = (OperationalError, InterfaceError, TimeoutError, OSError,
                     dbapi.OperationalError, dbapi.InterfaceError)
        return not isinstance(exc, transient)

    def _insert(self, batch: list[tuple[str, dict[str, Any]]]) -> None:
        groups: dict[tuple[str, tuple[str, ...]], list[dict[str, Any]]] = {}
        for name, row in batch:
            groups.setdefault((name, tuple(sorted(row))), []).append(row)
        if self._conn is None:
            self._conn = self.engine.connect()
        conn = self._conn
        work = []  # (rows for COPY) or (sql, converted rows): converted before the write turn is taken
        for (name, keys), rows in groups.items():
            if conn.dialect.name == "postgresql" and len(rows) > 1:
                work.append((name, keys, rows, None))
            else:
                sql, convert = self._statement(name, keys)
                work.append((name, keys, [convert(r) for r in rows], sql))
        with sqlite_write_turn(conn.dialect.name), conn.begin():
            for name, keys, rows, sql in work:
                if sql is None:
                    self._copy(conn, name, keys, rows)
                else:
                    conn.exec_driver_sql(sql, rows)
        self.batches += 1

    def _copy(self, conn: Connection, name: str, keys: tuple[str, ...], rows: list[dict[str, Any]]) -> None:
        """PostgreSQL: COPY the batch on the writer's connection, inside its transaction."""
        table = self.tables[name]
        dialect = self.engine.dialect
        cached = self._copies.get((name, keys))
        if cached is None:
            missing = [(c.key, c.default) for c in table.columns if c.key not in keys and c.default is not None]
            cols = list(keys) + [k for k, _d in missing]
            procs = [_bind_processor(table.c[k], dialect) for k in keys]
            sql = f"COPY {table.name} ({', '.join(cols)}) FROM STDIN"
            cached = self._copies[(name, keys)] = (sql, procs, missing)
        sql, procs, missing = cached
        cursor = conn.connection.driver_connection.cursor()
        with cursor.copy(sql) as copy:
            for row in rows:
                values = [row[k] if p is None else p(row[k]) for k, p in zip(keys, procs, strict=True)]
                values += [d.arg(None) if d.is_callable else d.arg for _k, d in missing]
                copy.write_row(values)

    def _statement(self, name: str, keys: tuple[str, ...]) -> tuple[str, Any]:
        """The INSERT for these columns, compiled once, and a function turning a row into driver
        parameters with the columns' own bind processors (types, JSON, UTC datetimes, enums).

        This skips SQLAlchemy's per-row statement machinery, which costs more than the insert.
        """
        cached = self._statements.get((name, keys))
        if cached is not None:
            return cached
        table = self.tables[name]
        dialect = self.engine.dialect
        missing = [c for c in table.columns if c.key not in keys and c.default is not None]
        all_keys = list(keys) + [c.key for c in missing]
        compiled = table.insert().compile(dialect=dialect, column_keys=all_keys)
        order = list(compiled.positiontup) if compiled.positional else list(compiled.binds)
        procs = []
        for bind_name in order:
            column = table.c[compiled.binds[bind_name].key]
            procs.append((bind_name, column.key, _bind_processor(column, dialect)))
        defaults = [(c.key, c.default) for c in missing]

        def convert(row: dict[str, Any]) -> Any:
            if defaults:
                row = dict(row)
                for key, default in defaults:
                    row[key] = default.arg(None) if default.is_callable else default.arg
            values = [row[key] if proc is None else proc(row[key]) for _b, key, proc in procs]
            if compiled.positional:
                return tuple(values)
            return {b: v for (b, _k, _p), v in zip(procs, values, strict=True)}

        self._statements[(name, keys)] = (str(compiled), convert)
        return self._statements[(name, keys)]

    def _reset_connection(self) -> None:
        if self._conn is not None:
            try:
                self._conn.invalidate()
                self._conn.close()
            except Exception:  # noqa: BLE001, S110 - a broken connection may fail to close
                pass
            self._conn = None

    def _done_with(self, n: int) -> None:
        with self._done:
            self.written += n
            self._done.notify_all()

    # -- spooling --------------------------------------------------------------------------------
    def _drain_to_spool(self) -> None:
        rest = []
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item is not _STOP:
                rest.append(item)
        if rest:
            self._spool(rest, "writer")

    def _spool(self, batch: list[tuple[str, dict[str, Any]]], kind: str) -> None:
        if not self.spool_dir:
            log.critical("%d log rows could not be written and no spool folder is set", len(batch))
            return
        os.makedirs(self.spool_dir, exist_ok=True)
        path = os.path.join(self.spool_dir, f"{kind}-{os.getpid()}-{time.time_ns()}.jsonl")
        with open(path, "w", encoding="utf-8") as fh:
            for name, row in batch:
                fh.write(json.dumps({"table": name, "row": row}, default=_encode) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        with self._done:
            if kind == "deadletter":
                self.dead_lettered += len(batch)
            else:
                self.spooled += len(batch)
            self._done.notify_all()
        log.warning("%d log rows spooled to %s", len(batch), path)

    def _replay_spool(self) -> None:
        """Queue the rows an earlier process spooled at shutdown.

        The file is claimed (renamed) so two processes do not replay it both, and removed as soon
        as its rows are queued: from then on the queue owns them, and spools them again at
        shutdown if the database is still away. Nothing waits here, so a start is never held up.
        """
        if not self.spool_dir or not os.path.isdir(self.spool_dir):
            return
        for path in sorted(glob.glob(os.path.join(self.spool_dir, "writer-*.jsonl"))):
            claimed = path + f".replaying-{os.getpid()}"
            try:
                os.rename(path, claimed)
            except OSError:
                continue
            n = 0
            with open(claimed, encoding="utf-8") as fh:
                for line in fh:
                    if line.strip():
                        item = json.loads(line, object_hook=_decode)
                        self.enqueue(item["table"], item["row"])
                        n += 1
            os.remove(claimed)
            log.info("replaying %d spooled log rows from %s", n, os.path.basename(path))


def _bind_processor(column: Any, dialect: Any) -> Any:
    """The column type's own bind processor; on PostgreSQL wrapped to replace NUL characters."""
    impl = column.type.dialect_impl(dialect)
    proc = impl.bind_processor(dialect)
    if dialect.name != "postgresql":
        return proc
    if isinstance(impl, sqltypes.JSON):
        return _json_guard(proc, getattr(dialect, "_json_serializer", None))
    if isinstance(impl, sqltypes.String):  # String, Text, Unicode and the str enums built on them
        return _text_guard(proc)
    return proc


# -- the writer of the current application -------------------------------------------------------
WRITTEN_TABLES = ("api_logs", "traffic_logs", "order_latency", "system_logs")


def init_app(app: Any) -> LogWriter:
    with app.app_context():
        engine = db.engine
    writer = LogWriter(
        engine,
        {name: Base.metadata.tables[name] for name in WRITTEN_TABLES},
        queue_size=app.config.get("WRITER_QUEUE_SIZE", 50000),
        batch_size=app.config.get("WRITER_BATCH_SIZE", 1000),
        shutdown_timeout=app.config.get("WRITER_SHUTDOWN_TIMEOUT", 30),
        linger=app.config.get("WRITER_LINGER_MS", 10) / 1000,
        spool_dir=os.path.join(app.instance_path, "spool"),
    )
    app.extensions["algobridge.writer"] = writer
    global _default
    _default = writer
    return writer


_default: LogWriter | None = None


def current() -> LogWriter:
    """The writer of the current application, or of the last one created (background threads)."""

    if has_app_context():
        found = current_app.extensions.get("algobridge.writer")
        if found is not None:
            return found
    if _default is None:
        raise RuntimeError("the log writer is not configured: create the app first")
    return _default


def enqueue(table: Any, row: dict[str, Any]) -> None:
    """Queue a log row on the current application's writer. Never raises a database error."""
    current().enqueue(table, row)
