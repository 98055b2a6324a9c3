"""A two-level cache: an in-process TTL cache, and Redis (REDIS_URL) when configured.

Entries live in namespaces ("apikeys", "symbols", ...). `invalidate()` removes an entry (or a whole
namespace) here and in every other worker process within a second:
  - with Redis: a pub/sub message on `algobridge:invalidate`; a process whose subscription dropped
    clears everything when it reconnects, since it may have missed messages;
  - without Redis: a per-namespace generation counter in `cache_generations`, which every process
    polls (CACHE_POLL_INTERVAL); a changed generation clears that namespace there. A namespace
    declared with `shard_by_key()` keeps one counter per key for keyed invalidations (row
    "namespace#key"), so writers of different keys never queue on one counter row, and a change
    clears only that key elsewhere; invalidating the whole namespace still uses its own row.
`subscribe(namespace, callback)` runs `callback(key_or_None)` in every process when an invalidation
of the namespace arrives (the token index rebuilds itself this way).

Invalidate after the change is committed (pass `session=` to have it done on commit), or another
process may reload the old value in between. Without Redis, an invalidation tied to a session bumps
the generation inside that session's own transaction (just before it commits), so the change and
the news of it commit together: no second write transaction, and no window in which a crash after
the commit leaves other processes with the old value.

Redis down (REDIS_URL set; the subscription lost, a command failed, or the listener's ping once a
second unanswered): each process works as without Redis until its listener subscribes again: entries
in this process only, invalidations through the generation counters (bumped in the transaction, or
after the commit by a writer whose message could not be sent), which the listener polls between its
attempts to reconnect. Losing and regaining the subscription clears a process's entries (messages
may have been missed); regaining it also deletes the shared entries (writers could not delete them
meanwhile) and keeps polling the counters for GRACE seconds, for the writers that have not yet
noticed Redis is back. Redis failing never reaches a caller: a read is a miss, an entry stays
local, an invalidation goes through the counters.
"""

from __future__ import annotations

import builtins
import contextlib
import functools
import json
import logging
import os
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Callable
from typing import Any

from cachetools import TTLCache
from flask import current_app, has_app_context
from sqlalchemy import BigInteger, String, bindparam, event, select, update
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Mapped, Session, mapped_column

from database import Base, db, upsert
from database.types import UTCDateTime, utcnow

log = logging.getLogger("algobridge.cache")

CHANNEL = "algobridge:invalidate"
_MISSING = object()
SHARD_SEP = "#"
_SHARDED: builtins.set[str] = builtins.set()
_ROW_MAX = 64  # cache_generations.namespace
GRACE = 5.0  # seconds the counters are still polled once Redis is back (see the module's docstring)
PING_EVERY = 1.0  # seconds: a Redis that hangs leaves the subscription silent, not broken


def shard_by_key(namespace: str) -> None:
    """Keep one generation counter per key of `namespace` (see the module's docstring)."""
    if SHARD_SEP in namespace:
        raise ValueError(f"a sharded namespace must not contain {SHARD_SEP!r}: {namespace}")
    _SHARDED.add(namespace)


def generation_row(namespace: str, key: str | None) -> str:
    """The `cache_generations` row an invalidation of (namespace, key) bumps."""
    if key is not None and namespace in _SHARDED:
        row = f"{namespace}{SHARD_SEP}{key}"
        if len(row) <= _ROW_MAX:
            return row
    return namespace


def _row_target(row: str) -> tuple[str, str | None]:
    """What a changed generation row clears: (namespace, key), or (namespace, None) for all of it."""
    namespace, sep, key = row.partition(SHARD_SEP)
    if sep and namespace in _SHARDED:
        return namespace, key
    return row, None


