"""Algobridge: create_app() builds the application; services.runtime.bootstrap readies its database.

`python app.py` serves the embedded default (SQLite in the instance folder, migrated at start) on
127.0.0.1:5000 with gunicorn. In production: `gunicorn 'app:create_app()'`.
"""

from __future__ import annotations

import logging
import os
import runpy
import sys
import threading
import time
import weakref
from collections.abc import Mapping
from typing import Any

import click
from dotenv import load_dotenv
from flask import Flask, jsonify, render_template, request
from flask.helpers import get_debug_flag
from gunicorn.app.base import BaseApplication
from sqlalchemy import exc as sa_exc
from werkzeug.exceptions import HTTPException, InternalServerError
from werkzeug.middleware.proxy_fix import ProxyFix

import config as config_module
import vocabulary
from blueprints import (
    api_v1_history,  # noqa: F401 - its endpoints join api_v1_bp, registered below
    api_v1_market,  # noqa: F401 - its endpoints join api_v1_bp, registered below
    api_v1_options,  # noqa: F401 - its endpoints join api_v1_bp, registered below
    api_v1_risk,  # noqa: F401 - its endpoints join api_v1_bp, registered below
    formatting,
    market_badge,
    traffic,
)
from blueprints.api_v1 import api_v1_bp
from blueprints.apikey import apikey_bp
from blueprints.auth import auth_bp
from blueprints.broker import broker_bp
from blueprints.calendar import calendar_bp
from blueprints.dashboard import dashboard_bp
from blueprints.feed import feed_bp
from blueprints.health import health_bp
from blueprints.history import history_bp
from blueprints.logs import logs_bp
from blueprints.options import options_bp
from blueprints.orders import orders_bp
from blueprints.request_class import AppRequest
from blueprints.risk import risk_bp
from blueprints.settings import settings_bp
from blueprints.strategy import strategy_bp
from blueprints.symbols import symbols_bp
from blueprints.telegram import telegram_bp
from blueprints.users import users_bp
from blueprints.webhook import webhook_bp
from cli.backup import backup_cli
from cli.calendar import calendar_cli
from cli.history import history_cli
from cli.logs import logs_cli
from cli.risk import risk_cli
from cli.secrets import secrets_cli
from cli.symbols import symbols_cli
from cli.users import users_cli
from database import cache, crypto, db, engine_options, import_models, schema, writer
from database.systemlog_db import install_handler
from extensions import NoApiSessions, check_limits_in_views_only, csrf, limiter, login_manager
from services.accounts import login_guard
from services.accounts.users import any_user_exists
from services.runtime import bootstrap, scheduler
from services.runtime.bootstrap import SCHEMA_NOT_MIGRATED, init_migrations, setup_environment

__all__ = ["create_app", "main", "setup_environment"]

log = logging.getLogger("algobridge")

ROOT = os.path.dirname(os.path.abspath(__file__))

BLUEPRINTS = (health_bp, auth_bp, users_bp, apikey_bp, broker_bp, api_v1_bp, strategy_bp, webhook_bp,
              dashboard_bp, orders_bp, logs_bp, settings_bp, symbols_bp, options_bp, history_bp, calendar_bp,
              feed_bp, risk_bp, telegram_bp)
CLI_GROUPS = (secrets_cli, users_cli, symbols_cli, logs_cli, backup_cli, calendar_cli, history_cli, risk_cli)

DATABASE_UNAVAILABLE = "database unavailable, retry shortly"
# OperationalError: connection refused or lost, the server starting up or shutting down, a lock or
# statement timeout; InterfaceError: a connection already closed; DisconnectionError and
# TimeoutError: the pool could not hand out a live connection in time.
DATABASE_UNAVAILABLE_ERRORS = (sa_exc.OperationalError, sa_exc.InterfaceError, sa_exc.DisconnectionError,
                               sa_exc.TimeoutError)


