"""Algobridge: create_app() builds the application; setup_environment() readies its database.

`python app.py` serves the embedded default (SQLite in the instance folder, migrated at start) on
127.0.0.1:5000 with gunicorn. In production: `gunicorn 'app:create_app()'`.
"""

from __future__ import annotations

import fcntl
import importlib
import logging
import os
import weakref
from collections.abc import Mapping
from typing import Any

from dotenv import load_dotenv
from flask import Flask, jsonify

import config as config_module
from database import DOMAIN_MODULES, db, engine_options, import_models, schema

log = logging.getLogger("algobridge")


class _LazyMigrate:
    """app.extensions["migrate"] until something reads it: flask_migrate imports alembic (~0.3 s,
    ~10 MB), which a start on a current schema never needs (database.schema reads the head from the
    scripts). The first attribute read (flask_migrate.upgrade, migrations/env.py) builds the real one."""

    def __init__(self, app: Flask, **kwargs: Any) -> None:
        self._app, self._kwargs, self._real = app, kwargs, None

    def __getattr__(self, name: str) -> Any:
        if self._real is None:
            self._real = _init_migrate(self._app, **self._kwargs)
        return getattr(self._real, name)


def _init_migrate(app: Flask, **kwargs: Any) -> Any:
    from flask_migrate import Migrate

    Migrate().init_app(app, db, **kwargs)
    return app.extensions["migrate"]

ROOT = os.path.dirname(os.path.abspath(__file__))


def create_app(config_overrides: Mapping[str, Any] | None = None) -> Flask:
    """Build the application. Outside the `flask` CLI it also readies the database
    (setup_environment); CLI commands do that themselves when they need it."""
    load_dotenv(os.path.join(ROOT, ".env"), override=False)
    overrides = dict(config_overrides or {})
    instance_path = overrides.pop("INSTANCE_PATH", None) or os.environ.get("INSTANCE_PATH") or os.path.join(
        ROOT, "instance"
    )
    app = Flask(__name__, instance_path=os.path.abspath(instance_path), instance_relative_config=True)
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
        run_setup = os.environ.get("FLASK_RUN_FROM_CLI") != "true"
    if run_setup:
        setup_environment(app)
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


def register_extensions(app: Flask) -> None:
    from database import cache, crypto, writer
    from extensions import csrf, limiter, login_manager

    import_models()
    db.init_app(app)
    migrate_args = {"directory": os.path.join(ROOT, "migrations"), "render_as_batch": True, "compare_type": True}
    if os.environ.get("FLASK_RUN_FROM_CLI") == "true":
        _init_migrate(app, **migrate_args)  # the `flask db` commands
    else:
        app.extensions["migrate"] = _LazyMigrate(app, **migrate_args)
    app.extensions["algobridge.vault"] = crypto.configure(app.config["TOKEN_ENCRYPTION_KEYS"])
    cache.init_app(app)
    writer.init_app(app)
    from database.systemlog_db import install_handler

    install_handler()
    if app.config["TRUST_PROXY_HEADERS"]:
        from werkzeug.middleware.proxy_fix import ProxyFix

        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=1, x_proto=1, x_host=1)  # type: ignore[method-assign]
    # The rate limiter reads the body before the view: bound it (413 beyond).
    if app.config.get("MAX_CONTENT_LENGTH") is None:  # Flask pre-fills it with None: setdefault never took
        app.config["MAX_CONTENT_LENGTH"] = 1_048_576
    # local://: extensions.LocalStorage, memory:// without a timer thread per few requests.
    app.config.setdefault("RATELIMIT_STORAGE_URI", app.config["REDIS_URL"] or "local://")
    app.config.setdefault("RATELIMIT_HEADERS_ENABLED", True)
    # Flask pre-fills these keys (SameSite with None), so setdefault would not take.
    app.config["SESSION_COOKIE_HTTPONLY"] = True
    app.config["SESSION_COOKIE_SAMESITE"] = app.config.get("SESSION_COOKIE_SAMESITE") or "Lax"
    login_manager.init_app(app)
    csrf.init_app(app)
    limiter.init_app(app)
    from services.logs import traffic

    traffic.init_app(app)  # a traffic_logs row per request, through the log writer


def register_blueprints(app: Flask) -> None:
    from blueprints.api_v1 import api_v1_bp
    from blueprints.apikey import apikey_bp
    from blueprints.auth import auth_bp
    from blueprints.broker import broker_bp
    from blueprints.dashboard import dashboard_bp
    from blueprints.health import health_bp
    from blueprints.orders import orders_bp
    from blueprints.strategy import strategy_bp
    from blueprints.users import users_bp
    from blueprints.webhook import webhook_bp

    for bp in (health_bp, auth_bp, users_bp, apikey_bp, broker_bp, api_v1_bp, strategy_bp, webhook_bp,
               dashboard_bp, orders_bp):
        app.register_blueprint(bp)
    from blueprints.logs import logs_bp
    from blueprints.settings import settings_bp
    from blueprints.symbols import symbols_bp

    for bp in (logs_bp, settings_bp, symbols_bp):
        app.register_blueprint(bp)
    from blueprints._request import AppRequest

    app.request_class = AppRequest  # bad JSON, too-deep included, is "not JSON" for every blueprint
    from extensions import NoApiSessions, drop_redundant_limit_check, limiter

    app.session_interface = NoApiSessions(app.session_interface)  # the one auth_bp set; none for /api/
    drop_redundant_limit_check(app, limiter)  # once every blueprint has declared its limits


