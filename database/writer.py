"""The background writer for high-volume rows (API, traffic, latency and system logs).

Requests hand rows to `enqueue()` and go on; one thread per process inserts them in batches on its
own connection. The guarantees:
  - nothing is dropped: the queue is bounded and `enqueue()` blocks when it is full (back-pressure);
  - a database error never reaches the caller: the batch is retried with backoff until it is
    written; a row the database refuses outright (a constraint) is set aside in a dead-letter file,
    not lost;
  - at shutdown the queue is flushed; rows that still cannot be written within
    WRITER_SHUTDOWN_TIMEOUT are spooled to `<instance>/spool/` and replayed at the next start;
  - the replay of a spool file survives what a crash leaves behind: a line that is not a whole row
    (a torn last line) is skipped with a warning, and a replay interrupted part-way resumes at the
    next start after the rows already written (see "replaying the spool" below).
"""

from __future__ import annotations

import atexit
import datetime as dt
import fcntl
import glob
import json
import logging
import os
import queue
import threading
import time
from collections.abc import Iterator
from decimal import Decimal
from typing import IO, Any

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

#: A spool file under replay is renamed `<file>.replaying`; `<file>.replaying.pos` records how far
#: its replay got (see "replaying the spool" in LogWriter).
REPLAYING = ".replaying"
POSITION = ".pos"


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
        self._replaying = False  # the thread is replaying the spool: flush() waits for it too
        self._replay_fh: IO[bytes] | None = None  # the spool file being replayed (its lock)
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
            # The thread replays the spool before it takes queued rows: nothing waits here, so a
            # start is never held up (flush() waits for the replay).
            self._replaying = bool(self.spool_dir)
            self._thread = threading.Thread(target=self._run, name="algobridge-writer", daemon=True)
            self._thread.start()
            atexit.register(self.shutdown)

    def after_fork(self) -> None:
        """In a forked child: a queue, locks and a connection of its own (the parent's may have
        been in use at the fork), and its own thread."""
        self._lock = threading.Lock()
        self._done = threading.Condition()
        self._hurry = threading.Event()
        self._queue = queue.Queue(maxsize=self.queue_size)
        self._conn = None
        if self._replay_fh is not None:
            # The parent was replaying a spool file: close our copy, or its lock would outlive the
            # parent and keep every other process from resuming that replay. (Closing a copy does
            # not release the parent's lock.)
            try:
                self._replay_fh.close()
            except OSError:
                pass
            self._replay_fh = None
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
            return self._done.wait_for(
                lambda: not self._replaying and self.written + self.spooled + self.dead_lettered >= target, timeout)

    def stats(self) -> dict[str, Any]:
        return {"queued": self._queue.qsize(), "capacity": self.queue_size, "enqueued": self.enqueued,
                "written": self.written, "batches": self.batches, "retries": self.retries,
                "spooled": self.spooled, "dead_lettered": self.dead_lettered, "last_error": self.last_error,
                "alive": bool(self._thread and self._thread.is_alive())}

    # -- the writer thread -----------------------------------------------------------------------
    def _run(self) -> None:
        try:
            self._replay_spool()
        except Exception:  # a spool file must never stop the writer (each file's errors are caught too)
            log.exception("log writer spool replay error")
        finally:
            with self._done:
                self._replaying = False
                self._done.notify_all()
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

    def _write_with_retry(self, batch: list[tuple[str, dict[str, Any]]], *, spool_at_deadline: bool = True) -> bool:
        """Write `batch`, retrying what can go away, and return True: every row is then written,
        dead-lettered or (past the shutdown deadline) spooled.

        With spool_at_deadline=False (a spool file's replay) it returns False at the shutdown
        deadline instead, having written none of the batch (its one transaction failed): the rows
        are still in the file, for the next start."""
        delay = 0.05
        while True:
            try:
                self._insert(batch)
                self._done_with(len(batch))
                return True
            except Exception as exc:  # noqa: BLE001 - never raised: refused rows set aside, the rest retried
                self._reset_connection()
                self.last_error = str(getattr(exc, "orig", None) or exc).splitlines()[0][:500]
                if self._is_refusal(exc):
                    self._write_rows_one_by_one(batch)
                    return True
                self.retries += 1
                if self.retries == 1 or self.retries % 50 == 0:
                    log.warning("log writer cannot write (%s); retrying", self.last_error)
                if self._past_deadline():
                    if not spool_at_deadline:
                        return False
                    self._spool(batch, "writer")
                    self._drain_to_spool()
                    return True
                time.sleep(delay)
                delay = min(delay * 2, 1.0)

    def _past_deadline(self) -> bool:
        return self._deadline is not None and time.monotonic() > self._deadline

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

    # -- replaying the spool ---------------------------------------------------------------------
    # A spool file is replayed by the writer thread, in batches of `batch_size` rows. Each batch is
    # one transaction (`_insert`); once it is committed, the position after it (byte offset and line
    # number) is written to the marker `<file>.replaying.pos` atomically (a temporary file, fsync,
    # os.replace). A process that dies part-way therefore leaves the file (renamed `.replaying`
    # first) and a marker naming exactly the batches committed, and the next start resumes after
    # them: no row is lost. No row is written twice either, with one exception the database cannot
    # rule out, as the marker is not in the rows' transaction: a death in the instant between a
    # batch's commit and its marker's replace (or a connection lost during the COMMIT itself, as for
    # any batch of the writer) writes that one batch again. At the shutdown deadline a replay stops
    # between batches in the same way, leaving the rest for the next start.
    #
    # Processes starting together (gunicorn workers) share the spool: a file is replayed by the one
    # holding an exclusive flock on it. The kernel drops the lock when its process ends, so a
    # `.replaying` file whose lock can be taken was left by an ended replay, and is resumed.
    def _replay_spool(self) -> None:
        """Write the rows that earlier processes spooled: interrupted replays first, then new files."""
        if not self.spool_dir or not os.path.isdir(self.spool_dir):
            return
        _remove_stale_markers(self.spool_dir)
        pattern = os.path.join(self.spool_dir, "writer-*.jsonl")
        for path in sorted(glob.glob(pattern + REPLAYING)) + sorted(glob.glob(pattern)):
            if self._past_deadline():
                return  # shutting down: the rest waits for the next start
            self._replay_file(path)

    def _replay_file(self, path: str) -> None:
        fh = _lock_spool_file(path)
        if fh is None:
            return  # another process is replaying it, or has just finished
        self._replay_fh = fh
        name = os.path.basename(path).removesuffix(REPLAYING)
        try:
            replaying = path if path.endswith(REPLAYING) else path + REPLAYING
            if replaying != path:
                os.rename(path, replaying)  # under our lock: no other process claims it meanwhile
            marker = replaying + POSITION
            position = _read_marker(marker)
            if position is None or position[0] > os.fstat(fh.fileno()).st_size:
                # Not a marker this code writes (a damaged disk): replaying from line 1 could write
                # rows twice, from anywhere else lose some. Left to an operator.
                log.error("spool file %s: its replay marker %s is unreadable; the file is left as it is",
                          name, os.path.basename(marker))
                return
            offset, line_no = position
            if offset:
                log.info("resuming the replay of spool file %s after line %d", name, line_no)
            fh.seek(offset)
            rows = 0
            done = line_no  # the lines replayed so far, as the marker says
            for batch, offset, line_no in self._spool_batches(fh, name, done):
                if batch:
                    with self._done:
                        self.enqueued += len(batch)
                    if not self._write_with_retry(batch, spool_at_deadline=False):
                        with self._done:
                            self.enqueued -= len(batch)
                        break
                    rows += len(batch)
                _write_marker(marker, offset, line_no)
                done = line_no
                if self._past_deadline():
                    break
            else:
                # The file goes before its marker: a marker left alone is removed at the next
                # start, while a file left without its marker would be replayed from line 1 again.
                os.remove(replaying)
                _remove_quietly(marker, marker + ".tmp")
                log.info("replayed %d spooled log rows from %s", rows, name)
                return
            log.warning("shutting down: the replay of spool file %s stops after line %d and resumes "
                        "at the next start", name, done)
        except Exception:  # never raised: the file stays, with its marker, for the next start
            log.exception("cannot replay spool file %s; it is left for the next start", name)
        finally:
            self._replay_fh = None
            fh.close()  # releases the lock

    def _spool_batches(self, fh: IO[bytes], name: str, line_no: int) -> Iterator[tuple[list, int, int]]:
        """The rows of a spool file from its current position in batches of up to batch_size, each
        with the position after it: (rows, byte offset, line number). The last may be empty.

        A line that is not a whole row (a torn last line, a corrupt one) is skipped with a warning;
        a blank line silently."""
        batch: list[tuple[str, dict[str, Any]]] = []
        for raw in iter(fh.readline, b""):
            line_no += 1
            if not raw.strip():
                continue
            try:
                item = json.loads(raw, object_hook=_decode)  # bytes: a bad UTF-8 sequence is a ValueError
                table, row = item["table"], item["row"]
                if table not in self.tables or not isinstance(row, dict):
                    raise ValueError(f"not a row of a table this writer writes ({str(table)[:50]!r})")
            except (ValueError, TypeError, KeyError, ArithmeticError, RecursionError) as exc:
                log.warning("spool file %s, line %d is not a whole row and is skipped: %s",
                            name, line_no, str(exc)[:200])
                continue
            batch.append((table, row))
            if len(batch) == self.batch_size:
                yield batch, fh.tell(), line_no
                batch = []
        yield batch, fh.tell(), line_no


