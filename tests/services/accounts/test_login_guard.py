"""Sign-in throttles: the per-address limit counted in the database (atomic, shared by every worker), the
per-account lockout with its backoff, and the client address behind trusted proxies only."""

from __future__ import annotations

import datetime as dt
import ipaddress
import threading

import pytest
from sqlalchemy import select

from config import ConfigError, load_config, parse_networks
from database import db
from database.session_db import LoginThrottle
from database.types import utcnow
from database.user_db import LoginAttempt
from services.accounts import login_guard
from services.accounts import users as accounts
from services.accounts.login_guard import LockoutPolicy, client_ip
from tests.helpers.accounts import PASSWORD, make_user, use_test_hasher

NETS = parse_networks("TRUSTED_PROXIES", "10.0.0.0/8, 192.0.2.7, ::1")
T0 = dt.datetime(2026, 3, 10, 4, 0, 30, tzinfo=dt.UTC)  # a controlled clock: every call is given `now`


# -- the client address (pure) ------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("peer", "forwarded", "expected"),
    [
        ("198.51.100.9", "1.2.3.4", "198.51.100.9"),  # an untrusted peer: its header is ignored
        ("10.1.1.1", "203.0.113.5", "203.0.113.5"),  # our proxy says who the client is
        ("10.1.1.1", "6.6.6.6, 203.0.113.5", "203.0.113.5"),  # what the client wrote itself is not believed
        ("10.1.1.1", "6.6.6.6, 203.0.113.5, 10.2.2.2, 192.0.2.7", "203.0.113.5"),  # past a chain of our proxies
        ("10.1.1.1", "", "10.1.1.1"),  # no header: the proxy itself
        ("10.1.1.1", "10.3.3.3", "10.3.3.3"),  # only proxies: the farthest one
        ("10.1.1.1", "203.0.113.5, garbage", "10.1.1.1"),  # malformed: believe no further than the last proxy
        ("10.1.1.1", "6.6.6.6, nonsense, 10.2.2.2", "10.2.2.2"),
        ("::1", "2001:db8::1", "2001:db8::1"),
        ("::ffff:10.1.1.1", "203.0.113.5", "203.0.113.5"),  # an IPv4-mapped peer is matched as IPv4
        (None, "203.0.113.5", "unknown"),
    ],
)
def test_x_forwarded_for_is_believed_only_from_trusted_proxies(peer, forwarded, expected):
    assert client_ip(peer, forwarded, NETS) == expected
    assert client_ip(peer, forwarded, NETS, trust_any_peer=True) == expected  # the list wins over the flag


def test_without_trusted_proxies_the_old_flag_takes_the_last_hop_from_anyone():
    assert client_ip("198.51.100.9", "6.6.6.6, 1.2.3.4") == "198.51.100.9"  # off: the header is ignored
    assert client_ip("198.51.100.9", "6.6.6.6, 1.2.3.4", trust_any_peer=True) == "1.2.3.4"
    assert client_ip("198.51.100.9", "1.2.3.4, bogus", trust_any_peer=True) == "198.51.100.9"


def test_trusted_proxies_are_parsed_strictly(tmp_path):
    assert parse_networks("TRUSTED_PROXIES", "") == ()
    assert NETS == (ipaddress.ip_network("10.0.0.0/8"), ipaddress.ip_network("192.0.2.7/32"),
                    ipaddress.ip_network("::1/128"))
    with pytest.raises(ConfigError, match="TRUSTED_PROXIES: 'proxy.lan' is not an IP address"):
        load_config(str(tmp_path), environ={"TRUSTED_PROXIES": "10.0.0.1, proxy.lan"})
    assert load_config(str(tmp_path), environ={"TRUSTED_PROXIES": "10.0.0.1"})["TRUSTED_PROXIES"] == (
        ipaddress.ip_network("10.0.0.1/32"),)


def test_rate_limits_are_parsed_shortest_window_first():
    assert login_guard.parse_limits("25 per hour;5 per minute") == ((5, 60), (25, 3600))
    with pytest.raises(ValueError):  # noqa: PT011 - limits' own message
        login_guard.parse_limits("often")


