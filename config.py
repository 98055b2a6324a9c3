"""Configuration read from the environment (and `.env` through python-dotenv), strictly parsed.

Every setting is declared once in SETTINGS with its default and meaning (`.env.example` lists the
same). A malformed value stops start-up with a `ConfigError` that names the variable.

Secrets: on the embedded default (no DATABASE_URL: SQLite in the instance folder) missing secrets
are generated once into `<instance>/secrets.json` (mode 0600) and reused. Anywhere else a missing,
placeholder or weak secret is an error: a production deployment must bring its own.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import math
import os
import re
import secrets
import sys
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, NoReturn
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from cryptography.fernet import Fernet

from database.crypto import VaultError, parse_keys
from vocabulary import DEFAULT_EXCHANGE_TIMEZONE


class ConfigError(RuntimeError):
    """A setting is missing or malformed; the message names it."""


_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def parse_bool(name: str, raw: str) -> bool:
    v = raw.strip().lower()
    if v in _TRUE:
        return True
    if v in _FALSE:
        return False
    raise ConfigError(f"{name}={raw!r} is not a boolean: use one of true/false, 1/0, yes/no, on/off")


def _parse_int(minimum: int) -> Callable[[str, str], int]:
    def parse(name: str, raw: str) -> int:
        try:
            value = int(raw.strip())
        except ValueError:
            raise ConfigError(f"{name}={raw!r} is not a whole number") from None
        if value < minimum:
            raise ConfigError(f"{name}={value} must be at least {minimum}")
        return value

    return parse


def _parse_str(_name: str, raw: str) -> str:
    return raw.strip()


def parse_networks(name: str, raw: str) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    """'10.0.0.0/8, 127.0.0.1' -> networks (an address is a network of one)."""
    networks = []
    for part in (p.strip() for p in raw.split(",")):
        if part:
            try:
                networks.append(ipaddress.ip_network(part, strict=False))
            except ValueError:
                raise ConfigError(f"{name}: {part!r} is not an IP address or network (CIDR)") from None
    return tuple(networks)


@dataclass(frozen=True)
class Setting:
    name: str
    default: str | None  # None: no default (secrets, or derived at load time)
    parse: Callable[[str, str], Any]
    help: str


SETTINGS: tuple[Setting, ...] = (
    Setting("INSTANCE_PATH", None, _parse_str,
            "folder of the embedded database, generated secrets and the log spool; default ./instance"),
    Setting("DATABASE_URL", None, _parse_str,
            "SQLAlchemy URL; unset = SQLite in the instance folder; postgres:// is rewritten"),
    Setting("DB_POOL_SIZE", "5", _parse_int(1), "connections kept open (not SQLite)"),
    Setting("DB_MAX_OVERFLOW", "10", _parse_int(0), "extra connections under load (not SQLite)"),
    Setting("DB_POOL_TIMEOUT", "30", _parse_int(1),
            "seconds to wait for a pooled connection before answering 503 (pool exhausted)"),
    Setting("DB_POOL_RECYCLE", "1800", _parse_int(1), "seconds after which a connection is replaced"),
    Setting("DB_CONNECT_TIMEOUT", "3", _parse_int(2),
            "seconds to wait when opening a PostgreSQL connection (a request fails with 503 after it)"),
    Setting("DB_BUSY_TIMEOUT", "30", _parse_int(1), "SQLite: seconds to wait for a lock (busy_timeout)"),
    Setting("AUTO_MIGRATE", None, parse_bool,
            "migrate the schema to head at start; default on for the embedded SQLite, off otherwise"),
    Setting("SECRET_KEY", None, _parse_str, "signs sessions and CSRF tokens; at least 32 characters"),
    Setting("API_KEY_PEPPER", None, _parse_str, "HMAC key under which API keys are hashed; at least 32 characters"),
    Setting("TOKEN_ENCRYPTION_KEYS", None, _parse_str,
            "comma-separated Fernet keys; the first encrypts, all decrypt (rotation)"),
    Setting("REDIS_URL", "", _parse_str, "Redis for the shared cache, rate limits and invalidation; empty = none"),
    Setting("CACHE_TTL", "300", _parse_int(1), "seconds an entry lives in the in-process cache"),
    Setting("CACHE_POLL_INTERVAL", "0.25", lambda n, r: _parse_float(n, r, 0.01),
            "seconds between checks of the database invalidation counter (without Redis)"),
    Setting("WRITER_QUEUE_SIZE", "50000", _parse_int(100), "rows the background log writer queues before pushing back"),
    Setting("WRITER_BATCH_SIZE", "1000", _parse_int(1), "rows per insert batch of the log writer"),
    Setting("WRITER_LINGER_MS", "10", _parse_int(0),
            "milliseconds the log writer waits after a row for more to batch with it (0: write at once)"),
    Setting("WRITER_SHUTDOWN_TIMEOUT", "30", _parse_int(1),
            "seconds the writer keeps retrying at shutdown before spooling rows to disk"),
    Setting("SAMPLE_CONTRACT", None, parse_bool,
            "load the offline sample master contract when none is loaded; default on for the embedded SQLite"),
    Setting("SAMPLE_CONTRACT_ROWS", "17000", _parse_int(100),
            "rows of the generated sample master contract (the index of every worker grows with it; below"
            " about 14,500 the last stock option chains are cut short; above it, room for the strikes a daily"
            " refresh keeps)"),
    Setting("WARM_SYMBOL_INDEX", "true", parse_bool,
            "build the symbol index in the background once a process has served its first page; off: on first use"),
    Setting("EXCHANGE_TIMEZONE", DEFAULT_EXCHANGE_TIMEZONE, _parse_str,
            "time zone of the exchange (session expiry, hours)"),
    Setting("SESSION_EXPIRY_TIME", "03:00", _parse_str,
            "exchange time (HH:MM) at which web and broker sessions end every day, and the trading day's"
            " books roll over"),
    Setting("LOGIN_RATE_LIMIT", "5 per minute;25 per hour", _parse_str, "login attempts allowed per client address"),
    Setting("LOGIN_LOCKOUT_FAILURES", "5", _parse_int(0),
            "failed sign-ins of one username within LOGIN_LOCKOUT_WINDOW that lock it (0 = no lockout)"),
    Setting("LOGIN_LOCKOUT_WINDOW", "15", _parse_int(1), "minutes in which those failed sign-ins are counted"),
    Setting("LOGIN_LOCKOUT_MAX", "60", _parse_int(1),
            "longest lockout in minutes: the first lasts 1 minute, each next one in a row twice the last"),
    Setting("REQUIRE_2FA_FOR_ADMINS", "false", parse_bool,
            "admins must sign in with a TOTP code: one without two-factor sign-in is sent to enrol after the password"),
    Setting("API_RATE_LIMIT", "50 per second", _parse_str, "REST API calls per key and client address"),
    Setting("ORDER_RATE_LIMIT", "10 per second", _parse_str, "order calls per key and client address"),
    Setting("SMART_ORDER_RATE_LIMIT", "2 per second", _parse_str, "smart order calls per key and client address"),
    Setting("WEBHOOK_RATE_LIMIT", "100 per minute", _parse_str, "webhook calls per webhook id and client address"),
    Setting("ANALYZE_STARTING_FUNDS", "10000000", _parse_int(0), "virtual funds of a new analyze-mode account"),
    Setting("ANALYZE_CHARGES", "true", parse_bool,
            "analyze mode: charge brokerage, STT/CTT, exchange fees, stamp duty and GST on every fill"),
    Setting("ANALYZE_BROKERAGE_PER_ORDER", "20", lambda n, r: _parse_float(n, r, 0),
            "analyze mode: brokerage in rupees per executed intraday, F&O, currency or commodity order"),
    Setting("ANALYZE_BROKERAGE_PERCENT", "0.03", lambda n, r: _parse_float(n, r, 0),
            "analyze mode: brokerage as % of turnover when lower (not options); 0 = per-order fee"),
    Setting("ANALYZE_BROKERAGE_DELIVERY", "0", lambda n, r: _parse_float(n, r, 0),
            "analyze mode: brokerage in rupees per executed delivery (CNC) order"),
    Setting("MIS_LEVERAGE", "5", _parse_int(1), "analyze mode: intraday (MIS) leverage; margin = value / leverage"),
    Setting("NRML_LEVERAGE", "1", _parse_int(1), "analyze mode: NRML leverage (F&O margin approximation)"),
    Setting("MIS_SQUAREOFF_TIME", "", _parse_str,
            "analyze mode: one exchange time (HH:MM) at which MIS positions of every exchange are closed;"
            " empty: each exchange's own (NSE/BSE/NFO/BFO 15:15, CDS/BCD 16:45, MCX 23:30)"),
    Setting("ANALYZE_MARKET_HOURS", "exchange", _parse_str,
            "analyze mode's market hours: exchange (the market calendar: sessions, holidays) or always (a"
            " practice market open around the clock)"),
    Setting("SCHEDULER_ENABLED", "true", parse_bool,
            "run square-offs and session expiry on time in a background thread of each process"),
    Setting("SCHEDULER_INTERVAL", "30", _parse_int(1), "seconds between runs of the scheduled jobs"),
    Setting("LOG_RETENTION_DAYS", "30", _parse_int(0),
            "days API, traffic, latency and system logs are kept (0 = forever); Settings can override it"),
    Setting("SNAPSHOT_INTERVAL", "15", _parse_int(1), "minutes between scheduled equity snapshots of each user"),
    Setting("TRUST_PROXY_HEADERS", "false", parse_bool, "trust X-Forwarded-For/Proto (only behind your own proxy)"),
    Setting("TRUSTED_PROXIES", "", parse_networks,
            "addresses/CIDRs of your reverse proxies (comma-separated): X-Forwarded-For is believed from these only"),
    Setting("ZERODHA_API_KEY", "", _parse_str, "Kite Connect app's API key"),
    Setting("ZERODHA_API_SECRET", "", _parse_str, "Kite Connect app's API secret"),
    Setting("REDIRECT_URL", "http://127.0.0.1:5000/zerodha/callback", _parse_str,
            "the redirect URL registered with the broker app"),
    Setting("ZERODHA_ROOT_URL", "https://api.kite.trade", _parse_str,
            "Kite Connect API root (tests point it at a local fake server)"),
    Setting("ZERODHA_LOGIN_URL", "https://kite.zerodha.com/connect/login", _parse_str,
            "Kite Connect login page"),
    Setting("ZERODHA_TICKER_URL", "wss://ws.kite.trade", _parse_str,
            "Kite's WebSocket ticker for live market data (tests point it at a local fake)"),
    Setting("ANGELONE_API_KEY", "", _parse_str, "Angel One SmartAPI app's API key (login: client code, PIN, TOTP)"),
    Setting("ANGELONE_ROOT_URL", "https://apiconnect.angelone.in", _parse_str,
            "Angel One SmartAPI root (tests point it at a local fake server)"),
    Setting("ANGELONE_INSTRUMENTS_URL",
            "https://margincalculator.angelbroking.com/OpenAPI_File/files/OpenAPIScripMaster.json", _parse_str,
            "Angel One's instrument list (the master contract)"),
    Setting("DHAN_ROOT_URL", "https://api.dhan.co/v2", _parse_str,
            "DhanHQ API root (login: client id and access token; tests point it at a local fake server)"),
    Setting("DHAN_INSTRUMENTS_URL", "https://images.dhan.co/api-data/api-scrip-master.csv", _parse_str,
            "Dhan's instrument list (the master contract)"),
    Setting("CONTRACT_REFRESH_TIME", "08:30",
            lambda n, r: parse_hhmm(n, r.strip()).strftime("%H:%M") if r.strip() else "",
            "exchange time (HH:MM) from which the loaded broker's master contract is downloaded again on each trading"
            " day (once, by one worker; also at a broker login while it is older than the trading day); needs"
            " SCHEDULER_ENABLED; empty = never automatically"),
    Setting("PUBLIC_URL", "", _parse_str,
            "the address TradingView, Chartink and your scripts reach this server at (https://algo.example.com),"
            " used in every webhook URL the pages show; empty = the address the page was opened at"),
    # Telegram: notifications and commands through a bot of your own (services/notifications).
    Setting("TELEGRAM_BOT_TOKEN", "", _parse_str,
            "the bot's token from @BotFather; empty = Telegram off"),
    Setting("TELEGRAM_API_URL", "https://api.telegram.org", _parse_str,
            "Telegram Bot API root (tests point it at a local fake server)"),
    Setting("TELEGRAM_DAILY_SUMMARY_TIME", "15:45", _parse_str,
            "exchange time (HH:MM) of the daily P&L message on trading days; off = none"),
    Setting("LOG_LEVEL", "INFO", _parse_str, "level of the application's own log"),
    # The web server: gunicorn.conf.py reads these, for `gunicorn 'app:create_app()'` and `python app.py`.
    Setting("HOST", "127.0.0.1", _parse_str, "address the server listens on"),
    Setting("PORT", "5000", _parse_int(1), "port the server listens on"),
    Setting("WEB_BIND", "", _parse_str,
            "where the server listens, overriding HOST:PORT; comma-separated, e.g. unix:/run/algobridge.sock"),
    Setting("WEB_WORKERS", "1", _parse_int(1), "worker processes (gthread); 2-4 per CPU on PostgreSQL"),
    Setting("WEB_THREADS", "8", _parse_int(1), "threads per worker process"),
    Setting("WEB_TIMEOUT", "30", _parse_int(1), "seconds a worker may be silent before it is killed and replaced"),
    Setting("WEB_GRACEFUL_TIMEOUT", "30", _parse_int(1),
            "seconds a worker gets after SIGTERM to finish requests and flush the log writer"),
    Setting("WEB_KEEPALIVE", "5", _parse_int(0), "seconds a kept-alive client connection waits for its next request"),
    # The WebSocket feed (feed/, `python -m feed`): OpenAlgo's streaming protocol for the SDK and the pages.
    Setting("WEBSOCKET_HOST", "127.0.0.1", _parse_str, "address the WebSocket feed listens on"),
    Setting("WEBSOCKET_PORT", "8765", _parse_int(1), "port the WebSocket feed listens on (the openalgo SDK's default)"),
    Setting("WEBSOCKET_WITH_WEB", "true", parse_bool,
            "start the feed as a child of the web server (python app.py, gunicorn) and stop it with it; false"
            " when it runs on its own (deploy/systemd/algobridge-feed.service)"),
    Setting("WEBSOCKET_MAX_CONNECTIONS_PER_KEY", "25", _parse_int(1),
            "feed connections at once per API key (or per signed-in user for the pages)"),
    Setting("WEBSOCKET_MAX_SUBSCRIPTIONS_PER_KEY", "1000", _parse_int(1),
            "instruments subscribed at once per API key, over all its connections"),
    Setting("WEBSOCKET_SEND_BUFFER_KB", "1024", _parse_int(16),
            "kilobytes of unsent data a feed client may fall behind by before it is disconnected (a slow client)"),
    Setting("WEBSOCKET_URL", "", _parse_str,
            "the feed's address for browsers (wss://... behind a proxy); empty = ws://<the page's host>:"
            "WEBSOCKET_PORT"),
)

SECRET_NAMES = ("SECRET_KEY", "API_KEY_PEPPER", "TOKEN_ENCRYPTION_KEYS")
# Whole values that are placeholders, not substrings: a random secret may contain "change".
_PLACEHOLDER = re.compile(
    r"^(change[-_ ]?me.*|.*change[-_ ]?this.*|your[-_ ].*|placeholder.*|example.*|x{4,}|secret|"
    r"dev|development|test|password|none|null)$",
    re.IGNORECASE,
)
MIN_SECRET_LENGTH = 32


def _parse_float(name: str, raw: str, minimum: float) -> float:
    try:
        value = float(raw.strip())
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a number") from None
    if not math.isfinite(value):
        raise ConfigError(f"{name}={raw!r} is not a finite number")
    if value < minimum:
        raise ConfigError(f"{name}={value} must be at least {minimum}")
    return value


def normalise_database_url(url: str) -> str:
    """Accept the URLs hosting providers hand out; use psycopg 3 for PostgreSQL."""
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://"):]
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://"):]
    return url


def check_secret(name: str, value: str) -> None:
    """Refuse placeholders and weak values; the message names the variable, never the value."""
    if _PLACEHOLDER.match(value.strip()):
        raise ConfigError(f"{name} is a placeholder: set a real random value")
    if name == "TOKEN_ENCRYPTION_KEYS":
        try:
            parse_keys(value)
        except VaultError as exc:
            raise ConfigError(str(exc)) from None
        return
    if len(value) < MIN_SECRET_LENGTH or len(set(value)) < 10:
        raise ConfigError(
            f"{name} is too weak: use at least {MIN_SECRET_LENGTH} random characters "
            '(python -c "import secrets; print(secrets.token_urlsafe(48))")'
        )


def _generated_secrets(instance_path: str) -> dict[str, str]:
    """Secrets of the embedded default: created once, owner-only, then reused by every process.

    Written to a temporary file and linked into place, so a process starting at the same moment
    sees either no file or the whole file, never a half-written one.
    """
    path = os.path.join(instance_path, "secrets.json")
    os.makedirs(instance_path, exist_ok=True)
    if not os.path.exists(path):
        values = {
            "SECRET_KEY": secrets.token_urlsafe(48),
            "API_KEY_PEPPER": secrets.token_urlsafe(48),
            "TOKEN_ENCRYPTION_KEYS": Fernet.generate_key().decode("ascii"),
        }
        fd, tmp = tempfile.mkstemp(dir=instance_path, prefix=".secrets-")  # mode 0600
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump(values, fh, indent=2)
                fh.flush()
                os.fsync(fh.fileno())
            try:
                os.link(tmp, path)  # fails if another process won the race: use theirs
            except FileExistsError:
                pass
        finally:
            os.unlink(tmp)
    with open(path, encoding="utf-8") as fh:
        try:
            return json.load(fh)
        except json.JSONDecodeError as exc:
            raise ConfigError(
                f"{path} is not valid JSON; fix or remove it (tokens encrypted with it are lost)"
            ) from exc


def load_config(instance_path: str, environ: Mapping[str, str] | None = None,
                overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Build the Flask config dict from `environ` (default os.environ) and `overrides`.

    `overrides` (used by tests and by create_app(config_overrides)) take the place of environment
    values and are parsed the same way when given as strings.
    """
    env = dict(os.environ if environ is None else environ)
    raw: dict[str, Any] = {}
    for s in SETTINGS:
        if overrides and s.name in overrides:
            raw[s.name] = overrides[s.name]
        elif env.get(s.name, "") != "":
            raw[s.name] = env[s.name]
        else:
            raw[s.name] = s.default
    cfg: dict[str, Any] = {}
    for s in SETTINGS:
        value = raw[s.name]
        cfg[s.name] = s.parse(s.name, value) if isinstance(value, str) else value

    embedded = not cfg["DATABASE_URL"]
    if embedded:
        cfg["DATABASE_URL"] = "sqlite:///" + os.path.join(instance_path, "algobridge.db")
    cfg["DATABASE_URL"] = normalise_database_url(cfg["DATABASE_URL"])
    cfg["SQLALCHEMY_DATABASE_URI"] = cfg["DATABASE_URL"]
    cfg["EMBEDDED_DATABASE"] = embedded
    if cfg["SAMPLE_CONTRACT"] is None:
        cfg["SAMPLE_CONTRACT"] = embedded
    if cfg["AUTO_MIGRATE"] is None:
        cfg["AUTO_MIGRATE"] = cfg["DATABASE_URL"].startswith("sqlite")

    missing = [n for n in SECRET_NAMES if not cfg[n]]
    if missing:
        if not embedded:
            raise ConfigError(
                f"{', '.join(missing)} must be set when DATABASE_URL is set "
                "(secrets are generated automatically only for the embedded SQLite default)"
            )
        generated = _generated_secrets(instance_path)
        for n in missing:
            cfg[n] = generated[n]
    for n in SECRET_NAMES:
        if n not in missing or n == "TOKEN_ENCRYPTION_KEYS":  # our own random values need no judging
            check_secret(n, cfg[n])

    if overrides:
        for k, v in overrides.items():
            if k not in cfg:
                cfg[k] = v
    parse_hhmm("SESSION_EXPIRY_TIME", cfg["SESSION_EXPIRY_TIME"])
    if cfg["MIS_SQUAREOFF_TIME"].strip():
        parse_hhmm("MIS_SQUAREOFF_TIME", cfg["MIS_SQUAREOFF_TIME"])
    if cfg["TELEGRAM_DAILY_SUMMARY_TIME"].strip().lower() not in ("", "off"):
        parse_hhmm("TELEGRAM_DAILY_SUMMARY_TIME", cfg["TELEGRAM_DAILY_SUMMARY_TIME"])
    if cfg["ANALYZE_MARKET_HOURS"] not in ("exchange", "always"):
        raise ConfigError(f"ANALYZE_MARKET_HOURS={cfg['ANALYZE_MARKET_HOURS']!r} must be exchange or always")
    try:
        ZoneInfo(cfg["EXCHANGE_TIMEZONE"])
    except Exception:  # noqa: BLE001 - any lookup failure means the name is wrong
        raise ConfigError(f"EXCHANGE_TIMEZONE={cfg['EXCHANGE_TIMEZONE']!r} is not a time zone name") from None
    cfg["PUBLIC_URL"] = parse_public_url("PUBLIC_URL", cfg.get("PUBLIC_URL") or "")
    return cfg


