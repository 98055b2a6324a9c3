"""Rate limiting kept cheap: extensions.LocalStorage (the in-process fixed-window storage behind
Flask-Limiter, local://) and the before-request check skipped only when it has nothing to enforce; and
kept from failing a request when its storage (Redis) is down (app.py's limiter settings)."""

from __future__ import annotations

import socket
import threading

import pytest
from flask import Blueprint, Flask
from flask_limiter import Limiter
from limits import parse
from limits.storage import storage_from_string
from limits.strategies import FixedWindowRateLimiter

import extensions
from extensions import LIMITS_IN_VIEWS_ONLY, LocalStorage, check_limits_in_views_only, limiter


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
    assert strategy.hit(two_per_second, "k")
    assert strategy.hit(two_per_second, "k")
    assert not strategy.hit(two_per_second, "k")
    assert strategy.hit(two_per_second, "other")  # keys are separate
    stats = strategy.get_window_stats(two_per_second, "k")
    assert stats.remaining == 0
    assert stats.reset_time == clock.now + 1
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
    assert storage.get("a") == 0
    assert storage.get("b") == 1
    assert storage.reset() == 1
    assert storage.get("b") == 0
    assert storage.check()


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


def _mini_app(lim: Limiter, *, blueprint_limit: str | None = None, **config) -> Flask:
    """An app with an undecorated route, a decorated one (1 per second), and a blueprint's route."""
    app = Flask("mini")
    app.config.update(RATELIMIT_STORAGE_URI="local://", **config)

    @app.get("/plain")
    def plain():
        return "plain"

    @app.get("/decorated")
    @lim.limit("1 per second")
    def decorated():
        return "decorated"

    bp = Blueprint(f"bp{id(app)}", __name__)
    bp.add_url_rule("/bp", "bp", lambda: "bp")
    if blueprint_limit:
        lim.limit(blueprint_limit)(bp)
    app.register_blueprint(bp)
    lim.init_app(app)
    return app


def _statuses(app, path: str, n: int = 3) -> list[int]:
    client = app.test_client()
    return [client.get(path).status_code for _ in range(n)]


def test_the_application_checks_limits_in_the_views_only(app):
    # The API, login and webhook limits are decorators' (tested elsewhere); nothing is left for the hook.
    assert app.extensions[LIMITS_IN_VIEWS_ONLY] is True
    assert limiter._check_request_limit not in app.before_request_funcs.get(None, [])


def test_the_private_hook_this_relies_on_is_still_flask_limiters():
    # extensions.check_limits_in_views_only removes Flask-Limiter's before-request check by its private
    # name (a measured exception, see its docstring): a release that renames or moves it fails here.
    lim = Limiter(key_func=lambda: "k")
    app = Flask("pinned")
    app.config.update(RATELIMIT_STORAGE_URI="local://")
    lim.init_app(app)
    assert lim._check_request_limit in app.before_request_funcs[None]


def test_without_limits_for_the_hook_the_views_still_check_their_own():
    lim = Limiter(key_func=lambda: "k")
    bare = _mini_app(lim)
    assert check_limits_in_views_only(bare, lim)
    assert bare.extensions[LIMITS_IN_VIEWS_ONLY] is True
    assert _statuses(bare, "/decorated") == [200, 429, 429]
    assert _statuses(bare, "/plain") == [200, 200, 200]
    assert _statuses(bare, "/bp") == [200, 200, 200]


def test_the_before_request_check_stays_when_it_has_limits_to_enforce():
    lim = Limiter(key_func=lambda: "k", default_limits=["1 per second"])
    with_defaults = _mini_app(lim)
    assert not check_limits_in_views_only(with_defaults, lim)
    assert _statuses(with_defaults, "/plain") == [200, 429, 429]  # the default limit, enforced by the hook
    assert _statuses(with_defaults, "/decorated") == [200, 429, 429]

    lim = Limiter(key_func=lambda: "k")
    configured = _mini_app(lim, RATELIMIT_APPLICATION="1 per second")
    assert not check_limits_in_views_only(configured, lim)
    assert configured.extensions[LIMITS_IN_VIEWS_ONLY] is False
    assert _statuses(configured, "/plain") == [200, 429, 429]

    lim = Limiter(key_func=lambda: "k")
    blueprint_wide = _mini_app(lim, blueprint_limit="1 per second")
    assert not check_limits_in_views_only(blueprint_wide, lim)
    assert _statuses(blueprint_wide, "/bp") == [200, 429, 429]
    assert _statuses(blueprint_wide, "/plain") == [200, 200, 200]


def test_the_application_never_lets_a_limiter_error_fail_a_request(app):
    assert app.config["RATELIMIT_SWALLOW_ERRORS"] is True


def test_with_redis_down_flask_limiters_fallback_enforces_the_views_limits_in_memory():
    # What app.py sets with REDIS_URL relies on: with no RATELIMIT_IN_MEMORY_FALLBACK limits of its own,
    # the fallback counts each view's decorated limits in memory (tests/blueprints/api_v1/test_redis_down.py
    # runs it end to end); a release that enforces nothing, or fails, in this case fails here.
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]  # nothing listens there once the socket is closed
    lim = Limiter(key_func=lambda: "k")
    app = Flask("fallback")
    app.config.update(RATELIMIT_STORAGE_URI=f"redis://127.0.0.1:{closed}/0", RATELIMIT_HEADERS_ENABLED=True,
                      RATELIMIT_IN_MEMORY_FALLBACK_ENABLED=True, RATELIMIT_SWALLOW_ERRORS=True)

    @app.get("/decorated")
    @lim.limit("2 per hour")
    def decorated():
        return "decorated"

    lim.init_app(app)
    assert _statuses(app, "/decorated") == [200, 200, 429]