class Algobridge(Flask):
    """Flask, with the one error answer no blueprint's handler may replace: the database is unavailable.

    A blueprint's catch-all handler (the API's, the webhooks') is found before any handler of the
    application, so a database outage would answer 500 there. Flask hands every exception of a request
    to handle_user_exception before looking for a handler: an outage is answered there, in every scope.
    """

    def handle_user_exception(self, e: Exception) -> Any:
        if isinstance(e, DATABASE_UNAVAILABLE_ERRORS):
            return database_unavailable(e)
        if isinstance(e, schema.SchemaError):  # a table missing under a running server
            if _db_warnings.due():
                log.error("%s (%s)", SCHEMA_NOT_MIGRATED, e)
            return schema_not_migrated(request.environ)
        return super().handle_user_exception(e)


def _flask_run_serves() -> bool:
    """True when the `flask` CLI builds the app to serve it: `flask run`, in the process that serves (with the
    reloader, its child; the watching parent never serves and starts nothing)."""
    ctx = click.get_current_context(silent=True)
    # `flask run` builds the app inside its own command; the other commands' apps are built while the group
    # looks their command up (in the root context).
    if ctx is None or ctx.parent is None or ctx.info_name != "run" or os.environ.get("FLASK_RUN_FROM_CLI") != "true":
        return False
    reload = ctx.params.get("reload")
    if reload is None:
        reload = get_debug_flag()
    return not reload or os.environ.get("WERKZEUG_RUN_MAIN") == "true"


def create_app(config_overrides: Mapping[str, Any] | None = None) -> Flask:
    """Build the application. Outside the `flask` CLI, and under `flask run`, it also readies the database
    (setup_environment: migrated when AUTO_MIGRATE is on, else pages answer 503 until `flask db upgrade`);
    other CLI commands do that themselves when they need it. Under the `flask` CLI a configuration error is
    one line on stderr and exit status 2 (config.fail); `flask secrets generate-key` needs no settings."""
    try:
        return _build_app(config_overrides)
    except config_module.ConfigError as exc:
        if os.environ.get("FLASK_RUN_FROM_CLI") != "true" or click.get_current_context(silent=True) is None:
            raise  # python app.py (main), gunicorn, tests: their caller decides
        if sys.argv[-2:] == ["secrets", "generate-key"]:  # the command that makes the missing secret
            click.echo(crypto.generate_key())
            sys.exit(0)
        config_module.fail(exc)


def _build_app(config_overrides: Mapping[str, Any] | None = None) -> Flask:
    load_dotenv(os.path.join(ROOT, ".env"), override=False)
    overrides = dict(config_overrides or {})
    instance_path = overrides.pop("INSTANCE_PATH", None) or os.environ.get("INSTANCE_PATH") or os.path.join(
        ROOT, "instance"
    )
    app = Algobridge(__name__, instance_path=os.path.abspath(instance_path), instance_relative_config=True)
    os.makedirs(app.instance_path, mode=0o700, exist_ok=True)
    app.config.update(config_module.load_config(app.instance_path, overrides=overrides))
    app.config["SQLALCHEMY_ENGINE_OPTIONS"] = engine_options(app.config)
    app.config.setdefault("SQLALCHEMY_TRACK_MODIFICATIONS", False)

    configure_logging(app)
    register_extensions(app)
    register_blueprints(app)
    register_error_handlers(app)
    register_cli(app)

    run_setup = overrides.get("SETUP_ENVIRONMENT")
    if run_setup is None:
        # `flask run` serves like `python app.py`: the same migrated, ready application.
        run_setup = os.environ.get("FLASK_RUN_FROM_CLI") != "true" or _flask_run_serves()
    app.wsgi_app = SchemaGate(app, app.wsgi_app)  # type: ignore[method-assign]
    if run_setup:
        setup_environment(app, serving=True)
    else:
        # The `flask` CLI (`flask db ...`), and tools and tests that migrate the database themselves.
        init_migrations(app)
    _register_fork_hook(app)
    return app


def configure_logging(app: Flask) -> None:
    level = getattr(logging, str(app.config["LOG_LEVEL"]).upper(), None)
    if not isinstance(level, int):
        raise config_module.ConfigError(f"LOG_LEVEL={app.config['LOG_LEVEL']!r} is not a logging level")
    root = logging.getLogger("algobridge")
    root.setLevel(level)
    # urllib3 logs request URLs at DEBUG, and some broker APIs put tokens in query strings.
    logging.getLogger("urllib3").setLevel(logging.WARNING)
    if not any(getattr(h, "_algobridge", False) for h in root.handlers):
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        handler._algobridge = True  # type: ignore[attr-defined]
        root.addHandler(handler)


