"""Real test databases: fresh PostgreSQL databases (created and dropped here) and SQLite files."""

from __future__ import annotations

import os
import secrets as pysecrets
import uuid

import psycopg
from cryptography.fernet import Fernet

PG_ADMIN_URL = os.environ.get(
    "ALGOBRIDGE_TEST_PG_ADMIN_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)

# One set of secrets for the whole run (generated, never a constant in the code).
TEST_SECRETS = {
    "SECRET_KEY": pysecrets.token_urlsafe(48),
    "API_KEY_PEPPER": pysecrets.token_urlsafe(48),
    "TOKEN_ENCRYPTION_KEYS": Fernet.generate_key().decode(),
}


def _dsn(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://")


def create_pg_database(prefix: str = "algobridge_test") -> str:
    """Create an empty PostgreSQL database; return its SQLAlchemy URL. Fails loudly if PG is down."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    try:
        with psycopg.connect(_dsn(PG_ADMIN_URL), autocommit=True, connect_timeout=5) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
    except psycopg.OperationalError as exc:
        raise RuntimeError(
            f"PostgreSQL is required for the test suite and is not reachable at {PG_ADMIN_URL}: {exc}. "
            "Run `bash scripts/services.sh`."
        ) from exc
    base = PG_ADMIN_URL.rsplit("/", 1)[0]
    return f"{base}/{name}"


def drop_pg_database(url: str) -> None:
    name = url.rsplit("/", 1)[1]
    with psycopg.connect(_dsn(PG_ADMIN_URL), autocommit=True, connect_timeout=5) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def sqlite_url(folder: str, name: str = "algobridge.db") -> str:
    return "sqlite:///" + os.path.join(folder, name)


def app_overrides(backend_url: str, instance_path: str, **extra) -> dict:
    values = {"DATABASE_URL": backend_url, "INSTANCE_PATH": instance_path, "AUTO_MIGRATE": True,
              "SETUP_ENVIRONMENT": True, "SAMPLE_CONTRACT": False,
              "SCHEDULER_ENABLED": False,
              # a practice market open around the clock, so that tests pass at any hour; the calendar's
              # tests set "exchange" with a controlled clock
              "ANALYZE_MARKET_HOURS": "always",
              # fills without charges, so that tests of margins and P&L check plain arithmetic; the
              # charges' own tests turn them on
              "ANALYZE_CHARGES": False, **TEST_SECRETS}
    values.update(extra)
    return values