# -- per address ------------------------------------------------------------------------------------------
def test_the_address_limit_counts_in_fixed_windows(app):
    limit = "5 per minute;8 per hour"
    for i in range(5):
        assert login_guard.admit_address("203.0.113.5", limit, now=T0 + dt.timedelta(seconds=i)) is None
    window_end = T0 + dt.timedelta(seconds=60)
    assert login_guard.admit_address("203.0.113.5", limit, now=T0 + dt.timedelta(seconds=10)) == window_end
    assert login_guard.admit_address("198.51.100.1", limit, now=T0 + dt.timedelta(seconds=10)) is None  # another
    # A new minute: room again, until the hour's limit (the hit refused by the minute's did not count in it).
    for i in range(3):
        assert login_guard.admit_address("203.0.113.5", limit, now=window_end + dt.timedelta(seconds=i)) is None
    hour_end = T0 + dt.timedelta(hours=1)
    assert login_guard.admit_address("203.0.113.5", limit, now=window_end + dt.timedelta(seconds=5)) == hour_end
    assert login_guard.admit_address("203.0.113.5", limit, now=hour_end) is None


def test_concurrent_attempts_from_one_address_never_exceed_the_limit(app):
    """Threads stand in for workers: the count is one atomic statement in the database, not a read and a
    write, so 12 attempts at once admit exactly 5."""
    application = app
    barrier = threading.Barrier(12, timeout=30)
    answers: list[dt.datetime | None] = []
    lock = threading.Lock()

    def attempt() -> None:
        with application.app_context():
            barrier.wait()
            answer = login_guard.admit_address("203.0.113.5", "5 per minute", now=T0)
            db.session.remove()
        with lock:
            answers.append(answer)

    threads = [threading.Thread(target=attempt) for _ in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(answers) == 12
    assert answers.count(None) == 5
    assert set(answers) - {None} == {T0 + dt.timedelta(seconds=60)}


def test_stale_counters_are_purged(app, monkeypatch):
    login_guard.admit_address("203.0.113.5", "5 per minute", now=T0)
    later = T0 + login_guard.KEEP_FOR + dt.timedelta(minutes=2)
    monkeypatch.setattr(login_guard, "_next_purge", 0.0)
    login_guard.admit_address("198.51.100.1", "5 per minute", now=later)
    db.session.rollback()
    assert list(db.session.scalars(select(LoginThrottle.key))) == ["addr:60:198.51.100.1"]


# -- per account ------------------------------------------------------------------------------------------
POLICY = LockoutPolicy(failures=5, window=dt.timedelta(minutes=15), longest=dt.timedelta(minutes=6))


def fail(username: str, times: int, start: dt.datetime) -> list[dt.datetime | None]:
    return [login_guard.note_failure(username, POLICY, now=start + dt.timedelta(seconds=i)) for i in range(times)]


def test_five_failures_lock_the_username_with_a_doubling_capped_backoff(app):
    assert fail("alice", 4, T0) == [None] * 4
    assert login_guard.account_locked("alice", now=T0) is None
    first = T0 + dt.timedelta(seconds=4, minutes=1)
    assert fail("alice", 1, T0 + dt.timedelta(seconds=4)) == [first]
    assert login_guard.account_locked("ALICE ", now=T0 + dt.timedelta(seconds=30)) == first  # usernames fold
    assert login_guard.account_locked("alice", now=first) is None  # over at its end
    lengths = []
    start = first
    for _ in range(4):
        until = fail("alice", 5, start)[-1]
        lengths.append(until - (start + dt.timedelta(seconds=4)))
        start = until
    assert lengths == [dt.timedelta(minutes=m) for m in (2, 4, 6, 6)]  # 1, 2, 4, then capped at 6


def test_failures_spread_beyond_the_window_do_not_lock(app):
    every_4_minutes = [login_guard.note_failure("alice", POLICY, now=T0 + dt.timedelta(minutes=4 * i))
                       for i in range(10)]
    assert every_4_minutes == [None] * 10  # never 5 within 15 minutes
    assert fail("bob", 4, T0) == [None] * 4
    assert fail("bob", 1, T0 + dt.timedelta(minutes=16)) == [None]  # a new window began: one failure in it


def test_a_success_or_a_quiet_day_start_the_steps_again(app):
    fail("alice", 5, T0)
    fail("alice", 5, T0 + dt.timedelta(minutes=2))  # the second lockout: 2 minutes
    login_guard.clear_account("alice")
    assert fail("alice", 5, T0 + dt.timedelta(minutes=10))[-1] == T0 + dt.timedelta(minutes=11, seconds=4)
    quiet = T0 + dt.timedelta(days=1, minutes=12)
    assert fail("alice", 5, quiet)[-1] == quiet + dt.timedelta(minutes=1, seconds=4)


def test_no_lockout_when_turned_off(app):
    off = LockoutPolicy(failures=0)
    assert [login_guard.note_failure("alice", off, now=T0) for _ in range(20)] == [None] * 20
    assert login_guard.account_locked("alice", now=T0) is None


def test_the_policy_comes_from_the_configuration(app):
    policy = LockoutPolicy.from_config({"LOGIN_LOCKOUT_FAILURES": 3, "LOGIN_LOCKOUT_WINDOW": 10,
                                        "LOGIN_LOCKOUT_MAX": 30})
    assert (policy.failures, policy.window, policy.longest) == (3, dt.timedelta(minutes=10), dt.timedelta(minutes=30))
    assert LockoutPolicy.from_config(app.config) == LockoutPolicy()  # the defaults: 5 in 15 min, up to 60 min


# -- sign-in with the lockout -------------------------------------------------------------------------------
@pytest.fixture
def cheap(monkeypatch):
    use_test_hasher(monkeypatch)


def sign_in(username: str, password: str, now: dt.datetime) -> accounts.LoginResult:
    return accounts.authenticate(username, password, ip="203.0.113.5", user_agent="probe", now=now)


def test_a_locked_username_is_refused_unchecked_and_unknown_ones_alike(app, cheap):
    make_user("alice")
    now = utcnow()
    for name in ("alice", "ghost"):  # a real account and one that does not exist
        results = [sign_in(name, "wrong-password", now) for _ in range(5)]
        assert [r.reason for r in results[:4]] == [results[0].reason] * 4
        assert [r.retry_at for r in results[:4]] == [None] * 4
        assert results[4].retry_at == now + dt.timedelta(minutes=1)  # the failure that locks says until when
        locked = sign_in(name, PASSWORD, now + dt.timedelta(seconds=30))  # even the right password
        assert (locked.ok, locked.reason, locked.user, locked.retry_at) == (
            False, accounts.REASON_LOCKED, None, now + dt.timedelta(minutes=1))
    assert sign_in("alice", PASSWORD, now + dt.timedelta(minutes=1)).ok  # the lock is over: signed in
    db.session.rollback()
    reasons = [r.reason for r in db.session.scalars(select(LoginAttempt).order_by(LoginAttempt.id))]
    assert reasons == (["bad_password"] * 5 + ["locked"] + ["unknown_user"] * 5 + ["locked"] + ["success"])
    assert login_guard.account_locked("alice", now=now) is None  # the success cleared the steps as well
    assert db.session.get(LoginThrottle, "user:alice") is None


def test_a_disabled_account_with_its_right_password_is_no_failure(app, cheap):
    make_user("bob", is_active=False)
    now = utcnow()
    assert {sign_in("bob", PASSWORD, now).reason for _ in range(6)} == {accounts.REASON_DISABLED}
    assert login_guard.account_locked("bob", now=now) is None


def test_an_administrators_password_reset_clears_the_lockout(app, cheap):
    make_user("alice")
    now = utcnow()
    for _ in range(5):
        sign_in("alice", "wrong-password", now)
    assert login_guard.account_locked("alice", now=now) is not None
    accounts.reset_password("alice", "brand-new-password", actor=accounts.Actor.cli())
    assert login_guard.account_locked("alice", now=now) is None
    assert sign_in("alice", "brand-new-password", now).ok