class TrustedProxies:
    """X-Forwarded-For and X-Forwarded-Proto believed only from TRUSTED_PROXIES: the client's address is the
    first hop, from the right, that is not one of them (login_guard.client_ip), so rate limits, logs and the
    secure cookie see the client, and a client cannot name itself by sending the header. The connection's own
    values are kept where ProxyFix keeps them (`werkzeug.proxy_fix.orig`)."""

    def __init__(self, wsgi_app: Any, trusted: Any) -> None:
        self.wsgi_app = wsgi_app
        self.trusted = tuple(trusted)

    def __call__(self, environ: dict, start_response: Any) -> Any:
        peer = environ.get("REMOTE_ADDR")
        address = login_guard.parse_address(peer)
        if address is not None and login_guard.is_trusted(address, self.trusted):
            environ["werkzeug.proxy_fix.orig"] = {"REMOTE_ADDR": peer,
                                                  "wsgi.url_scheme": environ.get("wsgi.url_scheme")}
            environ["REMOTE_ADDR"] = login_guard.client_ip(peer, environ.get("HTTP_X_FORWARDED_FOR"), self.trusted)
            proto = (environ.get("HTTP_X_FORWARDED_PROTO") or "").split(",")[-1].strip().lower()
            if proto in ("http", "https"):
                environ["wsgi.url_scheme"] = proto
        return self.wsgi_app(environ, start_response)


def register_extensions(app: Flask) -> None:
    import_models()
    db.init_app(app)
    app.extensions["algobridge.vault"] = crypto.configure(app.config["TOKEN_ENCRYPTION_KEYS"])
    cache.init_app(app)
    writer.init_app(app)
    install_handler()
    if app.config["TRUSTED_PROXIES"]:
        app.wsgi_app = TrustedProxies(app.wsgi_app, app.config["TRUSTED_PROXIES"])  # type: ignore[method-assign]
    elif app.config["TRUST_PROXY_HEADERS"]:
        log.warning("TRUST_PROXY_HEADERS believes X-Forwarded-For from any peer: list your proxies in TRUSTED_PROXIES")
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=1, x_proto=1, x_host=1)  # type: ignore[method-assign]
    # The rate limiter reads the body before the view: bound it (413 beyond).
    if app.config.get("MAX_CONTENT_LENGTH") is None:  # Flask pre-fills it with None: setdefault never took
        app.config["MAX_CONTENT_LENGTH"] = 1_048_576
    # local://: extensions.LocalStorage, memory:// without a timer thread per few requests.
    app.config.setdefault("RATELIMIT_STORAGE_URI", app.config["REDIS_URL"] or "local://")
    app.config.setdefault("RATELIMIT_HEADERS_ENABLED", True)
    # A limiter error is logged, never the request's failure: after the view (its headers) an order may
    # be placed already.
    app.config.setdefault("RATELIMIT_SWALLOW_ERRORS", True)
    if app.config["REDIS_URL"]:
        # Redis down: each process counts in its own memory until a check finds Redis back (Flask-Limiter's
        # fallback); bounded waits for a Redis that hangs.
        app.config.setdefault("RATELIMIT_IN_MEMORY_FALLBACK_ENABLED", True)
        app.config.setdefault("RATELIMIT_STORAGE_OPTIONS", {"socket_connect_timeout": 2, "socket_timeout": 2})
    # Flask pre-fills these keys (SameSite with None), so setdefault would not take.
    app.config["SESSION_COOKIE_HTTPONLY"] = True
    app.config["SESSION_COOKIE_SAMESITE"] = app.config.get("SESSION_COOKIE_SAMESITE") or "Lax"
    login_manager.init_app(app)
    csrf.init_app(app)
    limiter.init_app(app)
    traffic.init_app(app)  # a traffic_logs row per request, through the log writer