DATABASE_UNAVAILABLE = "database unavailable, retry shortly"


def _database_unavailable_errors() -> tuple[type[Exception], ...]:
    from sqlalchemy import exc as sa_exc

    # OperationalError: connection refused or lost, the server starting up or shutting down, a lock
    # or statement timeout; InterfaceError: a connection already closed; DisconnectionError and
    # TimeoutError: the pool could not hand out a live connection in time.
    return sa_exc.OperationalError, sa_exc.InterfaceError, sa_exc.DisconnectionError, sa_exc.TimeoutError


DATABASE_UNAVAILABLE_ERRORS = _database_unavailable_errors()


class _Throttle:
    """At most one warning per `interval` seconds; counts the ones held back."""

    def __init__(self, interval: float) -> None:
        import threading

        self.interval, self._last, self._suppressed = interval, float("-inf"), 0
        self._lock = threading.Lock()

    def due(self) -> bool:
        import time

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
    from flask import request

    return request.path.startswith("/api/") or request.accept_mimetypes.best == "application/json"


def register_error_handlers(app: Flask) -> None:
    """JSON errors for the API and machine clients; pages in the site's style for people.
    Never a traceback."""
    from flask import render_template
    from werkzeug.exceptions import HTTPException, InternalServerError

    def render(exc: HTTPException):
        headers = [(k, v) for k, v in exc.get_headers() if k.lower() != "content-type"]
        if wants_json():
            return jsonify(status="error", message=exc.description or exc.name), exc.code, headers
        return render_template("errors/error.html", code=exc.code, title=exc.name,
                               message=exc.description), exc.code, headers

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException):
        return render(exc)

    @app.errorhandler(Exception)
    def internal_error(exc: Exception):
        log.exception("unhandled error")
        return render(InternalServerError("Something went wrong on our side; it has been logged."))

    def database_unavailable(exc: Exception):
        # The database is down, restarting or unreachable: a clear, retryable answer, no traceback.
        # The pool pre-pings, so the first request after it is back gets a live connection.
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

    # In every scope, blueprints included: a blueprint's catch-all handler (the API's) is found
    # before the application's handlers, so a database outage would otherwise answer 500 there.
    for scope in (None, *app.blueprints):
        for exc_class in DATABASE_UNAVAILABLE_ERRORS:
            app.error_handler_spec[scope][None][exc_class] = database_unavailable


def register_cli(app: Flask) -> None:
    from cli import register

    register(app)


def _migration_lock(app: Flask):
    """Serialise migrations between processes starting at once (gunicorn workers, two hosts)."""
    path = os.path.join(app.instance_path, ".migrate.lock")
    fh = open(path, "w")  # noqa: SIM115 - held until release
    fcntl.flock(fh, fcntl.LOCK_EX)
    return fh


def setup_environment(app: Flask) -> None:
    """Bring the schema to head (when AUTO_MIGRATE is on), then run every module's init_db()."""
    from database import cache, writer

    with app.app_context():
        if app.config["AUTO_MIGRATE"]:
            upgrade_to_head(app)
        for name in DOMAIN_MODULES:
            importlib.import_module(f"database.{name}").init_db()
        cache.current().start()
        writer.current().start()
        from services.runtime.startup import on_start

        on_start(app)


def _flask_migrate_upgrade() -> None:
    from flask_migrate import upgrade as flask_migrate_upgrade

    flask_migrate_upgrade()


def upgrade_to_head(app: Flask) -> None:
    from sqlalchemy import text

    def upgrade() -> None:
        from services.runtime.startup import run_isolated

        # alembic, only when a migration runs, and in a child process when this one has no threads
        # yet (a server's master): its ~12 MB leave with the child instead of staying in every worker.
        run_isolated(app, _flask_migrate_upgrade)

    lock = _migration_lock(app)
    try:
        engine = db.engine
        if engine.dialect.name == "postgresql":
            # Hosts that share a PostgreSQL server do not share a lock file.
            with engine.connect() as conn:
                conn.execute(text("SELECT pg_advisory_lock(72150001)"))
                try:
                    if schema.current_revision(engine) != schema.head_revision():
                        upgrade()
                finally:
                    conn.execute(text("SELECT pg_advisory_unlock(72150001)"))
                    conn.commit()
        elif schema.current_revision(engine) != schema.head_revision():
            upgrade()
        schema.forget(engine)
    finally:
        lock.close()


def after_fork(app: Flask) -> None:
    """In a process forked from one that already built the app (gunicorn's master, --preload):
    drop the inherited pooled connections, and give the cache listener and the log writer fresh
    locks and threads of this process's own."""
    with app.app_context():
        db.engine.dispose(close=False)
    app.extensions["algobridge.cache"].after_fork()
    app.extensions["algobridge.writer"].after_fork()
    if "algobridge.scheduler" in app.extensions:  # its thread did not come along
        from services.runtime import scheduler

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
    import runpy

    from gunicorn.app.base import BaseApplication

    application = create_app()
    settings = runpy.run_path(os.path.join(ROOT, "gunicorn.conf.py"))

    class Server(BaseApplication):
        def load_config(self) -> None:
            for name, value in settings.items():
                if name in self.cfg.settings and name != "wsgi_app":
                    self.cfg.set(name, value)

        def load(self):
            return application

    log.info("Algobridge on %s", ", ".join(f"http://{b}" for b in settings["bind"]))
    Server().run()


if __name__ == "__main__":
    main()