def parse_public_url(name: str, raw: str) -> str:
    """'https://algo.example.com/' -> 'https://algo.example.com' (no trailing slash); '' stays ''."""
    value = str(raw).strip().rstrip("/")
    if not value:
        return ""
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment:
        raise ConfigError(f"{name}={raw!r} is not an address like https://algo.example.com")
    return value


def fail(exc: BaseException) -> NoReturn:
    """A configuration error, as one line on stderr, and exit status 2 (no traceback)."""
    message = " ".join(str(exc).split())
    print(f"configuration error: {message}", file=sys.stderr)
    sys.exit(2)


def exchange_tz(config: Mapping[str, Any]):
    """The exchange's zone (EXCHANGE_TIMEZONE) of a configuration, e.g. `exchange_tz(current_app.config)`:
    the one way services read it. Sessions, trading hours, square-off and market hours are in it."""
    # ZoneInfo caches zones by name: this is a dict lookup after the first call.
    return ZoneInfo(config.get("EXCHANGE_TIMEZONE") or DEFAULT_EXCHANGE_TIMEZONE)


def parse_time_of_day(raw: str):
    """'03:00' -> datetime.time(3, 0); ValueError for anything else. The one HH:MM parser."""
    hh, sep, mm = str(raw).strip().partition(":")
    if not sep:
        raise ValueError(f"{raw!r} is not a time of day (HH:MM)")
    return dt.time(int(hh), int(mm))


