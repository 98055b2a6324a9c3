"""Rate limiting kept cheap: extensions.LocalStorage (the in-process fixed-window storage behind
Flask-Limiter, local://) and the before-request check dropped only when it has nothing to enforce."""

from __future__ import annotations

import threading

import pytest
from flask import Blueprint, Flask
from flask_limiter import Limiter
from limits import parse
from limits.storage import storage_from_string
from limits.strategies import FixedWindowRateLimiter

import extensions
from extensions import LocalStorage, drop_redundant_limit_check, limiter


class Clock:
    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch):
    clock = Clock()
    monkeypatch.setattr(extensions.time, "time", clock)
    return clock


def test_it_is_the_default_storage_without_redis(app):
    if app.config["REDIS_URL"]:
        pytest.skip("REDIS_URL is set: Redis holds the counters")
    assert isinstance(limiter.storage, LocalStorage)
    assert isinstance(storage_from_string("local://"), LocalStorage)


def test_fixed_windows_count_and_reset(clock):
    storage = LocalStorage()
    strategy = FixedWindowRateLimiter(storage)
    two_per_second = parse("2 per second")
    assert strategy.hit(two_per_second, "k") and strategy.hit(two_per_second, "k")
    assert not strategy.hit(two_per_second, "k")
    assert strategy.hit(two_per_second, "other")  # keys are separate
    stats = strategy.get_window_stats(two_per_second, "k")
    assert stats.remaining == 0 and stats.reset_time == clock.now + 1
    clock.now += 1  # the window has ended
    assert strategy.get_window_stats(two_per_second, "k").remaining == 2
    assert strategy.hit(two_per_second, "k")
    assert storage.get(two_per_second.key_for("k")) == 1


def test_expired_windows_are_swept(clock):
    storage = LocalStorage()
    for n in range(100):
        storage.incr(f"key{n}", 1)
    storage.incr("long", 3600)
    assert len(storage._windows) == 101
    clock.now += 2  # past the sweep interval and the one-second windows
    storage.incr("new", 1)
    assert sorted(storage._windows) == ["long", "new"]


def test_clear_and_reset(clock):
    storage = LocalStorage()
    storage.incr("a", 60, 3)
    storage.incr("b", 60)
    storage.clear("a")
    assert storage.get("a") == 0 and storage.get("b") == 1
    assert storage.reset() == 1
    assert storage.get("b") == 0 and storage.check()


def test_concurrent_hits_are_all_counted():
    storage = LocalStorage()

    def hit() -> None:
        for _ in range(1000):
            storage.incr("k", 3600)

    threads = [threading.Thread(target=hit) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert storage.get("k") == 8000


def _mini_app(**config):
    app = Flask("mini")
    app.config.update(RATELIMIT_STORAGE_URI="local://", **config)
    return app


def _has_check(app, lim) -> bool:
    return any(f == lim._check_request_limit for f in app.before_request_funcs.get(None, []))


def test_the_application_checks_limits_in_the_views_only(app):
    assert not _has_check(app, limiter)  # the API, login and webhook limits are decorators' (tested elsewhere)


def test_the_before_request_check_stays_when_it_has_limits_to_enforce():
    bare = _mini_app()
    lim = Limiter(key_func=lambda: "k")
    lim.init_app(bare)
    assert drop_redundant_limit_check(bare, lim) and not _has_check(bare, lim)

    with_defaults = _mini_app()
    lim = Limiter(key_func=lambda: "k", default_limits=["1 per second"])
    lim.init_app(with_defaults)
    assert not drop_redundant_limit_check(with_defaults, lim) and _has_check(with_defaults, lim)

    configured = _mini_app(RATELIMIT_APPLICATION="5 per second")
    lim = Limiter(key_func=lambda: "k")
    lim.init_app(configured)
    assert not drop_redundant_limit_check(configured, lim) and _has_check(configured, lim)

    blueprint_wide = _mini_app()
    lim = Limiter(key_func=lambda: "k")
    bp = Blueprint("bp", __name__)
    lim.limit("1 per second")(bp)
    blueprint_wide.register_blueprint(bp)
    lim.init_app(blueprint_wide)
    assert not drop_redundant_limit_check(blueprint_wide, lim) and _has_check(blueprint_wide, lim)
