"""The run command on a fresh checkout: no .env, an empty instance folder, `python app.py`."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

import config as config_module
from app import TrustedProxies

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str) -> tuple[int, bytes]:
    with urllib.request.urlopen(url, timeout=5) as resp:  # noqa: S310 - loopback only
        return resp.status, resp.read()


@pytest.mark.slow
def test_python_app_py_serves_the_embedded_default(tmp_path):
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_URL", "SECRET_KEY", "API_KEY",
                                                                     "TOKEN_ENC", "REDIS_URL", "FLASK_"))}
    env.update(INSTANCE_PATH=str(tmp_path / "instance"), PORT=str(port))
    proc = subprocess.Popen([sys.executable, "app.py"], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.time() + 30
        while True:
            try:
                status, body = _get(f"http://127.0.0.1:{port}/")
                break
            except OSError:
                if time.time() > deadline or proc.poll() is not None:
                    proc.kill()
                    pytest.fail("app.py did not serve:\n" + (proc.stdout.read() if proc.stdout else ""))
                time.sleep(0.05)
        assert status == 200
        assert b"Algobridge" in body
        status, body = _get(f"http://127.0.0.1:{port}/health")
        assert status == 200
        assert b'"status":"ok"' in body.replace(b" ", b"")
        instance = tmp_path / "instance"
        assert (instance / "algobridge.db").exists()
        assert oct((instance / "secrets.json").stat().st_mode & 0o777) == "0o600"
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        proc.stdout.close()
    assert proc.returncode == 0


def test_health_reports_each_part(client):
    resp = client.get("/health")
    assert resp.status_code == 200
    checks = resp.get_json()["checks"]
    assert checks["database"]["ok"]
    assert checks["migrations"]["ok"]
    assert checks["migrations"]["current"] == checks["migrations"]["head"]
    assert set(checks) == {"database", "migrations", "redis", "writer", "database_write", "instance_write"}


def test_errors_are_pages_for_people_and_json_for_the_api(client):
    page = client.get("/no/such/page")
    assert page.status_code == 404
    assert page.mimetype == "text/html"
    assert "404" in page.get_data(as_text=True)
    assert "Traceback" not in page.get_data(as_text=True)
    api = client.get("/api/v1/no-such-endpoint")
    assert api.status_code in (404, 405)
    assert api.get_json()["status"] == "error"
    machine = client.get("/no/such/page", headers={"Accept": "application/json"})
    assert machine.get_json() == {"status": "error", "message": machine.get_json()["message"]}


def test_warnings_of_the_application_reach_system_logs(app):
    import logging

    from database import writer
    from database.systemlog_db import SystemLog

    logging.getLogger("algobridge.test").warning("disk almost full on %s", "/data")
    assert writer.current().flush(timeout=10)
    from database import db

    row = db.session.scalars(db.select(SystemLog)).one()
    assert (row.level, row.logger, row.message) == ("WARNING", "algobridge.test", "disk almost full on /data")


def test_session_cookie_is_httponly_and_samesite_lax(app):
    from tests.helpers.accounts import make_user

    make_user("alice")
    resp = app.test_client().get("/auth/login")  # renders a form: the session holds its CSRF secret
    assert resp.status_code == 200
    (cookie,) = [h for h in resp.headers.getlist("Set-Cookie") if h.startswith("session=")]
    assert "HttpOnly" in cookie
    assert "SameSite=Lax" in cookie
    assert "Secure" not in cookie  # plain http


def test_forwarded_headers_are_believed_only_from_trusted_proxies():
    seen = {}

    def inner(environ, start_response):
        seen.update(addr=environ["REMOTE_ADDR"], scheme=environ["wsgi.url_scheme"])
        start_response("204 No Content", [])
        return [b""]

    wrapped = TrustedProxies(inner, config_module.parse_networks("TRUSTED_PROXIES", "127.0.0.1, 10.0.0.0/8"))

    def call(peer: str, forwarded: str | None, proto: str | None = None):
        environ = {"REMOTE_ADDR": peer, "wsgi.url_scheme": "http"}
        if forwarded is not None:
            environ["HTTP_X_FORWARDED_FOR"] = forwarded
        if proto is not None:
            environ["HTTP_X_FORWARDED_PROTO"] = proto
        wrapped(environ, lambda *_a: None)
        return seen["addr"], seen["scheme"]

    # From a listed proxy: the first address, from the right, that is not a proxy of ours.
    assert call("127.0.0.1", "203.0.113.9", "https") == ("203.0.113.9", "https")
    assert call("127.0.0.1", "198.51.100.1, 203.0.113.9, 10.1.2.3") == ("203.0.113.9", "http")
    # From anyone else the headers are the client's own words: ignored.
    assert call("198.51.100.7", "127.0.0.1", "https") == ("198.51.100.7", "http")
    assert call("127.0.0.1", None) == ("127.0.0.1", "http")