class CacheGeneration(Base):
    """The invalidation counter of one cache namespace (used when there is no Redis)."""

    __tablename__ = "cache_generations"

    namespace: Mapped[str] = mapped_column(String(64), primary_key=True)
    generation: Mapped[int] = mapped_column(BigInteger, default=0)
    updated_at: Mapped[Any] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class TwoLevelCache:
    def __init__(self, engine: Engine, *, redis_url: str = "", ttl: int = 300,
                 poll_interval: float = 0.25, maxsize: int = 10000):
        self.engine = engine
        self.ttl = ttl
        self.maxsize = maxsize
        self.poll_interval = poll_interval
        self._local: dict[str, TTLCache] = {}
        self._lock = threading.RLock()
        self._subscribers: dict[str, list[Callable[[str | None], None]]] = defaultdict(list)
        self._seen: dict[str, int] = {}
        self._versions: dict[str, int] = defaultdict(int)  # bumped by every local drop
        self._origin = uuid.uuid4().hex
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._started_pid: int | None = None
        self.stats = {"hits": 0, "misses": 0, "redis_hits": 0, "redis_misses": 0, "redis_errors": 0,
                      "invalidations_sent": 0, "invalidations_received": 0}
        self._redis = None
        self._redis_down = False  # Redis failed: this process works as without it until it subscribes again
        if redis_url:
            import redis  # only where Redis is configured: the embedded default never loads the client

            self._redis = redis.Redis.from_url(redis_url, socket_timeout=2, socket_connect_timeout=2)

    # -- lifecycle -------------------------------------------------------------------------------
    def start(self) -> None:
        """Start the invalidation listener (Redis) or poller (database) of this process."""

        if self._started_pid == os.getpid() and self._thread and self._thread.is_alive():
            return
        self._stop.clear()
        self._started_pid = os.getpid()
        if self._redis is not None:
            target, name = self._listen_redis, "algobridge-cache-redis"
        else:
            self._seen = self._read_generations() or {}
            target, name = self._poll_database, "algobridge-cache-poll"
        ready = threading.Event()
        self._thread = threading.Thread(target=target, args=(ready,), name=name, daemon=True)
        self._thread.start()
        ready.wait(5)

    def after_fork(self) -> None:
        """In a forked child: the parent's locks may have been held at the fork, and its listener
        thread did not come along. Start afresh (entries stay; invalidations resume now)."""
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._thread = None
        self._started_pid = None
        # An identity of its own: the listener skips messages from its own origin, and every
        # sibling forked from the same master would otherwise skip each other's invalidations.
        self._origin = uuid.uuid4().hex
        self.clear()  # invalidations sent between the fork and now were missed
        self.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    # -- reads and writes ------------------------------------------------------------------------
    def _ns(self, namespace: str) -> TTLCache:
        ns = self._local.get(namespace)
        if ns is None:
            with self._lock:
                ns = self._local.setdefault(namespace, TTLCache(self.maxsize, self.ttl))
        return ns

    def get(self, namespace: str, key: str, default: Any = None) -> Any:
        with self._lock:
            value = self._ns(namespace).get(key, _MISSING)
        if value is not _MISSING:
            self.stats["hits"] += 1
            return value
        self.stats["misses"] += 1
        if self._redis_ok:
            try:
                raw = self._redis.get(self._rkey(namespace, key))
            except Exception:  # noqa: BLE001 - Redis down: behave as a miss
                self._redis_failed()
                return default
            if raw is not None:
                self.stats["redis_hits"] += 1
                value = json.loads(raw)
                with self._lock:
                    self._ns(namespace)[key] = value
                return value
            self.stats["redis_misses"] += 1
        return default

    def set(self, namespace: str, key: str, value: Any, ttl: int | None = None) -> None:
        with self._lock:
            self._ns(namespace)[key] = value
        if self._redis_ok:
            try:
                self._redis.set(self._rkey(namespace, key), json.dumps(value, default=str), ex=ttl or self.ttl)
            except Exception:  # noqa: BLE001 - Redis down: the entry stays in this process only
                self._redis_failed()

    def get_or_load(self, namespace: str, key: str, loader: Callable[[], Any], ttl: int | None = None) -> Any:
        value = self.get(namespace, key, _MISSING)
        if value is _MISSING:
            version = self._versions.get(namespace, 0)
            value = loader()
            # An invalidation that arrived while the loader ran means its answer may predate the
            # change: return it to this caller, but do not cache it.
            if value is not None and self._versions.get(namespace, 0) == version:
                self.set(namespace, key, value, ttl)
        return value

    def update_local(self, namespace: str, key: str, change: Callable[[Any], Any]) -> None:
        """Replace this process's entry with `change(entry)` (the entry, or None when absent), atomically
        with respect to other local updates; a None result drops it. Local only: use it after
        `committed(..., drop=False)`, which told the other processes."""
        with self._lock:
            ns = self._ns(namespace)
            try:
                value = change(ns.get(key))
            except Exception:  # its caller's change is committed: a bad entry is dropped, not raised
                log.exception("cache entry %s of %s could not be updated; dropped", key, namespace)
                value = None
            if value is None:
                ns.pop(key, None)
            else:
                ns[key] = value

    def subscribe(self, namespace: str, callback: Callable[[str | None], None]) -> None:
        with self._lock:
            if callback not in self._subscribers[namespace]:
                self._subscribers[namespace].append(callback)

    def invalidate(self, namespace: str, key: str | None = None, *, session: Session | None = None) -> None:
        """Drop `key` (or the whole namespace) in every process; after `session` commits, if given."""
        if session is not None and hasattr(session, "registry"):
            session = session()  # a scoped_session: the session of this thread
        if session is not None and session.in_transaction():
            pending = session.info.setdefault(_PENDING, {})
            pending.setdefault(id(self), (self, builtins.set()))[1].add((namespace, key))
            return
        self._drop_local(namespace, key)
        self.stats["invalidations_sent"] += 1
        if self._tell_redis(namespace, key):
            return
        row = generation_row(namespace, key)
        self._mark_seen(row, self._bump_generation(row))

    @property
    def uses_redis(self) -> bool:
        """Redis is configured (whether it answers now or not)."""
        return self._redis is not None

    @property
    def redis_down(self) -> bool:
        """Redis is configured and this process works without it for now (see the module's docstring)."""
        return self._redis_down

    @property
    def _redis_ok(self) -> bool:
        return self._redis is not None and not self._redis_down

    def _redis_failed(self) -> None:
        # The listener takes it as a lost subscription: it switches this process to the counters.
        self.stats["redis_errors"] += 1
        self._redis_down = True

    def ping_redis(self) -> bool:
        """Ask Redis whether it answers (for /health): False when no Redis is configured, True when it
        answers; the client's exception when it does not."""
        if self._redis is None:
            return False
        self._redis.ping()
        return True

    def bump_in_transaction(self, connection: Connection, namespace: str, key: str | None = None) -> int | None:
        """Without Redis: bump the generation row of (namespace, key) (generation_row()) on
        `connection`, inside its transaction (the caller commits), and return it; pass it to
        `committed()` with the same namespace and key once the commit is done. With Redis: nothing to
        do before the commit (None): the message after it carries the news; with Redis down, as without."""
        if self._redis_ok:
            return None
        stmt = _bump_statement(connection.dialect.name)
        row = generation_row(namespace, key)
        return int(connection.execute(stmt, {"namespace": row, "at": utcnow()}).scalar_one())

    def committed(self, namespace: str, key: str | None, generation: int | None, *, drop: bool = True) -> None:
        """A change to `key` (or the namespace) has committed: drop it here (unless the caller puts the
        new value in place itself, `drop=False`) and tell the other processes: with Redis a message;
        without, `generation` is what bump_in_transaction() returned in the committed transaction."""
        try:
            if drop:
                self._drop_local(namespace, key)
            else:
                with self._lock:
                    self._versions[namespace] += 1  # a load that raced the change must not be cached
            self.stats["invalidations_sent"] += 1
            told = self._tell_redis(namespace, key)
            row = generation_row(namespace, key)
            if generation is None and not told and self._redis is not None:
                generation = self._bump_generation(row)  # Redis failed: the counter carries the news
            if generation is not None:
                self._mark_seen(row, generation)
        except Exception:
            self._drop_local(namespace, None)
            log.exception("cache invalidation of %s did not reach the other processes", namespace)

    def _mark_seen(self, row: str, generation: int) -> None:
        with self._lock:
            # Mark our own bump as seen only if nobody else bumped in between; otherwise theirs
            # would be swallowed with it, and the poller must still clear the namespace (key) here.
            if generation == self._seen.get(row, 0) + 1:
                self._seen[row] = generation

    def _tell_redis(self, namespace: str, key: str | None) -> bool:
        """Delete the shared entry and tell the other processes; False when Redis cannot carry the news
        (not configured, down, or failing now): the caller bumps the counter instead."""
        if not self._redis_ok:
            return False
        try:
            self._delete_shared(namespace, key)
            self._redis.publish(CHANNEL, json.dumps({"o": self._origin, "ns": namespace, "k": key}))
            return True
        except Exception:  # noqa: BLE001
            self._redis_failed()
            log.warning("cache invalidation of %s could not reach Redis: it goes through the database", namespace)
            return False

    def _delete_shared(self, namespace: str | None, key: str | None) -> None:
        """Delete Redis entries: one key, a namespace's (key None), or every one (namespace None too)."""
        if key is not None and namespace is not None:
            self._redis.delete(self._rkey(namespace, key))
            return
        for k in self._redis.scan_iter(match=self._rkey(namespace or "*", "*"), count=500):
            self._redis.delete(k)

    def _invalidate_after_commit(self, namespace: str, key: str | None) -> None:
        """The change is committed: an error here must not turn the commit into a failure."""
        try:
            self.invalidate(namespace, key)
        except Exception:
            self._drop_local(namespace, None)
            log.exception("cache invalidation of %s did not reach the other processes", namespace)

    def clear(self) -> None:
        """Drop every local entry and tell every subscriber (used when invalidations may have
        been missed: a dropped Redis subscription, an unreachable database)."""
        with self._lock:
            namespaces = {*self._local, *self._subscribers}
            for ns in namespaces:
                self._versions[ns] += 1
            self._local.clear()
        for ns in namespaces:
            self._notify(ns, None)

    # -- internals -------------------------------------------------------------------------------
    @staticmethod
    def _rkey(namespace: str, key: str) -> str:
        return f"algobridge:cache:{namespace}:{key}"

    def _drop_local(self, namespace: str, key: str | None) -> None:
        with self._lock:
            self._versions[namespace] += 1
            ns = self._local.get(namespace)
            if ns is not None:
                if key is None:
                    ns.clear()
                else:
                    ns.pop(key, None)
        self._notify(namespace, key)

    def _notify(self, namespace: str, key: str | None) -> None:
        for cb in list(self._subscribers.get(namespace, ())):
            try:
                cb(key)
            except Exception:
                log.exception("cache subscriber of %s failed", namespace)

    def _bump_generation(self, row: str) -> int:
        table = CacheGeneration.__table__
        for _ in range(3):
            try:
                with self.engine.begin() as conn:
                    gen = conn.execute(
                        update(table).where(table.c.namespace == row)
                        .values(generation=table.c.generation + 1, updated_at=utcnow())
                        .returning(table.c.generation)
                    ).scalar()
                    if gen is None:
                        conn.execute(table.insert().values(namespace=row, generation=1, updated_at=utcnow()))
                        gen = 1
                    return int(gen)
            except IntegrityError:
                continue  # another process inserted the row first: update it
        raise RuntimeError(f"could not bump the cache generation of {row}")

    def _read_generations(self) -> dict[str, int] | None:
        try:
            with self.engine.connect() as conn:
                rows = conn.execute(select(CacheGeneration.namespace, CacheGeneration.generation)).all()
            return {ns: int(g) for ns, g in rows}
        except SQLAlchemyError:
            return None

    def _poll_database(self, ready: threading.Event) -> None:
        ready.set()
        failed = False
        while not self._stop.wait(self.poll_interval):
            failed = self._poll_once(failed)

    def _poll_once(self, failed: bool, *, shared: bool = False) -> bool:
        """One look at the generation counters: drop here what changed since the last look (with
        `shared`, in Redis too). Returns whether they could not be read: `failed` for the next look,
        which then clears everything (invalidations may have been missed while the database was away)."""
        current = self._read_generations()
        if current is None:
            return True
        if failed:
            self.clear()
        changed = []
        with self._lock:
            for row, gen in current.items():
                if gen > self._seen.get(row, 0):
                    self._seen[row] = gen
                    changed.append(row)
        for row in changed:
            self.stats["invalidations_received"] += 1
            self._drop_local(*_row_target(row))
            if shared:
                self._delete_shared(*_row_target(row))
        return False

    def _lose_redis(self) -> bool:
        """The subscription is lost: work as without Redis until it is back. Returns `failed` (see
        _poll_once)."""
        self._redis_down = True
        seen = self._read_generations()
        with self._lock:
            self._seen = seen or {}
        # After reading the counters: a change they do not show yet committed before this clear.
        self.clear()
        log.warning("Redis is unreachable: cache entries stay in each process and invalidations go through "
                    "the database until it is back")
        return seen is None

    def _listen_redis(self, ready: threading.Event) -> None:
        lost = False  # since the last subscription failed, the counters carry the invalidations
        failed = False  # the counters could not be read at the last look
        grace_until = 0.0
        while not self._stop.is_set():
            pubsub = None
            try:
                pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
                pubsub.subscribe(CHANNEL)
                if lost:
                    # Messages were missed, and writers could not delete the shared entries they changed.
                    self._delete_shared(None, None)
                    self.clear()
                    grace_until = time.monotonic() + GRACE
                    log.warning("Redis answers again: the cache shares entries and invalidations through it")
                lost = False
                self._redis_down = False
                ready.set()
                next_poll = next_ping = 0.0
                while not self._stop.is_set():
                    if self._redis_down:  # a command of this process failed: taken as a lost subscription
                        raise ConnectionError("a Redis command failed")
                    msg = pubsub.get_message(timeout=0.2)
                    if msg is not None:
                        data = json.loads(msg["data"])
                        if data.get("o") != self._origin:
                            self.stats["invalidations_received"] += 1
                            self._drop_local(data["ns"], data.get("k"))
                    now = time.monotonic()
                    if now >= next_ping:
                        self._redis.ping()
                        next_ping = now + PING_EVERY
                    if now < grace_until and now >= next_poll:
                        failed = self._poll_once(failed, shared=True)
                        next_poll = now + self.poll_interval
            except Exception:  # noqa: BLE001 - any failure: the counters, and a new subscription
                self.stats["redis_errors"] += 1
                if not lost:
                    lost = True
                    failed = self._lose_redis()
                ready.set()
                failed = self._poll_once(failed)
                self._stop.wait(self.poll_interval)
            finally:
                if pubsub is not None:
                    with contextlib.suppress(Exception):
                        pubsub.close()


