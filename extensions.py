"""Flask extensions, created once and bound to the application in create_app() (init_app), and the two
pieces of theirs this application supplies: the rate limiter's in-process storage and the session
interface."""

from __future__ import annotations

import threading
import time
from typing import Any

from flask import Flask, Request, Response, request
from flask.sessions import SessionInterface, SessionMixin
from flask_limiter import Limiter
from flask_login import LoginManager
from flask_wtf import CSRFProtect
from limits.storage import Storage


def client_address() -> str:
    """The client's address for rate limits and logs. Proxy headers are trusted only when
    TRUST_PROXY_HEADERS is on (ProxyFix is then installed and request.remote_addr is the client)."""
    return request.remote_addr or "unknown"


class LocalStorage(Storage):
    """Rate-limit counters in this process's memory, for the fixed-window strategy (Flask-Limiter's
    default): `RATELIMIT_STORAGE_URI=local://`, registered with `limits` as a custom storage.

    The same counting as `limits`' memory:// (per process; REDIS_URL gives counters shared by every
    worker and host), without its cost on the request path: memory:// keeps a lock per key and starts a
    new timer thread to expire keys about every 10 ms under load. Here an expired window is recognised
    when read, and expired keys are swept at most once a second, on a hit, under one short lock.
    Only the fixed-window strategy is supported (moving and sliding windows need Redis or memory://).
    """

    STORAGE_SCHEME = ["local"]
    SWEEP_EVERY = 1.0  # seconds

    def __init__(self, uri: str | None = None, wrap_exceptions: bool = False, **options: float | str | bool) -> None:
        self._windows: dict[str, list[float]] = {}  # key -> [count, expires at (epoch seconds)]
        self._lock = threading.Lock()
        self._next_sweep = 0.0
        super().__init__(uri, wrap_exceptions=wrap_exceptions, **options)

    @property
    def base_exceptions(self) -> type[Exception] | tuple[type[Exception], ...]:
        return ValueError

    def incr(self, key: str, expiry: float, amount: int = 1) -> int:
        now = time.time()
        with self._lock:
            if now >= self._next_sweep:
                self._sweep(now)
            window = self._windows.get(key)
            if window is None or window[1] <= now:
                window = self._windows[key] = [0, now + expiry]
            window[0] += amount
            return int(window[0])

    def get(self, key: str) -> int:
        window = self._windows.get(key)
        return int(window[0]) if window is not None and window[1] > time.time() else 0

    def get_expiry(self, key: str) -> float:
        now = time.time()
        window = self._windows.get(key)
        return window[1] if window is not None and window[1] > now else now

    def check(self) -> bool:
        return True

    def reset(self) -> int | None:
        with self._lock:
            count = len(self._windows)
            self._windows.clear()
        return count

    def clear(self, key: str) -> None:
        with self._lock:
            self._windows.pop(key, None)

    def _sweep(self, now: float) -> None:
        # Under self._lock. Keeps memory bounded by the keys of windows still open.
        self._next_sweep = now + self.SWEEP_EVERY
        expired = [key for key, window in self._windows.items() if window[1] <= now]
        for key in expired:
            del self._windows[key]


class NoApiSessions(SessionInterface):
    """The application's session interface, except under /api/: API calls authenticate with their key,
    so they neither verify a session cookie nor set one (a null session: reading it finds nothing)."""

    def __init__(self, inner: SessionInterface) -> None:
        self.inner = inner

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def open_session(self, app: Flask, request: Request) -> SessionMixin | None:
        if request.path.startswith("/api/"):
            return self.inner.make_null_session(app)
        return self.inner.open_session(app, request)

    def save_session(self, app: Flask, session: SessionMixin, response: Response) -> None:
        self.inner.save_session(app, session, response)


LIMITS_IN_VIEWS_ONLY = "algobridge.limits_in_views_only"  # app.extensions: check_limits_in_views_only's answer


def check_limits_in_views_only(app: Flask, limiter: Limiter) -> bool:
    """Remove Flask-Limiter's before-request check when it can only find nothing; True when removed (also
    kept in app.extensions[LIMITS_IN_VIEWS_ONLY]).

    Flask-Limiter checks twice per request: a before-request hook for default, application and
    blueprint-wide limits, then each decorated view for its own. Every limit of this application is a
    view decorator's (the API families, login, webhooks), so the hook resolves nothing, on every request,
    page or API call. Flask-Limiter has no switch for it; its documented request filters still resolve
    every limit before filtering, which measured *more* than the hook (bench/reads.py: ping and funds
    cost 8-12 % more CPU per request than with the hook gone; in-process, about 150 us of a 600 us
    call). So the hook, the limiter's `_check_request_limit` (a private name), is taken out of the app's
    before-request functions: a measured exception to "no private internals", pinned by
    tests/blueprints/api_v1/test_rate_storage.py, which fails if a Flask-Limiter release renames it.

    The hook stays as soon as any limit it would enforce exists: RATELIMIT_DEFAULT / RATELIMIT_APPLICATION,
    limits given to the Limiter, or a blueprint-wide limit. Call it after limiter.init_app(app), once
    every blueprint is registered."""
    manager = limiter.limit_manager
    with app.app_context():  # limits may be callables that read the configuration
        needed = bool(
            app.config.get("RATELIMIT_DEFAULT") or app.config.get("RATELIMIT_APPLICATION")
            or manager.default_limits or manager.application_limits
            or any(manager.blueprint_limits(app, name) for name in app.blueprints)
        )
    hooks = app.before_request_funcs.get(None, [])
    kept = [f for f in hooks if f != limiter._check_request_limit]
    removed = not needed and len(kept) < len(hooks)
    if removed:
        app.before_request_funcs[None] = kept
    app.extensions[LIMITS_IN_VIEWS_ONLY] = removed
    return removed


login_manager = LoginManager()
csrf = CSRFProtect()
# Headers and storage come from the configuration (RATELIMIT_HEADERS_ENABLED, RATELIMIT_STORAGE_URI: app.py).
limiter = Limiter(key_func=client_address, default_limits=[])
