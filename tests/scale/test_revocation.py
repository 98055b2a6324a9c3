"""Revoke an API key and disconnect a broker session through one worker: every worker refuses them
within a second.

4 gunicorn workers with Redis (as production). Every worker caches API keys and broker sessions in
process; the change is made through the web pages, so one worker handles it and the others hear of
it through Redis pub/sub. A request cannot choose its worker, so many requests on fresh connections
(spread over the workers by the kernel) warm every worker's cache first, and hammer all of them after
the change: every request sent a second or more after the change must be refused.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable

import pytest
import requests

from tests.fakes.kite_server import running_kite
from tests.helpers.accounts import PASSWORD
from tests.scale.conftest import api_call, order_body, seed, server_env

pytestmark = pytest.mark.slow

THREADS = 12
WITHIN = 1.0  # seconds
NO_SESSION = "No live broker session: connect your broker or switch to analyze mode"
_CSRF = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"|value="([^"]+)"[^>]*name="csrf_token"')


def _csrf(session: requests.Session, url: str) -> str:
    resp = session.get(url, timeout=10)
    assert resp.status_code == 200, f"GET {url}: {resp.status_code}"
    match = _CSRF.search(resp.text)
    assert match, f"no csrf token on {url}"
    return match.group(1) or match.group(2)


def _hammer(base: str, name: str, body: dict, seconds: float) -> list:
    """Call `name` from THREADS threads, each call on a fresh connection (any worker), for `seconds`."""
    answers, lock = [], threading.Lock()
    stop_at = time.monotonic() + seconds

    def run() -> None:
        while time.monotonic() < stop_at:
            with requests.Session() as fresh:
                answer = api_call(fresh, base, name, body, timeout=10)
            with lock:
                answers.append(answer)

    threads = [threading.Thread(target=run) for _ in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return answers


def _refused_everywhere_within(base: str, name: str, body: dict, change: Callable[[], None],
                               refused: Callable[[object], bool], what: str) -> None:
    warm = _hammer(base, name, body, 1.5)  # every worker has it cached
    assert warm, f"{what}: not accepted before the change: {warm[:3]}"
    assert all(a.status == 200 for a in warm), f"{what}: not accepted before the change: {warm[:3]}"
    change()
    changed_at = time.monotonic()
    after = _hammer(base, name, body, WITHIN + 2.0)
    late = [a for a in after if a.sent >= changed_at + WITHIN]
    assert len(late) >= 50, f"{what}: too few calls after the change to tell ({len(late)})"
    accepted = [a for a in late if not refused(a)]
    assert not accepted, f"{what}: {len(accepted)} of {len(late)} calls {WITHIN} s after the change were accepted"
    early = [a for a in after if a.sent < changed_at + WITHIN and not refused(a)]
    print(f"\n{what}: {len(warm)} calls accepted before; after it, {len(after)} calls of which "
          f"{len(early)} accepted in the first {WITHIN} s and none later")


@pytest.fixture
def kite():
    with running_kite() as server:
        yield server


def test_revoked_key_and_disconnected_broker_are_refused_by_every_worker(scale_db, redis_url, start_server,
                                                                         tmp_path, kite):
    # A live trader whose broker is the fake Kite: live mode needs a live broker session.
    server = start_server(server_env(
        scale_db, str(tmp_path / "instance"), redis_url=redis_url, ZERODHA_API_KEY=kite.fake.api_key,
        ZERODHA_API_SECRET=kite.fake.api_secret, ZERODHA_ROOT_URL=kite.url, ZERODHA_LOGIN_URL=kite.login_url,
        REDIRECT_URL=kite.fake.redirect_url))
    spec = {"users": [{"name": "trader", "keys": 2, "live": True,
                       "zerodha_token": kite.fake.issue_request_token()}]}
    user = seed(server.env, spec)["trader"]
    (revoked_id, revoked_key), (_other_id, live_key) = [(k["id"], k["key"]) for k in user["keys"]]
    server.wait_for_symbols(live_key)
    assert len(server.worker_pids()) >= 2, "the requests did not spread over the workers"

    web = requests.Session()
    token = _csrf(web, server.base + "/auth/login")
    resp = web.post(server.base + "/auth/login", timeout=10, allow_redirects=False,
                    data={"username": "trader", "password": PASSWORD, "csrf_token": token})
    assert resp.status_code == 302, resp.text[:500]

    def revoke() -> None:
        token = _csrf(web, server.base + "/apikey")
        done = web.post(f"{server.base}/apikey/{revoked_id}/revoke", data={"csrf_token": token}, timeout=10,
                        allow_redirects=False)
        assert done.status_code == 302, done.text[:500]

    _refused_everywhere_within(
        server.base, "ping", {"apikey": revoked_key}, revoke,
        lambda a: a.status == 403 and a.body["status"] == "error", "revoked API key")

    def disconnect() -> None:
        token = _csrf(web, server.base + "/broker")
        done = web.post(server.base + "/broker/disconnect", data={"csrf_token": token}, timeout=10,
                        allow_redirects=False)
        assert done.status_code == 302, done.text[:500]

    # The user trades live: without a broker session an order is refused.
    _refused_everywhere_within(
        server.base, "placeorder", order_body(live_key, product="NRML"), disconnect,
        lambda a: a.status == 403 and a.body == {"status": "error", "message": NO_SESSION}, "disconnected broker")