@functools.cache
def _bump_statement(dialect: str):
    """INSERT ... ON CONFLICT DO UPDATE ... RETURNING generation (built once per dialect)."""
    table = CacheGeneration.__table__
    stmt = upsert(table, dialect).values(namespace=bindparam("namespace"), generation=1,
                                updated_at=bindparam("at", type_=table.c.updated_at.type))
    return stmt.on_conflict_do_update(
        index_elements=[table.c.namespace],
        set_={"generation": table.c.generation + 1, "updated_at": stmt.excluded.updated_at},
    ).returning(table.c.generation)


# -- invalidations tied to a session's commit -------------------------------------------------------
_PENDING = "algobridge.cache_pending"  # session.info: {id(cache): (cache, {(namespace, key), ...})}
_BUMPED = "algobridge.cache_bumped"  # session.info: [(cache, namespace, key, generation), ...]


@event.listens_for(Session, "before_commit")
def _bump_before_commit(session: Session) -> None:
    """Bump the generations of the session's pending invalidations in its own transaction."""
    if not session.info.get(_PENDING) or session.in_nested_transaction():
        return
    session.flush()  # after_flush hooks may add invalidations of what this flush writes
    pending = session.info.pop(_PENDING, {})
    bumped = session.info.setdefault(_BUMPED, [])
    for cache, items in pending.values():
        by_row: dict[str, tuple[str, str | None]] = {}
        for namespace, key in items:
            by_row.setdefault(generation_row(namespace, key), (namespace, key))
        generations: dict[str, int | None] = {}
        # In a fixed order, so two transactions never wait on each other's generation rows.
        for row in sorted(by_row):
            generations[row] = cache.bump_in_transaction(session.connection(), *by_row[row])
        for namespace, key in sorted(items, key=lambda item: (item[0], item[1] or "")):
            bumped.append((cache, namespace, key, generations[generation_row(namespace, key)]))


