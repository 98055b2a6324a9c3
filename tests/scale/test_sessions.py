"""Sign-out ends a copied session cookie in every worker within a second; the sign-in limit and the account
lockout are shared by every worker.

A real gunicorn with 4 workers, on PostgreSQL with Redis (invalidation by pub/sub), on PostgreSQL without
Redis and on SQLite (invalidation through the database's generation counters). Each worker caches the
server-side session of the cookie it sees; requests on fresh connections (spread over the workers by the
kernel) warm every worker first, and after the sign-out every request sent a second or more after it must
be sent to the sign-in page. Old code (a client-side session only) kept answering the copy.

Sign-in limits: TRUSTED_PROXIES=127.0.0.1 lets the test speak for several client addresses
(X-Forwarded-For). 12 failed sign-ins from one address on fresh connections: exactly 5 are answered
(LOGIN_RATE_LIMIT, 5 a minute), wherever they land; a count per worker would have answered up to 20.
"""

from __future__ import annotations

import re
import threading
import time

import pytest
import requests

from tests.helpers.accounts import PASSWORD
from tests.helpers.databases import create_pg_database, drop_pg_database, sqlite_url
from tests.scale.conftest import seed, server_env

pytestmark = pytest.mark.slow

THREADS = 12
WITHIN = 1.0  # seconds
PAGE = "/apikey"  # a light signed-in page
_CSRF = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"|value="([^"]+)"[^>]*name="csrf_token"')


def _csrf(session: requests.Session, url: str) -> str:
    resp = session.get(url, timeout=10)
    assert resp.status_code == 200, f"GET {url}: {resp.status_code}"
    match = _CSRF.search(resp.text)
    assert match, f"no csrf token on {url}"
    return match.group(1) or match.group(2)


def _sign_in(base: str, username: str, password: str, address: str | None = None) -> requests.Response:
    """One sign-in on a fresh connection (any worker), from `address` as our trusted proxy tells it."""
    headers = {"X-Forwarded-For": address} if address else {}
    with requests.Session() as fresh:
        token = _csrf(fresh, base + "/auth/login")
        return fresh.post(base + "/auth/login", data={"username": username, "password": password, "csrf_token": token},
                          headers=headers, timeout=10, allow_redirects=False)


def _hammer(base: str, cookie: str, seconds: float) -> list[tuple[float, int]]:
    """GET the page with the cookie from THREADS threads, each request on a fresh connection: (sent, status),
    302 meaning sent to the sign-in page (a redirect elsewhere is 399)."""
    answers, lock = [], threading.Lock()
    stop_at = time.monotonic() + seconds

    def run() -> None:
        while time.monotonic() < stop_at:
            sent = time.monotonic()
            with requests.Session() as fresh:
                resp = fresh.get(base + PAGE, cookies={"session": cookie}, timeout=10, allow_redirects=False)
            # 302 only to the sign-in page counts as refused; anything else stands out as itself.
            refused = resp.status_code == 302 and "/auth/login" in resp.headers.get("Location", "")
            with lock:
                answers.append((sent, 302 if refused else resp.status_code if resp.status_code != 302 else 399))

    threads = [threading.Thread(target=run) for _ in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return answers


@pytest.fixture(params=["postgresql+redis", "postgresql", "sqlite"])
def database(request, tmp_path):
    if request.param == "sqlite":
        yield sqlite_url(str(tmp_path / "instance")), ""
        return
    url = create_pg_database("algobridge_scale")
    try:
        yield url, (request.getfixturevalue("redis_url") if request.param.endswith("redis") else "")
    finally:
        drop_pg_database(url)


def test_sign_out_ends_a_copied_cookie_everywhere_and_sign_in_limits_are_shared(database, start_server, tmp_path):
    url, redis_url = database
    server = start_server(server_env(url, str(tmp_path / "instance"), redis_url=redis_url,
                                     TRUSTED_PROXIES="127.0.0.1"))
    seed(server.env, {"symbols": 200, "users": [{"name": "trader", "keys": 0}]})
    assert len(server.worker_pids()) >= 2, "the requests did not spread over the workers"

    # -- the sign-in limit, counted once for all workers ---------------------------------------------------
    statuses = [_sign_in(server.base, f"nobody{i}", "wrong-password", "203.0.113.77").status_code
                for i in range(12)]
    assert statuses.count(200) == 5, statuses
    assert statuses.count(429) == 7, statuses
    assert _sign_in(server.base, "nobody", "wrong-password", "203.0.113.78").status_code == 200  # its own count

    # -- a copied cookie after sign-out ---------------------------------------------------------------------
    web = requests.Session()
    token = _csrf(web, server.base + "/auth/login")
    resp = web.post(server.base + "/auth/login", timeout=10, allow_redirects=False,
                    data={"username": "trader", "password": PASSWORD, "csrf_token": token})
    assert resp.status_code == 302, resp.text[:500]
    copied = web.cookies["session"]
    warm = _hammer(server.base, copied, 1.5)  # every worker has the session cached as live
    assert len(warm) >= 20, f"too few requests before the sign-out ({len(warm)})"
    assert {status for _, status in warm} == {200}, warm[:5]

    token = _csrf(web, server.base + PAGE)
    assert web.post(server.base + "/auth/logout", data={"csrf_token": token}, timeout=10,
                    allow_redirects=False).status_code == 302
    ended_at = time.monotonic()
    after = _hammer(server.base, copied, WITHIN + 3.0)
    late = [status for sent, status in after if sent >= ended_at + WITHIN]
    assert len(late) >= 30, f"too few requests after the sign-out to tell ({len(late)})"
    assert set(late) == {302}, f"{late.count(200)} of {len(late)} requests {WITHIN} s after the sign-out were served"
    early = [status for sent, status in after if sent < ended_at + WITHIN and status == 200]
    print(f"\n{server.env['DATABASE_URL'].split(':')[0]} redis={bool(redis_url)}: {len(warm)} requests served "
          f"before the sign-out; after it {len(after)}, of which {len(early)} served in the first {WITHIN} s, "
          "none later")

    # -- the account lockout, counted once for all workers ------------------------------------------------
    for i in range(4):
        resp = _sign_in(server.base, "trader", "wrong-password", f"198.51.100.{i + 1}")
        assert resp.status_code == 200
        assert "Too many failed sign-ins" not in resp.text
    resp = _sign_in(server.base, "trader", "wrong-password", "198.51.100.9")
    assert "Too many failed sign-ins for this username" in resp.text
    resp = _sign_in(server.base, "trader", PASSWORD, "198.51.100.10")
    assert resp.status_code == 429
    assert "Too many failed sign-ins for this username" in resp.text