def register_blueprints(app: Flask) -> None:
    for bp in BLUEPRINTS:
        app.register_blueprint(bp)
    app.jinja_env.globals["vocab"] = vocabulary  # templates say vocab.Mode.LIVE, vocab.OPEN_STATUSES, ...
    app.jinja_env.globals["analyze_hours"] = market_badge.analyze_hours  # the analyze-mode badge (base.html)
    formatting.register(app)  # the filters inr, xtime, xdate, short_id (blueprints/formatting.py)
    app.request_class = AppRequest  # bad JSON, too-deep included, is "not JSON" for every blueprint
    app.session_interface = NoApiSessions(app.session_interface)  # the one auth_bp set; none for /api/
    check_limits_in_views_only(app, limiter)  # once every blueprint has declared its limits


class _Throttle:
    """At most one warning per `interval` seconds; counts the ones held back."""

    def __init__(self, interval: float) -> None:
        self.interval, self._last, self._suppressed = interval, float("-inf"), 0
        self._lock = threading.Lock()

    def due(self) -> bool:
        with self._lock:
            now = time.monotonic()
            if now - self._last >= self.interval:
                self._last = now
                return True
            self._suppressed += 1
            return False

    def take_suppressed(self) -> int:
        with self._lock:
            n, self._suppressed = self._suppressed, 0
            return n


_db_warnings = _Throttle(5.0)


def wants_json() -> bool:
    return request.path.startswith("/api/") or request.accept_mimetypes.best == "application/json"


def database_unavailable(exc: Exception):
    """The database is down, restarting or unreachable: a clear, retryable answer, no traceback.
    The pool pre-pings, so the first request after it is back gets a live connection."""
    if _db_warnings.due():  # one line per few seconds, not one per request of an outage
        detail = (str(getattr(exc, "orig", None) or exc).splitlines() or [""])[0][:200]
        log.warning("database unavailable (%s): %s; %d more such errors since the last warning",
                    type(exc).__name__, detail, _db_warnings.take_suppressed())
    try:
        db.session.rollback()
    except Exception:  # noqa: BLE001, S110 - the connection is gone; the pool discards it
        pass
    headers = {"Retry-After": "2"}
    if wants_json():
        return jsonify(status="error", message=DATABASE_UNAVAILABLE), 503, headers
    try:
        page = render_template("errors/error.html", code=503, title="Service Unavailable",
                               message="The database is unavailable; please retry in a few seconds.")
    except Exception:  # noqa: BLE001 - the page's layout may itself need the database
        page = ("<!doctype html><title>503 Service Unavailable</title><h1>503 Service Unavailable</h1>"
                "<p>The database is unavailable; please retry in a few seconds.</p>")
    return page, 503, headers


def _wants_json(environ: Mapping[str, Any]) -> bool:
    accept = str(environ.get("HTTP_ACCEPT") or "")
    return str(environ.get("PATH_INFO") or "").startswith("/api/") or (
        "application/json" in accept and "text/html" not in accept)


def schema_not_migrated(environ: Mapping[str, Any]):
    """503 "schema not migrated: run flask db upgrade": JSON for the API and machine clients, else a page that
    needs nothing from the database."""
    if _wants_json(environ):
        return jsonify(status="error", message=SCHEMA_NOT_MIGRATED), 503, {"Retry-After": "5"}
    page = ("<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>503 Service Unavailable</title>"
            "<link rel=\"stylesheet\" href=\"/static/css/app.css\"></head><body><main class=\"container\">"
            f"<h1>503 Service Unavailable</h1><p>{SCHEMA_NOT_MIGRATED}: the database has not been brought to this "
            "version's schema. On the server, run <code>flask db upgrade</code> (or start with AUTO_MIGRATE=true); "
            "this page works as soon as it has run.</p></main></body></html>")
    return page, 503, {"Retry-After": "5", "Content-Type": "text/html; charset=utf-8"}


class SchemaGate:
    """Until the schema is at head (a server started on an unmigrated database, AUTO_MIGRATE off: see
    bootstrap.setup_environment), every request but a static file is answered 503 SCHEMA_NOT_MIGRATED here,
    before Flask: no session, no log row, no query of a table that does not exist. It looks again every few
    seconds (bootstrap.retry_setup) and lets requests through once `flask db upgrade` has run."""

    def __init__(self, app: Flask, wsgi_app: Any) -> None:
        self.app, self.wsgi_app = app, wsgi_app

    def __call__(self, environ: dict, start_response: Any) -> Any:
        app = self.app
        if bootstrap.UNMIGRATED in app.extensions and not str(environ.get("PATH_INFO") or "").startswith("/static/"):
            with app.app_context():
                try:
                    ready = bootstrap.retry_setup(app)
                except DATABASE_UNAVAILABLE_ERRORS as exc:
                    log.warning("database unavailable while waiting for the schema: %s", exc)
                    ready = False
                if not ready:
                    return app.make_response(schema_not_migrated(environ))(environ, start_response)
        return self.wsgi_app(environ, start_response)