@event.listens_for(Session, "after_commit")
def _announce_after_commit(session: Session) -> None:
    if session.in_nested_transaction():
        return  # a savepoint was released: nothing is committed until the outermost transaction is
    bumped = session.info.pop(_BUMPED, None)
    # Pending ones that missed before_commit (a flush inside the commit added them): the old way.
    late = session.info.pop(_PENDING, None)
    for cache, namespace, key, generation in bumped or ():
        cache.committed(namespace, key, generation)
    for cache, items in (late or {}).values():
        for namespace, key in sorted(items, key=lambda item: (item[0], item[1] or "")):
            cache._invalidate_after_commit(namespace, key)


@event.listens_for(Session, "after_rollback")
def _forget_on_rollback(session: Session) -> None:
    if not session.in_transaction():
        session.info.pop(_PENDING, None)
        session.info.pop(_BUMPED, None)


# -- the process-wide cache of the current application -------------------------------------------
_default: TwoLevelCache | None = None


def init_app(app: Any) -> TwoLevelCache:
    global _default

    with app.app_context():
        engine = db.engine
    cache = TwoLevelCache(
        engine,
        redis_url=app.config.get("REDIS_URL", ""),
        ttl=app.config.get("CACHE_TTL", 300),
        poll_interval=app.config.get("CACHE_POLL_INTERVAL", 0.25),
    )
    app.extensions["algobridge.cache"] = cache
    _default = cache
    return cache


def current() -> TwoLevelCache:
    if has_app_context():
        cache = current_app.extensions.get("algobridge.cache")
        if cache is not None:
            return cache
    if _default is None:
        raise RuntimeError("the cache is not configured: create the app first")
    return _default


def get(namespace: str, key: str, default: Any = None) -> Any:
    return current().get(namespace, key, default)


def set(namespace: str, key: str, value: Any, ttl: int | None = None) -> None:  # noqa: A001
    current().set(namespace, key, value, ttl)


def get_or_load(namespace: str, key: str, loader: Callable[[], Any], ttl: int | None = None) -> Any:
    return current().get_or_load(namespace, key, loader, ttl)


def invalidate(namespace: str, key: str | None = None, *, session: Session | None = None) -> None:
    current().invalidate(namespace, key, session=session)


def subscribe(namespace: str, callback: Callable[[str | None], None]) -> None:
    current().subscribe(namespace, callback)


def stats() -> dict[str, int]:
    return dict(current().stats)
