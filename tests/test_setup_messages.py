"""Setting up and the command line: a configuration error is one line and exit status 2; `flask secrets
generate-key` needs no setting; an unmigrated database answers 503 "schema not migrated: run flask db upgrade"
(pages and API) and says so once in the log, until `flask db upgrade`, which says what it did; `flask run`
serves a fresh instance migrated and ready, like `python app.py`; the run command's last line says what to open."""

from __future__ import annotations

import logging
import os
import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest
from cryptography.fernet import Fernet

from database import schema
from services.runtime import bootstrap
from tests.conftest import shutdown_app
from tests.helpers.databases import app_overrides, create_pg_database, drop_pg_database, sqlite_url

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FLASK = os.path.join(os.path.dirname(sys.executable), "flask")


def clean_env(tmp_path, **extra: str) -> dict[str, str]:
    """The environment of a fresh checkout: none of the suite's settings, an empty instance folder."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("DATABASE_URL", "SECRET_KEY", "API_KEY", "TOKEN_ENC", "REDIS_URL", "FLASK_",
                                "AUTO_MIGRATE", "PUBLIC_URL"))}
    env.update(INSTANCE_PATH=str(tmp_path / "instance"), WEBSOCKET_WITH_WEB="false", SAMPLE_CONTRACT="false",
               SCHEDULER_ENABLED="false", **extra)
    return env


def run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=False)


# -- configuration errors ----------------------------------------------------------------------------------------
def test_a_configuration_error_is_one_line_and_exit_status_2(tmp_path):
    # PostgreSQL without its secrets: nothing is generated outside the embedded default
    env = clean_env(tmp_path, DATABASE_URL="postgresql://algobridge@127.0.0.1:5432/algobridge")
    done = run([sys.executable, "app.py"], env)
    assert done.returncode == 2, done.stderr
    assert done.stderr.splitlines() == [
        "configuration error: SECRET_KEY, API_KEY_PEPPER, TOKEN_ENCRYPTION_KEYS must be set when DATABASE_URL is set "
        "(secrets are generated automatically only for the embedded SQLite default)"], done.stderr
    assert done.stdout == ""


def test_a_flask_command_says_it_in_one_line_too(tmp_path):
    done = run([FLASK, "--app", "app", "db", "upgrade"], clean_env(tmp_path, PORT="fivethousand"))
    assert done.returncode == 2, done.stderr
    assert done.stderr.splitlines() == ["configuration error: PORT='fivethousand' is not a whole number"]
    assert "Traceback" not in done.stdout


def test_generate_key_needs_no_other_setting(tmp_path):
    env = clean_env(tmp_path, DATABASE_URL="postgresql://algobridge@127.0.0.1:5432/algobridge")
    done = run([FLASK, "--app", "app", "secrets", "generate-key"], env)
    assert done.returncode == 0, done.stderr
    key = done.stdout.strip()
    Fernet(key.encode())  # a valid key
    assert done.stderr == ""


# -- an unmigrated database ----------------------------------------------------------------------------------------
def unmigrated_app(url: str, instance: str):
    from app import create_app

    return create_app(app_overrides(url, instance, AUTO_MIGRATE=False))


def assert_gated(application) -> None:
    client = application.test_client()
    page = client.get("/")
    assert page.status_code == 503
    assert "schema not migrated: run flask db upgrade" in page.get_data(as_text=True)
    assert page.mimetype == "text/html"
    api = client.post("/api/v1/funds", json={"apikey": "x" * 64})
    assert (api.status_code, api.get_json()) == (503, {"status": "error",
                                                       "message": "schema not migrated: run flask db upgrade"})
    assert client.get("/health", headers={"Accept": "application/json"}).status_code == 503
    static = client.get("/static/js/copy.js")
    static.close()
    assert static.status_code == 200  # the page's own files still load


def test_before_migration_every_page_is_503_until_flask_db_upgrade(tmp_path, caplog, monkeypatch):
    caplog.set_level(logging.ERROR, logger="algobridge")
    instance = str(tmp_path / "instance")
    os.makedirs(instance)
    application = unmigrated_app(sqlite_url(instance), instance)
    try:
        said = [r.getMessage() for r in caplog.records if "schema not migrated" in r.getMessage()]
        assert len(said) == 1  # once, at start-up
        assert said[0].startswith("schema not migrated: run flask db upgrade: the database sqlite:///")
        assert_gated(application)
        assert_gated(application)  # no second log line for later requests
        assert len([r for r in caplog.records if "schema not migrated" in r.getMessage()]) == 1

        bootstrap.init_migrations(application)
        runner = application.test_cli_runner()
        head = schema.head_revision()
        with application.app_context():
            result = runner.invoke(args=["db", "upgrade"])
            assert result.exit_code == 0, result.output
            assert re.search(rf"sqlite:///\S+: upgraded from an empty database to {head} \(head\)\n", result.output)
            again = runner.invoke(args=["db", "upgrade"])
            assert again.exit_code == 0, again.output
            assert again.output.endswith(f": already at head ({head})\n")

        monkeypatch.setattr(bootstrap, "RECHECK_SECONDS", 0.0)  # look again at the next request
        client = application.test_client()
        resp = client.get("/")
        assert (resp.status_code, resp.headers["Location"]) == (302, "/setup")
        assert client.post("/api/v1/funds", json={"apikey": "x" * 64}).status_code == 403
    finally:
        shutdown_app(application)


def test_before_migration_postgresql_is_503_too(tmp_path):
    url = create_pg_database()
    application = None
    try:
        application = unmigrated_app(url, str(tmp_path))
        assert_gated(application)
    finally:
        if application is not None:
            # its log rows wait for tables that do not exist: spooled at once instead of retried for seconds
            application.extensions["algobridge.writer"].shutdown(timeout=0.1)
            shutdown_app(application)
        drop_pg_database(url)


# -- flask run -----------------------------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


def test_flask_run_serves_a_fresh_instance_migrated(tmp_path):
    port = free_port()
    proc = subprocess.Popen([FLASK, "--app", "app", "run", "--port", str(port)], cwd=ROOT, env=clean_env(tmp_path),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    opener = urllib.request.build_opener(NoRedirect)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                opener.open(f"http://127.0.0.1:{port}/", timeout=5)
                pytest.fail("/ should redirect a fresh install to /setup")
            except urllib.error.HTTPError as exc:  # the 302, not followed
                status, location = exc.code, exc.headers.get("Location")
                break
            except OSError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    proc.kill()
                    pytest.fail("flask run did not serve:\n" + (proc.stdout.read() if proc.stdout else ""))
                time.sleep(0.05)
        assert (status, location) == (302, "/setup")
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/setup", timeout=5) as resp:  # noqa: S310
            assert resp.status == 200
            assert b"Algobridge" in resp.read()
    finally:
        proc.terminate()
        output, _ = proc.communicate(timeout=30)
    assert "no such table" not in output
    assert "503" not in output
    assert (tmp_path / "instance" / "algobridge.db").exists()


def test_python_app_py_says_what_to_open(tmp_path):
    from app import open_hint

    class Fresh:
        extensions: dict = {}

        def app_context(self):
            raise RuntimeError("no database here")  # the hint survives a failed look-up

    assert open_hint(Fresh(), ["0.0.0.0:5000"]) == "Algobridge is ready: open http://127.0.0.1:5000"
    gated = Fresh()
    gated.extensions = {bootstrap.UNMIGRATED: {}}
    assert open_hint(gated, ["127.0.0.1:8000"]).endswith("(schema not migrated: run flask db upgrade first: pages "
                                                         "answer 503 until then)")


def test_open_hint_names_setup_on_a_fresh_install(app):
    from app import open_hint

    assert open_hint(app, ["127.0.0.1:5000"]) == ("Algobridge is ready: open http://127.0.0.1:5000; a fresh install: "
                                                  "http://127.0.0.1:5000/setup creates the admin account")
