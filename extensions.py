"""Flask extensions, created once and bound to the application in create_app() (init_app), and the two
pieces of theirs this application supplies: the rate limiter's in-process storage and the session
interface."""

from __future__ import annotations

import threading
import time
import weakref
from typing import Any

from flask import Flask, Request, Response, current_app, request
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
_IN_VIEW = "algobridge.limits_in_view"  # request.environ: the request has reached its view's decorators
_filtered: weakref.WeakSet[Limiter] = weakref.WeakSet()


def check_limits_in_views_only(app: Flask, limiter: Limiter) -> bool:
    """Let Flask-Limiter's before-request check skip its work when it can only find nothing; True when it
    does (also kept in app.extensions[LIMITS_IN_VIEWS_ONLY]).

    Flask-Limiter checks twice per request: a before-request hook for default, application and
    blueprint-wide limits, then each decorated view for its own. Every limit of this application is a
    view decorator's (the API families, login, webhooks), so the hook would resolve nothing, on every
    request, page or API call, at about a sixth of a read API call's Flask-side time. Flask-Limiter has
    no switch for its hook, but it has request filters (its documented way to exempt a request): one
    exempts the request until a before-request function of ours, registered after the limiter's hook,
    marks that the view is next; the views' decorators then check as before.

    The hook keeps its work as soon as any limit it would enforce exists: RATELIMIT_DEFAULT /
    RATELIMIT_APPLICATION, limits given to the Limiter, or a blueprint-wide limit. Call it after
    limiter.init_app(app), once every blueprint is registered."""
    manager = limiter.limit_manager
    with app.app_context():  # limits may be callables that read the configuration
        needed = bool(
            app.config.get("RATELIMIT_DEFAULT") or app.config.get("RATELIMIT_APPLICATION")
            or manager.default_limits or manager.application_limits
            or any(manager.blueprint_limits(app, name) for name in app.blueprints)
        )
    app.extensions[LIMITS_IN_VIEWS_ONLY] = not needed
    if needed:
        return False
    if limiter not in _filtered:  # one filter per limiter, whatever the number of apps it serves
        limiter.request_filter(_before_the_view)
        _filtered.add(limiter)
    app.before_request(_entering_the_view)
    return True


def _entering_the_view() -> None:
    request.environ[_IN_VIEW] = True


def _before_the_view() -> bool:
    """Flask-Limiter's request filter: True (exempt) during its own before-request check, where nothing
    is to be found; False from then on, so the views' decorated limits apply."""
    return bool(current_app.extensions.get(LIMITS_IN_VIEWS_ONLY)) and _IN_VIEW not in request.environ


login_manager = LoginManager()
csrf = CSRFProtect()
# Headers and storage come from the configuration (RATELIMIT_HEADERS_ENABLED, RATELIMIT_STORAGE_URI: app.py).
limiter = Limiter(key_func=client_address, default_limits=[])
