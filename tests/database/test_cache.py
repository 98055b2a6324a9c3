"""The two-level cache: TTL, hit/miss counts, and invalidation across processes within a second,
with Redis and without it (database generation counter)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from database import cache

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_local_get_set_invalidate_and_stats(app):
    cache.set("t", "k", {"v": 1})
    assert cache.get("t", "k") == {"v": 1}
    calls = []
    cache.subscribe("t", calls.append)
    cache.invalidate("t", "k")
    assert cache.get("t", "k") is None
    assert calls == ["k"]
    stats = cache.stats()
    assert stats["hits"] >= 1
    assert stats["misses"] >= 1


def test_invalidation_waits_for_commit_when_given_a_session(app):
    from database import db
    from database.user_db import User

    cache.set("t", "k2", 1)
    db.session.add(User(username="z", password_hash="h"))
    db.session.flush()
    cache.invalidate("t", "k2", session=db.session)
    assert cache.get("t", "k2") == 1  # not yet: the change is not committed
    db.session.commit()
    assert cache.get("t", "k2") is None


def test_an_invalidation_inside_a_savepoint_waits_for_the_outer_commit(app):
    """A savepoint's release is not the commit: an invalidation registered before or inside it is
    announced when the outermost transaction commits (before, it went out at the release, ahead of
    the data, and on SQLite without Redis its counter bump waited on the unit's own write lock)."""
    from database import db, write_unit
    from database.user_db import User

    cache.set("t", "k3", 1)
    write_unit()
    db.session.add(User(username="y", password_hash="h"))
    db.session.flush()
    cache.invalidate("t", "k3", session=db.session)
    with db.session.begin_nested():
        db.session.add(User(username="x", password_hash="h"))
    assert cache.get("t", "k3") == 1  # the savepoint is released, the transaction is not committed
    db.session.commit()
    assert cache.get("t", "k3") is None


CHILD = r"""
import json, sys, time
sys.path.insert(0, {root!r})
from app import create_app
from database import cache
app = create_app(json.loads({overrides!r}))
with app.app_context():
    seen = []
    cache.subscribe("shared", lambda key: seen.append(time.time()))
    cache.set("shared", "k", "v")
    print("ready", flush=True)
    deadline = time.time() + 20
    while time.time() < deadline and not seen:
        time.sleep(0.005)
    gone_at = seen[0] if seen else None
    print(json.dumps({{"gone_at": gone_at, "value": cache.get("shared", "k")}}), flush=True)
"""


@pytest.mark.slow
@pytest.mark.parametrize("with_redis", [False, True], ids=["db-counter", "redis"])
def test_invalidation_reaches_another_process_within_a_second(app, with_redis):
    overrides = {"DATABASE_URL": app.config["DATABASE_URL"], "INSTANCE_PATH": app.instance_path,
                 "SECRET_KEY": app.config["SECRET_KEY"], "API_KEY_PEPPER": app.config["API_KEY_PEPPER"],
                 "TOKEN_ENCRYPTION_KEYS": app.config["TOKEN_ENCRYPTION_KEYS"],
                 "REDIS_URL": "redis://127.0.0.1:6379/15" if with_redis else ""}
    from database import db
    from database.cache import TwoLevelCache

    ours = TwoLevelCache(db.engine, redis_url=overrides["REDIS_URL"])
    ours.start()
    script = CHILD.format(root=ROOT, overrides=json.dumps(overrides))
    child = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        assert child.stdout.readline().strip() == "ready"
        time.sleep(0.3)  # let its listener settle
        sent_at = time.time()
        ours.invalidate("shared", "k")
        result = json.loads(child.stdout.readline())
    finally:
        child.wait(timeout=30)
        child.stdout.close()
        ours.stop()
    assert result["gone_at"] is not None, "the other process never saw the invalidation"
    assert result["gone_at"] - sent_at < 1.0
    assert result["value"] is None


def test_an_invalidation_from_another_process_is_not_swallowed_by_ours(app):
    """Process B bumps the generation, then we bump ours before our poller ran: B's must still
    clear our namespace (here, through the poller)."""
    import time as _time

    from database import db
    from database.cache import TwoLevelCache

    ours = cache.current()
    other = TwoLevelCache(db.engine)  # another process's cache, same database
    ours.set("race", "k1", "v1")
    other.invalidate("race", "k1")
    ours.invalidate("race", "k2")  # ours lands right after theirs
    deadline = _time.time() + 2
    while _time.time() < deadline and ours.get("race", "k1") is not None:
        _time.sleep(0.02)
    assert ours.get("race", "k1") is None


def test_a_load_overtaken_by_an_invalidation_is_not_cached(app):
    ours = cache.current()

    def loader():
        ours.invalidate("late", None)  # the change commits while we were loading
        return "stale"

    assert ours.get_or_load("late", "k", loader) == "stale"
    assert ours.get("late", "k") is None


def test_a_sharded_namespace_keeps_a_counter_per_key_and_clears_only_that_key_elsewhere(app):
    from sqlalchemy import select

    from database import db
    from database.cache import CacheGeneration, TwoLevelCache

    cache.shard_by_key("sharded")
    assert cache.generation_row("sharded", "7") == "sharded#7"
    assert cache.generation_row("sharded", None) == "sharded"
    assert cache.generation_row("plain", "7") == "plain"
    ours = cache.current()
    other = TwoLevelCache(db.engine)  # another process's cache, same database
    ours.set("sharded", "7", "a")
    ours.set("sharded", "8", "b")
    with db.session.begin():  # a keyed invalidation tied to a commit bumps only the key's row
        other.invalidate("sharded", "7", session=db.session)
    rows = dict(db.session.execute(select(CacheGeneration.namespace, CacheGeneration.generation)).all())
    assert rows.get("sharded#7") == 1
    assert "sharded" not in rows
    assert "sharded#8" not in rows
    deadline = time.time() + 2
    while time.time() < deadline and ours.get("sharded", "7") is not None:
        time.sleep(0.02)
    assert ours.get("sharded", "7") is None
    assert ours.get("sharded", "8") == "b"  # another key's entry stays
    other.invalidate("sharded", None)  # the whole namespace: its own row, everything goes
    deadline = time.time() + 2
    while time.time() < deadline and ours.get("sharded", "8") is not None:
        time.sleep(0.02)
    assert ours.get("sharded", "8") is None