def register_error_handlers(app: Flask) -> None:
    """JSON errors for the API and machine clients; pages in the site's style for people.
    Never a traceback. (A database outage is answered before these: Algobridge.handle_user_exception.)"""

    def render(exc: HTTPException):
        headers = [(k, v) for k, v in exc.get_headers() if k.lower() != "content-type"]
        if wants_json():
            return jsonify(status="error", message=exc.description or exc.name), exc.code, headers
        return render_template("errors/error.html", code=exc.code, title=exc.name,
                               message=exc.description), exc.code, headers

    def internal_error(_exc: Exception):
        log.exception("unhandled error")
        return render(InternalServerError("Something went wrong on our side; it has been logged."))

    app.register_error_handler(HTTPException, render)
    app.register_error_handler(Exception, internal_error)


def register_cli(app: Flask) -> None:
    for group in CLI_GROUPS:
        app.cli.add_command(group)


def after_fork(app: Flask) -> None:
    """In a process forked from one that already built the app (gunicorn's master, --preload):
    drop the inherited pooled connections, and give the cache listener and the log writer fresh
    locks and threads of this process's own."""
    with app.app_context():
        db.engine.dispose(close=False)
    app.extensions["algobridge.cache"].after_fork()
    app.extensions["algobridge.writer"].after_fork()
    if "algobridge.scheduler" in app.extensions:  # its thread did not come along
        scheduler.start(app)


def _register_fork_hook(app: Flask) -> None:
    ref = weakref.ref(app)

    def in_child() -> None:
        application = ref()
        if application is not None:
            after_fork(application)

    os.register_at_fork(after_in_child=in_child)


def main() -> None:
    """Serve with gunicorn, configured by gunicorn.conf.py: the same settings as
    `gunicorn 'app:create_app()'` (HOST:PORT, WEB_WORKERS, WEB_THREADS, the timeouts, the hooks)."""
    try:
        application = create_app()
        settings = runpy.run_path(os.path.join(ROOT, "gunicorn.conf.py"))
    except config_module.ConfigError as exc:
        config_module.fail(exc)  # one line on stderr, exit status 2
    hint = open_hint(application, settings["bind"])

    class Server(BaseApplication):
        def load_config(self) -> None:
            for name, value in settings.items():
                if name in self.cfg.settings and name != "wsgi_app":
                    self.cfg.set(name, value)
            configured = self.cfg.when_ready

            def when_ready(server: Any) -> None:  # the last line of the start: where to go
                configured(server)
                log.info("%s", hint)

            self.cfg.set("when_ready", when_ready)

        def load(self):
            return application

    Server().run()


def open_hint(application: Flask, binds: list[str]) -> str:
    """What to open once the server listens: its address, and /setup while no account exists (a fresh
    install)."""
    urls = []
    for bind in binds:
        if bind.startswith(("unix:", "fd://")):
            urls.append(bind)
            continue
        host, _, port = bind.rpartition(":")
        host = "127.0.0.1" if host in ("0.0.0.0", "") else "[::1]" if host in ("[::]", "::") else host  # noqa: S104
        urls.append(f"http://{host}:{port}")
    hint = f"Algobridge is ready: open {', '.join(urls)}"
    if bootstrap.UNMIGRATED in application.extensions:
        return hint + f" ({SCHEMA_NOT_MIGRATED} first: pages answer 503 until then)"
    try:
        with application.app_context():
            fresh = not any_user_exists()
    except Exception:  # noqa: BLE001 - only a hint
        fresh = False
    if fresh and urls and urls[0].startswith("http"):
        hint += f"; a fresh install: {urls[0]}/setup creates the admin account"
    return hint


if __name__ == "__main__":
    main()
