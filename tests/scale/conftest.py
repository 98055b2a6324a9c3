"""Fixtures for the scale and fault tests: the production entry point (a real gunicorn with several
workers, started through gunicorn.conf.py) on PostgreSQL and Redis, on loopback only.

- `scale_db`: a fresh database on the shared PostgreSQL (127.0.0.1:5432) for the test module,
  dropped after it.
- `private_postgres`: a PostgreSQL cluster of the test's own (initdb in a temporary folder, a free
  port), for the tests that stop and restart the server: the shared one is never restarted.
- `redis_url`: a Redis database number nobody uses, claimed for the module and emptied after.
- `start_server(env)`: gunicorn started as a process group of its own, stopped after the test.
- `seed(env, spec)`: users, API keys, broker sessions, in a process of its own (tests.scale.seed).
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from typing import Any

import psycopg
import pytest
import redis
import requests

import config
from tests.helpers.databases import TEST_SECRETS, create_pg_database, drop_pg_database

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
GUNICORN_CONF = os.path.join(ROOT, "gunicorn.conf.py")
HIGH_LIMIT = "100000 per second"
DB_UNAVAILABLE = {"status": "error", "message": "database unavailable, retry shortly"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def dsn(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://")


def query(url: str, sql: str, params: Any = None) -> list[tuple]:
    with psycopg.connect(dsn(url), connect_timeout=5) as conn:
        return conn.execute(sql, params).fetchall()


# -- a PostgreSQL cluster of the test's own ---------------------------------------------------------
def _pg_bindir() -> str | None:
    found = glob.glob("/usr/lib/postgresql/*/bin/initdb")

    def version(path: str) -> float:
        try:
            return float(path.split("/")[4])
        except ValueError:
            return 0.0

    if found:
        return os.path.dirname(max(found, key=version))
    initdb = shutil.which("initdb")
    return os.path.dirname(initdb) if initdb else None


class PrivatePostgres:
    """initdb, pg_ctl start/stop/restart on a free port; run as the `postgres` OS user when this
    process is root (PostgreSQL refuses to run as root)."""

    def __init__(self, bindir: str) -> None:
        self.bindir = bindir
        self.root = tempfile.mkdtemp(prefix="algobridge-pg-")
        self.data = os.path.join(self.root, "data")
        self.logfile = os.path.join(self.root, "server.log")
        self.port = free_port()
        self._as_postgres = os.geteuid() == 0
        if self._as_postgres:
            shutil.chown(self.root, "postgres", "postgres")

    def _run(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
        cmd = [os.path.join(self.bindir, args[0]), *args[1:]]
        if self._as_postgres:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        done = subprocess.run(cmd, cwd=self.root, capture_output=True, text=True, timeout=timeout, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(args[:1])} failed ({done.returncode}): {done.stdout}{done.stderr}\n"
                               f"{self.server_log()}")
        return done

    def init(self) -> None:
        self._run("initdb", "-D", self.data, "-U", "postgres", "--auth=trust", "--no-sync", "-E", "UTF8")

    def start(self) -> None:
        options = (f"-p {self.port} -h 127.0.0.1 -k {self.root} -c fsync=off -c synchronous_commit=off "
                   "-c full_page_writes=off -c max_connections=200")
        self._run("pg_ctl", "-D", self.data, "-l", self.logfile, "-o", options, "-w", "-t", "60", "start")

    def stop(self, mode: str = "fast") -> None:
        self._run("pg_ctl", "-D", self.data, "-m", mode, "-w", "-t", "60", "stop")

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        with psycopg.connect(dsn(self.url()), autocommit=True, connect_timeout=5) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def server_log(self) -> str:
        try:
            with open(self.logfile, encoding="utf-8", errors="replace") as fh:
                return fh.read()[-4000:]
        except OSError:
            return ""

    def destroy(self) -> None:
        try:
            self.stop("immediate")
        except Exception:  # noqa: BLE001, S110 - already stopped
            pass
        shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture(scope="module")
def private_postgres():
    bindir = _pg_bindir()
    if bindir is None or not os.path.exists(os.path.join(bindir, "pg_ctl")):
        if os.environ.get("CI"):
            pytest.fail("PostgreSQL server binaries (initdb, pg_ctl) are required in CI")
        pytest.skip("PostgreSQL server binaries (initdb, pg_ctl) are not installed: cannot run a private cluster")
    if os.geteuid() == 0 and shutil.which("runuser") is None:
        pytest.skip("running as root without runuser: cannot start PostgreSQL as the postgres user")
    cluster = PrivatePostgres(bindir)
    try:
        cluster.init()
        cluster.start()
        yield cluster
    finally:
        cluster.destroy()


# -- the shared PostgreSQL and Redis -----------------------------------------------------------------
@pytest.fixture(scope="module")
def scale_db():
    url = create_pg_database("algobridge_scale")
    yield url
    drop_pg_database(url)


CLAIM_KEY = "algobridge:test:claim"


@pytest.fixture(scope="module")
def redis_url():
    """A Redis database number no one else is using (1-14; 0 is the usual default, 15 the cache
    tests'), claimed with a marker key and emptied afterwards: cache entries are keyed by user id,
    which other test databases reuse."""
    for number in range(1, 15):
        client = redis.Redis(host="127.0.0.1", port=6379, db=number, socket_timeout=5)
        if client.dbsize() == 0 and client.set(CLAIM_KEY, str(os.getpid()), nx=True, ex=3600):
            try:
                yield f"redis://127.0.0.1:6379/{number}"
            finally:
                client.flushdb()
                client.close()
            return
        client.close()
    pytest.fail("no free Redis database number (1-14) on 127.0.0.1:6379")


# -- the server ----------------------------------------------------------------------------------------
def server_env(database_url: str, instance: str, *, redis_url: str = "", port: int | None = None,
               **extra: Any) -> dict[str, str]:
    """The environment of a production-like server: secrets from the environment, 4 gthread workers."""
    ours = {s.name for s in config.SETTINGS}
    env = {k: v for k, v in os.environ.items() if k not in ours and not k.startswith(("FLASK_", "GUNICORN"))}
    env.update(TEST_SECRETS)
    env.update({
        "DATABASE_URL": database_url, "INSTANCE_PATH": instance, "REDIS_URL": redis_url,
        "AUTO_MIGRATE": "true", "SAMPLE_CONTRACT": "false", "SCHEDULER_ENABLED": "false",
        "ANALYZE_MARKET_HOURS": "always",
        "WEBSOCKET_WITH_WEB": "false",  # the web server alone: no feed child among the master's children
        "WEB_BIND": f"127.0.0.1:{port or free_port()}", "WEB_WORKERS": "4", "WEB_THREADS": "4",
        "WEB_GRACEFUL_TIMEOUT": "20", "WRITER_SHUTDOWN_TIMEOUT": "15", "LOG_LEVEL": "WARNING",
        "API_RATE_LIMIT": HIGH_LIMIT, "ORDER_RATE_LIMIT": HIGH_LIMIT, "SMART_ORDER_RATE_LIMIT": HIGH_LIMIT,
    })
    env.update({k: str(v) for k, v in extra.items()})
    return env


class Server:
    """`gunicorn -c gunicorn.conf.py 'app:create_app()'` in a process group of its own."""

    def __init__(self, env: dict[str, str], log_path: str) -> None:
        self.env = env
        self.log_path = log_path
        self.base = "http://" + env["WEB_BIND"]
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 60) -> Server:
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "gunicorn", "-c", GUNICORN_CONF, "app:create_app()"],
                cwd=ROOT, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while True:
            try:
                if requests.get(self.base + "/health", timeout=2).status_code == 200:
                    return self
            except requests.RequestException:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.kill()
                pytest.fail(f"gunicorn did not become healthy:\n{self.log()}")
            time.sleep(0.1)

    def worker_pids(self, tries: int = 200) -> set[int]:
        """The pids that answered /health over `tries` fresh connections."""
        pids = set()
        for _ in range(tries):
            pids.add(requests.get(self.base + "/health", timeout=5).json()["pid"])
        return pids

    def wait_for_symbols(self, key: str, symbols: tuple[str, ...] = ("INFY", "TCS", "SBIN"),
                         timeout: float = 60) -> None:
        """Until every worker knows the contract seeded after it started: each rebuilds its symbol
        index when it hears of the import, and answers from the one it had meanwhile."""
        deadline = time.monotonic() + timeout
        streak = 0
        while streak < 40:
            for symbol in symbols:
                with requests.Session() as fresh:  # a fresh connection: any worker
                    resp = fresh.post(self.base + "/api/v1/symbol", timeout=10,
                                      json={"apikey": key, "symbol": symbol, "exchange": "NSE"})
                streak = streak + 1 if resp.status_code == 200 else 0
            if time.monotonic() > deadline:
                pytest.fail(f"the workers did not pick up the seeded symbols: {resp.status_code} {resp.text[:200]}")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60) -> int:
        """Signal the master (SIGTERM: graceful) and wait for the whole server to exit."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            pytest.fail(f"gunicorn did not stop within {timeout} s of signal {sig}:\n{self.log()}")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)  # the group we started: master and its workers
            self.proc.wait(timeout=10)

    def log(self) -> str:
        with open(self.log_path, encoding="utf-8", errors="replace") as fh:
            return fh.read()[-6000:]


@pytest.fixture
def start_server(tmp_path):
    servers: list[Server] = []

    def start(env: dict[str, str]) -> Server:
        server = Server(env, str(tmp_path / f"gunicorn-{len(servers)}.log"))
        servers.append(server)
        return server.start()

    yield start
    for server in servers:  # a test that failed midway: stop it gracefully, or kill it
        if server.proc is not None and server.proc.poll() is None:
            server.proc.send_signal(signal.SIGTERM)
            try:
                server.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                server.kill()


def seed(env: dict[str, str], spec: dict) -> dict:
    done = subprocess.run([sys.executable, "-m", "tests.scale.seed", json.dumps(spec)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, f"seeding failed:\n{done.stdout}\n{done.stderr}"
    return json.loads(done.stdout.strip().splitlines()[-1])


# -- clients -------------------------------------------------------------------------------------------
@dataclass
class Answer:
    sent: float  # time.monotonic() when the request was sent
    done: float
    status: int | None  # None: no HTTP answer (timeout, connection refused or reset)
    body: Any  # the JSON body, or the text when it is not JSON
    error: str | None = None


def api_call(session: requests.Session, base: str, name: str, body: dict, timeout: float = 10) -> Answer:
    sent = time.monotonic()
    try:
        resp = session.post(f"{base}/api/v1/{name}", json=body, timeout=timeout)
    except requests.RequestException as exc:
        return Answer(sent, time.monotonic(), None, None, f"{type(exc).__name__}: {exc}")
    try:
        payload = resp.json()
    except ValueError:
        payload = resp.text
    return Answer(sent, time.monotonic(), resp.status_code, payload)


def order_body(key: str, **overrides: Any) -> dict:
    body = {"apikey": key, "strategy": "scale", "symbol": "INFY", "exchange": "NSE", "action": "BUY",
            "quantity": 1, "pricetype": "MARKET", "product": "MIS"}
    body.update(overrides)
    return body