def parse_hhmm(name: str, raw: str):
    """parse_time_of_day with an error naming the variable."""
    try:
        return parse_time_of_day(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a time of day (HH:MM)") from None


SERVER_SETTINGS = ("HOST", "PORT", "WEB_BIND", "WEB_WORKERS", "WEB_THREADS", "WEB_TIMEOUT",
                   "WEB_GRACEFUL_TIMEOUT", "WEB_KEEPALIVE", "WRITER_SHUTDOWN_TIMEOUT",
                   "WEBSOCKET_HOST", "WEBSOCKET_PORT", "WEBSOCKET_WITH_WEB")


def server_settings(environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The web server's settings alone (for gunicorn.conf.py, which runs before the app exists),
    parsed like every other setting."""
    env = os.environ if environ is None else environ
    by_name = {s.name: s for s in SETTINGS}
    out: dict[str, Any] = {}
    for name in SERVER_SETTINGS:
        s = by_name[name]
        raw = env.get(name, "")
        out[name] = s.parse(name, raw if raw != "" else s.default)
    return out


def env_example() -> str:
    """The text of `.env.example`, generated from SETTINGS so the two cannot drift."""
    lines = ["# Algobridge settings. Every variable, its default, and what it means.", ""]
    for s in SETTINGS:
        lines.append(f"# {s.help}")
        lines.append(f"# {s.name}={s.default if s.default is not None else ''}")
        lines.append("")
    return "\n".join(lines)