def _lock_spool_file(path: str) -> IO[bytes] | None:
    """`path` opened and exclusively locked, or None when another process holds it or it is gone.

    The lock is tried without waiting. Once held, `path` must still name the file we locked: between
    our open and our lock, its replayer may have finished and removed it."""
    try:
        fh = open(path, "rb")  # noqa: SIM115 - held (with its lock) for the whole replay
    except OSError:
        return None
    try:
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        if os.path.samestat(os.fstat(fh.fileno()), os.stat(path)):
            return fh
    except OSError:
        pass
    fh.close()
    return None


def _read_marker(marker: str) -> tuple[int, int] | None:
    """(byte offset, line number) where the replay resumes; (0, 0) when no batch was committed;
    None when the marker cannot be read."""
    try:
        with open(marker, encoding="utf-8") as fh:
            position = json.load(fh)
        offset, line_no = int(position["offset"]), int(position["line"])
    except FileNotFoundError:
        return 0, 0
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return (offset, line_no) if offset >= 0 and line_no >= 0 else None


def _write_marker(marker: str, offset: int, line_no: int) -> None:
    """Replace the marker atomically: a crash leaves either the old position or the new one."""
    tmp = marker + ".tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump({"offset": offset, "line": line_no}, fh)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, marker)
    folder = os.open(os.path.dirname(marker) or ".", os.O_RDONLY)
    try:
        os.fsync(folder)  # the rename itself survives a power cut too
    finally:
        os.close(folder)


def _remove_stale_markers(spool_dir: str) -> None:
    """Remove the markers (and their temporary files) whose spool file is gone: a replay that ended
    between removing the file and removing its marker."""
    for marker in glob.glob(os.path.join(spool_dir, f"writer-*.jsonl{REPLAYING}{POSITION}*")):
        if not os.path.exists(marker[: marker.rindex(REPLAYING) + len(REPLAYING)]):
            _remove_quietly(marker)


def _remove_quietly(*paths: str) -> None:
    for path in paths:
        try:
            os.remove(path)
        except FileNotFoundError:
            pass


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
